// Drives a sandbox with the official SDK against https:// URLs (tls.test.mjs
// runs it in a process of its own: Node reads NODE_EXTRA_CA_CERTS, the
// test's CA, only when it starts). Prints a JSON report.
import assert from 'node:assert/strict'
import { Sandbox } from 'e2b'

const sbx = await Sandbox.create('base', { timeoutMs: 120_000 })
try {
  const chunks = []
  const run = await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.1; done', {
    onStdout: (d) => chunks.push(d),
  })
  assert.equal(run.exitCode, 0)
  const payload = 'tls-'.repeat(256 * 1024)
  await sbx.files.write('/home/user/blob.txt', payload)
  const back = await sbx.files.read('/home/user/blob.txt')
  const listed = (await Sandbox.list().nextItems()).map((s) => s.sandboxId)
  console.log(JSON.stringify({
    id: sbx.sandboxId,
    lines: chunks.join('').trim().split('\n'),
    sameFile: back === payload,
    listed: listed.includes(sbx.sandboxId),
  }))
} finally {
  await sbx.kill()
}
