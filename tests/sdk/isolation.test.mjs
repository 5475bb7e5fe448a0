// Cross-org and cross-sandbox isolation as seen through the SDK.
// Needs SANDBOXD_BIN + SANDBOXD_DATA_DIR (exported by run.sh) to mint a
// second org's API key with `sandboxd keys create` while the server runs.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { Sandbox, SandboxNotFoundError, AuthenticationError } from 'e2b'
import { tracker, listAll } from './helpers.mjs'

for (const v of ['SANDBOXD_BIN', 'SANDBOXD_DATA_DIR']) {
  if (!process.env[v]) throw new Error(`${v} is not set — run the suite through tests/sdk/run.sh`)
}

const T = tracker()
let keyB
let a // org A (E2B_API_KEY)
let b // org B (keyB)
const tag = `iso-${Date.now()}`
const SECRET = `secret-of-A-${randomBytes(6).toString('hex')}`
const P = `/tmp/iso-${process.pid}.txt`

before(async () => {
  const out = execFileSync(
    process.env.SANDBOXD_BIN,
    ['keys', 'create', '--data-dir', process.env.SANDBOXD_DATA_DIR, '--org', `other-${randomBytes(4).toString('hex')}`],
    { encoding: 'utf8', timeout: 30_000 }
  )
  keyB = out.trim().split(/\s+/).pop()
  assert.match(keyB, /^e2b_/, `keys create printed a key: ${JSON.stringify(out)}`)
  assert.notEqual(keyB, process.env.E2B_API_KEY)
  a = await T.create({ metadata: { tag, org: 'A' }, timeoutMs: 300_000 })
  b = await T.create({ metadata: { tag, org: 'B' }, timeoutMs: 300_000, apiKey: keyB })
  await a.files.write(P, SECRET)
  await b.files.write(P, 'belongs-to-B')
})
after(() => T.killAll())

const envdVersion = async (sbx) => (await sbx.getInfo()).envdVersion

describe('cross-org denial on the control plane', () => {
  it("org B cannot connect / getInfo / setTimeout / pause / getMetrics org A's sandbox", { timeout: 60_000 }, async () => {
    const o = { apiKey: keyB }
    await assert.rejects(Sandbox.connect(a.sandboxId, o), SandboxNotFoundError)
    await assert.rejects(Sandbox.getInfo(a.sandboxId, o), SandboxNotFoundError)
    await assert.rejects(Sandbox.setTimeout(a.sandboxId, 5_000, o), SandboxNotFoundError)
    await assert.rejects(Sandbox.pause(a.sandboxId, o), SandboxNotFoundError)
    await assert.rejects(Sandbox.getMetrics(a.sandboxId, o), SandboxNotFoundError)
    // ...and none of that touched A.
    const info = await a.getInfo()
    assert.equal(info.state, 'running')
    assert.ok(info.endAt.getTime() - Date.now() > 60_000, 'A kept its TTL')
  })

  it("org B's kill of A's sandbox returns false and A keeps running", { timeout: 60_000 }, async () => {
    assert.equal(await Sandbox.kill(a.sandboxId, { apiKey: keyB }), false)
    assert.equal((await a.getInfo()).state, 'running')
    assert.equal((await a.commands.run('echo alive')).stdout, 'alive\n')
  })

  it("Sandbox.list with B's key shows only B's sandboxes (and vice versa)", { timeout: 60_000 }, async () => {
    const seenByB = (await listAll(Sandbox.list({ apiKey: keyB }))).map((s) => s.sandboxId)
    assert.ok(seenByB.includes(b.sandboxId), 'B sees its own sandbox')
    assert.ok(!seenByB.includes(a.sandboxId), "B does not see A's sandbox")
    const byTagB = await listAll(Sandbox.list({ apiKey: keyB, query: { metadata: { tag } } }))
    assert.deepEqual(byTagB.map((s) => s.sandboxId), [b.sandboxId])
    const byStateB = await listAll(Sandbox.list({ apiKey: keyB, query: { state: ['running', 'paused'] } }))
    assert.ok(!byStateB.some((s) => s.sandboxId === a.sandboxId))

    const seenByA = (await listAll(Sandbox.list({ query: { metadata: { tag } } }))).map((s) => s.sandboxId)
    assert.deepEqual(seenByA, [a.sandboxId], "A does not see B's sandbox")
  })

  it("org A cannot reach org B's sandbox either", { timeout: 60_000 }, async () => {
    await assert.rejects(Sandbox.getInfo(b.sandboxId), SandboxNotFoundError)
    assert.equal(await Sandbox.kill(b.sandboxId), false)
    assert.equal((await b.getInfo()).state, 'running')
  })
})

describe("cross-sandbox denial on envd (B's access token aimed at A)", () => {
  const stat = (sandboxId, token, path = P) =>
    fetch(`${process.env.E2B_SANDBOX_URL}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'connect-protocol-version': '1',
        'e2b-sandbox-id': sandboxId,
        'e2b-sandbox-port': '49983',
        ...(token === undefined ? {} : { 'x-access-token': token }),
      },
      body: JSON.stringify({ path }),
    })

  it('raw Connect: Stat on A with B\'s token is 401 unauthenticated', { timeout: 30_000 }, async () => {
    assert.equal(typeof b.envdAccessToken, 'string')
    assert.notEqual(b.envdAccessToken, a.envdAccessToken)

    const own = await stat(a.sandboxId, a.envdAccessToken)
    assert.equal(own.status, 200, 'control: A with its own token works')
    assert.equal((await own.json()).entry?.path, P)

    const r = await stat(a.sandboxId, b.envdAccessToken)
    assert.equal(r.status, 401)
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/)
    const body = await r.json()
    assert.equal(body.code, 'unauthenticated', JSON.stringify(body))

    const none = await stat(a.sandboxId, undefined)
    assert.equal(none.status, 401, 'no token at all')
    assert.equal((await none.json()).code, 'unauthenticated')

    const empty = await stat(a.sandboxId, '')
    assert.equal(empty.status, 401, 'empty token')
  })

  it("raw REST: GET /files on A with B's token is 401", { timeout: 30_000 }, async () => {
    const r = await fetch(`${process.env.E2B_SANDBOX_URL}/files?path=${encodeURIComponent(P)}`, {
      headers: { 'e2b-sandbox-id': a.sandboxId, 'e2b-sandbox-port': '49983', 'x-access-token': b.envdAccessToken },
    })
    const text = await r.text()
    assert.equal(r.status, 401, text)
    assert.ok(!text.includes(SECRET))
  })

  it("SDK: a Sandbox object pairing A's id with B's token gets AuthenticationError everywhere", { timeout: 60_000 }, async () => {
    // The constructor is @internal in the typings but is what create/connect
    // use; it is the only public-JS way to pair an id with another token
    // (Sandbox.connect(idOfA) with B's key is already refused above).
    const forged = new Sandbox({
      sandboxId: a.sandboxId,
      envdVersion: await envdVersion(b),
      envdAccessToken: b.envdAccessToken,
    })
    assert.equal(forged.sandboxId, a.sandboxId)
    const calls = {
      'files.read': () => forged.files.read(P),
      'files.read(stream)': () => forged.files.read(P, { format: 'stream' }),
      'files.write': () => forged.files.write(P, 'overwritten-by-B'),
      'files.exists': () => forged.files.exists(P),
      'files.getInfo': () => forged.files.getInfo(P),
      'files.list': () => forged.files.list('/tmp'),
      'files.remove': () => forged.files.remove(P),
      'files.rename': () => forged.files.rename(P, `${P}.moved`),
      'files.makeDir': () => forged.files.makeDir('/tmp/iso-forged-dir'),
      'files.watchDir': () => forged.files.watchDir('/tmp', () => {}),
      'commands.run': () => forged.commands.run('echo pwned > /tmp/pwned'),
      'commands.run(background)': () => forged.commands.run('sleep 5', { background: true }),
      'commands.list': () => forged.commands.list(),
      'commands.kill': () => forged.commands.kill(1),
      'commands.sendStdin': () => forged.commands.sendStdin(1, 'x'),
      'commands.connect': () => forged.commands.connect(1),
      'pty.create': () => forged.pty.create({ cols: 80, rows: 24, onData: () => {} }),
    }
    const failures = []
    for (const [name, call] of Object.entries(calls)) {
      try {
        const v = await call()
        failures.push(`${name} succeeded: ${JSON.stringify(v)?.slice(0, 120)}`)
      } catch (err) {
        if (!(err instanceof AuthenticationError)) failures.push(`${name}: ${err?.name}: ${err?.message}`)
      }
    }
    assert.deepEqual(failures, [], 'every envd call is refused with AuthenticationError')

    // Nothing happened to A.
    assert.equal(await a.files.read(P), SECRET)
    assert.equal(await a.files.exists('/tmp/pwned'), false)
    assert.equal(await a.files.exists('/tmp/iso-forged-dir'), false)
  })

  it("SDK: A's id without any token is refused too", { timeout: 30_000 }, async () => {
    const bare = new Sandbox({ sandboxId: a.sandboxId, envdVersion: await envdVersion(a) })
    await assert.rejects(bare.files.read(P), AuthenticationError)
    await assert.rejects(bare.commands.run('true'), AuthenticationError)
  })

  it("B's handle (its own id + token) only ever sees B's files", { timeout: 30_000 }, async () => {
    assert.equal(await b.files.read(P), 'belongs-to-B')
    const r = await b.commands.run(`cat ${P}; hostname`)
    assert.ok(!r.stdout.includes(SECRET))
    assert.ok(!(await b.files.list('/tmp')).some((e) => e.name === 'pwned'))
  })

  it("B's pre-signed download URL cannot be pointed at A", { timeout: 30_000 }, async () => {
    const url = await b.downloadUrl(P)
    const plain = await fetch(url)
    assert.equal(plain.status, 200)
    assert.equal(await plain.text(), 'belongs-to-B', "B's signed URL reads B's file")

    // Same URL with A's sandbox id in the header: must never yield A's file.
    const aimed = await fetch(url, { headers: { 'e2b-sandbox-id': a.sandboxId, 'e2b-sandbox-port': '49983' } })
    const text = await aimed.text()
    assert.ok(!text.includes(SECRET), `${aimed.status} ${text}`)
    assert.ok(aimed.status === 401 || aimed.status === 403 || (aimed.status === 200 && text === 'belongs-to-B'),
      `unexpected ${aimed.status} ${text}`)

    // A tampered signature is refused.
    const bad = new URL(await a.downloadUrl(P))
    bad.searchParams.set('signature', 'v1_' + randomBytes(32).toString('base64').replace(/=+$/, ''))
    const forged = await fetch(bad)
    const ft = await forged.text()
    assert.ok(!ft.includes(SECRET), `${forged.status} ${ft}`)
    assert.equal(forged.status, 401, ft)
  })
})
