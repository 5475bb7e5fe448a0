// envd's exact behaviour where the SDK shows it (issue 11 §3): removing what
// does not exist succeeds, an expired signed URL gets envd's own answer,
// and every boot of a sandbox has a boot id of its own.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Sandbox, TimeoutError } from 'e2b'
import { tracker } from './helpers.mjs'

const T = tracker()
after(() => T.killAll())

describe('data plane as envd behaves', () => {
  it('files.remove of a path that does not exist succeeds', { timeout: 60_000 }, async () => {
    const sbx = await T.create('base')
    await sbx.files.remove('/home/user/never-was-here')
    await sbx.files.remove('/home/user/no/such/dir')
    assert.equal(await sbx.files.exists('/home/user/never-was-here'), false)
  })

  it('writing several files creates their missing parents, owned by the user', { timeout: 60_000 }, async () => {
    const sbx = await T.create('base')
    const res = await sbx.files.write([
      { path: '/home/user/multi/a/one.txt', data: 'one' },
      { path: '/home/user/multi/b/c/two.txt', data: 'two' },
    ])
    assert.equal(res.length, 2)
    assert.equal(await sbx.files.read('/home/user/multi/a/one.txt'), 'one')
    assert.equal(await sbx.files.read('/home/user/multi/b/c/two.txt'), 'two')
    for (const d of ['/home/user/multi', '/home/user/multi/b/c']) assert.equal((await sbx.files.getInfo(d)).owner, 'user')
  })

  it('file metadata: kept on upload, read back by write, getInfo and list; an overwrite replaces it', { timeout: 60_000 }, async () => {
    const sbx = await T.create('base')
    const P = '/home/user/meta.txt'
    const info = await sbx.files.write(P, 'x', { metadata: { Owner: 'alice', 'build-id': '42' } })
    const want = { owner: 'alice', 'build-id': '42' } // keys lowercased, as envd does
    assert.deepEqual(info.metadata, want)
    assert.deepEqual((await sbx.files.getInfo(P)).metadata, want)
    assert.deepEqual((await sbx.files.list('/home/user')).find((e) => e.name === 'meta.txt').metadata, want)
    // Stored as envd stores it: user.e2b.<key> extended attributes.
    const attrs = await sbx.commands.run(`getfattr -d --absolute-names ${P} 2>/dev/null || python3 -c "import os; print(sorted(os.listxattr('${P}')))"`)
    assert.match(attrs.stdout, /user\.e2b\.owner/)
    const again = await sbx.files.write(P, 'y', { metadata: { stage: 'two' } })
    assert.deepEqual(again.metadata, { stage: 'two' })
    await sbx.files.write(P, 'z')
    assert.equal((await sbx.files.getInfo(P)).metadata, undefined)
  })

  it('a sandbox killed while a command streams: the SDK says it was killed', { timeout: 60_000 }, async () => {
    const sbx = await T.create('base')
    // Settled into a value at once: the rejection may come before the kill returns.
    const outcome = sbx.commands.run('echo started; sleep 30').then(() => null, (e) => e)
    await new Promise((r) => setTimeout(r, 1000))
    await Sandbox.kill(sbx.sandboxId)
    const err = await outcome
    assert.ok(err instanceof TimeoutError, `${err?.constructor.name}: ${err?.message}`)
    assert.match(err.message, /killed/)
  })

  it('an expired signed URL: 401 "signature is already expired"', { timeout: 60_000 }, async () => {
    const sbx = await T.create('base', { secure: true })
    await sbx.files.write('hello.txt', 'hello world')
    const url = await sbx.downloadUrl('hello.txt', { useSignatureExpiration: -10_000 })
    const res = await fetch(url)
    assert.equal(res.status, 401)
    assert.deepEqual(await res.json(), { code: 401, message: 'signature is already expired' })
    const fresh = await fetch(await sbx.downloadUrl('hello.txt', { useSignatureExpiration: 60_000 }))
    assert.equal(await fresh.text(), 'hello world')
  })

  it('each boot has its own boot_id, never the host\'s', { timeout: 120_000 }, async () => {
    const bootId = async (sbx) =>
      (await sbx.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim()
    const host = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    const a = await T.create('base')
    const b = await T.create('base')
    const first = await bootId(a)
    assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    assert.notEqual(first, host)
    assert.notEqual(first, await bootId(b))
    // A pause that keeps memory is the same boot; one without it is a new one.
    await a.pause()
    const same = await Sandbox.connect(a.sandboxId, { timeoutMs: 60_000 })
    assert.equal(await bootId(same), first)
    await same.pause({ keepMemory: false })
    const fresh = await Sandbox.connect(a.sandboxId, { timeoutMs: 60_000 })
    assert.notEqual(await bootId(fresh), first)
  })
})
