// A sandboxd of a test file's own (for files that restart it or need flags of
// their own): free loopback ports, a data dir it removes, the SDK's env
// pointed at it while it runs.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

// GET url → its status; with `ca`, over https trusting that CA only.
function status(url, ca) {
  if (!ca) return fetch(url).then((r) => r.status)
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      res.resume()
      resolve(res.statusCode)
    }).on('error', reject)
  })
}

export class OwnServer {
  // opts.ca: the server runs with --tls-cert/--tls-key (among args) signed by
  // this CA (PEM text); its URLs are https.
  constructor(prefix, args = [], opts = {}) {
    this.prefix = prefix
    this.args = args
    this.ca = opts.ca
    this.scheme = opts.ca ? 'https' : 'http'
    this.bin = process.env.SANDBOXD_BIN
    this.proc = null
  }

  /** Starts it (the first time: a data dir and ports of its own). */
  async start() {
    if (!this.dir) {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), this.prefix))
      this.apiPort = await freePort()
      this.envdPort = await freePort()
      while (this.envdPort === this.apiPort) this.envdPort = await freePort()
    }
    const logPath = path.join(this.dir, 'server.log')
    const log = fs.openSync(logPath, 'a')
    this.proc = spawn(this.bin, ['serve', '--data-dir', this.dir,
                                 '--api-listen', `127.0.0.1:${this.apiPort}`,
                                 '--envd-listen', `127.0.0.1:${this.envdPort}`, ...this.args],
                      { stdio: ['ignore', log, log] })
    const deadline = Date.now() + 60_000
    for (;;) {
      if (this.proc.exitCode !== null)
        throw new Error('sandboxd exited: ' + fs.readFileSync(logPath, 'utf8').slice(-2000))
      if (Date.now() > deadline) throw new Error('sandboxd did not start')
      try {
        const code = await status(`${this.scheme}://127.0.0.1:${this.apiPort}/health`, this.ca)
        if (code === 200 && fs.existsSync(path.join(this.dir, 'api-key'))) break
      } catch {}
      await sleep(50)
    }
    process.env.E2B_API_KEY = fs.readFileSync(path.join(this.dir, 'api-key'), 'utf8').trim()
    process.env.E2B_API_URL = `${this.scheme}://127.0.0.1:${this.apiPort}`
    process.env.E2B_SANDBOX_URL = `${this.scheme}://127.0.0.1:${this.envdPort}`
    // The volume-content API is served on the envd listener.
    process.env.E2B_VOLUME_API_URL = `${this.scheme}://127.0.0.1:${this.envdPort}`
  }

  /** SIGTERM (SIGKILL after 15 s); sandboxes keep running. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return
    const done = new Promise((r) => this.proc.once('exit', r))
    this.proc.kill('SIGTERM')
    await Promise.race([done, sleep(15_000)])
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL')
  }

  /** Stops it and removes what it left (containers, mounts, the data dir). */
  async remove() {
    await this.stop()
    if (!this.dir) return
    try {
      execFileSync(this.bin, ['cleanup', '--data-dir', this.dir], { stdio: 'ignore' })
    } catch {}
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
