// Drives sandboxes on a cluster with the official SDK, as a user would
// (tests/e2e/test_cluster.py runs it against a control node with workers):
//   node cluster_probe.mjs create N         → prints the ids, one JSON array
//   node cluster_probe.mjs use ID...        → commands (one streamed), files,
//                                             pause/resume, a port; JSON report
// Needs E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL; the server runs with
// --domain sandboxd.test (getHost's names, sent as Host to the envd listener).
import assert from 'node:assert/strict'
import { Sandbox } from 'e2b'
import { getPort as get, waitFor } from './helpers.mjs'

async function use(id) {
  const sbx = await Sandbox.connect(id, { timeoutMs: 600_000 })
  const r = await sbx.commands.run(`echo hello-${id}`)
  assert.equal(r.stdout.trim(), `hello-${id}`)
  const chunks = []
  await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.2; done', {
    onStdout: (d) => chunks.push(d),
  })
  assert.equal(chunks.join('').trim().split('\n').length, 3)
  const payload = 'x'.repeat(3 << 20) + id // a few MiB through the tunnel both ways
  await sbx.files.write('/home/user/blob.txt', payload)
  assert.equal(await sbx.files.read('/home/user/blob.txt'), payload)
  assert.equal(await sbx.pause(), true)
  const again = await Sandbox.connect(id, { timeoutMs: 600_000 })
  assert.equal((await again.commands.run('cat /home/user/blob.txt | wc -c')).stdout.trim(),
               String(payload.length))
  await again.files.write('/home/user/site/index.html', `site of ${id}`)
  await again.commands.run('cd /home/user/site && python3 -m http.server 8000', { background: true })
  const site = await waitFor(async () => {
    const res = await get(again.getHost(8000))
    return res.status === 200 ? res : null
  }, 30_000, 200)
  assert.ok(site, 'the port never answered')
  assert.equal(site.body, `site of ${id}`)
  return { id, ok: true }
}

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'create') {
  const ids = []
  for (let i = 0; i < Number(args[0]); i++)
    ids.push((await Sandbox.create('base', { timeoutMs: 600_000 })).sandboxId)
  console.log(JSON.stringify(ids))
} else if (cmd === 'use') {
  const out = []
  for (const id of args) out.push(await use(id))
  console.log(JSON.stringify(out))
} else {
  console.error('usage: node cluster_probe.mjs create N | use ID...')
  process.exit(2)
}
