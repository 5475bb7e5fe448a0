// The official, unmodified `@e2b/code-interpreter` SDK against sandboxd: its
// default template `code-interpreter-v1`, `runCode` in Python, bash and R,
// rich results (PNG plots, DataFrame tables), errors, contexts, per-run env
// vars, timeouts and a kernel that dies.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Sandbox } from '@e2b/code-interpreter'
import { NotFoundError, TimeoutError, InvalidArgumentError } from 'e2b'

const created = []
async function create(opts = {}) {
  const sbx = await Sandbox.create({ timeoutMs: 600_000, ...opts })
  created.push(sbx)
  return sbx
}
after(() => Promise.all(created.map((s) => s.kill().catch(() => {}))))

describe('code interpreter', () => {
  let sbx
  before(async () => {
    sbx = await create({ envs: { SANDBOX_WIDE: 'from-create' } })
  })

  it('runs Python with state kept between cells, streaming stdout and stderr', { timeout: 120_000 }, async () => {
    const first = await sbx.runCode('1+1')
    assert.equal(first.text, '2')
    assert.equal(first.error, undefined)
    const out = []
    const err = []
    const r = await sbx.runCode('import sys\nx = 41\nprint("hello")\nprint("oops", file=sys.stderr)\nx + 1', {
      onStdout: (m) => out.push(m.line),
      onStderr: (m) => err.push(m.line),
    })
    assert.equal(r.text, '42')
    assert.deepEqual(r.logs.stdout, ['hello\n'])
    assert.deepEqual(r.logs.stderr, ['oops\n'])
    assert.deepEqual(out, ['hello\n'])
    assert.deepEqual(err, ['oops\n'])
    assert.ok(r.executionCount > first.executionCount, 'execution count grows')
    assert.equal((await sbx.runCode('x')).text, '41', 'x survives between cells')
    assert.equal((await sbx.runCode("'quoted'")).text, 'quoted', 'string results lose their quotes')
  })

  it('returns a PNG for a matplotlib plot and HTML plus data for a DataFrame', { timeout: 120_000 }, async () => {
    const plot = await sbx.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()')
    assert.equal(plot.error, undefined)
    const png = plot.results.find((x) => x.png)
    assert.ok(png, `a PNG result, got ${JSON.stringify(plot.results.map((x) => x.formats()))}`)
    assert.equal(Buffer.from(png.png, 'base64').subarray(1, 4).toString(), 'PNG')
    assert.equal(png.isMainResult, false)
    const df = await sbx.runCode('import pandas as pd\npd.DataFrame({"a": [1, 2], "b": ["x", "y"]})')
    const main = df.results.find((x) => x.isMainResult)
    assert.match(main.html, /<table/)
    assert.deepEqual(main.data, { a: [1, 2], b: ['x', 'y'] })
    const svg = await sbx.runCode('from IPython.display import SVG\nSVG("<svg xmlns=\\"http://www.w3.org/2000/svg\\"/>")')
    assert.match(svg.results[0].svg, /<svg/)
  })

  it('reports an exception with its name, value and traceback', { timeout: 60_000 }, async () => {
    const errors = []
    const r = await sbx.runCode('def f():\n    return 1 / 0\nf()', { onError: (e) => errors.push(e) })
    assert.equal(r.error.name, 'ZeroDivisionError')
    assert.equal(r.error.value, 'division by zero')
    assert.match(r.error.traceback, /ZeroDivisionError/)
    assert.equal(errors.length, 1)
    assert.equal((await sbx.runCode('2*3')).text, '6', 'the context still works')
  })

  it('runs bash (state kept, in /home/user) and R; an unknown language is a clear error', { timeout: 180_000 }, async () => {
    const b = await sbx.runCode('pwd\nexport GREETING=hi', { language: 'bash' })
    assert.deepEqual(b.logs.stdout, ['/home/user\n'])
    const b2 = await sbx.runCode('echo "$GREETING $SANDBOX_WIDE"; echo err >&2', { language: 'bash' })
    assert.deepEqual(b2.logs.stdout, ['hi from-create\n'])
    assert.deepEqual(b2.logs.stderr, ['err\n'])
    const failed = await sbx.runCode('false', { language: 'bash' })
    assert.equal(failed.error.value, '1', 'a failing command is an error carrying its status')
    const r = await sbx.runCode('x <- c(1, 2, 3)\nsum(x)', { language: 'r' })
    assert.equal(r.error, undefined)
    // IRkernel shows values as display data, not as the cell's main result (as on E2B).
    assert.equal(r.results[0]?.text, '[1] 6')
    assert.equal((await sbx.runCode('length(x)', { language: 'r' })).results[0]?.text, '[1] 3')
    const renv = await sbx.runCode('Sys.getenv("R_ONE", unset = "default")', { language: 'r', envs: { R_ONE: 'bar' } })
    assert.equal(renv.results[0]?.text, '[1] "bar"')
    const rafter = await sbx.runCode('Sys.getenv("R_ONE", unset = "default")', { language: 'r' })
    assert.equal(rafter.results[0]?.text, '[1] "default"')
    await assert.rejects(sbx.runCode('1', { language: 'cobol' }), (e) => {
      assert.ok(e instanceof NotFoundError, e.name)
      assert.match(e.message, /cobol.*not available.*python/)
      return true
    })
    await assert.rejects(
      sbx.runCode('1', { language: 'python', context: { id: 'x', language: 'python', cwd: '/' } }),
      InvalidArgumentError
    )
  })

  it('creates, lists, restarts and removes contexts', { timeout: 120_000 }, async () => {
    const ctx = await sbx.createCodeContext({ cwd: '/tmp' })
    assert.equal(ctx.language, 'python')
    assert.equal(ctx.cwd, '/tmp')
    assert.equal((await sbx.runCode('import os\nos.getcwd()', { context: ctx })).text, '/tmp')
    await sbx.runCode('y = 5', { context: ctx })
    assert.equal((await sbx.runCode('y', { context: ctx })).text, '5')
    assert.equal((await sbx.runCode("'y' in globals()")).text, 'False', 'contexts do not share state')
    const listed = await sbx.listCodeContexts()
    assert.ok(listed.some((c) => c.id === ctx.id && c.cwd === '/tmp'))
    await sbx.restartCodeContext(ctx)
    const gone = await sbx.runCode('y', { context: ctx })
    assert.equal(gone.error.name, 'NameError', 'a restart forgets the state')
    const bashCtx = await sbx.createCodeContext({ language: 'bash', cwd: '/workspace' })
    assert.deepEqual((await sbx.runCode('pwd', { context: bashCtx })).logs.stdout, ['/workspace\n'])
    await sbx.removeCodeContext(ctx)
    await sbx.removeCodeContext(bashCtx.id)
    assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
    await assert.rejects(sbx.runCode('1', { context: ctx }), NotFoundError)
    await assert.rejects(sbx.createCodeContext({ cwd: '/no/such/dir' }), /400/)
    await assert.rejects(sbx.createCodeContext({ language: 'cobol' }), NotFoundError)
  })

  it('sets env vars for one run only and sees the sandbox env', { timeout: 60_000 }, async () => {
    const code = 'import os\nos.environ.get("ONE_RUN", "unset") + "/" + os.environ["SANDBOX_WIDE"]'
    assert.equal((await sbx.runCode(code, { envs: { ONE_RUN: 'yes' } })).text, 'yes/from-create')
    assert.equal((await sbx.runCode(code)).text, 'unset/from-create')
    const shadow = await sbx.runCode('import os\nos.environ["SANDBOX_WIDE"]', { envs: { SANDBOX_WIDE: 'mine' } })
    assert.equal(shadow.text, 'mine')
    assert.equal((await sbx.runCode('import os\nos.environ["SANDBOX_WIDE"]')).text, 'from-create', 'restored')
    const b = await sbx.runCode('echo "$ONE_RUN"', { language: 'bash', envs: { ONE_RUN: "it's" } })
    assert.deepEqual(b.logs.stdout, ["it's\n"])
  })

  it('a run that exceeds timeoutMs is a TimeoutError and is interrupted', { timeout: 120_000 }, async () => {
    await assert.rejects(sbx.runCode('import time\ntime.sleep(60)', { timeoutMs: 1_500 }), TimeoutError)
    const t0 = Date.now()
    const next = await sbx.runCode('"after"')
    assert.equal(next.text, 'after')
    assert.ok(Date.now() - t0 < 20_000, 'the next run does not wait for the abandoned one')
  })

  it('a kernel that dies is restarted and says so', { timeout: 120_000 }, async () => {
    const ctx = await sbx.createCodeContext()
    const r = await sbx.runCode('import os\nos._exit(1)', { context: ctx })
    assert.equal(r.error?.name, 'ContextRestarting', JSON.stringify(r.error))
    assert.equal((await sbx.runCode('1+2', { context: ctx })).text, '3')
  })
})

describe('code interpreter access', () => {
  it('works behind a traffic token and refuses requests without it', { timeout: 120_000 }, async () => {
    const sbx = await create({ network: { allowPublicTraffic: false } })
    assert.ok(sbx.trafficAccessToken, 'create returned a traffic token')
    assert.equal((await sbx.runCode('3*3')).text, '9')
    const res = await fetch(`${process.env.E2B_SANDBOX_URL}/execute`, {
      method: 'POST',
      headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999', 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: '1' }),
    })
    assert.equal(res.status, 403)
  })

  it('/health answers; a malformed request is a 400 naming the problem', { timeout: 60_000 }, async () => {
    const sbx = created[0] ?? (await create())
    const call = (path, init = {}) =>
      fetch(`${process.env.E2B_SANDBOX_URL}${path}`, {
        ...init,
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999', 'X-Access-Token': sbx.envdAccessToken ?? '' },
      })
    const health = await call('/health')
    assert.equal(health.status, 200)
    assert.equal(await health.json(), 'OK')
    for (const [body, message] of [
      ['{"code": ', /not JSON/],
      ['[1]', /JSON object/],
      ['{"language": "python"}', /code must be a string/],
      ['{"code": "1", "language": "python", "context_id": "x"}', /Only one of context_id or language/],
      ['{"code": "1", "env_vars": {"A": 1}}', /env_vars/],
      ['{"code": "1", "env_vars": {"A B": "x"}}', /not a variable name/],
    ]) {
      const res = await call('/execute', { method: 'POST', body })
      assert.equal(res.status, 400, body)
      assert.match(await res.text(), message)
    }
    const huge = await call('/execute', { method: 'POST', body: JSON.stringify({ code: 'x'.repeat(17 << 20) }) })
    assert.equal(huge.status, 413)
    assert.equal((await call('/nope')).status, 404)
    assert.equal((await call('/execute')).status, 405)
    assert.equal((await sbx.runCode('"still fine"')).text, 'still fine')
  })
})
