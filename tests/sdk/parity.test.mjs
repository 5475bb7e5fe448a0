// E2B parity features through the official SDK: metrics history, snapshots
// and sandboxes made from them, fork, lifecycle (auto-pause, auto-resume,
// pause without memory).
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox } from 'e2b'
import { tracker, waitFor } from './helpers.mjs'

const T = tracker()
after(() => T.killAll())

describe('parity: metrics, snapshots, fork, lifecycle', () => {
  it('getMetrics returns the sampled history', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 120_000 })
    const metrics = await waitFor(async () => {
      const m = await sbx.getMetrics()
      return m.length >= 1 ? m : null
    }, 20_000, 500)
    assert.ok(metrics && metrics.length >= 1, 'at least one sample')
    const m = metrics[metrics.length - 1]
    assert.ok(m.timestamp instanceof Date && !isNaN(m.timestamp))
    assert.equal(m.cpuCount, 2)
    assert.equal(m.memTotal, 512 * 1024 * 1024)
    assert.ok(m.memUsed > 0)
    const same = await Sandbox.getMetrics(sbx.sandboxId)
    assert.ok(same.length >= metrics.length)
  })

  it('createSnapshot, listSnapshots, and a sandbox made from the snapshot', { timeout: 120_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 120_000 })
    await sbx.files.write('/home/user/state.txt', 'from the snapshot')
    const name = `sdk-snap-${Date.now()}`
    const snap = await sbx.createSnapshot({ name })
    assert.equal(snap.snapshotId ?? snap.snapshotID, `${name}:default`)
    const listed = []
    const pages = Sandbox.listSnapshots({ sandboxId: sbx.sandboxId })
    while (pages.hasNext) listed.push(...(await pages.nextItems()))
    assert.ok(listed.some((s) => (s.snapshotId ?? s.snapshotID) === `${name}:default`), JSON.stringify(listed))
    const child = await T.create(`${name}:default`, { timeoutMs: 60_000 })
    assert.equal(await child.files.read('/home/user/state.txt'), 'from the snapshot')
    assert.equal(await sbx.isRunning(), true)
  })

  it('deleteSnapshot: refused while a sandbox uses it, then deleted; false once gone', { timeout: 120_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 120_000 })
    const name = `sdk-del-${Date.now()}`
    const snap = await sbx.createSnapshot({ name })
    const id = snap.snapshotId ?? snap.snapshotID
    const child = await T.create(id, { timeoutMs: 60_000 })
    await assert.rejects(Sandbox.deleteSnapshot(id), /in use by sandbox/)
    await child.kill()
    assert.equal(await Sandbox.deleteSnapshot(id), true)
    assert.equal(await Sandbox.deleteSnapshot(id), false)
    await assert.rejects(T.create(id, { timeoutMs: 60_000 }))
  })

  it('fork makes running copies', { timeout: 120_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 120_000, metadata: { origin: 'fork-test' } })
    await sbx.files.write('/home/user/fork.txt', 'shared past')
    const forks = await sbx.fork({ count: 2, timeoutMs: 60_000 })
    assert.equal(forks.length, 2)
    for (const f of forks) {
      assert.ok(!(f instanceof Error), String(f))
      T.track(f.sandboxId)
      assert.notEqual(f.sandboxId, sbx.sandboxId)
      assert.equal(await f.files.read('/home/user/fork.txt'), 'shared past')
      const r = await f.commands.run('echo alive')
      assert.equal(r.stdout, 'alive\n')
    }
  })

  it('lifecycle: auto-pause on timeout, then auto-resume on use', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 2_000, lifecycle: { onTimeout: 'pause', autoResume: true } })
    const info = await sbx.getInfo()
    assert.deepEqual(info.lifecycle, { onTimeout: 'pause', autoResume: true })
    await sbx.files.write('/home/user/kept.txt', 'kept')
    const paused = await waitFor(async () => (await sbx.getInfo()).state === 'paused', 15_000, 200)
    assert.ok(paused, 'paused on timeout')
    // Using it wakes it.
    assert.equal(await sbx.files.read('/home/user/kept.txt'), 'kept')
    assert.equal((await sbx.getInfo()).state, 'running')
  })

  it('pause without memory, then connect boots it on its files', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 120_000 })
    await sbx.files.write('/home/user/cold.txt', 'cold')
    await sbx.pause({ keepMemory: false })
    assert.equal((await sbx.getInfo()).state, 'paused')
    const again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
    assert.equal(await again.files.read('/home/user/cold.txt'), 'cold')
  })

  it("template 'claude' is the one with Claude Code", { timeout: 120_000 }, async () => {
    const sbx = await T.create('claude')
    const r = await sbx.commands.run('claude --version')
    assert.match(r.stdout, /Claude Code/)
  })
})
