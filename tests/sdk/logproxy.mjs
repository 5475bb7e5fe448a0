#!/usr/bin/env node
// Tiny logging HTTP proxy for debugging what the E2B SDK sends and what sandboxd
// answers. Connect-protocol stream bodies are decoded frame by frame.
//
//   node logproxy.mjs <listen-port> <target-base-url> [--max-body N]
//   e.g. node logproxy.mjs 4000 http://127.0.0.1:3000 &
//        E2B_API_URL=http://127.0.0.1:4000 node script.mjs
//
// Logs go to stderr, one block per request. Bodies larger than --max-body
// (default 2000) bytes are truncated in the log, never in the forwarded data.
import http from 'node:http'

const [port, target, ...rest] = process.argv.slice(2)
if (!port || !target) {
  console.error('usage: node logproxy.mjs <listen-port> <target-base-url> [--max-body N]')
  process.exit(2)
}
const maxIdx = rest.indexOf('--max-body')
const MAX = maxIdx >= 0 ? Number(rest[maxIdx + 1]) : 2000
const base = new URL(target)
let seq = 0

function show(buf, contentType = '') {
  if (!buf.length) return ''
  if (/connect\+json/.test(contentType)) {
    const frames = []
    let o = 0
    while (o + 5 <= buf.length) {
      const flags = buf[o]
      const n = buf.readUInt32BE(o + 1)
      const data = buf.subarray(o + 5, o + 5 + n).toString('utf8')
      frames.push(`  [flags=0x${flags.toString(16).padStart(2, '0')} len=${n}] ${data.slice(0, MAX)}`)
      o += 5 + n
    }
    if (o !== buf.length) frames.push(`  <${buf.length - o} trailing bytes>`)
    return '\n' + frames.join('\n')
  }
  if (/json|text|x-www-form/.test(contentType) || contentType === '') {
    const s = buf.toString('utf8')
    return s.length > MAX ? s.slice(0, MAX) + `… <${buf.length} bytes>` : s
  }
  return `<${buf.length} bytes ${contentType}>`
}

http
  .createServer((req, res) => {
    const id = ++seq
    const t0 = Date.now()
    const reqChunks = []
    const up = http.request(
      {
        host: base.hostname,
        port: base.port || 80,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: base.host },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.headers)
        const resChunks = []
        upRes.on('data', (c) => {
          resChunks.push(c)
          res.write(c)
        })
        upRes.on('end', () => {
          res.end()
          const reqBody = Buffer.concat(reqChunks)
          const resBody = Buffer.concat(resChunks)
          console.error(
            `#${id} ${req.method} ${req.url} -> ${upRes.statusCode} (${Date.now() - t0} ms)\n` +
              `  req headers: ${JSON.stringify(req.headers)}\n` +
              `  req body: ${show(reqBody, req.headers['content-type'])}\n` +
              `  res headers: ${JSON.stringify(upRes.headers)}\n` +
              `  res body: ${show(resBody, upRes.headers['content-type'])}\n`
          )
        })
      }
    )
    up.on('error', (e) => {
      console.error(`#${id} ${req.method} ${req.url} -> upstream error ${e.message}`)
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.on('data', (c) => {
      reqChunks.push(c)
      up.write(c)
    })
    req.on('end', () => up.end())
    res.on('close', () => up.destroy())
  })
  .listen(Number(port), '127.0.0.1', () => console.error(`logproxy :${port} -> ${target}`))
