// FileStore beyond the shared contract: its files, corruption of each kind, interrupted
// artifact writes, and locks between processes (two trainers never corrupt one store).
import test, { type ExecutionContext } from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CorruptFileError, StoreError } from '../src/errors.js'
import { FileStore, RUN_SCHEMA, sha256Hex, type RunDoc } from '../src/store/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function tmp(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-store-file-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function run(id: string, createdAt = '2026-01-01T00:00:00.000Z'): RunDoc {
  return { schema: RUN_SCHEMA, id, config: { a: 1 }, configHash: 'cfg', status: 'running', stages: {}, createdAt, updatedAt: createdAt }
}

/** Every file under `dir`, relative, sorted. */
function files(dir: string, rel = ''): string[] {
  if (!existsSync(join(dir, rel))) return []
  return readdirSync(join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(dir, join(rel, e.name)) : [join(rel, e.name)]))
    .sort()
}

function envelope(data: unknown): string {
  const body = JSON.stringify(data)
  return `{"format":"wotd-store/1","sha256":"${sha256Hex(body)}","data":${body}}\n`
}

/** A node child running `body` (an async function body with `FileStore` and `dir` in scope). */
function child(t: ExecutionContext, dir: string, body: string): { proc: ChildProcess; lines: string[]; line: (re: RegExp) => Promise<string>; exit: Promise<number | null> } {
  const script = join(tmp(t), 'child.mjs')
  writeFileSync(
    script,
    `import { FileStore } from ${JSON.stringify(pathToFileURL(join(root, 'src', 'store', 'index.ts')).href)}\n` +
      `const dir = ${JSON.stringify(dir)}\nconst store = new FileStore({ dir })\n` +
      `const say = (s) => process.stdout.write(s + '\\n')\n` +
      `try {\n${body}\n} catch (err) { say('ERROR ' + err.name + ': ' + err.message); process.exitCode = 3 }\n`,
  )
  const proc = spawn(process.execPath, ['--import', '@oxc-node/core/register', script], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL')
  })
  const lines: string[] = []
  const waiters: { re: RegExp; resolve: (s: string) => void }[] = []
  let buf = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i)
      buf = buf.slice(i + 1)
      lines.push(l)
      for (const w of [...waiters]) if (w.re.test(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(l))
    }
  })
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)))
  const line = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const hit = lines.find((l) => re.test(l))
      if (hit) return resolve(hit)
      waiters.push({ re, resolve })
      void exit.then(() => setTimeout(() => reject(new Error(`child exited without ${re}: ${lines.join(' | ')} ${err.slice(-800)}`)), 50))
    })
  return { proc, lines, line, exit }
}

test('FileStore: the layout: JSON envelopes, raw artifacts with a .meta.json sidecar, history per user and date', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  await s.putRun(run('r1'))
  await s.putSemanticIds('r1', [['alpha', [1, 2, 3, 4]]])
  const bytes = Buffer.from('safetensors bytes')
  await s.putArtifact('runs/r1/codebooks.safetensors', bytes, { meta: { levels: 4 } })
  await s.putHistory({ user: 'ada', date: '2026-03-01', word: 'alpha', createdAt: '2026-03-01T00:00:00.000Z' })
  await s.putHistory({ user: 'grace@example.com', date: '2026-03-01', word: 'beta', createdAt: '2026-03-01T00:00:00.000Z' })
  const userDir = `_${sha256Hex('grace@example.com').slice(0, 32)}`
  t.deepEqual(files(dir), [
    'artifacts/runs/r1/codebooks.safetensors',
    'artifacts/runs/r1/codebooks.safetensors.meta.json',
    `history/${userDir}/2026-03-01.json`,
    'history/ada/2026-03-01.json',
    'runs/r1.json',
    'semantic_ids/r1.json',
  ].sort())
  t.deepEqual(readFileSync(join(dir, 'artifacts/runs/r1/codebooks.safetensors')), bytes)
  const side = JSON.parse(readFileSync(join(dir, 'artifacts/runs/r1/codebooks.safetensors.meta.json'), 'utf8'))
  t.is(side.format, 'wotd-store/1')
  t.like(side.data, { name: 'runs/r1/codebooks.safetensors', size: bytes.length, sha256: sha256Hex(bytes), meta: { levels: 4 } })
  t.false('previous' in side.data, 'a finished write leaves no replacement marker')
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'semantic_ids/r1.json'), 'utf8')).data, { runId: 'r1', entries: [['alpha', [1, 2, 3, 4]]] })
})

test('FileStore: a damaged artifact is a CorruptFileError on every read path; nothing lands at the destination', async (t) => {
  const dir = tmp(t)
  const out = tmp(t)
  const s = new FileStore({ dir })
  const bytes = Buffer.alloc(200_000, 7)
  await s.putArtifact('a/model.safetensors', bytes)
  const path = join(dir, 'artifacts/a/model.safetensors')
  const flipped = Buffer.from(bytes)
  flipped[123_456] ^= 1
  writeFileSync(path, flipped)
  await t.throwsAsync(s.getArtifact('a/model.safetensors'), { instanceOf: CorruptFileError, message: /artifact a\/model\.safetensors is corrupt: .*model\.safetensors has sha256/ })
  await t.throwsAsync(s.getArtifactToFile('a/model.safetensors', join(out, 'model.safetensors')), { instanceOf: CorruptFileError })
  t.deepEqual(readdirSync(out), [])
  writeFileSync(path, bytes.subarray(0, 1000)) // truncated
  await t.throwsAsync(s.getArtifact('a/model.safetensors'), { instanceOf: CorruptFileError, message: /1000 bytes/ })
  rmSync(path) // bytes gone, metadata left
  await t.throwsAsync(s.getArtifact('a/model.safetensors'), { instanceOf: CorruptFileError, message: /missing its bytes/ })
  await t.throwsAsync(s.getArtifactToFile('a/model.safetensors', join(out, 'model.safetensors')), { instanceOf: CorruptFileError })
  // a damaged sidecar
  await s.putArtifact('a/model.safetensors', bytes)
  const meta = `${path}.meta.json`
  writeFileSync(meta, readFileSync(meta, 'utf8').replace('"size":200000', '"size":200001'))
  await t.throwsAsync(s.getArtifact('a/model.safetensors'), { instanceOf: CorruptFileError, message: /metadata .* is damaged \(.*checksum mismatch/ })
  await t.throwsAsync(s.statArtifact('a/model.safetensors'), { instanceOf: CorruptFileError })
  // writing it again repairs it
  await s.putArtifact('a/model.safetensors', bytes)
  t.deepEqual(await s.getArtifact('a/model.safetensors'), bytes)
  t.deepEqual(readdirSync(out), [])
})

test('FileStore: an interrupted artifact write never reads as corruption', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  const v1 = Buffer.from('version one')
  const v2 = Buffer.from('version two, longer')
  const i1 = await s.putArtifact('cb', v1)
  const data = join(dir, 'artifacts/cb')
  const meta = `${data}.meta.json`
  const i2 = { ...i1, size: v2.length, sha256: sha256Hex(v2), createdAt: '2026-02-02T00:00:00.000Z' }
  // crashed after the sidecar announced v2, before v2's bytes were renamed in: v1 is read
  writeFileSync(meta, envelope({ ...i2, previous: i1 }))
  t.deepEqual(await s.getArtifact('cb'), v1)
  t.deepEqual(await s.statArtifact('cb'), i1)
  t.deepEqual(await s.getArtifact('cb', { sha256: i1.sha256 }), v1)
  // crashed after the rename, before the sidecar was finished: v2 is read
  writeFileSync(data, v2)
  t.deepEqual(await s.getArtifact('cb'), v2)
  t.is((await s.statArtifact('cb'))!.sha256, i2.sha256)
  // the first write of an artifact crashed before its bytes were in place: there is none
  writeFileSync(join(dir, 'artifacts/fresh.meta.json'), envelope({ ...i2, name: 'fresh', previous: null }))
  t.is(await s.getArtifact('fresh'), null)
  t.is(await s.statArtifact('fresh'), null)
  t.is(await s.getArtifactToFile('fresh', join(tmp(t), 'x')), null)
  writeFileSync(join(dir, 'artifacts/fresh'), 'left over from a deleted artifact')
  t.is(await s.getArtifact('fresh'), null)
  t.deepEqual(
    (await s.listArtifacts()).map((a) => a.name),
    ['cb'],
  )
  // a temporary file of a dead writer is swept
  writeFileSync(join(dir, 'artifacts/cb.999999999.0badcafe.tmp'), 'half')
  await s.listArtifacts()
  t.false(existsSync(join(dir, 'artifacts/cb.999999999.0badcafe.tmp')))
  // ... and one in a run's folder, when the next artifact is written there
  await s.putArtifact('runs/r9/adapter/a.bin', v1)
  writeFileSync(join(dir, 'artifacts/runs/r9/adapter/b.bin.999999999.0badcafe.tmp'), 'half')
  await s.putArtifact('runs/r9/adapter/b.bin', v2)
  t.deepEqual(readdirSync(join(dir, 'artifacts/runs/r9/adapter')).filter((f) => f.endsWith('.tmp')), [])
})

test('FileStore: a damaged run, semantic-ID or history file is a StoreError naming it (primary data)', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  await s.putRun(run('r1'))
  await s.putSemanticIds('r1', [['alpha', [1, 2, 3, 4]]])
  await s.putHistory({ user: 'ada', date: '2026-03-01', word: 'alpha', createdAt: '2026-03-01T00:00:00.000Z' })
  const tamper = (rel: string, from: string, to: string) => writeFileSync(join(dir, rel), readFileSync(join(dir, rel), 'utf8').replace(from, to))
  tamper('runs/r1.json', '"running"', '"completed"')
  await t.throwsAsync(s.getRun('r1'), { instanceOf: StoreError, message: /runs\/r1\.json is corrupt \(checksum mismatch\)/ })
  await t.throwsAsync(s.listRuns(), { instanceOf: StoreError })
  tamper('semantic_ids/r1.json', '[1,2,3,4]', '[1,2,3,5]')
  await t.throwsAsync(s.getSemanticIds('r1'), { instanceOf: StoreError, message: /semantic_ids\/r1\.json is corrupt/ })
  await t.throwsAsync(s.putSemanticIds('r1', [['beta', [1, 1, 1, 1]]]), { instanceOf: StoreError })
  tamper('history/ada/2026-03-01.json', 'alpha', 'omega')
  await t.throwsAsync(s.getHistory('ada'), { instanceOf: StoreError, message: /2026-03-01\.json is corrupt/ })
  // deleting the run removes the damaged semantic IDs too, so the run can be recomputed
  writeFileSync(join(dir, 'runs/r1.json'), envelope(run('r1')))
  t.true(await s.deleteRun('r1'))
  t.false(existsSync(join(dir, 'semantic_ids/r1.json')))
})

test('FileStore: stale lock files are broken (dead pid, old garbage, old foreign host); live ones name their holder', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  const lock = join(dir, 'locks', 'train.lock')
  mkdirSync(dirname(lock), { recursive: true })
  const write = (h: object, ageMs = 0) => {
    writeFileSync(lock, JSON.stringify({ acquiredAt: '2026-01-01T00:00:00.000Z', token: 'x', ttlMs: 60_000, ...h }))
    const at = new Date(Date.now() - ageMs)
    utimesSync(lock, at, at)
  }
  write({ pid: 2 ** 22 + 12345, hostname: hostname() })
  let l = await s.acquireLock('train')
  t.is(JSON.parse(readFileSync(lock, 'utf8')).token, l.holder.token)
  await l.release()
  t.false(existsSync(lock))
  write({ pid: 4242, hostname: 'trainer-box-7', purpose: 'wotd train' })
  await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError, message: /locked \("train"\) by pid 4242 on host trainer-box-7 \(since 2026-01-01T00:00:00\.000Z, wotd train\)/ })
  write({ pid: 4242, hostname: 'trainer-box-7' }, 61_000) // not refreshed for longer than its ttl
  l = await s.acquireLock('train')
  await l.release()
  writeFileSync(lock, '') // being created right now by someone
  await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError, message: /an unknown process/ })
  const old = new Date(Date.now() - 11_000)
  utimesSync(lock, old, old) // ... or long dead
  l = await s.acquireLock('train')
  t.false(existsSync(`${lock}.break`))
  await l.release()
})

test('FileStore: two processes: the second fails naming the first, waits for it, and takes over from a killed one', async (t) => {
  const dir = tmp(t)
  const holder = child(
    t,
    dir,
    `const l = await store.acquireLock('train', { purpose: 'wotd train' })\n` +
      `say('HELD ' + process.pid)\n` +
      `await new Promise((r) => process.stdin.once('data', r))\n` +
      `process.stdin.destroy()\n` +
      `await l.release(); say('RELEASED')`,
  )
  const pid = Number((await holder.line(/^HELD /)).split(' ')[1])
  const s = new FileStore({ dir })
  const err = await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
  t.regex(err!.message, new RegExp(`by pid ${pid} on host ${hostname().replace(/\./g, '\\.')} \\(since .*, wotd train\\)`))
  t.true(err!.message.includes(dir))
  // waiting: gets it once the holder lets go
  setTimeout(() => holder.proc.stdin!.write('go\n'), 400)
  const started = Date.now()
  const mine = await s.acquireLock('train', { wait: true, timeoutMs: 20_000, pollMs: 50 })
  t.true(Date.now() - started >= 300)
  await holder.line(/^RELEASED/)
  t.is(await holder.exit, 0)
  await mine.release()

  // a holder killed with SIGKILL: its lock is broken at once (its pid is dead)
  const doomed = child(t, dir, `await store.acquireLock('train'); say('HELD ' + process.pid); await new Promise(() => setInterval(() => {}, 1000))`)
  await doomed.line(/^HELD /)
  await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
  doomed.proc.kill('SIGKILL')
  await doomed.exit
  const after = await s.acquireLock('train')
  await after.release()
})

test('FileStore: two trainers updating one store under the lock: no lost update, nothing corrupt', async (t) => {
  const dir = tmp(t)
  const N = 15
  const body =
    `for (let i = 0; i < ${N}; i++) {\n` +
    `  const l = await store.acquireLock('train', { wait: true, timeoutMs: 60000, pollMs: 5 })\n` +
    `  const n = (await store.getState('counter')) ?? 0\n` +
    `  await store.putArtifact('runs/shared/blob.bin', Buffer.alloc(50000, n % 251))\n` +
    `  await new Promise((r) => setTimeout(r, 3))\n` +
    `  await store.putState('counter', n + 1)\n` +
    `  await l.release()\n` +
    `}\nsay('DONE')`
  const a = child(t, dir, body)
  const b = child(t, dir, body)
  t.deepEqual(await Promise.all([a.exit, b.exit]), [0, 0])
  t.true(a.lines.includes('DONE') && b.lines.includes('DONE'), [...a.lines, ...b.lines].join('\n'))
  const s = new FileStore({ dir })
  t.is(await s.getState('counter'), 2 * N)
  t.deepEqual(await s.getArtifact('runs/shared/blob.bin'), Buffer.alloc(50000, (2 * N - 1) % 251))
  t.deepEqual(
    files(dir).filter((f) => f.endsWith('.tmp') || f.includes('.lock')),
    [],
  )
})

test('a trainer paused past its lock ttl, whose lock was broken, writes nothing more and names the new holder', async (t) => {
  const { spawn } = await import('node:child_process')
  const { mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'wotd-stolen-lock-'))
  const root = join(import.meta.dirname, '..')
  const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(root, '__test__', 'helpers', 'lock-child.ts'), dir], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  const closed = new Promise((r) => child.on('close', r))
  let out = ''
  const lines: string[] = []
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
    while (out.includes('\n')) {
      lines.push(out.slice(0, out.indexOf('\n')))
      out = out.slice(out.indexOf('\n') + 1)
    }
  })
  const waitFor = async (n: number) => {
    for (let i = 0; i < 400 && lines.length < n; i++) await new Promise((r) => setTimeout(r, 50))
  }
  await waitFor(1)
  t.is(lines[0], 'held')
  child.kill('SIGSTOP')
  await new Promise((r) => setTimeout(r, 900))
  const store = new FileStore({ dir })
  const second = await store.acquireLock('train', { wait: true, timeoutMs: 5000, purpose: 'second trainer' })
  child.kill('SIGCONT')
  child.stdin.end('go\n')
  await waitFor(2)
  const r = JSON.parse(lines[1])
  t.false(r.wrote)
  t.is(r.name, 'StoreError')
  t.regex(r.message, /lost the lock "train" .*now held by pid \d+ on host .*second trainer.*stopped without writing more/)
  t.true(r.lost)
  t.is(await store.getState('written-by-first'), null, 'nothing was written')
  await second.check()
  await second.release()
  await closed
})

test('a document with a valid checksum but the wrong shape is a StoreError naming it and the field', async (t) => {
  const { mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'wotd-shape-'))
  const store = new FileStore({ dir })
  const at = '2026-03-01T08:00:00.000Z'
  await store.putHistory({ user: 'ada', date: '2026-03-01', word: 'gossamer', createdAt: at })
  await store.putProfile({ schema: 'wotd.profile/v1', user: 'ada', liked: [{ word: 'gossamer', at }], disliked: [], version: 1, updatedAt: at })
  // Rewritten through the store's own envelope writer: the checksum is right, the shape is not.
  const write = (store as unknown as { writeEnvelope(path: string, doc: unknown): Promise<void> }).writeEnvelope.bind(store)
  const historyFile = join(dir, 'history', 'ada', '2026-03-01.json')
  await write(historyFile, { user: 'ada', date: '2026-03-01', word: { not: 'a string' }, createdAt: at })
  const h = await t.throwsAsync(store.getHistory('ada'), { instanceOf: StoreError })
  t.true(h!.message.includes(historyFile))
  t.regex(h!.message, /history entry is malformed \(word: /)
  const profileFile = join(dir, 'profiles', 'ada.json')
  await write(profileFile, { schema: 'wotd.profile/v1', user: 'ada', liked: null, disliked: [], version: 1, updatedAt: at })
  await t.throwsAsync(store.getProfile('ada'), { instanceOf: StoreError, message: /profile is malformed \(liked: / })
  await t.throwsAsync(store.listProfiles(), { instanceOf: StoreError, message: /ada\.json/ })
})
