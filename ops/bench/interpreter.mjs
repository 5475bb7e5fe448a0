// Code interpreter latency through the official @e2b/code-interpreter SDK
// against a running sandboxd. Prints figures only (no assertions).
//
//   ops/bench/interpreter.sh   (starts a throw-away sandboxd, runs this, cleans up)
//
// Side by side with what a user does without an interpreter: a `base`
// sandbox and `commands.run('python3 -c ...')`, a new Python per snippet.
// Env knobs: CREATES (5), RUNS (100).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { now, stats } from './stats.mjs'

const sdkDir = process.env.SDK_TESTS_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tests/sdk')
const req = createRequire(path.join(sdkDir, 'package.json'))
const { Sandbox } = await import(req.resolve('@e2b/code-interpreter'))

const CREATES = Number(process.env.CREATES ?? 5)
const RUNS = Number(process.env.RUNS ?? 100)
const show = (name, st) =>
  console.log(`${name.padEnd(46)} n=${String(st.n).padStart(3)}  p50 ${st.p50.toFixed(1).padStart(7)} ms  p90 ${st.p90.toFixed(1).padStart(7)} ms  max ${st.max.toFixed(1).padStart(7)} ms`)

const firstCI = [], createCI = [], firstBase = []
for (let i = 0; i < CREATES; i++) {
  let t0 = now()
  const ci = await Sandbox.create({ timeoutMs: 300_000 })
  createCI.push(now() - t0)
  const r = await ci.runCode('1+1')
  firstCI.push(now() - t0)
  if (r.text !== '2') throw new Error(`runCode gave ${r.text}`)
  await ci.kill()
  t0 = now()
  const base = await Sandbox.create('base', { timeoutMs: 300_000 })
  const c = await base.commands.run('python3 -c "print(1+1)"')
  firstBase.push(now() - t0)
  if (c.stdout.trim() !== '2') throw new Error(`python3 gave ${c.stdout}`)
  await base.kill()
}
show('code-interpreter-v1: create', stats(createCI))
show("code-interpreter-v1: create -> runCode('1+1')", stats(firstCI))
show("base: create -> commands.run(python3 -c ...)", stats(firstBase))

const ci = await Sandbox.create({ timeoutMs: 300_000 })
const base = await Sandbox.create('base', { timeoutMs: 300_000 })
try {
  await ci.runCode('1+1')
  const warm = [], cmd = []
  for (let i = 0; i < RUNS; i++) {
    let t0 = now()
    await ci.runCode('1+1')
    warm.push(now() - t0)
    t0 = now()
    await base.commands.run('python3 -c "print(1+1)"')
    cmd.push(now() - t0)
  }
  show("runCode('1+1') (warm kernel)", stats(warm))
  show('commands.run(python3 -c "print(1+1)")', stats(cmd))
} finally {
  await ci.kill()
  await base.kill()
}
