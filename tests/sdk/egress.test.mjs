// Secrets at egress with the official SDK: a sandbox created with
// network.rules whose header uses Secret.fill() has its HTTPS requests to
// that host carry the secret's value, set on the host by sandboxd's egress
// proxy; the value never enters the sandbox. The upstream is a namespace the
// fixture makes (tests/e2e/fixtures/egress_upstream.py); this file runs a
// server of its own that trusts the fixture's CA, and removes all of it after.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { Sandbox, Secret } from 'e2b'
import { sleep } from './helpers.mjs'
import { OwnServer } from './own_server.mjs'

const HERE = path.dirname(new URL(import.meta.url).pathname)
const VALUE = 'sk-sdk-egress-canary-90ab'
let own, upstream, up

before(async () => {
  upstream = spawn('python3', [path.join(HERE, '../e2e/fixtures/egress_upstream.py')],
                   { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: upstream.stdout }).once('line', resolve)
    upstream.once('exit', () => reject(new Error('the upstream fixture exited')))
  })
  up = JSON.parse(line)
  own = new OwnServer('sandboxd-sdkegress-', ['--egress-trust-file', up.ca])
  await own.start()
})

after(async () => {
  if (own) {
    const ids = (await Sandbox.list().nextItems().catch(() => [])).map((s) => s.sandboxId)
    for (const id of ids) await Sandbox.kill(id).catch(() => {})
    await own.remove()
  }
  if (upstream && upstream.exitCode === null) {
    const gone = new Promise((r) => upstream.once('exit', r))
    upstream.stdin.end()
    await Promise.race([gone, sleep(15_000)])
  }
})

describe('secrets at egress', () => {
  it('reach the rule host as a header and never the sandbox', { timeout: 120_000 }, async () => {
    await Secret.create('sdk-egress-key', VALUE)
    const sbx = await Sandbox.create('base', {
      timeoutMs: 120_000,
      network: {
        rules: {
          [up.api]: [{ transform: { headers: { Authorization: `Bearer ${Secret.fill('sdk-egress-key')}` } } }],
        },
      },
    })
    try {
      const curl = `curl -sS -m 10 --resolve ${up.api}:443:${up.good} https://${up.api}/echo`
      const r = await sbx.commands.run(curl)
      const headers = Object.fromEntries(JSON.parse(r.stdout).headers.map(([k, v]) => [k.toLowerCase(), v]))
      assert.equal(headers.authorization, `Bearer ${VALUE}`)
      // A new version is used from the next request on.
      await Secret.update('sdk-egress-key', VALUE + '-v2')
      const again = JSON.parse((await sbx.commands.run(curl)).stdout)
      assert.ok(again.headers.some(([k, v]) => k === 'Authorization' && v === `Bearer ${VALUE}-v2`))
      // An impostor for the name gets a 502 from the proxy, and no request.
      const evil = await sbx.commands.run(
        `curl -sS -i -m 10 --resolve ${up.api}:443:${up.evil} https://${up.api}/echo`)
      assert.match(evil.stdout, /^HTTP\/1\.1 502/)
      const env = await sbx.commands.run('cat /proc/1/environ /proc/self/environ | tr "\\0" "\\n"; env')
      assert.ok(!env.stdout.includes(VALUE))
      const info = await Sandbox.getInfo(sbx.sandboxId)
      assert.ok(!JSON.stringify(info).includes(VALUE))
    } finally {
      await sbx.kill()
      await Secret.destroy('sdk-egress-key')
    }
  })
})
