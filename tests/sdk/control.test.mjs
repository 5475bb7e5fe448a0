// Control-plane behaviour of the official SDK against sandboxd's API listener
// (E2B_API_URL). No envd calls here except where noted (isRunning).
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  Sandbox,
  AuthenticationError,
  NotFoundError,
  SandboxError,
  SandboxNotFoundError,
} from 'e2b'
import { tracker, sleep, listAll, waitFor } from './helpers.mjs'

const T = tracker()
after(() => T.killAll())

describe('control plane', () => {
  it('create → getInfo returns what the create asked for', { timeout: 120_000 }, async () => {
    const before = Date.now()
    const sbx = await T.create({ metadata: { suite: 'sdk', case: 'info' }, timeoutMs: 120_000 })
    assert.equal(typeof sbx.sandboxId, 'string')
    assert.ok(sbx.sandboxId.length > 0)

    const info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.equal(typeof info.templateId, 'string')
    assert.ok(info.templateId.length > 0)
    assert.deepEqual(info.metadata, { suite: 'sdk', case: 'info' })
    assert.equal(info.state, 'running')
    assert.ok(info.startedAt instanceof Date && !isNaN(info.startedAt), 'startedAt is a valid date')
    assert.ok(info.endAt instanceof Date && !isNaN(info.endAt), 'endAt is a valid date')
    assert.ok(info.startedAt.getTime() >= before - 5_000, 'startedAt is recent')
    const ttl = info.endAt.getTime() - info.startedAt.getTime()
    assert.ok(Math.abs(ttl - 120_000) < 10_000, `endAt - startedAt ≈ 120 s (got ${ttl} ms)`)
    assert.equal(typeof info.envdVersion, 'string')
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+/)
    assert.equal(typeof info.cpuCount, 'number')
    assert.equal(typeof info.memoryMB, 'number')

    const same = await Sandbox.getInfo(sbx.sandboxId)
    assert.equal(same.sandboxId, sbx.sandboxId)
  })

  it('create from the code_interpreter template', { timeout: 120_000 }, async () => {
    const sbx = await T.create('code_interpreter', { timeoutMs: 60_000 })
    const info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.equal(info.state, 'running')
  })

  it('create from an unknown template fails with a SandboxError', { timeout: 60_000 }, async () => {
    await assert.rejects(
      Sandbox.create('no-such-template-xyz', { timeoutMs: 30_000 }).then((s) => {
        T.track(s.sandboxId)
        return s
      }),
      (err) => err instanceof SandboxError || err instanceof NotFoundError
    )
  })

  it('a wrong API key is an AuthenticationError', { timeout: 30_000 }, async () => {
    await assert.rejects(
      Sandbox.create({ apiKey: 'e2b_definitely_not_a_valid_key', timeoutMs: 30_000 }),
      AuthenticationError
    )
    await assert.rejects(
      listAll(Sandbox.list({ apiKey: 'e2b_definitely_not_a_valid_key' })),
      AuthenticationError
    )
  })

  it('list returns running sandboxes, filters by metadata and state', { timeout: 120_000 }, async () => {
    const tag = `list-${Date.now()}`
    const a = await T.create({ metadata: { tag, n: '1' } })
    const b = await T.create({ metadata: { tag, n: '2' } })

    const all = await listAll(Sandbox.list())
    const ids = all.map((s) => s.sandboxId)
    assert.ok(ids.includes(a.sandboxId), 'list() contains sandbox a')
    assert.ok(ids.includes(b.sandboxId), 'list() contains sandbox b')
    const la = all.find((s) => s.sandboxId === a.sandboxId)
    assert.equal(la.state, 'running')
    assert.deepEqual(la.metadata, { tag, n: '1' })
    assert.ok(la.startedAt instanceof Date && !isNaN(la.startedAt))
    assert.ok(la.endAt instanceof Date && !isNaN(la.endAt))
    assert.equal(typeof la.templateId, 'string')

    const byTag = await listAll(Sandbox.list({ query: { metadata: { tag } } }))
    assert.deepEqual(byTag.map((s) => s.sandboxId).sort(), [a.sandboxId, b.sandboxId].sort())

    const byN = await listAll(Sandbox.list({ query: { metadata: { tag, n: '2' } } }))
    assert.deepEqual(byN.map((s) => s.sandboxId), [b.sandboxId])

    const running = await listAll(Sandbox.list({ query: { state: ['running'], metadata: { tag } } }))
    assert.equal(running.length, 2)
    const paused = await listAll(Sandbox.list({ query: { state: ['paused'], metadata: { tag } } }))
    assert.equal(paused.length, 0)
  })

  it('list paginates with limit / x-next-token', { timeout: 120_000 }, async () => {
    const tag = `page-${Date.now()}`
    const made = []
    for (let i = 0; i < 3; i++) made.push((await T.create({ metadata: { tag } })).sandboxId)

    const pager = Sandbox.list({ query: { metadata: { tag } }, limit: 2 })
    const first = await pager.nextItems()
    assert.equal(first.length, 2, 'first page honours limit')
    assert.equal(pager.hasNext, true, 'x-next-token present after a full first page')
    const rest = []
    while (pager.hasNext) rest.push(...(await pager.nextItems()))
    const seen = [...first, ...rest].map((s) => s.sandboxId)
    assert.deepEqual([...seen].sort(), [...made].sort(), 'pages cover every sandbox exactly once')
  })

  it('setTimeout moves endAt', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 60_000 })
    await sbx.setTimeout(300_000)
    const info = await sbx.getInfo()
    const left = info.endAt.getTime() - Date.now()
    assert.ok(left > 240_000 && left < 330_000, `endAt ≈ now + 300 s (got ${left} ms)`)

    await Sandbox.setTimeout(sbx.sandboxId, 30_000)
    const info2 = await sbx.getInfo()
    const left2 = info2.endAt.getTime() - Date.now()
    assert.ok(left2 > 15_000 && left2 < 45_000, `endAt ≈ now + 30 s after shrinking (got ${left2} ms)`)
  })

  it('a sandbox is gone after its timeout expires', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 3_000 })
    const gone = await waitFor(async () => {
      try {
        await sbx.getInfo()
        return false
      } catch (e) {
        return e instanceof NotFoundError
      }
    }, 20_000, 500)
    assert.ok(gone, 'getInfo throws NotFoundError once the timeout has passed')
    const ids = (await listAll(Sandbox.list())).map((s) => s.sandboxId)
    assert.ok(!ids.includes(sbx.sandboxId))
  })

  it('connect to a running sandbox (static and instance)', { timeout: 60_000 }, async () => {
    const sbx = await T.create()
    const other = await Sandbox.connect(sbx.sandboxId)
    assert.equal(other.sandboxId, sbx.sandboxId)
    const again = await sbx.connect()
    assert.equal(again, sbx)
    const info = await other.getInfo()
    assert.equal(info.state, 'running')
  })

  it('connect to a running sandbox only extends the TTL, never shortens it', { timeout: 60_000 }, async () => {
    const sbx = await T.create({ timeoutMs: 300_000 })
    const before = (await sbx.getInfo()).endAt.getTime()
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 30_000 })
    const after = (await sbx.getInfo()).endAt.getTime()
    assert.ok(after >= before - 1_000, `endAt must not move earlier (before ${new Date(before).toISOString()}, after ${new Date(after).toISOString()})`)
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 600_000 })
    const extended = (await sbx.getInfo()).endAt.getTime() - Date.now()
    assert.ok(extended > 540_000, `a longer connect timeout extends endAt (got ${extended} ms)`)
  })

  it('connect to an unknown sandbox is a SandboxNotFoundError', { timeout: 30_000 }, async () => {
    await assert.rejects(Sandbox.connect('nonexistent-sandbox-id'), SandboxNotFoundError)
    await assert.rejects(Sandbox.getInfo('nonexistent-sandbox-id'), SandboxNotFoundError)
    await assert.rejects(Sandbox.setTimeout('nonexistent-sandbox-id', 10_000), SandboxNotFoundError)
  })

  it('pause, list as paused, pause again, resume via connect', { timeout: 180_000 }, async () => {
    const tag = `pause-${Date.now()}`
    const sbx = await T.create({ metadata: { tag } })
    assert.equal(await sbx.pause(), true)

    const info = await sbx.getInfo()
    assert.equal(info.state, 'paused')

    const paused = await listAll(Sandbox.list({ query: { state: ['paused'], metadata: { tag } } }))
    assert.deepEqual(paused.map((s) => s.sandboxId), [sbx.sandboxId])
    const running = await listAll(Sandbox.list({ query: { state: ['running'], metadata: { tag } } }))
    assert.equal(running.length, 0)
    const dflt = await listAll(Sandbox.list({ query: { metadata: { tag } } }))
    assert.deepEqual(dflt.map((s) => s.sandboxId), [sbx.sandboxId], 'default list includes paused')

    assert.equal(await sbx.pause(), false, 'pausing a paused sandbox returns false (409)')

    const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 })
    assert.equal(resumed.sandboxId, sbx.sandboxId)
    const info2 = await resumed.getInfo()
    assert.equal(info2.state, 'running')
    const left = info2.endAt.getTime() - Date.now()
    assert.ok(left > 60_000, `connect timeoutMs extends the TTL (got ${left} ms)`)
  })

  it('betaPause (deprecated alias) pauses too', { timeout: 120_000 }, async () => {
    const sbx = await T.create()
    assert.equal(await sbx.betaPause(), true)
    assert.equal((await sbx.getInfo()).state, 'paused')
    await sbx.connect()
    assert.equal((await sbx.getInfo()).state, 'running')
  })

  it('kill returns true, then false; the sandbox is gone', { timeout: 60_000 }, async () => {
    const sbx = await T.create()
    assert.equal(await sbx.kill(), true)
    assert.equal(await Sandbox.kill(sbx.sandboxId), false)
    await assert.rejects(sbx.getInfo(), SandboxNotFoundError)
    const ids = (await listAll(Sandbox.list())).map((s) => s.sandboxId)
    assert.ok(!ids.includes(sbx.sandboxId))
  })

  it('kill a paused sandbox', { timeout: 120_000 }, async () => {
    const sbx = await T.create()
    assert.equal(await sbx.pause(), true)
    assert.equal(await sbx.kill(), true)
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId), SandboxNotFoundError)
  })

  it('getMetrics returns an array of metrics', { timeout: 60_000 }, async () => {
    const sbx = await T.create()
    await sleep(1_500)
    const metrics = await sbx.getMetrics()
    assert.ok(Array.isArray(metrics), 'getMetrics returns an array')
    for (const m of metrics) {
      assert.ok(m.timestamp instanceof Date && !isNaN(m.timestamp))
      for (const k of ['cpuUsedPct', 'cpuCount', 'memUsed', 'memTotal', 'diskUsed', 'diskTotal']) {
        assert.equal(typeof m[k], 'number', `metric.${k} is a number`)
      }
    }
    const viaStatic = await Sandbox.getMetrics(sbx.sandboxId)
    assert.ok(Array.isArray(viaStatic))
    await assert.rejects(Sandbox.getMetrics('nonexistent-sandbox-id'), SandboxNotFoundError)
  })
})

describe('isRunning (envd /health)', () => {
  it('true while running, false after kill', { timeout: 60_000 }, async () => {
    const sbx = await T.create()
    assert.equal(await sbx.isRunning({ requestTimeoutMs: 10_000 }), true)
    await sbx.kill()
    assert.equal(await sbx.isRunning({ requestTimeoutMs: 10_000 }), false)
  })
})
