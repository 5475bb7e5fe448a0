// Shared by the JS benchmarks: nearest-rank percentiles on a sorted copy.
export const now = () => Number(process.hrtime.bigint()) / 1e6

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const pct = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
  const mean = s.reduce((a, b) => a + b, 0) / s.length
  return { n: s.length, p50: pct(50), p90: pct(90), p99: pct(99), mean, min: s[0], max: s[s.length - 1] }
}
