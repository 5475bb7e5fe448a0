// The official SDK over HTTPS (issue 15 §3): a server of this file's own with
// --tls-cert/--tls-key made by the test (tests/e2e/fixtures/test_certs.py),
// the SDK pointed at its https:// URLs, trusting the test's CA; a client that
// does not trust it is refused.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { OwnServer } from './own_server.mjs'

const HERE = path.dirname(new URL(import.meta.url).pathname)
const certs = fs.mkdtempSync(path.join(os.tmpdir(), 'sandboxd-sdktls-'))
execFileSync('python3', [path.join(HERE, '../e2e/fixtures/test_certs.py'), certs])
const ca = path.join(certs, 'ca.pem')
const own = new OwnServer('sandboxd-sdktls-', ['--tls-cert', path.join(certs, 'server.pem'),
                                               '--tls-key', path.join(certs, 'server.key')],
                          { ca: fs.readFileSync(ca) })

function probe(env) {
  return spawnSync(process.execPath, [path.join(HERE, 'tls_probe.mjs')],
                   { env, encoding: 'utf8', timeout: 240_000 })
}

describe('the SDK over https', () => {
  before(() => own.start())
  after(async () => {
    await own.remove()
    fs.rmSync(certs, { recursive: true, force: true })
  })

  it('creates, runs, streams, moves files and lists', () => {
    assert.match(process.env.E2B_API_URL, /^https:\/\//)
    assert.match(process.env.E2B_SANDBOX_URL, /^https:\/\//)
    const r = probe({ ...process.env, NODE_EXTRA_CA_CERTS: ca })
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout.trim().split('\n').pop())
    assert.deepEqual(report.lines, ['line1', 'line2', 'line3'])
    assert.equal(report.sameFile, true)
    assert.equal(report.listed, true)
  })

  it('is refused by a client that does not trust the certificate', () => {
    const env = { ...process.env }
    delete env.NODE_EXTRA_CA_CERTS
    const r = probe(env)
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /certificate|self[- ]signed|UNABLE_TO|fetch failed/i)
  })
})
