// Long disconnect: a background command keeps running while no client is
// attached; commands.connect() re-attaches 95 s later and gets fresh output.
// Own file so it runs once (takes ~100 s).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { CommandExitError } from 'e2b'
import { tracker, waitFor, bounded, sleep } from './helpers.mjs'

const T = tracker()
let sbx
before(async () => {
  sbx = await T.create({ timeoutMs: 300_000 })
})
after(() => T.killAll())

const ticks = (chunks) =>
  chunks
    .join('')
    .split('\n')
    .map((l) => /^tick-(\d+)$/.exec(l))
    .filter(Boolean)
    .map((m) => Number(m[1]))

describe('background command survives a long client disconnect', () => {
  it('disconnect, 95 s later connect(pid) receives fresh output, kill, wait() reflects it', { timeout: 200_000 }, async () => {
    const before = []
    // timeoutMs: 0 — the default 60 s Connect-Timeout-Ms would bound the
    // process lifetime (envd semantics), and this one must outlive 95 s.
    const h = await sbx.commands.run('for i in $(seq 1 150); do echo tick-$i; sleep 1; done', {
      background: true,
      timeoutMs: 0,
      onStdout: (d) => before.push(d),
    })
    const pid = h.pid
    assert.ok(pid > 0)
    assert.ok(await waitFor(() => ticks(before).length >= 2, 10_000), `ticks before disconnect: ${before.join('')}`)
    await h.disconnect()
    const lastBefore = Math.max(...ticks(before))
    const t0 = Date.now()

    await sleep(95_000)

    // Still running and listed after 95 s with no client attached.
    const procs = await sbx.commands.list()
    assert.ok(procs.some((p) => p.pid === pid), `pid ${pid} still listed after 95 s: ${JSON.stringify(procs)}`)

    const after = []
    const h2 = await sbx.commands.connect(pid, { onStdout: (d) => after.push(d), timeoutMs: 60_000 })
    assert.equal(h2.pid, pid)
    const elapsed = Math.floor((Date.now() - t0) / 1000)
    // Live output: the counter kept advancing while nobody was attached (the
    // process was neither paused nor restarted), and new ticks keep coming.
    const live = lastBefore + elapsed - 10
    const fresh = await waitFor(() => ticks(after).some((n) => n >= live + 2), 15_000)
    assert.ok(fresh, `ticks >= ${live + 2} after reconnect (~${elapsed} s since tick ${lastBefore}): ${JSON.stringify(after.join('').slice(-300))}`)
    const seen = ticks(after)
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, `consecutive ticks: ${seen}`)
    // Nothing already delivered before the disconnect is delivered again.
    // Upstream envd starts at the live position; sandboxd first replays the
    // (bounded, 1 MiB) backlog produced while detached, i.e. from lastBefore+1
    // — or +2: the first frame written after the client went away can still be
    // accepted by the kernel into the dead socket and is then lost.
    assert.ok(seen.every((n) => n > lastBefore), `no tick <= ${lastBefore} re-delivered: ${seen.slice(0, 5)}`)
    assert.ok(seen[0] <= lastBefore + 2 || seen[0] >= live, `first tick ${seen[0]} (last before ${lastBefore}): either the detached backlog or live`)

    assert.equal(await sbx.commands.kill(pid), true)
    await assert.rejects(bounded(h2.wait(), 15_000, 'wait() after kill'), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err?.name}: ${err?.message}`)
      assert.notEqual(err.exitCode, 0)
      assert.match(String(err.error), /kill/i, `error describes the kill: ${err.error}`)
      assert.ok(ticks([err.stdout]).length >= 2, 'handle stdout holds the post-reconnect ticks')
      return true
    })
    const gone = await waitFor(async () => !(await sbx.commands.list()).some((p) => p.pid === pid), 5_000, 200)
    assert.ok(gone, 'killed process is no longer listed')
    assert.equal(await sbx.commands.kill(pid), false)
  })
})
