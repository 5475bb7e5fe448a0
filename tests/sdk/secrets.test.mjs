// Secrets with the official SDK (E2B's Secret, SDK 2.43+): write-only values
// kept per org; every read surface answers metadata only.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Secret } from 'e2b'
import { listAll } from './helpers.mjs'

const VALUE = 'sk-sdk-canary-4b1d9e'

describe('secrets', () => {
  it('are created, read, listed, updated and destroyed, never showing the value', async () => {
    const made = await Secret.create('SDK-Key', VALUE, { metadata: { owner: 'sdk' } })
    assert.match(made.secretId, /^sec_[0-9a-f]{20}$/)
    assert.equal(made.name, 'sdk-key')
    assert.equal(made.version, 1)
    assert.deepEqual(made.metadata, { owner: 'sdk' })
    assert.ok(!JSON.stringify(made).includes(VALUE))
    const id = made.secretId

    const byName = await Secret.getInfo('sdk-key')
    assert.equal(byName.version, 1)
    assert.ok(await Secret.exists(id))
    assert.ok(!(await Secret.exists('no-such-secret')))

    const updated = await Secret.update('sdk-key', VALUE + '-2')
    assert.equal(updated.version, 2)
    assert.deepEqual(updated.metadata, { owner: 'sdk' })

    for (let i = 0; i < 3; i++) await Secret.create(`sdk-page-${i}`, 'v')
    const all = await listAll(Secret.list({ limit: 2 }))
    const names = all.map((s) => s.name)
    for (const n of ['sdk-key', 'sdk-page-0', 'sdk-page-1', 'sdk-page-2']) assert.ok(names.includes(n), n)
    assert.ok(!JSON.stringify(all).includes(VALUE))

    await assert.rejects(Secret.create('sdk-key', 'again'), /already exists/)
    assert.equal(await Secret.destroy('sdk-key'), true)
    assert.equal(await Secret.destroy('sdk-key'), false)
    for (let i = 0; i < 3; i++) await Secret.destroy(`sdk-page-${i}`)
    assert.equal(Secret.fill('sdk-key'), '${e2b.secrets.sdk-key}')
  })
})
