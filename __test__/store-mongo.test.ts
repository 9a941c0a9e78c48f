// MongoStore beyond the shared contract: an unreachable server, credentials that never show,
// GridFS corruption, indexes, stale locks, and a server that dies mid-upload.
import test, { type ExecutionContext } from 'ava'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, CorruptFileError, StoreError, causeChain } from '../src/errors.js'
import { openStore, parseMongoUri, redactText, RUN_SCHEMA, type RunDoc } from '../src/store/index.js'
import { MongoStore } from '../src/store/mongo.js'
import { dropDatabase, isFerretDB, LAUNCHER, rawDb, startLauncher, testMongoServer, uniqueDbName, warnSkipped } from './helpers/mongo.js'

// Found (or started) before any test is declared: ava wants every test declared synchronously.
const mongo = await testMongoServer()
const ferret = mongo.uri !== null ? await isFerretDB(mongo.uri).catch(() => false) : false

function tmp(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-store-mongo-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** Every string an error could show: messages, stacks and own fields of the whole cause chain. */
function everything(err: unknown): string {
  const parts: string[] = []
  let cur: unknown = err
  for (let i = 0; cur && i < 16; i++) {
    if (cur instanceof Error) {
      parts.push(cur.message, cur.stack ?? '', String(cur))
      try {
        parts.push(JSON.stringify(cur, Object.getOwnPropertyNames(cur)))
      } catch {
        // circular: the messages are enough
      }
      cur = cur.cause
    } else {
      parts.push(String(cur))
      break
    }
  }
  return parts.join('\n')
}

function run(id: string, createdAt: string): RunDoc {
  return { schema: RUN_SCHEMA, id, config: { a: 1 }, configHash: 'cfg', status: 'running', stages: {}, createdAt, updatedAt: createdAt }
}

// ---------------------------------------------------------------------------------------
// No server needed

test('unreachable server: StoreError within 5 s naming host:port, and nothing written anywhere', async (t) => {
  const port = await closedPort()
  const home = tmp(t)
  const cwdStore = join(process.cwd(), '.wotd')
  const hadCwdStore = existsSync(cwdStore)
  for (const [spec, env] of [
    [`mongodb://127.0.0.1:${port}/wotd`, { WOTD_HOME: home }],
    [undefined, { WOTD_HOME: home, MONGODB_URI: `mongodb://127.0.0.1:${port}/` }],
  ] as const) {
    const started = Date.now()
    const err = await t.throwsAsync(openStore(spec, env), { instanceOf: StoreError })
    const took = Date.now() - started
    t.true(took < 5000, `took ${took} ms`)
    t.regex(err!.message, new RegExp(`cannot reach MongoDB at 127\\.0\\.0\\.1:${port} within 3\\.0 s`))
    t.is(err!.code, 'STORE')
  }
  t.deepEqual(readdirSync(home), [], 'no fallback FileStore was written')
  t.is(existsSync(cwdStore), hadCwdStore)
})

test('credentials never show: not in the message, the causes, their stacks or fields', async (t) => {
  const port = await closedPort()
  const password = 'Sup3r-S3cret/pw:x'
  const token = 'tok-abc123xyz'
  const uri = `mongodb://wotd-user:${encodeURIComponent(password)}@127.0.0.1:${port}/prod?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:${token}`
  const err = await t.throwsAsync(MongoStore.connect(uri), { instanceOf: StoreError })
  const all = everything(err) + causeChain(err).join('\n')
  t.true(err!.cause !== undefined, 'the cause is kept (redacted)')
  for (const secret of [password, encodeURIComponent(password), token, 'Sup3r-S3cret']) t.false(all.includes(secret), secret)
  t.true(all.includes(`127.0.0.1:${port}`))

  // a URI the driver cannot parse: a ConfigError, still without the password
  const bad = await t.throwsAsync(MongoStore.connect(`mongodb://wotd-user:${encodeURIComponent(password)}@127.0.0.1:${port}/db?tls=maybe`), { instanceOf: ConfigError })
  t.false(everything(bad).includes('Sup3r-S3cret'))
  t.regex(bad!.message, /mongodb:\/\/wotd-user:\*\*\*@127\.0\.0\.1/)

  // other schemes are not stores
  await t.throwsAsync(openStore('postgres://u:Sup3r-S3cret@db/x'), { instanceOf: ConfigError, message: /^--store: postgres:\/\/ stores are not supported/ })
  await t.throwsAsync(openStore(undefined, { MONGODB_URI: 'http://u:Sup3r-S3cret@db/x' }), { instanceOf: ConfigError, message: /^MONGODB_URI must start/ })
})

test('redaction of URIs and texts', (t) => {
  const p = parseMongoUri('mongodb+srv://alice:p%40ss%2Fw0rd@cluster0.example.net/wotd?retryWrites=true&tlsCertificateKeyFilePassword=kfp-secret')!
  t.is(p.scheme, 'mongodb+srv')
  t.is(p.username, 'alice')
  t.is(p.hosts, 'cluster0.example.net')
  t.is(p.database, 'wotd')
  t.is(p.redacted, 'mongodb+srv://alice:***@cluster0.example.net/wotd?retryWrites=true&tlsCertificateKeyFilePassword=***')
  t.true(p.options.has('retrywrites'))
  t.deepEqual(p.secrets.sort(), ['kfp-secret', 'p%40ss%2Fw0rd', 'p@ss/w0rd'].sort())
  t.is(parseMongoUri('mongodb://h1:27017,h2:27018')!.redacted, 'mongodb://h1:27017,h2:27018')
  t.is(parseMongoUri('mongodb://bob@h1/')!.redacted, 'mongodb://bob@h1/')
  // an unescaped @ or / in the password is still hidden
  t.is(parseMongoUri('mongodb://bob:pa@ss/wd@h1:1/db')!.redacted, 'mongodb://bob:***@h1:1/db')
  t.is(parseMongoUri('/var/lib/wotd'), null)
  t.is(redactText('failed for mongodb://u:hunter22@h:1/x and again mongodb+srv://v:zz@h2/'), 'failed for mongodb://u:***@h:1/x and again mongodb+srv://v:***@h2/')
  t.is(redactText('auth p@ss/w0rd rejected', p.secrets), 'auth *** rejected')
})

// ---------------------------------------------------------------------------------------
// Against the test server

if (mongo.uri === null) {
  if (process.env.CI === 'true') {
    test('MongoStore: a MongoDB-wire server is available (required in CI)', (t) => {
      t.fail(mongo.reason)
    })
  } else {
    warnSkipped('store-mongo.test.ts', mongo.reason)
    test.skip('MongoStore: server tests (no server)', () => {})
  }
} else {
  const uri = mongo.uri
  const open = async (t: ExecutionContext, dbName = uniqueDbName()): Promise<MongoStore> => {
    const s = await MongoStore.connect(uri, { dbName })
    t.teardown(async () => {
      await s.close()
      await dropDatabase(uri, dbName)
    })
    return s
  }

  test('MongoStore: GridFS corruption is detected on read (CorruptFileError), and no file is written', async (t) => {
    const s = await open(t)
    const dir = tmp(t)
    const raw = await rawDb(uri, s.dbName)
    t.teardown(() => raw.close())
    const bytes = Buffer.alloc(700_000)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 255
    const chunks = raw.db.collection('artifacts.chunks')
    const files = raw.db.collection('artifacts.files')

    // one byte flipped inside a chunk
    await s.putArtifact('a/flip.bin', bytes)
    const f1 = await files.findOne({ filename: 'a/flip.bin' })
    const c1 = await chunks.findOne({ files_id: f1!._id, n: 1 })
    const data = Buffer.from(c1!.data.buffer)
    data[100] ^= 0xff
    await chunks.updateOne({ _id: c1!._id }, { $set: { data } })
    await t.throwsAsync(s.getArtifact('a/flip.bin'), { instanceOf: CorruptFileError, message: /artifact a\/flip\.bin is corrupt: its bytes have sha256/ })
    await t.throwsAsync(s.getArtifactToFile('a/flip.bin', join(dir, 'flip.bin')), { instanceOf: CorruptFileError })
    t.deepEqual(readdirSync(dir), [], 'nothing (not even a temporary file) left at the destination')
    t.truthy(await s.statArtifact('a/flip.bin'), 'stat does not read the bytes')

    // a missing chunk in the middle, and a missing last chunk
    await s.putArtifact('a/hole.bin', bytes)
    const f2 = await files.findOne({ filename: 'a/hole.bin' })
    await chunks.deleteOne({ files_id: f2!._id, n: 1 })
    await t.throwsAsync(s.getArtifact('a/hole.bin'), { instanceOf: CorruptFileError, message: /a\/hole\.bin/ })
    await s.putArtifact('a/short.bin', bytes)
    const f3 = await files.findOne({ filename: 'a/short.bin' })
    await chunks.deleteOne({ files_id: f3!._id, n: 2 })
    await t.throwsAsync(s.getArtifact('a/short.bin'), { instanceOf: CorruptFileError, message: /a\/short\.bin/ })

    // metadata that does not match the bytes
    await s.putArtifact('a/meta.bin', bytes)
    await files.updateOne({ filename: 'a/meta.bin' }, { $set: { 'metadata.sha256': 'f'.repeat(64) } })
    await t.throwsAsync(s.getArtifact('a/meta.bin'), { instanceOf: CorruptFileError })
    await files.updateOne({ filename: 'a/meta.bin' }, { $unset: { 'metadata.sha256': '' } })
    await t.throwsAsync(s.getArtifact('a/meta.bin'), { instanceOf: CorruptFileError, message: /no sha256/ })

    // writing it again repairs it, leaving one version
    await s.putArtifact('a/flip.bin', bytes)
    t.true((await s.getArtifact('a/flip.bin'))!.equals(bytes))
    t.is(await files.countDocuments({ filename: 'a/flip.bin' }), 1)
  })

  test('MongoStore: collections, unique indexes (enforced by this server) and idempotent upserts', async (t) => {
    const s = await open(t)
    await s.putSemanticIds('r1', [['alpha', [1, 2, 3, 4]]])
    await s.putHistory({ user: 'ada', date: '2026-03-01', word: 'alpha', createdAt: '2026-03-01T00:00:00.000Z' })
    await s.putArtifact('x', Buffer.from('x'))
    const raw = await rawDb(uri, s.dbName)
    t.teardown(() => raw.close())
    const names = (await raw.db.listCollections().toArray()).map((c) => c.name).sort()
    for (const c of ['corpora', 'runs', 'semantic_ids', 'history', 'artifacts.files', 'artifacts.chunks']) t.true(names.includes(c), c)
    const unique = async (col: string) =>
      (await raw.db.collection(col).listIndexes().toArray())
        .filter((i) => i.unique)
        .map((i) => Object.keys(i.key).join('+'))
        .sort()
    t.deepEqual(await unique('corpora'), ['setId+cell'])
    t.deepEqual(await unique('semantic_ids'), ['runId+word'])
    t.deepEqual(await unique('history'), ['user+date'])
    t.deepEqual(await unique('artifacts.chunks'), ['files_id+n'])
    // the unique index holds even for a document with another _id
    const dup = await t.throwsAsync(raw.db.collection('semantic_ids').insertOne({ _id: 'other' as never, runId: 'r1', word: 'alpha', codes: [0] }))
    t.is((dup as { code?: number }).code, 11000)
    // upserts are idempotent: the same writes twice leave one document each
    await s.putSemanticIds('r1', [['alpha', [1, 2, 3, 4]]])
    await s.putHistory({ user: 'ada', date: '2026-03-01', word: 'beta', createdAt: '2026-03-01T00:00:00.000Z' })
    await Promise.all(Array.from({ length: 8 }, () => s.putRun(run('r1', '2026-01-01T00:00:00.000Z'))))
    t.is(await raw.db.collection('semantic_ids').countDocuments({ runId: 'r1' }), 1)
    t.is(await raw.db.collection('history').countDocuments({ user: 'ada' }), 1)
    t.is(await raw.db.collection('runs').countDocuments({}), 1)
    t.is((await s.getHistory('ada'))[0].word, 'beta')
    // a second store on the same database (another process, in effect) sees the same data
    const s2 = await MongoStore.connect(uri, { dbName: s.dbName })
    t.teardown(() => s2.close())
    t.deepEqual(await s2.getRun('r1'), await s.getRun('r1'))
  })

  test('MongoStore: locks between two clients; stale lock documents are broken, live ones name their holder', async (t) => {
    const s = await open(t)
    const s2 = await MongoStore.connect(uri, { dbName: s.dbName })
    t.teardown(() => s2.close())
    const a = await s.acquireLock('train', { purpose: 'wotd train' })
    const e = await t.throwsAsync(s2.acquireLock('train'), { instanceOf: StoreError })
    t.regex(e!.message, new RegExp(`locked \\("train"\\) by pid ${process.pid} on host ${hostname().replace(/\./g, '\\.')}`))
    setTimeout(() => void a.release(), 300)
    const b = await s2.acquireLock('train', { wait: true, timeoutMs: 10_000, pollMs: 50 })
    await b.release()

    const raw = await rawDb(uri, s.dbName)
    t.teardown(() => raw.close())
    const locks = raw.db.collection('locks')
    const doc = (holder: object, acquiredAtMs: number, ttlMs = 60_000) => ({ holder: { acquiredAt: new Date(acquiredAtMs).toISOString(), token: `tok-${acquiredAtMs}`, ...holder }, ttlMs, acquiredAtMs, expiresAt: new Date(acquiredAtMs + ttlMs) })
    // a dead pid on this host: broken at once
    await locks.insertOne({ _id: 'train' as never, ...doc({ pid: 2 ** 22 + 12345, hostname: hostname() }, Date.now()) })
    const c = await s.acquireLock('train')
    await c.release()
    // another host, fresh: held, and the message names that host
    await locks.insertOne({ _id: 'train' as never, ...doc({ pid: 42, hostname: 'trainer-box-7' }, Date.now()) })
    await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError, message: /pid 42 on host trainer-box-7/ })
    // ... with a recent heartbeat of its own, still held although acquired long ago
    await locks.deleteOne({ _id: 'train' as never })
    await locks.insertOne({ _id: 'train' as never, ...doc({ pid: 42, hostname: 'trainer-box-7', token: 'tok-beating' }, Date.now() - 600_000) })
    await raw.db.collection('lock_beats').insertOne({ _id: 'tok-beating' as never, name: 'train', refreshedAtMs: Date.now(), expiresAt: new Date() })
    await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError, message: /trainer-box-7/ })
    // ... its heartbeat older than its ttl: broken, heartbeat and all
    await raw.db.collection('lock_beats').replaceOne({ _id: 'tok-beating' as never }, { name: 'train', refreshedAtMs: Date.now() - 120_000, expiresAt: new Date() })
    const d = await s.acquireLock('train')
    t.is((await locks.findOne({ _id: 'train' as never }))!.holder.token, d.holder.token)
    t.is(await raw.db.collection('lock_beats').countDocuments({ _id: 'tok-beating' as never }), 0)
    t.is(await locks.countDocuments({ _id: 'train/break' as never }), 0, 'the break guard is gone')
    await d.release()
    // a holder whose lock was broken and taken by someone else notices on its next beat
    const e2 = await s2.acquireLock('train', { ttlMs: 200 })
    await locks.deleteOne({ _id: 'train' as never })
    await locks.insertOne({ _id: 'train' as never, ...doc({ pid: 42, hostname: 'trainer-box-7' }, Date.now()) })
    for (let i = 0; i < 100 && !e2.lost; i++) await new Promise((r) => setTimeout(r, 50)) // other tests may keep the event loop busy
    t.true(e2.lost)
    await e2.release() // does not remove the new holder's lock
    t.is((await locks.findOne({ _id: 'train' as never }))!.holder.hostname, 'trainer-box-7')
    await locks.deleteOne({ _id: 'train' as never })
    const f = await s.acquireLock('train')
    t.is(await raw.db.collection('lock_beats').countDocuments({}), 0)
    await new Promise((r) => setTimeout(r, 50))
    await f.release()
  })

  if (ferret) {
    test('MongoStore (FerretDB): with credentials, location and messages never show the password', async (t) => {
      const withCreds = uri.replace('mongodb://', 'mongodb://wotd:Sup3r-S3cret@') + `${uniqueDbName()}?authMechanism=PLAIN`
      const s = await MongoStore.connect(withCreds)
      t.teardown(async () => {
        await s.close()
        await dropDatabase(uri, s.dbName)
      })
      t.regex(s.location, /^mongodb:\/\/wotd:\*\*\*@127\.0\.0\.1:\d+\/wotd_test_/)
      await s.putState('x', { ok: true })
      const lock = await s.acquireLock('train')
      const e = await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
      t.true(e!.message.includes(s.location))
      t.false(everything(e).includes('Sup3r-S3cret'))
      await lock.release()
    })
  }

  // A private server we can kill: needs the launcher binary (not a WOTD_TEST_MONGODB_URI server).
  const ownServer = existsSync(LAUNCHER) ? test : test.skip
  ownServer('MongoStore: the server dies mid-upload: StoreError fast; after a restart nothing partial is visible', async (t) => {
    const data = tmp(t)
    const first = await startLauncher(['-dir', data])
    t.teardown(() => void first.child.kill('SIGKILL'))
    const s = await MongoStore.connect(first.uri, { dbName: 'crash' })
    const old = Buffer.alloc(300_000, 1)
    await s.putArtifact('runs/r1/adapter.safetensors', old)
    await s.putRun(run('r1', '2026-01-01T00:00:00.000Z'))
    const big = Buffer.alloc(24_000_000)
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 255
    const upload = s.putArtifact('runs/r1/adapter.safetensors', big).then(
      () => null,
      (err: unknown) => err,
    )
    await new Promise((r) => setTimeout(r, 150))
    first.child.kill('SIGKILL')
    const started = Date.now()
    const err = await upload
    const r2 = await s.putRun(run('r2', '2026-01-02T00:00:00.000Z')).then(
      () => null,
      (e: unknown) => e,
    )
    t.true(Date.now() - started < 8000, `took ${Date.now() - started} ms`)
    if (err === null) t.log('the upload finished before the kill; the rest still holds')
    else t.true(err instanceof StoreError, String(err))
    t.true(r2 instanceof StoreError, String(r2))
    t.regex((r2 as Error).message, /MongoDB at 127\.0\.0\.1:\d+ \(database crash\): saving run r2 failed/)
    await s.close()

    const second = await startLauncher(['-dir', data])
    t.teardown(() => void second.child.kill('SIGTERM'))
    const s2 = await MongoStore.connect(second.uri, { dbName: 'crash' })
    t.teardown(() => s2.close())
    const got = await s2.getArtifact('runs/r1/adapter.safetensors')
    t.true(got!.equals(err === null ? big : old), 'the old version, whole, or (if it finished) the new one, whole')
    t.is((await s2.listArtifacts()).length, 1)
    t.deepEqual(
      (await s2.listRuns()).map((r) => r.id),
      ['r1'],
    )
  })
}
