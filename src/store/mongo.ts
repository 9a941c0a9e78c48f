/**
 * `MongoStore`: the store in a MongoDB database (or any server that speaks its wire protocol,
 * such as FerretDB 1.24), through the official driver. See README.md in this folder for the
 * collections, what FerretDB lacks and the write-ordering contract.
 *
 *     corpora        {_id: "<setId>/<cell>", setId, cell, doc}      unique (setId, cell)
 *     state          {_id: key, value}
 *     runs           {_id: runId, createdAtMs, status, configHash, doc}
 *     semantic_ids   {_id: "<runId>/<word>", runId, word, codes}     unique (runId, word)
 *     artifacts      GridFS bucket `artifacts` (artifacts.files, artifacts.chunks);
 *                    metadata {sha256, size, contentType, meta, createdAt}
 *     history        {_id: '["<user>","<date>"]', user, date, doc}  unique (user, date)
 *     profiles       {_id: user, user, doc}                          unique user
 *     locks          {_id: name, holder, ttlMs, acquiredAtMs, expiresAt}   insert-once
 *     lock_beats     {_id: holder token, name, refreshedAtMs, expiresAt}
 *
 * Every write is an idempotent upsert by `_id`; nothing uses transactions. Credentials never
 * appear in messages, error causes or `location` (see redact.ts).
 */
import { storedHistory, storedProfile, storedRun } from './schemas.js'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, rename, unlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { GridFSBucket, MongoClient, type Collection, type Db, type Document, type GridFSFile, type MongoClientOptions, type ObjectId } from 'mongodb'
import { ConfigError, CorruptFileError, InvalidInputError, StoreError, WotdError } from '../errors.js'
import { cellIndex, type Cell } from '../types.js'
import { checkArtifactSource, checkExpected } from './file.js'
import { acquireLockWith, DEFAULT_LOCK_TTL_MS, isStale, newHolder, type LockBackend } from './lock.js'
import { parseMongoUri, redactText, sanitizeError } from './redact.js'
import {
  cellSlug,
  checkArtifactName,
  checkHistory,
  checkHistoryQuery,
  checkListProfiles,
  checkProfile,
  checkId,
  checkLimit,
  checkRun,
  checkUser,
  semanticEntries,
  toStorable,
  type ArtifactInfo,
  type ArtifactSource,
  type GetArtifactOptions,
  type HistoryEntry,
  type HistoryQuery,
  type ListProfilesOptions,
  type ProfileDoc,
  type ListRunsOptions,
  type LockHolder,
  type LockOptions,
  type PutArtifactOptions,
  type RunDoc,
  type SemanticCodes,
  type Store,
  type StoreLock,
  type StoredCorpus,
} from './types.js'

export const DEFAULT_MONGO_DB = 'wotd'
/** How long to look for a server before giving up: an unreachable one is a `StoreError` this fast. */
export const DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 3000
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000
const BATCH = 1000
/** Statements per update command: FerretDB 1.24 hangs on 100 or more that modify existing documents. */
const UPDATE_BATCH = 50
/** A command that gets no answer for this long fails (a hung server is a StoreError, not a hang). */
export const DEFAULT_SOCKET_TIMEOUT_MS = 60_000

export interface MongoStoreOptions {
  /** The database (default: the URI's, else `wotd`). */
  dbName?: string
  /** Default 3000, unless the URI sets it. */
  serverSelectionTimeoutMS?: number
  /** Default 3000, unless the URI sets it. */
  connectTimeoutMS?: number
  /** Default 60 000, unless the URI sets it. */
  socketTimeoutMS?: number
}

interface Wrapped<T> {
  _id: string
  doc: T
}

/** A lock: written once (insert), never updated; `_id` is the lock name, or `<name>/break` for the break guard. */
interface LockDoc {
  _id: string
  holder: LockHolder
  ttlMs: number
  acquiredAtMs: number
  /** Informational (no TTL index: FerretDB lacks them); staleness is judged from the beats. */
  expiresAt: Date
}

/** A holder's heartbeat, `_id` = its token; only the holder writes it. */
interface BeatDoc {
  _id: string
  name: string
  refreshedAtMs: number
  expiresAt: Date
}

function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: unknown; writeErrors?: { code?: unknown }[] }
  return e?.code === 11000 || (Array.isArray(e?.writeErrors) && e.writeErrors.some((w) => w?.code === 11000))
}

export class MongoStore implements Store {
  readonly kind = 'mongodb'
  readonly location: string
  readonly dbName: string
  private readonly bucket: GridFSBucket
  private closed = false

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    location: string,
    /** `host:port,...`, no credentials. */
    readonly hosts: string,
    private readonly secrets: readonly string[],
  ) {
    this.location = location
    this.dbName = db.databaseName
    this.bucket = new GridFSBucket(db, { bucketName: 'artifacts' })
  }

  /**
   * Connects (within a few seconds, or a `StoreError` naming host:port) and makes sure the
   * indexes exist. A URI that does not parse is a `ConfigError`.
   */
  /** Names a document for a malformed-document error (no credentials). */
  private docWhere(collection: string, w: unknown): string {
    return `MongoDB at ${this.hosts} (database ${this.dbName}), ${collection} document ${JSON.stringify((w as { _id?: unknown })?._id ?? null)}`
  }

  static async connect(uri: string, options: MongoStoreOptions = {}): Promise<MongoStore> {
    const parsed = parseMongoUri(uri)
    if (!parsed) throw new ConfigError('a MongoDB store needs a mongodb:// or mongodb+srv:// URI')
    const secrets = parsed.secrets
    const dbName = options.dbName ?? parsed.database ?? DEFAULT_MONGO_DB
    const location = parsed.database === dbName ? parsed.redacted : `${parsed.redacted} (database ${dbName})`
    const opts: MongoClientOptions = { ignoreUndefined: true, appName: 'wotd-ml' }
    const selection = options.serverSelectionTimeoutMS ?? (parsed.options.has('serverselectiontimeoutms') ? undefined : DEFAULT_SERVER_SELECTION_TIMEOUT_MS)
    if (selection !== undefined) opts.serverSelectionTimeoutMS = selection
    const connect = options.connectTimeoutMS ?? (parsed.options.has('connecttimeoutms') ? undefined : DEFAULT_CONNECT_TIMEOUT_MS)
    if (connect !== undefined) opts.connectTimeoutMS = connect
    const socket = options.socketTimeoutMS ?? (parsed.options.has('sockettimeoutms') ? undefined : DEFAULT_SOCKET_TIMEOUT_MS)
    if (socket !== undefined) opts.socketTimeoutMS = socket
    let client: MongoClient
    try {
      client = new MongoClient(uri, opts)
    } catch (err) {
      throw new ConfigError(`${parsed.redacted} is not a usable MongoDB URI: ${redactText((err as Error).message, secrets)}`, { cause: sanitizeError(err, secrets) })
    }
    try {
      await client.connect()
    } catch (err) {
      await client.close().catch(() => {})
      const msg = redactText((err as Error)?.message ?? String(err), secrets)
      const unreachable = (err as Error)?.name === 'MongoServerSelectionError'
      const within = unreachable && selection !== undefined ? ` within ${(selection / 1000).toFixed(1)} s` : ''
      throw new StoreError(`${unreachable ? 'cannot reach' : 'cannot connect to'} MongoDB at ${parsed.hosts}${within}: ${msg}`, { cause: sanitizeError(err, secrets) })
    }
    const store = new MongoStore(client, client.db(dbName), location, parsed.hosts, secrets)
    try {
      await store.ensureIndexes()
    } catch (err) {
      await client.close().catch(() => {})
      throw err
    }
    return store
  }

  /** Turns anything the driver throws into a `StoreError` with a redacted message and cause. */
  private fail(what: string, err: unknown): Error {
    if (err instanceof WotdError) return err
    return new StoreError(`MongoDB at ${this.hosts} (database ${this.dbName}): ${what} failed: ${redactText((err as Error)?.message ?? String(err), this.secrets)}`, {
      cause: sanitizeError(err, this.secrets),
    })
  }

  private async op<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError(`the MongoDB store at ${this.location} is closed`)
    try {
      return await fn()
    } catch (err) {
      throw this.fail(what, err)
    }
  }

  /** An idempotent upsert that retries once on the duplicate-key race of two concurrent upserts. */
  private async upsert(col: Collection<Document>, id: string, replacement: Document): Promise<void> {
    try {
      await col.replaceOne({ _id: id as never }, replacement, { upsert: true })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      await col.replaceOne({ _id: id as never }, replacement, { upsert: true })
    }
  }

  private col(name: string): Collection<Document> {
    return this.db.collection(name)
  }

  private async ensureIndexes(): Promise<void> {
    await this.op('creating indexes', async () => {
      await this.col('corpora').createIndex({ setId: 1, cell: 1 }, { unique: true, name: 'setId_cell_unique' })
      await this.col('runs').createIndex({ createdAtMs: -1, _id: -1 }, { name: 'newest_first' })
      await this.col('runs').createIndex({ configHash: 1 }, { name: 'configHash' })
      await this.col('semantic_ids').createIndex({ runId: 1, word: 1 }, { unique: true, name: 'runId_word_unique' })
      await this.col('history').createIndex({ user: 1, date: 1 }, { unique: true, name: 'user_date_unique' })
      await this.col('profiles').createIndex({ user: 1 }, { unique: true, name: 'user_unique' })
      // GridFS's own indexes (the driver makes them on the first upload into an empty bucket).
      await this.col('artifacts.files').createIndex({ filename: 1, uploadDate: 1 }, { name: 'filename_1_uploadDate_1' })
      await this.col('artifacts.chunks').createIndex({ files_id: 1, n: 1 }, { unique: true, name: 'files_id_1_n_1' })
    })
  }

  // -------------------------------------------------------------------------------------
  // corpora and state

  async getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null> {
    checkId('corpus set id', setId)
    const id = `${setId}/${cellSlug(cell)}`
    const w = await this.op(`reading corpus ${id}`, () => this.col('corpora').findOne({ _id: id as never }))
    return w ? ((w as unknown as Wrapped<StoredCorpus>).doc ?? null) : null
  }

  async putCorpus(doc: StoredCorpus): Promise<void> {
    checkId('corpus set id', doc.setId)
    const slug = cellSlug(doc.cell)
    const id = `${doc.setId}/${slug}`
    const clean = toStorable(`corpus ${id}`, doc)
    await this.op(`saving corpus ${id}`, () => this.upsert(this.col('corpora'), id, { setId: doc.setId, cell: slug, doc: clean }))
  }

  async listCorpora(setId?: string): Promise<StoredCorpus[]> {
    if (setId !== undefined) checkId('corpus set id', setId)
    const all = await this.op('listing corpora', () => this.col('corpora').find(setId === undefined ? {} : { setId }).toArray())
    return all
      .map((w) => (w as unknown as Wrapped<StoredCorpus>).doc)
      .filter(Boolean)
      .sort((a, b) => (a.setId === b.setId ? cellIndex(a.cell) - cellIndex(b.cell) : a.setId < b.setId ? -1 : 1))
  }

  async deleteCorpus(setId: string, cell: Cell): Promise<boolean> {
    checkId('corpus set id', setId)
    const id = `${setId}/${cellSlug(cell)}`
    const r = await this.op(`deleting corpus ${id}`, () => this.col('corpora').deleteOne({ _id: id as never }))
    return r.deletedCount > 0
  }

  async getState<T = unknown>(key: string): Promise<T | null> {
    checkId('state key', key)
    const w = await this.op(`reading state ${key}`, () => this.col('state').findOne({ _id: key as never }))
    return w ? ((w.value as T) ?? null) : null
  }

  async putState(key: string, value: unknown): Promise<void> {
    checkId('state key', key)
    if (value === null || value === undefined) {
      await this.op(`deleting state ${key}`, () => this.col('state').deleteOne({ _id: key as never }))
      return
    }
    const clean = toStorable(`state ${key}`, value)
    await this.op(`saving state ${key}`, () => this.upsert(this.col('state'), key, { value: clean }))
  }

  // -------------------------------------------------------------------------------------
  // runs

  async putRun(run: RunDoc): Promise<void> {
    const doc = checkRun(run)
    await this.op(`saving run ${doc.id}`, () =>
      this.upsert(this.col('runs'), doc.id, { createdAtMs: Date.parse(doc.createdAt), status: doc.status, configHash: doc.configHash, doc }),
    )
  }

  async getRun(id: string): Promise<RunDoc | null> {
    checkId('run id', id)
    const w = await this.op(`reading run ${id}`, () => this.col('runs').findOne({ _id: id as never }))
    return w ? storedRun((w as unknown as Wrapped<RunDoc>).doc, this.docWhere('runs', w)) : null
  }

  async listRuns(options: ListRunsOptions = {}): Promise<RunDoc[]> {
    const limit = checkLimit(options.limit)
    if (limit === 0) return []
    const filter: Document = {}
    if (options.status !== undefined) filter.status = options.status
    if (options.configHash !== undefined) filter.configHash = options.configHash
    const all = await this.op('listing runs', () => {
      const cur = this.col('runs').find(filter).sort({ createdAtMs: -1, _id: -1 })
      return (limit === undefined ? cur : cur.limit(limit)).toArray()
    })
    return all.map((w) => storedRun((w as unknown as Wrapped<RunDoc>).doc, this.docWhere('runs', w)))
  }

  async latestRun(options: Omit<ListRunsOptions, 'limit'> = {}): Promise<RunDoc | null> {
    return (await this.listRuns({ ...options, limit: 1 }))[0] ?? null
  }

  async deleteRun(id: string): Promise<boolean> {
    checkId('run id', id)
    const r = await this.op(`deleting run ${id}`, () => this.col('runs').deleteOne({ _id: id as never }))
    await this.deleteSemanticIds(id)
    return r.deletedCount > 0
  }

  // -------------------------------------------------------------------------------------
  // semantic IDs

  async putSemanticIds(runId: string, entries: Iterable<readonly [string, SemanticCodes]> | Map<string, SemanticCodes>): Promise<void> {
    checkId('run id', runId)
    const all = [...semanticEntries(entries)]
    const col = this.col('semantic_ids')
    for (let i = 0; i < all.length; i += BATCH) {
      const batch = all.slice(i, i + BATCH).map(([word, codes]) => ({ _id: `${runId}/${word}`, runId, word, codes }))
      await this.op(`saving semantic IDs of run ${runId}`, async () => {
        // New words are inserted (fast everywhere); words already there are replaced in small
        // update commands (FerretDB 1.24 hangs on one update command that modifies 100 or more
        // existing documents, and updates are slow there).
        const ids = batch.map((d) => d._id)
        const there = new Set((await col.find({ _id: { $in: ids as never[] } }).project<{ _id: string }>({ _id: 1 }).toArray()).map((d) => d._id))
        const fresh = batch.filter((d) => !there.has(d._id))
        const replace = batch.filter((d) => there.has(d._id))
        if (fresh.length > 0) {
          try {
            await col.insertMany(fresh as never[], { ordered: false })
          } catch (err) {
            // a concurrent writer inserted some of them first: replace those instead
            const w = (err as { writeErrors?: { code?: number; index: number }[] | { code?: number; index: number } }).writeErrors
            const errors = Array.isArray(w) ? w : w ? [w] : []
            if (errors.length === 0 || !errors.every((e) => e.code === 11000)) throw err
            for (const e of errors) replace.push(fresh[e.index])
          }
        }
        for (let j = 0; j < replace.length; j += UPDATE_BATCH) {
          const ops = replace.slice(j, j + UPDATE_BATCH).map(({ _id, ...rest }) => ({ replaceOne: { filter: { _id: _id as never }, replacement: rest, upsert: true } }))
          try {
            await col.bulkWrite(ops, { ordered: false })
          } catch (err) {
            if (!isDuplicateKey(err)) throw err
            await col.bulkWrite(ops, { ordered: false })
          }
        }
      })
    }
  }

  async getSemanticIds(runId: string, words?: readonly string[]): Promise<Map<string, SemanticCodes>> {
    checkId('run id', runId)
    const out = new Map<string, SemanticCodes>()
    const read = async (filter: Document) => {
      const docs = await this.op(`reading semantic IDs of run ${runId}`, () =>
        this.col('semantic_ids').find(filter).project({ _id: 0, word: 1, codes: 1 }).toArray(),
      )
      for (const d of docs) out.set(d.word as string, d.codes as SemanticCodes)
    }
    if (words === undefined) await read({ runId })
    else {
      const uniq = [...new Set(words)]
      for (let i = 0; i < uniq.length; i += BATCH) await read({ runId, word: { $in: uniq.slice(i, i + BATCH) } })
    }
    if (words === undefined) return new Map([...out].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)))
    const ordered = new Map<string, SemanticCodes>()
    for (const w of words) {
      const c = out.get(w)
      if (c) ordered.set(w, c)
    }
    return ordered
  }

  async deleteSemanticIds(runId: string): Promise<number> {
    checkId('run id', runId)
    const r = await this.op(`deleting semantic IDs of run ${runId}`, () => this.col('semantic_ids').deleteMany({ runId }))
    return r.deletedCount
  }

  // -------------------------------------------------------------------------------------
  // artifacts: GridFS; a replacement is uploaded in full before the older versions are deleted

  private files(): Collection<GridFSFile> {
    return this.db.collection<GridFSFile>('artifacts.files')
  }

  /** The newest complete version of an artifact. */
  private async newest(name: string): Promise<GridFSFile | null> {
    const [f] = await this.op(`finding artifact ${name}`, () => this.files().find({ filename: name }).sort({ uploadDate: -1, _id: -1 }).limit(1).toArray())
    return f ?? null
  }

  private infoOf(f: GridFSFile): ArtifactInfo {
    const m = (f.metadata ?? {}) as Partial<ArtifactInfo>
    if (typeof m.sha256 !== 'string') throw new CorruptFileError(`artifact ${f.filename} has no sha256 in its GridFS metadata`)
    return {
      name: f.filename,
      size: f.length,
      sha256: m.sha256,
      ...(m.contentType !== undefined ? { contentType: m.contentType } : {}),
      ...(m.meta !== undefined ? { meta: m.meta } : {}),
      createdAt: typeof m.createdAt === 'string' ? m.createdAt : f.uploadDate.toISOString(),
    }
  }

  async putArtifact(name: string, source: ArtifactSource, options: PutArtifactOptions = {}): Promise<ArtifactInfo> {
    checkArtifactName(name)
    checkArtifactSource(source)
    const meta = options.meta === undefined ? undefined : toStorable(`artifact ${name} meta`, options.meta)
    // The sha256 goes into the metadata up front, so a file is hashed once before the upload.
    let expected: { size: number; sha256: string }
    if (source instanceof Uint8Array) expected = { size: source.length, sha256: createHash('sha256').update(source).digest('hex') }
    else {
      try {
        expected = await hashFile(source.path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InvalidInputError(`artifact ${name}: no file ${source.path}`, { cause: err })
        throw new StoreError(`cannot read ${source.path}`, { cause: err })
      }
    }
    const info: ArtifactInfo = {
      name,
      size: expected.size,
      sha256: expected.sha256,
      ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
      ...(meta !== undefined ? { meta } : {}),
      createdAt: new Date().toISOString(),
    }
    const up = await this.op(`opening an upload of ${name}`, async () =>
      this.bucket.openUploadStream(name, { metadata: { sha256: info.sha256, size: info.size, contentType: info.contentType, meta: info.meta, createdAt: info.createdAt } }),
    )
    const hash = createHash('sha256')
    let size = 0
    const input = source instanceof Uint8Array ? Readable.from([Buffer.from(source)]) : createReadStream(source.path, { highWaterMark: 1 << 20 })
    await this.op(`uploading artifact ${name}`, () =>
      pipeline(
        input,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            hash.update(c)
            size += c.length
            yield c
          }
        },
        up,
      ),
    ).catch(async (err) => {
      await up.abort().catch(() => {}) // removes the chunks written so far
      throw err
    })
    const sha = hash.digest('hex')
    if (sha !== info.sha256 || size !== info.size) {
      await this.bucket.delete(up.id).catch(() => {})
      throw new StoreError(`artifact ${name}: the file changed while it was uploaded; write it again`)
    }
    // Only now, with the new version complete, do the older ones go.
    const older = await this.op(`listing older versions of ${name}`, () => this.files().find({ filename: name, _id: { $ne: up.id } }).project<{ _id: ObjectId }>({ _id: 1 }).toArray())
    for (const o of older) await this.deleteVersion(name, o._id)
    return info
  }

  private async deleteVersion(name: string, id: ObjectId): Promise<void> {
    await this.op(`deleting a version of ${name}`, async () => {
      try {
        await this.bucket.delete(id)
      } catch (err) {
        if (!/FileNotFound/.test((err as Error).message)) throw err // already gone
      }
    })
  }

  /** Streams the newest version through `sink`, verifying size and sha256. */
  private async download(name: string, sink: (chunks: AsyncIterable<Buffer>) => Promise<void>, options?: GetArtifactOptions): Promise<ArtifactInfo | null> {
    checkArtifactName(name)
    for (let attempt = 0; ; attempt++) {
      const f = await this.newest(name)
      if (!f) return null
      const info = this.infoOf(f)
      const hash = createHash('sha256')
      let size = 0
      try {
        const stream = this.bucket.openDownloadStream(f._id)
        await sink(
          (async function* () {
            for await (const c of stream as AsyncIterable<Buffer>) {
              hash.update(c)
              size += c.length
              yield c
            }
          })(),
        )
      } catch (err) {
        const msg = (err as Error)?.message ?? ''
        if (/FileNotFound/.test(msg) && attempt === 0) continue // replaced while we looked: read the new one
        if ((err as Error)?.name === 'MongoGridFSChunkError' || /ChunkIsMissing|ExtraChunk|ChunkIsWrongSize/.test(msg)) {
          throw new CorruptFileError(`artifact ${name} is corrupt in GridFS: ${redactText(msg, this.secrets)}; write it again`, { cause: sanitizeError(err, this.secrets) })
        }
        throw this.fail(`reading artifact ${name}`, err)
      }
      const sha = hash.digest('hex')
      if (sha !== info.sha256 || size !== info.size) {
        throw new CorruptFileError(
          `artifact ${name} is corrupt: its bytes have sha256 ${sha.slice(0, 12)}... (${size} bytes), its metadata says ${info.sha256.slice(0, 12)}... (${info.size} bytes); write it again`,
        )
      }
      checkExpected(name, info, options)
      return info
    }
  }

  async getArtifact(name: string, options?: GetArtifactOptions): Promise<Buffer | null> {
    let parts: Buffer[] = []
    const info = await this.download(
      name,
      async (chunks) => {
        parts = []
        for await (const c of chunks) parts.push(c)
      },
      options,
    )
    return info ? Buffer.concat(parts) : null
  }

  async getArtifactToFile(name: string, path: string, options?: GetArtifactOptions): Promise<ArtifactInfo | null> {
    const dest = resolve(path)
    await mkdir(dirname(dest), { recursive: true })
    const tmp = `${dest}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      const info = await this.download(
        name,
        async (chunks) => {
          const fh = await open(tmp, 'w', 0o600)
          try {
            for await (const c of chunks) await fh.write(c)
            await fh.sync()
          } finally {
            await fh.close()
          }
        },
        options,
      )
      if (info) await rename(tmp, dest)
      return info
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  async statArtifact(name: string): Promise<ArtifactInfo | null> {
    checkArtifactName(name)
    const f = await this.newest(name)
    return f ? this.infoOf(f) : null
  }

  async listArtifacts(prefix = ''): Promise<ArtifactInfo[]> {
    const filter: Document = prefix === '' ? {} : { filename: { $gte: prefix, $lt: `${prefix}\uffff` } }
    const all = await this.op('listing artifacts', () => this.files().find(filter).toArray())
    const newest = new Map<string, GridFSFile>()
    for (const f of all) {
      if (!f.filename.startsWith(prefix)) continue
      const cur = newest.get(f.filename)
      if (!cur || f.uploadDate > cur.uploadDate || (f.uploadDate.getTime() === cur.uploadDate.getTime() && String(f._id) > String(cur._id))) newest.set(f.filename, f)
    }
    return [...newest.values()].sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0)).map((f) => this.infoOf(f))
  }

  async deleteArtifact(name: string): Promise<boolean> {
    checkArtifactName(name)
    const all = await this.op(`finding artifact ${name}`, () => this.files().find({ filename: name }).project<{ _id: ObjectId }>({ _id: 1 }).toArray())
    for (const f of all) await this.deleteVersion(name, f._id)
    return all.length > 0
  }

  // -------------------------------------------------------------------------------------
  // history

  async putHistory(entry: HistoryEntry): Promise<void> {
    const e = checkHistory(entry)
    const id = JSON.stringify([e.user, e.date])
    await this.op(`saving the history of ${JSON.stringify(e.user)} on ${e.date}`, () => this.upsert(this.col('history'), id, { user: e.user, date: e.date, doc: e }))
  }

  async getHistory(user: string, query: HistoryQuery = {}): Promise<HistoryEntry[]> {
    checkUser(user)
    const q = checkHistoryQuery(query)
    if (q.limit === 0) return []
    const date: Document = {}
    if (q.from !== undefined) date.$gte = q.from
    if (q.to !== undefined) date.$lte = q.to
    const filter: Document = Object.keys(date).length ? { user, date } : { user }
    const all = await this.op(`reading the history of ${JSON.stringify(user)}`, () => {
      const cur = this.col('history').find(filter).sort({ date: -1 })
      return (q.limit === undefined ? cur : cur.limit(q.limit)).toArray()
    })
    return all.map((w) => storedHistory((w as unknown as Wrapped<HistoryEntry>).doc, this.docWhere('history', w)))
  }

  async getHistories(users: readonly string[], query: HistoryQuery = {}): Promise<Map<string, HistoryEntry[]>> {
    for (const u of users) checkUser(u)
    const q = checkHistoryQuery(query)
    const out = new Map<string, HistoryEntry[]>(users.map((u) => [u, []]))
    if (users.length === 0 || q.limit === 0) return out
    const date: Document = {}
    if (q.from !== undefined) date.$gte = q.from
    if (q.to !== undefined) date.$lte = q.to
    const filter: Document = { user: { $in: [...new Set(users)] }, ...(Object.keys(date).length ? { date } : {}) }
    const all = await this.op(`reading the history of ${users.length} users`, () => this.col('history').find(filter).sort({ user: 1, date: -1 }).toArray())
    for (const w of all) {
      const e = storedHistory((w as unknown as Wrapped<HistoryEntry>).doc, this.docWhere('history', w))
      const list = out.get(e.user)
      if (list && (q.limit === undefined || list.length < q.limit)) list.push(e)
    }
    return out
  }

  /** Insert-once by `_id` (the unique (user, date) index backs it); the loser reads the winner's. */
  async putHistoryIfAbsent(entry: HistoryEntry): Promise<HistoryEntry> {
    const e = checkHistory(entry)
    const id = JSON.stringify([e.user, e.date])
    return this.op(`saving the history of ${JSON.stringify(e.user)} on ${e.date}`, async () => {
      try {
        await this.col('history').insertOne({ _id: id as never, user: e.user, date: e.date, doc: e })
        return e
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
      const there = await this.col('history').findOne({ _id: id as never })
      if (!there) throw new StoreError(`the history of ${JSON.stringify(e.user)} on ${e.date} vanished while it was being read; try again`)
      return storedHistory((there as unknown as Wrapped<HistoryEntry>).doc, this.docWhere('history', there))
    })
  }

  async deleteHistory(user: string): Promise<number> {
    checkUser(user)
    // `user` is matched as a value ({user: "<text>"}), never read as an operator.
    const r = await this.op(`deleting the history of ${JSON.stringify(user)}`, () => this.col('history').deleteMany({ user: { $eq: user } }))
    return r.deletedCount
  }

  // -------------------------------------------------------------------------------------
  // profiles

  async getProfile(user: string): Promise<ProfileDoc | null> {
    checkUser(user)
    const w = await this.op(`reading the profile of ${JSON.stringify(user)}`, () => this.col('profiles').findOne({ _id: { $eq: user } as never }))
    return w ? storedProfile((w as unknown as Wrapped<ProfileDoc>).doc, this.docWhere('profiles', w)) : null
  }

  async putProfile(doc: ProfileDoc): Promise<void> {
    const d = checkProfile(doc)
    await this.op(`saving the profile of ${JSON.stringify(d.user)}`, () => this.upsert(this.col('profiles'), d.user, { user: d.user, doc: d }))
  }

  async listProfiles(options: ListProfilesOptions = {}): Promise<ProfileDoc[]> {
    const o = checkListProfiles(options)
    if (o.limit === 0) return []
    const filter: Document = o.after === undefined ? {} : { _id: { $gt: o.after } }
    const all = await this.op('listing profiles', () => {
      const cur = this.col('profiles').find(filter).sort({ _id: 1 })
      return (o.limit === undefined ? cur : cur.limit(o.limit)).toArray()
    })
    return all.map((w) => storedProfile((w as unknown as Wrapped<ProfileDoc>).doc, this.docWhere('profiles', w)))
  }

  async countProfiles(): Promise<number> {
    return this.op('counting profiles', () => this.col('profiles').countDocuments({}))
  }

  async deleteProfile(user: string): Promise<boolean> {
    checkUser(user)
    const r = await this.op(`deleting the profile of ${JSON.stringify(user)}`, () => this.col('profiles').deleteOne({ _id: { $eq: user } as never }))
    return r.deletedCount > 0
  }

  // -------------------------------------------------------------------------------------
  // locks. FerretDB 1.24 applies updates as read-modify-write without isolation (two
  // concurrent updates of one document can lose one), so the lock never relies on an update:
  // the lock document in `locks` (`_id` = name, unique) is inserted once and deleted once;
  // the holder's heartbeat is a separate document in `lock_beats` (`_id` = its token) that
  // only the holder writes; a stale lock is deleted only under a `<name>/break` guard
  // document (also insert-once), after re-reading that it is still the same stale lock.

  acquireLock(name: string, options: LockOptions = {}): Promise<StoreLock> {
    const locks = this.db.collection<LockDoc>('locks')
    const beats = this.db.collection<BeatDoc>('lock_beats')
    const freshAt = async (cur: LockDoc): Promise<number> => {
      const beat = await beats.findOne({ _id: cur.holder.token })
      return Math.max(cur.acquiredAtMs ?? 0, beat?.refreshedAtMs ?? 0)
    }
    const breakStale = async (cur: LockDoc): Promise<void> => {
      const guardId = `${name}/break`
      const now = Date.now()
      try {
        await locks.insertOne({ _id: guardId, holder: newGuardHolder(), ttlMs: 30_000, acquiredAtMs: now, expiresAt: new Date(now + 30_000) })
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
        const g = await locks.findOne({ _id: guardId })
        if (g && now - g.acquiredAtMs > 30_000) await locks.deleteOne({ _id: guardId, acquiredAtMs: g.acquiredAtMs }) // a breaker that died
        return
      }
      try {
        const again = await locks.findOne({ _id: name })
        if (again && again.holder.token === cur.holder.token) {
          await locks.deleteOne({ _id: name, 'holder.token': cur.holder.token })
          await beats.deleteOne({ _id: cur.holder.token })
        }
      } finally {
        await locks.deleteOne({ _id: guardId, acquiredAtMs: now })
      }
    }
    const backend: LockBackend = {
      tryAcquire: (n, holder, ttlMs) =>
        this.op(`taking the lock ${n}`, async () => {
          let last: LockHolder | null = null
          for (let attempt = 0; attempt < 4; attempt++) {
            const now = Date.now()
            try {
              await locks.insertOne({ _id: n, holder, ttlMs, acquiredAtMs: now, expiresAt: new Date(now + ttlMs) })
              return null
            } catch (err) {
              if (!isDuplicateKey(err)) throw err
            }
            const cur = await locks.findOne({ _id: n })
            if (!cur) continue // released meanwhile
            last = cur.holder
            if (!isStale(cur.holder, await freshAt(cur), cur.ttlMs)) return cur.holder
            await breakStale(cur)
          }
          return last ?? { pid: 0, hostname: '?', acquiredAt: new Date().toISOString(), token: '' }
        }),
      refresh: async (n, holder) => {
        const cur = await locks.findOne({ _id: n })
        if (!cur || cur.holder.token !== holder.token) return false
        const now = Date.now()
        const ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS
        await beats.replaceOne({ _id: holder.token }, { name: n, refreshedAtMs: now, expiresAt: new Date(now + ttlMs) }, { upsert: true })
        return true
      },
      release: (n, holder) =>
        this.op(`releasing the lock ${n}`, async () => {
          await locks.deleteOne({ _id: n, 'holder.token': holder.token })
          await beats.deleteOne({ _id: holder.token })
        }),
      holder: async (n) => (await locks.findOne({ _id: n }))?.holder ?? null,
    }
    return acquireLockWith(this.location, name, options, backend)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.client.close().catch(() => {})
  }
}

function newGuardHolder(): LockHolder {
  return newHolder('breaking a stale lock')
}

async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk)
    size += chunk.length
  }
  return { size, sha256: hash.digest('hex') }
}
