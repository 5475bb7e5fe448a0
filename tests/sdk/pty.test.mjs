// sandbox.pty.* — envd process.Process/Start with `pty`, SendInput{pty}, Update, SendSignal.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { CommandExitError } from 'e2b'
import { tracker, waitFor, bounded } from './helpers.mjs'

const T = tracker()
let sbx
before(async () => {
  sbx = await T.create({ timeoutMs: 300_000 })
})
after(() => T.killAll())

const enc = (s) => new TextEncoder().encode(s)

function collector() {
  const dec = new TextDecoder()
  const st = { text: '' }
  st.onData = (d) => {
    assert.ok(d instanceof Uint8Array, 'onData receives Uint8Array')
    st.text += dec.decode(d, { stream: true })
  }
  return st
}

describe('pty', () => {
  it('create, sendInput, output arrives via onData', { timeout: 30_000 }, async () => {
    const out = collector()
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: out.onData })
    assert.ok(h.pid > 0)
    await sbx.pty.sendInput(h.pid, enc('echo "pty-$((20+22))"\n'))
    assert.ok(await waitFor(() => out.text.includes('pty-42'), 10_000), `saw pty-42 in: ${JSON.stringify(out.text)}`)
    await sbx.pty.sendInput(h.pid, enc('exit 0\n'))
    const r = await bounded(h.wait(), 10_000, 'pty wait after exit')
    assert.equal(r.exitCode, 0)
  })

  it('is a real terminal: tty, TERM, size; resize is visible', { timeout: 30_000 }, async () => {
    const out = collector()
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: out.onData })
    await sbx.pty.sendInput(h.pid, enc('tty; echo "T=$TERM"; stty size\n'))
    assert.ok(await waitFor(() => /24 80/.test(out.text), 10_000), `stty size 24 80 in: ${JSON.stringify(out.text)}`)
    assert.match(out.text, /\/dev\/pts\/\d+/)
    assert.match(out.text, /T=xterm-256color/)

    await sbx.pty.resize(h.pid, { cols: 120, rows: 40 })
    await sbx.pty.sendInput(h.pid, enc('stty size\n'))
    assert.ok(await waitFor(() => /40 120/.test(out.text), 10_000), `stty size 40 120 after resize in: ${JSON.stringify(out.text)}`)
    assert.equal(await sbx.pty.kill(h.pid), true)
    await assert.rejects(bounded(h.wait(), 10_000, 'pty wait after kill'), CommandExitError)
  })

  it('user, cwd and envs are honoured', { timeout: 30_000 }, async () => {
    const out = collector()
    const h = await sbx.pty.create({
      cols: 100,
      rows: 20,
      onData: out.onData,
      user: 'root',
      cwd: '/tmp',
      envs: { PTY_VAR: 'v123' },
    })
    await sbx.pty.sendInput(h.pid, enc('echo "W=$(whoami) D=$(pwd) V=$PTY_VAR"\n'))
    assert.ok(
      await waitFor(() => out.text.includes('W=root D=/tmp V=v123'), 10_000),
      `in: ${JSON.stringify(out.text)}`
    )
    await h.kill()
  })

  it('kill an unknown pid returns false', { timeout: 30_000 }, async () => {
    assert.equal(await sbx.pty.kill(999_999), false)
  })

  it('connect to a running pty and keep receiving output', { timeout: 30_000 }, async () => {
    const first = collector()
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: first.onData })
    await h.disconnect()
    const second = collector()
    const h2 = await sbx.pty.connect(h.pid, { onData: second.onData })
    assert.equal(h2.pid, h.pid)
    await sbx.pty.sendInput(h.pid, enc('echo reconnected-$((1+1))\n'))
    assert.ok(await waitFor(() => second.text.includes('reconnected-2'), 10_000), `in: ${JSON.stringify(second.text)}`)
    assert.equal(await sbx.pty.kill(h.pid), true)
  })

  it('commands.list shows the pty process', { timeout: 30_000 }, async () => {
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: () => {} })
    const procs = await sbx.commands.list()
    const p = procs.find((x) => x.pid === h.pid)
    assert.ok(p, 'pty listed')
    assert.equal(p.cmd, '/bin/bash')
    assert.deepEqual(p.args, ['-i', '-l'])
    await sbx.pty.kill(h.pid)
  })
})
