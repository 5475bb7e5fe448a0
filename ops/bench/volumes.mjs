// Volumes through the official E2B JS SDK (e2b@2.51.0): what a mount adds
// to a create, and the volume-content API's throughput (writeFile/readFile of
// MB megabytes) beside the same bytes through a sandbox's envd /files.
//
//   ops/bench/volumes.sh          (throw-away sandboxd, full cleanup)
//
// Env knobs: RUNS (10), MB (64).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { now, stats } from './stats.mjs'

const sdkDir = process.env.SDK_TESTS_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tests/sdk')
const { Sandbox, Volume } = await import(createRequire(path.join(sdkDir, 'package.json')).resolve('e2b'))
process.env.E2B_VOLUME_API_URL ??= process.env.E2B_SANDBOX_URL

const RUNS = Number(process.env.RUNS ?? 10)
const MB = Number(process.env.MB ?? 64)
const f = (x) => x.toFixed(1).padStart(8)
function report(label, samples, unit) {
  const r = stats(samples)
  console.log(`${label.padEnd(36)} n=${String(r.n).padStart(3)}  p50 ${f(r.p50)}  min ${f(r.min)}  max ${f(r.max)}  ${unit}`)
}
async function ms(fn) {
  const t0 = now()
  await fn()
  return now() - t0
}

const vol = await Volume.create('bench-vol')
try {
  const plain = [], mounted = [], firstExec = []
  for (let i = 0; i < RUNS; i++) {
    let sbx
    plain.push(await ms(async () => { sbx = await Sandbox.create('base') }))
    await sbx.kill()
    mounted.push(await ms(async () => { sbx = await Sandbox.create('base', { volumeMounts: { '/mnt/v': vol } }) }))
    firstExec.push(await ms(() => sbx.commands.run('ls /mnt/v')))
    await sbx.kill()
  }
  console.log(`Sandbox.create of base, ${RUNS} runs each (warm pool on for the plain one only: a volume's sandbox is never taken from it)`)
  report('create', plain, 'ms')
  report('create with a volume mounted', mounted, 'ms')
  report('then ls of the volume', firstExec, 'ms')

  const data = new Uint8Array(MB << 20).fill(7)
  const up = [], down = [], sup = [], sdown = []
  const sbx = await Sandbox.create('base', { volumeMounts: { '/mnt/v': vol } })
  for (let i = 0; i < Math.min(RUNS, 5); i++) {
    up.push(MB / ((await ms(() => vol.writeFile('/big.bin', data, { force: true }))) / 1000))
    down.push(MB / ((await ms(() => vol.readFile('/big.bin', { format: 'bytes' }))) / 1000))
    sup.push(MB / ((await ms(() => sbx.files.write('/mnt/v/big2.bin', data))) / 1000))
    sdown.push(MB / ((await ms(() => sbx.files.read('/mnt/v/big2.bin', { format: 'bytes' }))) / 1000))
  }
  await sbx.kill()
  console.log(`${MB} MB files, ${up.length} runs each`)
  report('volume-content writeFile', up, 'MB/s')
  report('volume-content readFile', down, 'MB/s')
  report('sandbox files.write (envd)', sup, 'MB/s')
  report('sandbox files.read (envd)', sdown, 'MB/s')
} finally {
  await Volume.destroy(vol.volumeId).catch(() => {})
}
