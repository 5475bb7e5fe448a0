// Latency benchmark through the official E2B JS SDK (e2b@2.51.0) against a
// running sandboxd. Prints figures only (no assertions).
//
//   ops/bench/sdk_run.sh                 (starts a throw-away sandboxd, runs this, cleans up)
//   E2B_API_KEY=... E2B_API_URL=... E2B_SANDBOX_URL=... node ops/bench/sdk_run.mjs
//
// Env knobs: RUNS (200), WARMUP (5), CREATES (20), FILE_RUNS (100).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { now, stats } from './stats.mjs'

// The SDK lives in tests/sdk/node_modules (ESM ignores NODE_PATH).
const sdkDir = process.env.SDK_TESTS_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tests/sdk')
const { Sandbox } = await import(createRequire(path.join(sdkDir, 'package.json')).resolve('e2b'))

for (const v of ['E2B_API_KEY', 'E2B_API_URL', 'E2B_SANDBOX_URL']) {
  if (!process.env[v]) {
    console.error(`${v} is not set — run through ops/bench/sdk_run.sh`)
    process.exit(2)
  }
}
if (process.env.E2B_DEBUG === 'true') {
  console.error('E2B_DEBUG=true bypasses the API; unset it')
  process.exit(2)
}

const RUNS = Number(process.env.RUNS ?? 200)
const WARMUP = Number(process.env.WARMUP ?? 5)
const CREATES = Number(process.env.CREATES ?? 20)
const FILE_RUNS = Number(process.env.FILE_RUNS ?? 100)

const f = (x) => x.toFixed(2).padStart(8)
function report(label, samples) {
  const r = stats(samples)
  console.log(
    `${label.padEnd(34)} n=${String(r.n).padStart(4)}  p50 ${f(r.p50)}  p90 ${f(r.p90)}  p99 ${f(r.p99)}  mean ${f(r.mean)}  min ${f(r.min)}  max ${f(r.max)}  ms`
  )
}

const created = new Set()
async function cleanup() {
  await Promise.all([...created].map((id) => Sandbox.kill(id, { requestTimeoutMs: 30_000 }).catch(() => {})))
  created.clear()
}

try {
  console.log(`sdk_run: api ${process.env.E2B_API_URL} envd ${process.env.E2B_SANDBOX_URL} node ${process.version}`)

  const sbx = await Sandbox.create({ timeoutMs: 600_000 })
  created.add(sbx.sandboxId)

  // 1. commands.run('true') round trip.
  for (let i = 0; i < WARMUP; i++) await sbx.commands.run('true')
  const run = []
  for (let i = 0; i < RUNS; i++) {
    const t = now()
    await sbx.commands.run('true')
    run.push(now() - t)
  }

  // 2. files.write + files.read of a 1 KiB file.
  const data = 'x'.repeat(1024)
  const fpath = '/tmp/sdk-bench-1k.txt'
  for (let i = 0; i < WARMUP; i++) {
    await sbx.files.write(fpath, data)
    await sbx.files.read(fpath)
  }
  const wr = []
  const w = []
  const r = []
  for (let i = 0; i < FILE_RUNS; i++) {
    const t0 = now()
    await sbx.files.write(fpath, data)
    const t1 = now()
    const back = await sbx.files.read(fpath)
    const t2 = now()
    if (back.length !== 1024) throw new Error(`read back ${back.length} bytes`)
    w.push(t1 - t0)
    r.push(t2 - t1)
    wr.push(t2 - t0)
  }
  await sbx.kill()
  created.delete(sbx.sandboxId)

  // 3. Sandbox.create() latency (sequential), killed afterwards.
  const create = []
  for (let i = 0; i < CREATES; i++) {
    const t = now()
    const s = await Sandbox.create({ timeoutMs: 300_000 })
    create.push(now() - t)
    created.add(s.sandboxId)
  }
  const tk = now()
  await cleanup()
  const killAll = now() - tk

  console.log()
  report(`commands.run('true')`, run)
  report('files.write 1 KiB', w)
  report('files.read 1 KiB', r)
  report('files.write+read 1 KiB', wr)
  report('Sandbox.create()', create)
  console.log(`(killing ${CREATES} sandboxes in parallel took ${killAll.toFixed(0)} ms)`)
} catch (err) {
  console.error('sdk_run failed:', err)
  process.exitCode = 1
} finally {
  await cleanup()
}
