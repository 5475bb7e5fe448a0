// Sandbox ports from outside, as an E2B user reaches them: `getHost(port)`
// names the port under the server's --domain (run.sh serves with
// sandboxd.test); a request with that Host on the envd listener reaches the
// port inside. A client resolving *.sandboxd.test to the listener is what
// wildcard DNS gives a real deployment; here the Host header is set directly.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { getPort as get, tracker, waitFor } from './helpers.mjs'

const T = tracker()
after(() => T.killAll())


async function serveSite(sbx, text) {
  await sbx.files.write('/home/user/site/index.html', text)
  await sbx.commands.run('cd /home/user/site && python3 -m http.server 8000', { background: true })
}

describe('ports', () => {
  it('getHost reaches a web server started in the sandbox; a closed port is 502', { timeout: 120_000 }, async () => {
    const sbx = await T.create('base')
    const host = sbx.getHost(8000)
    assert.equal(host, `8000-${sbx.sandboxId}.sandboxd.test`)
    await serveSite(sbx, '<h1>hello from the sandbox</h1>')
    const res = await waitFor(async () => {
      const r = await get(host)
      return r.status === 200 ? r : null
    }, 30_000, 200)
    assert.ok(res, 'the port never answered')
    assert.match(res.body, /hello from the sandbox/)
    const closed = await get(sbx.getHost(3000))
    assert.equal(closed.status, 502)
    const j = JSON.parse(closed.body)
    assert.equal(j.message, 'The sandbox is running but port is not open')
    assert.equal(j.sandboxId, sbx.sandboxId)
    assert.equal(j.port, 3000)
  })

  it('allowPublicTraffic false: only the sandbox\'s trafficAccessToken opens its ports', { timeout: 120_000 }, async () => {
    const sbx = await T.create('base', { network: { allowPublicTraffic: false } })
    assert.equal(typeof sbx.trafficAccessToken, 'string')
    const token = { 'E2B-Traffic-Access-Token': sbx.trafficAccessToken }
    await serveSite(sbx, 'private site')
    const res = await waitFor(async () => {
      const r = await get(sbx.getHost(8000), '/', token)
      return r.status === 200 ? r : null
    }, 30_000, 200)
    assert.ok(res, 'the port never answered')
    assert.match(res.body, /private site/)
    assert.equal((await get(sbx.getHost(8000))).status, 403)
    assert.equal((await get(sbx.getHost(8000), '/', { 'E2B-Traffic-Access-Token': 'x'.repeat(48) })).status, 403)
  })
})
