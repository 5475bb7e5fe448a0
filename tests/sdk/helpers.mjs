// Shared helpers for the SDK tests. Only the public `e2b` API is used.
import http from 'node:http'
import { Sandbox } from 'e2b'

for (const v of ['E2B_API_KEY', 'E2B_API_URL', 'E2B_SANDBOX_URL']) {
  if (!process.env[v]) {
    throw new Error(`${v} is not set — run the suite through tests/sdk/run.sh`)
  }
}

/**
 * Tracks sandboxes created by a test file so `killAll` (in `after`) can remove
 * them even when a test fails half-way.
 */
export function tracker() {
  const created = new Set()
  return {
    async create(templateOrOpts, opts) {
      const sbx =
        typeof templateOrOpts === 'string'
          ? await Sandbox.create(templateOrOpts, { timeoutMs: 600_000, ...opts })
          : await Sandbox.create({ timeoutMs: 600_000, ...templateOrOpts })
      created.add(sbx.sandboxId)
      return sbx
    },
    track(id) {
      created.add(id)
    },
    async killAll() {
      await Promise.all(
        [...created].map((id) => Sandbox.kill(id, { requestTimeoutMs: 30_000 }).catch(() => {}))
      )
      created.clear()
    },
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Poll `fn` until it returns a truthy value or `ms` elapses. */
export async function waitFor(fn, ms = 5_000, step = 50) {
  const deadline = Date.now() + ms
  let last
  while (Date.now() < deadline) {
    last = await fn()
    if (last) return last
    await sleep(step)
  }
  return last
}

/** Race a promise against a timer so a hung SDK call fails the test instead of hanging it. */
export function bounded(promise, ms, what = 'operation') {
  let t
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(t))
}

/** Collect every page of a paginator. */
export async function listAll(paginator) {
  const out = []
  while (paginator.hasNext) {
    out.push(...(await paginator.nextItems()))
  }
  return out
}

const envd = new URL(process.env.E2B_SANDBOX_URL)

/**
 * GET `path` from a sandbox port named by `host` (`sbx.getHost(port)`): sent to
 * the envd listener with that Host, as wildcard DNS would route it.
 */
export function getPort(host, path = '/', headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: envd.hostname, port: envd.port, path, headers: { Host: host, ...headers } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode, body }))
      }
    )
    req.on('error', reject)
    req.end()
  })
}
