// Templates defined in code with the official SDK's Template.build (E2B's
// build system v2): steps run inside a sandbox, files are uploaded by hash,
// unchanged step prefixes come from the cache, a failing step fails the build
// with its output, and sandboxes start from the result.
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Sandbox, Template, waitForPort, BuildError } from 'e2b'
import { tracker } from './helpers.mjs'

const T = tracker()
let ctxDir
before(() => {
  ctxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandboxd-tpl-'))
  fs.writeFileSync(path.join(ctxDir, 'hello.txt'), 'hello from the context\n')
  fs.mkdirSync(path.join(ctxDir, 'site', 'sub'), { recursive: true })
  fs.writeFileSync(path.join(ctxDir, 'site', 'index.html'), '<h1>built</h1>\n')
  fs.writeFileSync(path.join(ctxDir, 'site', 'sub', 'run.sh'), '#!/bin/sh\necho run\n')
})
after(async () => {
  await T.killAll()
  fs.rmSync(ctxDir, { recursive: true, force: true })
})

// The template, with `last` as its last RUN step.
function recipe(last) {
  return Template({ fileContextPath: ctxDir })
    .fromTemplate('base')
    .setEnvs({ GREETING: 'hi' })
    .aptInstall(['cowsay'])
    .setWorkdir('/srv/app')
    .copy('hello.txt', '/srv/app/')
    .copy('site', 'www/', { mode: 0o755 })
    .runCmd('echo "$GREETING $(cat /srv/app/hello.txt)" > /srv/app/out.txt')
    .makeSymlink('/srv/app/out.txt', '/srv/app/link')
    .runCmd(last)
    .setStartCmd('python3 -m http.server 8000 --directory www', waitForPort(8000))
}

async function timed(f) {
  const t0 = Date.now()
  const r = await f()
  return [r, (Date.now() - t0) / 1000]
}

describe('Template.build', () => {
  it('builds steps in a sandbox; sandboxes start from the template; the cache serves unchanged steps', { timeout: 600_000 }, async () => {
    const logs = []
    const [info, cold] = await timed(() =>
      Template.build(recipe('echo one > /srv/app/last.txt'), 'sdk-web', {
        onBuildLogs: (e) => logs.push(e.toString()),
      })
    )
    assert.equal(info.name, 'sdk-web')
    assert.equal(typeof info.templateId, 'string')
    const text = logs.join('\n')
    assert.match(text, /RUN .*apt-get install/, 'the build logs name the steps')
    assert.match(text, /Unpacking cowsay|Setting up cowsay/, "the step's output reaches onBuildLogs")

    const sbx = await T.create('sdk-web', { timeoutMs: 120_000 })
    const out = await sbx.commands.run('cat /srv/app/out.txt; readlink /srv/app/link; cat /srv/app/last.txt; echo $GREETING; ls /usr/games/cowsay; cat /srv/app/www/index.html; stat -c "%a %U" /srv/app/www/sub/run.sh /srv/app/hello.txt')
    assert.equal(out.exitCode, 0, out.stderr)
    assert.deepEqual(out.stdout.trim().split('\n'), [
      'hi hello from the context',
      '/srv/app/out.txt',
      'one',
      'hi',
      '/usr/games/cowsay',
      '<h1>built</h1>',
      '755 user',
      '644 user',
    ])
    // Processes start where the build's last WORKDIR was, as its last USER.
    const here = await sbx.commands.run('pwd; whoami')
    assert.equal(here.stdout, '/srv/app\nuser\n')
    // The start command serves from the built files.
    const page = await sbx.commands.run('python3 -c "import urllib.request;print(urllib.request.urlopen(\'http://127.0.0.1:8000/index.html\').read().decode())"')
    assert.match(page.stdout, /<h1>built<\/h1>/)
    await sbx.kill()

    // The same template again: every step from the cache.
    const again = []
    const [, cached] = await timed(() =>
      Template.build(recipe('echo one > /srv/app/last.txt'), 'sdk-web', {
        onBuildLogs: (e) => again.push(e.toString()),
      })
    )
    const againText = again.join('\n')
    assert.match(againText, /CACHED \[\d+\/\d+\] RUN .*apt-get install/)
    assert.match(againText, /Skipping upload of 'hello.txt', already cached/)

    // Only the last step changed: the steps before it come from the cache.
    const changed = []
    const [, lastChanged] = await timed(() =>
      Template.build(recipe('echo two > /srv/app/last.txt'), 'sdk-web', {
        onBuildLogs: (e) => changed.push(e.toString()),
      })
    )
    const changedText = changed.join('\n')
    assert.match(changedText, /CACHED \[\d+\/\d+\] RUN .*apt-get install/)
    assert.doesNotMatch(changedText, /CACHED \[\d+\/\d+\] RUN echo two/)
    const sbx2 = await T.create('sdk-web', { timeoutMs: 120_000 })
    const last = await sbx2.commands.run('cat /srv/app/last.txt /srv/app/out.txt')
    assert.equal(last.stdout, 'two\nhi hello from the context\n')
    await sbx2.kill()
    console.log(`# template build times: cold ${cold.toFixed(1)} s, cached ${cached.toFixed(1)} s, last step changed ${lastChanged.toFixed(1)} s`)
  })

  it('a failing step fails the build with its output and step', { timeout: 300_000 }, async () => {
    const t = Template()
      .fromBaseImage()
      .runCmd('echo fine')
      .runCmd('echo "this went wrong" >&2; exit 3')
    await assert.rejects(Template.build(t, 'sdk-broken'), (e) => {
      assert.ok(e instanceof BuildError, `a BuildError, got ${e}`)
      assert.match(e.message, /exit code 3/)
      assert.match(e.message, /this went wrong/)
      return true
    })
    // No sandbox starts from a template that never built.
    await assert.rejects(Sandbox.create('sdk-broken'), /no successful build|still building/)
  })

  it('an image that cannot be fetched here is refused with what is possible', { timeout: 60_000 }, async () => {
    const t = Template().fromImage('ubuntu:22.04').runCmd('true')
    await assert.rejects(Template.build(t, 'sdk-ubuntu'), (e) => {
      assert.match(e.message, /ubuntu:22\.04 cannot be fetched here/)
      assert.match(e.message, /fromDebianImage/)
      return true
    })
  })

  it('a template built from another built in code stacks on its layers', { timeout: 300_000 }, async () => {
    const parent = Template().fromDebianImage('bookworm').runCmd('echo parent > /opt/parent.txt', { user: 'root' })
    await Template.build(parent, 'sdk-parent')
    const child = Template()
      .fromTemplate('sdk-parent')
      .setUser('root')
      .runCmd('echo child > /opt/child.txt && whoami > /opt/who.txt')
    await Template.build(child, 'sdk-child')
    const sbx = await T.create('sdk-child', { timeoutMs: 60_000 })
    const r = await sbx.commands.run('cat /opt/parent.txt /opt/child.txt /opt/who.txt; whoami')
    assert.equal(r.stdout, 'parent\nchild\nroot\nroot\n', 'the last USER runs processes unasked')
    assert.equal((await sbx.commands.run('whoami', { user: 'user' })).stdout, 'user\n')
    await sbx.kill()
    assert.equal(await Template.exists('sdk-child'), true)

    // Deleting the child removes its own layers; the parent's stay (it uses them).
    const layers = () => fs.readdirSync(path.join(process.env.SANDBOXD_DATA_DIR, 'snapshots')).filter((n) => !n.startsWith('.'))
    const before = layers().length
    const del = (name) => fetch(`${process.env.E2B_API_URL}/templates/${name}`, {
      method: 'DELETE', headers: { 'X-API-Key': process.env.E2B_API_KEY },
    })
    assert.equal((await del('sdk-child')).status, 204)
    let after = before
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100))
      after = layers().length
    }
    assert.equal(after, before - 1, 'the child had one layer of its own')
    const again = await T.create('sdk-parent', { timeoutMs: 60_000 })
    assert.equal((await again.commands.run('cat /opt/parent.txt')).stdout, 'parent\n')
    await again.kill()
  })

  it('tags name builds: a build takes its tags once ready, tags move, sandboxes and builds start from the tagged build', { timeout: 300_000 }, async () => {
    const which = (cmd) => Template().fromTemplate('base').runCmd(cmd)
    const v1 = await Template.build(which('echo one > /home/user/which.txt'), 'sdk-tags:v1')
    const v2 = await Template.build(which('echo two > /home/user/which.txt'), 'sdk-tags:v2')
    assert.notEqual(v1.buildId, v2.buildId)
    const tagsOf = async () =>
      Object.fromEntries((await Template.getTags('sdk-tags')).map((t) => [t.tag, t.buildId]))
    assert.deepEqual(await tagsOf(), { v1: v1.buildId, v2: v2.buildId })
    const content = async (ref) => {
      const sbx = await T.create(ref, { timeoutMs: 60_000 })
      const r = await sbx.commands.run('cat /home/user/which.txt')
      await sbx.kill()
      return r.stdout.trim()
    }
    assert.equal(await content('sdk-tags:v1'), 'one')
    assert.equal(await content('sdk-tags:v2'), 'two')
    assert.equal(await content('sdk-tags'), 'two', 'no build holds default: the newest ready one')

    // A failed build takes no tag: v1 still names the first build.
    await assert.rejects(Template.build(which('exit 1'), 'sdk-tags:v1'), BuildError)
    assert.deepEqual(await tagsOf(), { v1: v1.buildId, v2: v2.buildId })
    assert.equal(await content('sdk-tags:v1'), 'one')

    // A tag names one build: assigning it again moves it.
    assert.deepEqual(await Template.assignTags('sdk-tags:v1', 'prod'), { buildId: v1.buildId, tags: ['prod'] })
    assert.equal(await content('sdk-tags:prod'), 'one')
    await Template.assignTags('sdk-tags:v2', ['prod', 'stable'])
    assert.deepEqual(await tagsOf(), { v1: v1.buildId, v2: v2.buildId, prod: v2.buildId, stable: v2.buildId })
    assert.equal(await content('sdk-tags:prod'), 'two')
    await Template.removeTags('sdk-tags', ['prod', 'stable'])
    assert.deepEqual(await tagsOf(), { v1: v1.buildId, v2: v2.buildId })
    await assert.rejects(Sandbox.create('sdk-tags:prod'), /no ready build tagged prod/)
    await assert.rejects(Template.assignTags('sdk-tags:nope', 'x'), /no ready build tagged nope/)
    await assert.rejects(Template.assignTags('sdk-missing:v1', 'x'), /not found/)
    await assert.rejects(Template.assignTags('sdk-tags:v1', 'bad tag'), /not a tag/)
    await assert.rejects(Template.removeTags('sdk-tags', 'nope'), /has no tag nope/)

    // fromTemplate('name:tag') starts from that build's files.
    await Template.build(
      Template().fromTemplate('sdk-tags:v1').runCmd('cp /home/user/which.txt /home/user/from.txt'),
      'sdk-tags-child'
    )
    const child = await T.create('sdk-tags-child', { timeoutMs: 60_000 })
    assert.equal((await child.commands.run('cat /home/user/from.txt')).stdout, 'one\n')
    await child.kill()
  })
})
