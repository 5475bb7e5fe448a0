// Volumes with the official SDK (E2B's Volume, SDK 2.18+): created, listed,
// mounted into two sandboxes at once as one shared directory, written and
// read without a sandbox through the volume-content API, kept across a server
// restart, refused deletion while mounted. This file runs a server of its own
// (it restarts it), on free loopback ports with a data dir it removes.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, Volume } from 'e2b'
import { OwnServer } from './own_server.mjs'

const own = new OwnServer('sandboxd-sdkvol-', ['--volume-size-mb', '64'])

const created = new Set()
async function create(opts) {
  const sbx = await Sandbox.create('base', { timeoutMs: 300_000, ...opts })
  created.add(sbx.sandboxId)
  return sbx
}
async function kill(sbx) {
  await Sandbox.kill(sbx.sandboxId)
  created.delete(sbx.sandboxId)
}

before(async () => {
  await own.start()
})

after(async () => {
  for (const id of created) await Sandbox.kill(id).catch(() => {})
  await own.remove()
})

describe('volumes', () => {
  it('are created, listed, looked up and destroyed', async () => {
    const vol = await Volume.create('sdk-crud')
    assert.match(vol.volumeId, /^vol-[0-9a-f]{20}$/)
    assert.equal(vol.name, 'sdk-crud')
    assert.ok(vol.token.length > 0)
    const info = await Volume.getInfo(vol.volumeId)
    assert.equal(info.name, 'sdk-crud')
    assert.equal(info.token, vol.token)
    const listed = await Volume.list()
    assert.ok(listed.some((v) => v.volumeId === vol.volumeId && v.name === 'sdk-crud'))
    const again = await Volume.connect(vol.volumeId)
    assert.equal(again.token, vol.token)
    await assert.rejects(Volume.create('sdk-crud'), /already exists/)
    assert.equal(await Volume.destroy(vol.volumeId), true)
    assert.equal(await Volume.destroy(vol.volumeId), false, 'a second destroy finds nothing')
    await assert.rejects(Volume.getInfo(vol.volumeId), (e) => e.name === 'VolumeNotFoundError')
  })

  it('are shared by two sandboxes, reached without one, and outlive a restart', { timeout: 180_000 }, async () => {
    const vol = await Volume.create('sdk-shared')
    const a = await create({ volumeMounts: { '/mnt/data': vol } })
    const b = await create({ volumeMounts: { '/home/user/shared': 'sdk-shared' } })
    const infoA = await Sandbox.getInfo(a.sandboxId)
    assert.deepEqual(infoA.volumeMounts, [{ name: 'sdk-shared', path: '/mnt/data' }])

    await a.files.write('/mnt/data/notes.txt', 'from a\n')
    assert.equal(await b.files.read('/home/user/shared/notes.txt'), 'from a\n')
    const r = await b.commands.run('echo from b >> /home/user/shared/notes.txt && id -un')
    assert.equal(r.stdout.trim(), 'user')
    assert.equal(await a.files.read('/mnt/data/notes.txt'), 'from a\nfrom b\n')

    // Without a sandbox: the volume-content API.
    assert.equal(await vol.readFile('/notes.txt'), 'from a\nfrom b\n')
    await vol.writeFile('/from-api.txt', 'written by the API\n')
    assert.equal(await a.files.read('/mnt/data/from-api.txt'), 'written by the API\n')
    const entries = await vol.list('/')
    assert.deepEqual(entries.map((e) => e.name).sort(), ['from-api.txt', 'notes.txt'])

    // Mounted: destroy is refused.
    await assert.rejects(Volume.destroy(vol.volumeId), /mounted/)
    await kill(a)
    await kill(b)

    await own.stop()
    await own.start()
    const c = await create({ volumeMounts: { '/data': 'sdk-shared' } })
    assert.equal(await c.files.read('/data/notes.txt'), 'from a\nfrom b\n')
    assert.equal(await c.files.read('/data/from-api.txt'), 'written by the API\n')
    await kill(c)
    assert.equal(await Volume.destroy(vol.volumeId), true)
  })

  it('refuse mounts that name no volume or a reserved path', async () => {
    await assert.rejects(create({ volumeMounts: { '/mnt/x': 'no-such-volume' } }), /does not exist/)
    const vol = await Volume.create('sdk-bad')
    await assert.rejects(create({ volumeMounts: { '/etc': vol } }), /reserved/)
    await assert.rejects(create({ volumeMounts: { 'relative': vol } }), /absolute/)
    await Volume.destroy(vol.volumeId)
  })
})
