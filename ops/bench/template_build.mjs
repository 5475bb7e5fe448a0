// Template.build times through the official E2B JS SDK (e2b@2.51.0) against
// a running sandboxd: a template of a few steps (an apt install, a COPY, RUN
// steps) built cold (skipCache), again unchanged (every step from the
// cache), and with only its last step changed. Prints figures only.
//
//   ops/bench/template_build.sh          (throw-away sandboxd, full cleanup)
//
// Env knobs: RUNS (3).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { now, stats } from './stats.mjs'

const sdkDir = process.env.SDK_TESTS_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tests/sdk')
const { Template } = await import(createRequire(path.join(sdkDir, 'package.json')).resolve('e2b'))

const RUNS = Number(process.env.RUNS ?? 3)
const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'sandboxd-bench-tpl-'))
fs.mkdirSync(path.join(ctx, 'app'))
for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(ctx, 'app', `f${i}.txt`), 'x'.repeat(4096))

const recipe = (last) =>
  Template({ fileContextPath: ctx })
    .fromTemplate('base')
    .aptInstall(['jq'])
    .setWorkdir('/srv/app')
    .copy('app', 'app/')
    .runCmd('python3 -c "print(1)" > /srv/app/one.txt')
    .runCmd(last)

const f = (x) => x.toFixed(2).padStart(8)
function report(label, samples) {
  const r = stats(samples)
  console.log(`${label.padEnd(30)} n=${String(r.n).padStart(3)}  p50 ${f(r.p50)}  min ${f(r.min)}  max ${f(r.max)}  s`)
}

async function time(f) {
  const t0 = now()
  await f()
  return (now() - t0) / 1000
}

const cold = [], cached = [], changed = []
try {
  for (let i = 0; i < RUNS; i++) {
    cold.push(await time(() => Template.build(recipe('echo 0 > last.txt'), 'bench-tpl', { skipCache: true })))
    cached.push(await time(() => Template.build(recipe('echo 0 > last.txt'), 'bench-tpl')))
    changed.push(await time(() => Template.build(recipe(`echo ${i + 1} > last.txt`), 'bench-tpl')))
  }
  console.log(`Template.build of 6 steps (apt install jq, WORKDIR, COPY of 50 files, 2 RUN), ${RUNS} runs each`)
  report('cold (skipCache)', cold)
  report('unchanged (all cached)', cached)
  report('last step changed', changed)
  console.log('(no docker/podman build to compare with here: no registry is reachable to pull a base image)')
} finally {
  fs.rmSync(ctx, { recursive: true, force: true })
}
