// The `base` template has what E2B's base has (python and pip, node and npm,
// git, passwordless sudo for `user`), so the SDK's `sandbox.git` helpers work.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { tracker } from './helpers.mjs'

const T = tracker()
after(() => T.killAll())

describe('base template', () => {
  it('has python, pip, node, npm and git; user has passwordless sudo', { timeout: 120_000 }, async () => {
    const sbx = await T.create('base')
    const r = await sbx.commands.run(
      'python --version && pip --version && node --version && npm --version && git --version && whoami && sudo -n whoami'
    )
    const out = r.stdout
    assert.match(out, /^Python 3\.11/m)
    assert.match(out, /^pip \d+/m)
    assert.match(out, /^v18\./m)
    assert.match(out, /^git version 2\./m)
    assert.match(out, /^user\nroot$/m)
    // sudo really is root inside: it may install into the system.
    await sbx.commands.run('sudo -n touch /usr/local/bin/by-sudo')
    const st = await sbx.commands.run('stat -c %U /usr/local/bin/by-sudo')
    assert.equal(st.stdout.trim(), 'root')
  })

  it('sandbox.git: init, configure, add, commit, status, branches, clone', { timeout: 120_000 }, async () => {
    const sbx = await T.create('base')
    const repo = '/home/user/repo'
    await sbx.git.init(repo, { initialBranch: 'main' })
    await sbx.git.configureUser('Sandbox User', 'user@example.com', { scope: 'global' })
    assert.equal(await sbx.git.getConfig('user.name', { scope: 'global' }), 'Sandbox User')
    await sbx.files.write(`${repo}/README.md`, '# hello\n')
    let status = await sbx.git.status(repo)
    assert.equal(status.currentBranch, 'main')
    assert.ok(status.fileStatus.some((f) => f.name === 'README.md'), JSON.stringify(status))
    await sbx.git.add(repo, { all: true })
    await sbx.git.commit(repo, 'first commit')
    status = await sbx.git.status(repo)
    assert.equal(status.isClean, true, JSON.stringify(status))
    await sbx.git.createBranch(repo, 'feature')
    const branches = await sbx.git.branches(repo)
    assert.equal(branches.currentBranch, 'feature')
    assert.deepEqual([...branches.branches].sort(), ['feature', 'main'])
    await sbx.git.clone(`file://${repo}`, { path: '/home/user/copy' })
    const log = await sbx.commands.run('git -C /home/user/copy log --format=%s')
    assert.equal(log.stdout.trim(), 'first commit')
  })
})
