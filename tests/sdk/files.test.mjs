// sandbox.files.* — envd GET/POST /files and filesystem.Filesystem/*.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import {
  FileType,
  FilesystemEventType,
  FileNotFoundError,
  NotFoundError,
} from 'e2b'
import { tracker, waitFor, bounded } from './helpers.mjs'

const T = tracker()
let sbx
const D = `/tmp/sdk-files-${process.pid}`
before(async () => {
  sbx = await T.create({ timeoutMs: 600_000 })
})
after(() => T.killAll())

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i)
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex')

describe('files: read/write', () => {
  it('write text then read it back (text, bytes, blob, stream)', { timeout: 30_000 }, async () => {
    const info = await sbx.files.write(`${D}/hello.txt`, 'Hello, wörld!\n')
    assert.equal(info.path, `${D}/hello.txt`)
    assert.equal(info.name, 'hello.txt')
    assert.equal(info.type, FileType.FILE)

    assert.equal(await sbx.files.read(`${D}/hello.txt`), 'Hello, wörld!\n')
    const bytes = await sbx.files.read(`${D}/hello.txt`, { format: 'bytes' })
    assert.ok(bytes instanceof Uint8Array)
    assert.equal(new TextDecoder().decode(bytes), 'Hello, wörld!\n')
    const blob = await sbx.files.read(`${D}/hello.txt`, { format: 'blob' })
    assert.equal(await blob.text(), 'Hello, wörld!\n')
    const stream = await sbx.files.read(`${D}/hello.txt`, { format: 'stream' })
    assert.equal(await new Response(stream).text(), 'Hello, wörld!\n')
  })

  it('all 256 byte values round-trip (multipart and octet-stream uploads)', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/bytes.bin`, ALL_BYTES.buffer.slice(0))
    assert.deepEqual(await sbx.files.read(`${D}/bytes.bin`, { format: 'bytes' }), ALL_BYTES)

    await sbx.files.write(`${D}/bytes-oct.bin`, new Blob([ALL_BYTES]), { useOctetStream: true })
    assert.deepEqual(await sbx.files.read(`${D}/bytes-oct.bin`, { format: 'bytes' }), ALL_BYTES)

    const r = await sbx.commands.run(`sha256sum ${D}/bytes.bin`)
    assert.equal(r.stdout.split(' ')[0], sha256(ALL_BYTES), 'bytes on disk are exact')
  })

  it('gzip upload and gzip download', { timeout: 30_000 }, async () => {
    const text = 'compress me '.repeat(1000)
    await sbx.files.write(`${D}/gz.txt`, text, { gzip: true })
    assert.equal(await sbx.files.read(`${D}/gz.txt`), text)
    assert.equal(await sbx.files.read(`${D}/gz.txt`, { gzip: true }), text)
  })

  it('ReadableStream upload', { timeout: 30_000 }, async () => {
    const parts = ['a', 'b'.repeat(100_000), 'c']
    const stream = new ReadableStream({
      pull(c) {
        const p = parts.shift()
        if (p === undefined) c.close()
        else c.enqueue(new TextEncoder().encode(p))
      },
    })
    await sbx.files.write(`${D}/streamed.txt`, stream)
    const back = await sbx.files.read(`${D}/streamed.txt`)
    assert.equal(back.length, 100_002)
    assert.ok(back.startsWith('ab') && back.endsWith('bc'))
  })

  it('empty file', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/empty.txt`, '')
    assert.equal(await sbx.files.read(`${D}/empty.txt`), '')
    assert.equal((await sbx.files.read(`${D}/empty.txt`, { format: 'bytes' })).length, 0)
  })

  it('overwrite replaces content; parent directories are created', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/deep/er/x.txt`, 'first version, long')
    await sbx.files.write(`${D}/deep/er/x.txt`, 'second')
    assert.equal(await sbx.files.read(`${D}/deep/er/x.txt`), 'second')
  })

  it('write multiple files in one call', { timeout: 30_000 }, async () => {
    const res = await sbx.files.write([
      { path: `${D}/multi/a.txt`, data: 'AAA' },
      { path: `${D}/multi/b.bin`, data: ALL_BYTES.buffer.slice(0) },
      { path: `${D}/multi/sub/c.txt`, data: new Blob(['CCC']) },
    ])
    assert.ok(Array.isArray(res))
    assert.deepEqual(res.map((r) => r.path).sort(), [`${D}/multi/a.txt`, `${D}/multi/b.bin`, `${D}/multi/sub/c.txt`])
    assert.equal(await sbx.files.read(`${D}/multi/a.txt`), 'AAA')
    assert.deepEqual(await sbx.files.read(`${D}/multi/b.bin`, { format: 'bytes' }), ALL_BYTES)
    assert.equal(await sbx.files.read(`${D}/multi/sub/c.txt`), 'CCC')

    const res2 = await sbx.files.writeFiles([
      { path: `${D}/multi2/x.txt`, data: 'x' },
      { path: `${D}/multi2/y.txt`, data: 'y' },
    ])
    assert.equal(res2.length, 2)
    assert.equal(await sbx.files.read(`${D}/multi2/y.txt`), 'y')
  })

  it('relative paths resolve against the user home; ownership follows user', { timeout: 30_000 }, async () => {
    const w = await sbx.files.write('sdk-rel.txt', 'rel')
    assert.equal(w.path, '/home/user/sdk-rel.txt')
    assert.equal(await sbx.files.read('/home/user/sdk-rel.txt'), 'rel')
    assert.equal((await sbx.files.getInfo('sdk-rel.txt')).owner, 'user')

    const wr = await sbx.files.write('root-rel.txt', 'r', { user: 'root' })
    assert.equal(wr.path, '/root/root-rel.txt')
    const info = await sbx.files.getInfo('/root/root-rel.txt', { user: 'root' })
    assert.equal(info.owner, 'root')
  })

  it('read missing file → FileNotFoundError (a NotFoundError)', { timeout: 30_000 }, async () => {
    await assert.rejects(sbx.files.read(`${D}/nope.txt`), (err) => {
      assert.ok(err instanceof FileNotFoundError, `got ${err?.name}: ${err?.message}`)
      assert.ok(err instanceof NotFoundError)
      return true
    })
    await assert.rejects(sbx.files.read(`${D}/nope.txt`, { format: 'stream' }), FileNotFoundError)
  })

  it('100 MB write + read round trip is byte-exact', { timeout: 300_000 }, async () => {
    const big = randomBytes(100 * 1024 * 1024)
    const want = sha256(big)
    const w = await sbx.files.write(`${D}/big.bin`, new Blob([big]), { requestTimeoutMs: 240_000 })
    assert.equal(w.path, `${D}/big.bin`)
    const info = await sbx.files.getInfo(`${D}/big.bin`)
    assert.equal(info.size, big.length)
    const inBox = await sbx.commands.run(`sha256sum ${D}/big.bin`, { timeoutMs: 120_000 })
    assert.equal(inBox.stdout.split(' ')[0], want, 'sha256 inside the sandbox')
    const back = await sbx.files.read(`${D}/big.bin`, { format: 'bytes', requestTimeoutMs: 240_000 })
    assert.equal(back.length, big.length)
    assert.equal(sha256(back), want, 'sha256 of the downloaded bytes')
    await sbx.files.remove(`${D}/big.bin`)
  })
})

describe('files: metadata operations', () => {
  it('exists', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/ex/file.txt`, 'x')
    assert.equal(await sbx.files.exists(`${D}/ex/file.txt`), true)
    assert.equal(await sbx.files.exists(`${D}/ex`), true)
    assert.equal(await sbx.files.exists(`${D}/ex/missing`), false)
  })

  it('getInfo for a file and a directory', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/gi/f.txt`, '12345')
    const f = await sbx.files.getInfo(`${D}/gi/f.txt`)
    assert.equal(f.name, 'f.txt')
    assert.equal(f.path, `${D}/gi/f.txt`)
    assert.equal(f.type, FileType.FILE)
    assert.equal(f.size, 5)
    assert.equal(typeof f.mode, 'number')
    assert.match(f.permissions, /^-[rwx-]{9}$/)
    assert.equal(f.owner, 'user')
    assert.equal(f.group, 'user')
    assert.ok(f.modifiedTime instanceof Date && Math.abs(f.modifiedTime - Date.now()) < 120_000)

    const d = await sbx.files.getInfo(`${D}/gi`)
    assert.equal(d.type, FileType.DIR)
    assert.equal(d.name, 'gi')
    assert.match(d.permissions, /^d[rwx-]{9}$/)

    await assert.rejects(sbx.files.getInfo(`${D}/gi/missing`), FileNotFoundError)
  })

  it('symlinks are reported as such', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/ln/target.txt`, 't')
    await sbx.commands.run(`ln -s ${D}/ln/target.txt ${D}/ln/link`)
    const l = await sbx.files.getInfo(`${D}/ln/link`)
    assert.equal(l.type, FileType.SYMLINK)
    assert.equal(l.symlinkTarget, `${D}/ln/target.txt`)
    // A relative link is reported by where it leads, absolute (as envd does).
    await sbx.commands.run(`cd ${D}/ln && ln -s ./target.txt rel && ln -s ../ln/target.txt up`)
    assert.equal((await sbx.files.getInfo(`${D}/ln/rel`)).symlinkTarget, `${D}/ln/target.txt`)
    assert.equal((await sbx.files.getInfo(`${D}/ln/up`)).symlinkTarget, `${D}/ln/target.txt`)
  })

  it('makeDir: true when created (with parents), false when it exists', { timeout: 30_000 }, async () => {
    assert.equal(await sbx.files.makeDir(`${D}/mk/a/b/c`), true)
    assert.equal((await sbx.files.getInfo(`${D}/mk/a/b/c`)).type, FileType.DIR)
    assert.equal(await sbx.files.makeDir(`${D}/mk/a/b/c`), false)
  })

  it('list with depth', { timeout: 30_000 }, async () => {
    await sbx.files.write([
      { path: `${D}/ls/top.txt`, data: 't' },
      { path: `${D}/ls/d1/mid.txt`, data: 'm' },
      { path: `${D}/ls/d1/d2/low.txt`, data: 'l' },
    ])
    const l1 = await sbx.files.list(`${D}/ls`)
    assert.deepEqual(l1.map((e) => e.name).sort(), ['d1', 'top.txt'])
    const top = l1.find((e) => e.name === 'top.txt')
    assert.equal(top.path, `${D}/ls/top.txt`)
    assert.equal(top.type, FileType.FILE)
    assert.equal(top.size, 1)
    assert.equal(l1.find((e) => e.name === 'd1').type, FileType.DIR)

    const l2 = await sbx.files.list(`${D}/ls`, { depth: 2 })
    assert.deepEqual(l2.map((e) => e.path).sort(), [
      `${D}/ls/d1`,
      `${D}/ls/d1/d2`,
      `${D}/ls/d1/mid.txt`,
      `${D}/ls/top.txt`,
    ])
    const l3 = await sbx.files.list(`${D}/ls`, { depth: 3 })
    assert.ok(l3.some((e) => e.path === `${D}/ls/d1/d2/low.txt`))

    await assert.rejects(sbx.files.list(`${D}/ls/missing`), FileNotFoundError)
  })

  it('rename moves a file and returns its new info', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/mv/old.txt`, 'moving')
    const e = await sbx.files.rename(`${D}/mv/old.txt`, `${D}/mv/new.txt`)
    assert.equal(e.path, `${D}/mv/new.txt`)
    assert.equal(e.name, 'new.txt')
    assert.equal(e.type, FileType.FILE)
    assert.equal(await sbx.files.exists(`${D}/mv/old.txt`), false)
    assert.equal(await sbx.files.read(`${D}/mv/new.txt`), 'moving')
    await assert.rejects(sbx.files.rename(`${D}/mv/none`, `${D}/mv/x`), FileNotFoundError)
  })

  it('remove a file and a non-empty directory', { timeout: 30_000 }, async () => {
    await sbx.files.write(`${D}/rm/a/b.txt`, 'b')
    await sbx.files.remove(`${D}/rm/a/b.txt`)
    assert.equal(await sbx.files.exists(`${D}/rm/a/b.txt`), false)
    await sbx.files.write(`${D}/rm/a/c.txt`, 'c')
    await sbx.files.remove(`${D}/rm/a`)
    assert.equal(await sbx.files.exists(`${D}/rm/a`), false)
  })
})

describe('files: watchDir', () => {
  it('reports create, write and remove events', { timeout: 60_000 }, async () => {
    const dir = `${D}/watch`
    await sbx.files.makeDir(dir)
    const events = []
    let exitErr = 'not-called'
    const w = await sbx.files.watchDir(dir, (e) => events.push(e), {
      onExit: (err) => {
        exitErr = err
      },
    })
    try {
      await sbx.files.write(`${dir}/w.txt`, 'one')
      await sbx.commands.run(`echo more >> ${dir}/w.txt`)
      await sbx.files.remove(`${dir}/w.txt`)
      const has = (type) => events.some((e) => e.name === 'w.txt' && e.type === type)
      const ok = await waitFor(
        () => has(FilesystemEventType.CREATE) && has(FilesystemEventType.WRITE) && has(FilesystemEventType.REMOVE),
        10_000
      )
      assert.ok(ok, `create+write+remove for w.txt, got ${JSON.stringify(events)}`)
    } finally {
      await w.stop()
    }
    assert.ok(await waitFor(() => exitErr !== 'not-called', 5_000), 'onExit called after stop()')
  })

  it('files.write alone shows watchers the file itself written, no temporary names', { timeout: 60_000 }, async () => {
    const dir = `${D}/watchw`
    await sbx.files.makeDir(dir)
    const events = []
    const w = await sbx.files.watchDir(dir, (e) => events.push(e))
    try {
      await sbx.files.write(`${dir}/direct.txt`, 'first')
      await sbx.files.write(`${dir}/direct.txt`, 'second, longer')
      const ok = await waitFor(
        () => events.filter((e) => e.name === 'direct.txt' && e.type === FilesystemEventType.WRITE).length >= 2,
        10_000
      )
      assert.ok(ok, `two writes of direct.txt, got ${JSON.stringify(events)}`)
      assert.deepEqual(events.filter((e) => e.name !== 'direct.txt'), [])
    } finally {
      await w.stop()
    }
  })

  it('recursive watch reports events in subdirectories with relative names', { timeout: 60_000 }, async () => {
    const dir = `${D}/watchr`
    await sbx.files.makeDir(`${dir}/sub`)
    const events = []
    const w = await sbx.files.watchDir(dir, (e) => events.push(e), { recursive: true })
    try {
      await sbx.files.write(`${dir}/sub/deep.txt`, 'x')
      const ok = await waitFor(() => events.some((e) => e.name === 'sub/deep.txt'), 10_000)
      assert.ok(ok, `event for sub/deep.txt, got ${JSON.stringify(events)}`)
    } finally {
      await w.stop()
    }
  })

  it('watching a missing directory fails', { timeout: 30_000 }, async () => {
    await assert.rejects(
      bounded(sbx.files.watchDir(`${D}/no-such-dir`, () => {}), 15_000, 'watchDir on missing dir'),
      NotFoundError
    )
  })
})
