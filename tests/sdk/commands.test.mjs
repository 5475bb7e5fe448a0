// sandbox.commands.* — envd process.Process/* over E2B_SANDBOX_URL.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox, CommandExitError, TimeoutError, NotFoundError, SandboxNotFoundError } from 'e2b'
import { tracker, waitFor, bounded } from './helpers.mjs'

const T = tracker()
let sbx
before(async () => {
  sbx = await T.create({ envs: { SBX_GLOBAL: 'from-create' }, timeoutMs: 600_000 })
})
after(() => T.killAll())

describe('commands.run (foreground)', () => {
  it('python3 -c "print(1+1)" prints 2', { timeout: 60_000 }, async () => {
    const r = await sbx.commands.run('python3 -c "print(1+1)"')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, '2\n')
    assert.equal(r.stderr, '')
  })

  it('captures stderr separately', { timeout: 30_000 }, async () => {
    const r = await sbx.commands.run('echo out; echo err 1>&2')
    assert.equal(r.stdout, 'out\n')
    assert.equal(r.stderr, 'err\n')
  })

  it('non-zero exit throws CommandExitError with exitCode/stdout/stderr', { timeout: 30_000 }, async () => {
    await assert.rejects(sbx.commands.run('echo partial; echo bad 1>&2; exit 3'), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err?.name}: ${err?.message}`)
      assert.equal(err.exitCode, 3)
      assert.equal(err.stdout, 'partial\n')
      assert.equal(err.stderr, 'bad\n')
      assert.equal(err.error, 'exit status 3', 'error mirrors upstream envd')
      assert.equal(err.message, err.error)
      assert.equal(err.result.exitCode, 3)
      return true
    })
  })

  it('runs through bash -l -c (pipes, &&, $((..)))', { timeout: 30_000 }, async () => {
    const r = await sbx.commands.run('echo $((6*7)) | tr 4 X && echo "$0"')
    assert.equal(r.stdout.split('\n')[0], 'X2')
  })

  it('envs: per-command and from Sandbox.create', { timeout: 30_000 }, async () => {
    const r = await sbx.commands.run('echo "$FOO|$SBX_GLOBAL"', { envs: { FOO: 'bar baz' } })
    assert.equal(r.stdout, 'bar baz|from-create\n')
    const o = await sbx.commands.run('echo "$SBX_GLOBAL"', { envs: { SBX_GLOBAL: 'overridden' } })
    assert.equal(o.stdout, 'overridden\n')
  })

  it('cwd', { timeout: 30_000 }, async () => {
    assert.equal((await sbx.commands.run('pwd', { cwd: '/tmp' })).stdout, '/tmp\n')
    assert.equal((await sbx.commands.run('pwd')).stdout, '/home/user\n', 'default cwd is the user home')
  })

  it('user: default is "user", root on request', { timeout: 30_000 }, async () => {
    assert.equal((await sbx.commands.run('whoami')).stdout, 'user\n')
    assert.equal((await sbx.commands.run('whoami', { user: 'root' })).stdout, 'root\n')
    assert.equal((await sbx.commands.run('echo $HOME', { user: 'root' })).stdout, '/root\n')
    assert.equal((await sbx.commands.run('pwd', { user: 'root' })).stdout, '/root\n')
  })

  it('onStdout/onStderr stream chunks in order, before the command ends', { timeout: 30_000 }, async () => {
    const chunks = []
    const errChunks = []
    const t0 = Date.now()
    const r = await sbx.commands.run(
      'for i in 1 2 3 4 5; do echo line$i; echo e$i 1>&2; sleep 0.25; done',
      {
        onStdout: (d) => chunks.push({ d, t: Date.now() - t0 }),
        onStderr: (d) => errChunks.push({ d, t: Date.now() - t0 }),
      }
    )
    const total = Date.now() - t0
    assert.equal(r.stdout, 'line1\nline2\nline3\nline4\nline5\n')
    assert.equal(chunks.map((c) => c.d).join(''), r.stdout, 'callbacks saw exactly stdout, in order')
    assert.equal(errChunks.map((c) => c.d).join(''), 'e1\ne2\ne3\ne4\ne5\n')
    assert.ok(chunks.length >= 2, `output arrived in several chunks (got ${chunks.length})`)
    assert.ok(chunks[0].t < total - 600, `first chunk (${chunks[0].t} ms) well before the end (${total} ms)`)
  })

  it('timeoutMs kills a long command with TimeoutError', { timeout: 30_000 }, async () => {
    const t0 = Date.now()
    await assert.rejects(sbx.commands.run('sleep 20; echo done', { timeoutMs: 1_500 }), (err) => {
      assert.ok(err instanceof TimeoutError, `got ${err?.name}: ${err?.message}`)
      return true
    })
    assert.ok(Date.now() - t0 < 10_000, 'returned promptly after the timeout')
    // envd semantics: Connect-Timeout-Ms bounds the process lifetime, so it is gone too.
    const gone = await waitFor(async () => {
      const procs = await sbx.commands.list()
      return !procs.some((p) => p.args?.join(' ').includes('sleep 20; echo done'))
    }, 5_000, 200)
    assert.ok(gone, 'the timed-out process was killed')
  })

  it('handles large output (~2 MB) byte-exactly', { timeout: 60_000 }, async () => {
    const r = await sbx.commands.run("python3 -c \"import sys; sys.stdout.write('x'*2000000)\"")
    assert.equal(r.stdout.length, 2_000_000)
  })

  it('non-ASCII output survives chunking', { timeout: 30_000 }, async () => {
    const r = await sbx.commands.run("printf 'héllo wörld ✓\\n'")
    assert.equal(r.stdout, 'héllo wörld ✓\n')
  })
})

describe('commands: background, list, connect, kill, stdin', () => {
  it('background command → list → connect → kill', { timeout: 60_000 }, async () => {
    const h = await sbx.commands.run('sleep 45', { background: true })
    assert.equal(typeof h.pid, 'number')
    assert.ok(h.pid > 0)
    assert.equal(h.exitCode, undefined, 'still running')

    const procs = await sbx.commands.list()
    const p = procs.find((x) => x.pid === h.pid)
    assert.ok(p, `commands.list() contains pid ${h.pid}: ${JSON.stringify(procs)}`)
    assert.equal(p.cmd, '/bin/bash')
    assert.deepEqual(p.args, ['-l', '-c', 'sleep 45'])
    assert.equal(typeof p.envs, 'object')

    const h2 = await sbx.commands.connect(h.pid)
    assert.equal(h2.pid, h.pid)

    assert.equal(await sbx.commands.kill(h.pid), true)
    await assert.rejects(bounded(h.wait(), 10_000, 'wait after kill'), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err?.name}: ${err?.message}`)
      assert.notEqual(err.exitCode, 0)
      return true
    })
    await assert.rejects(bounded(h2.wait(), 10_000, 'connected handle wait after kill'), CommandExitError)

    const after = await sbx.commands.list()
    assert.ok(!after.some((x) => x.pid === h.pid), 'killed process is not listed')
    assert.equal(await sbx.commands.kill(h.pid), false, 'killing a dead pid returns false')
  })

  it('background command result via wait()', { timeout: 30_000 }, async () => {
    const h = await sbx.commands.run('sleep 0.5; echo bg-done', { background: true })
    const r = await h.wait()
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'bg-done\n')
    assert.equal(h.stdout, 'bg-done\n')
    assert.equal(h.exitCode, 0)
  })

  it('handle.kill()', { timeout: 30_000 }, async () => {
    const h = await sbx.commands.run('sleep 40', { background: true })
    assert.equal(await h.kill(), true)
    await assert.rejects(bounded(h.wait(), 10_000, 'wait after handle.kill'), CommandExitError)
  })

  it('disconnect keeps the process running; connect receives later output', { timeout: 30_000 }, async () => {
    const h = await sbx.commands.run('sleep 1; echo after-reconnect', { background: true })
    await h.disconnect()
    const seen = []
    const h2 = await sbx.commands.connect(h.pid, { onStdout: (d) => seen.push(d) })
    const r = await bounded(h2.wait(), 15_000, 'wait on reconnected handle')
    assert.equal(r.exitCode, 0)
    assert.equal(seen.join(''), 'after-reconnect\n')
  })

  it('kill a running foreground command from another handle', { timeout: 60_000 }, async () => {
    const marker = `fg-kill-${process.pid}-${Date.now()}`
    const t0 = Date.now()
    let out = ''
    const fg = sbx.commands.run(`echo started; sleep 40; echo ${marker}`, { onStdout: (d) => (out += d) })
    fg.catch(() => {}) // observed below
    assert.ok(await waitFor(() => out === 'started\n', 10_000), `foreground command started: ${JSON.stringify(out)}`)
    const other = await Sandbox.connect(sbx.sandboxId)
    const pid = await waitFor(async () => {
      const p = (await other.commands.list()).find((x) => x.args?.join(' ').includes(marker))
      return p?.pid
    }, 10_000, 100)
    assert.ok(pid > 0, 'foreground command visible to the other handle')
    assert.equal(await other.commands.kill(pid), true)
    await assert.rejects(bounded(fg, 10_000, 'foreground run after kill'), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err?.name}: ${err?.message}`)
      assert.notEqual(err.exitCode, 0)
      assert.match(String(err.error), /kill/i)
      assert.equal(err.stdout, 'started\n')
      return true
    })
    assert.ok(Date.now() - t0 < 20_000, 'the foreground call returned at the kill, not at the end of sleep')
    assert.equal(await sbx.commands.kill(pid), false, 'gone for the original handle too')
  })

  it('connect to an unknown pid fails', { timeout: 30_000 }, async () => {
    await assert.rejects(sbx.commands.connect(999_999), NotFoundError)
  })

  it('sendStdin + closeStdin with cat', { timeout: 30_000 }, async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true })
    await sbx.commands.sendStdin(h.pid, 'hello ')
    await h.sendStdin(new TextEncoder().encode('world\n'))
    await sbx.commands.closeStdin(h.pid)
    const r = await bounded(h.wait(), 10_000, 'cat after closeStdin')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'hello world\n')
  })

  it('handle.closeStdin()', { timeout: 30_000 }, async () => {
    const h = await sbx.commands.run('wc -c', { background: true, stdin: true })
    await h.sendStdin('12345')
    await h.closeStdin()
    const r = await bounded(h.wait(), 10_000, 'wc after closeStdin')
    assert.equal(r.stdout.trim(), '5')
  })

  it('without stdin: true the command sees EOF immediately', { timeout: 30_000 }, async () => {
    const r = await bounded(sbx.commands.run('cat; echo eof-ok'), 10_000, 'cat without stdin')
    assert.equal(r.stdout, 'eof-ok\n')
  })

  it('sendStdin to an unknown pid fails', { timeout: 30_000 }, async () => {
    await assert.rejects(sbx.commands.sendStdin(999_999, 'x'), NotFoundError)
  })

  it('several commands run concurrently', { timeout: 30_000 }, async () => {
    const t0 = Date.now()
    const rs = await Promise.all(
      [1, 2, 3, 4].map((i) => sbx.commands.run(`sleep 1; echo ${i}`))
    )
    assert.deepEqual(rs.map((r) => r.stdout), ['1\n', '2\n', '3\n', '4\n'])
    assert.ok(Date.now() - t0 < 3_500, 'they ran in parallel')
  })
})

describe('commands after the sandbox is gone', () => {
  it('run on a killed sandbox rejects (not hangs)', { timeout: 60_000 }, async () => {
    const s2 = await T.create({ timeoutMs: 60_000 })
    await s2.kill()
    // E2B's proxy answers 502 for a dead sandbox: a stream then fails with
    // Code.Unavailable, which the SDK maps to SandboxNotFoundError.
    await assert.rejects(
      bounded(s2.commands.run('echo hi', { requestTimeoutMs: 10_000 }), 20_000, 'run on killed'),
      (err) => err instanceof SandboxNotFoundError || err instanceof TimeoutError
    )
    await assert.rejects(
      bounded(s2.files.read('/etc/hostname', { requestTimeoutMs: 10_000 }), 20_000, 'read on killed'),
      (err) => err instanceof TimeoutError // HTTP 502 → TimeoutError (formatSandboxTimeoutError)
    )
  })
})
