/**
 * `FileStore`: the embedded default store, plain files under `$WOTD_HOME` or `./.wotd`.
 *
 *     <root>/corpora/<setId>/<style>-<complexity>-<era>.json
 *     <root>/state/<key>.json
 *     <root>/runs/<runId>.json
 *     <root>/semantic_ids/<runId>.json
 *     <root>/artifacts/<name>                 the raw bytes (e.g. safetensors)
 *     <root>/artifacts/<name>.meta.json       {name, size, sha256, contentType, meta, createdAt}
 *     <root>/history/<user>/<YYYY-MM-DD>.json
 *     <root>/profiles/<user>.json
 *     <root>/locks/<name>.lock                {pid, hostname, acquiredAt, purpose, token, ttlMs}
 *
 * Every JSON file is an envelope `{format, sha256, data}` whose checksum covers `data`; writes
 * go to a temporary file in the same folder, are flushed, then renamed over the target, so a
 * crash at any moment leaves either the old or the new file. A JSON file that fails its
 * checksum is a `StoreError` naming the file (everything here is primary data: a run, its
 * semantic IDs, a corpus, a history entry; silently dropping one would leave a run pointing at
 * missing data). An artifact whose bytes fail their sha256 is a `CorruptFileError`.
 *
 * Replacing an artifact: the new bytes go to a temporary file; the sidecar is written with the
 * new size and sha256 plus `previous` (the old ones, or null); the temporary file is renamed
 * over the old bytes; the sidecar is rewritten without `previous`. A reader that finds
 * `previous` accepts either version, so a crash between the steps never looks like corruption.
 */
import { storedHistory, storedProfile, storedRun } from './schemas.js'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { syncDir, tempSibling, writeFileAtomic } from '../files/atomic.js'
import { CorruptFileError, InvalidInputError, StoreError } from '../errors.js'
import { cellIndex, parseCellKey, type Cell } from '../types.js'
import { acquireLockWith, isStale, pidAlive, type LockBackend } from './lock.js'
import {
  cellSlug,
  checkArtifactName,
  checkHistory,
  checkHistoryQuery,
  checkId,
  checkListProfiles,
  checkProfile,
  checkLimit,
  checkRun,
  checkUser,
  compareRunsNewestFirst,
  historyInWindow,
  runMatches,
  SAFE_ID,
  semanticEntries,
  toStorable,
  type ArtifactInfo,
  type ArtifactSource,
  type GetArtifactOptions,
  type HistoryEntry,
  type HistoryQuery,
  type ListProfilesOptions,
  type ListRunsOptions,
  type LockHolder,
  type LockOptions,
  type ProfileDoc,
  type PutArtifactOptions,
  type RunDoc,
  type SemanticCodes,
  type Store,
  type StoreLock,
  type StoredCorpus,
} from './types.js'

const FORMAT = 'wotd-store/1'

interface Envelope {
  format: string
  sha256: string
  data: unknown
}

/** An artifact sidecar: the current metadata and, while a replacement is under way, the old one. */
interface Sidecar extends ArtifactInfo {
  previous?: ArtifactInfo | null
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** The default store folder: `$WOTD_HOME`, else `./.wotd`. */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.WOTD_HOME && env.WOTD_HOME.trim() !== '' ? env.WOTD_HOME : '.wotd')
}

export { writeFileAtomic }


/** Copies bytes or a file into a new file `dest` (exclusive create, fsync), returning size and sha256. */
async function copyHashing(source: ArtifactSource, dest: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256')
  let size = 0
  const out = await open(dest, 'wx', 0o600)
  try {
    if ('path' in source && !(source instanceof Uint8Array)) {
      for await (const chunk of createReadStream(source.path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
        hash.update(chunk)
        size += chunk.length
        await out.write(chunk)
      }
    } else {
      hash.update(source)
      size = source.length
      await out.writeFile(source)
    }
    await out.sync()
  } finally {
    await out.close()
  }
  return { size, sha256: hash.digest('hex') }
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

function isENOENT(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT'
}

function artifactInfo(s: Sidecar | ArtifactInfo): ArtifactInfo {
  const { name, size, sha256, contentType, meta, createdAt } = s
  return { name, size, sha256, ...(contentType !== undefined ? { contentType } : {}), ...(meta !== undefined ? { meta } : {}), createdAt }
}

export function checkArtifactSource(source: ArtifactSource): void {
  if (source instanceof Uint8Array) return
  if (!source || typeof source !== 'object' || typeof (source as { path?: unknown }).path !== 'string' || (source as { path: string }).path === '') {
    throw new InvalidInputError('an artifact source must be bytes (Buffer/Uint8Array) or {path}')
  }
}

export function checkExpected(name: string, info: ArtifactInfo, options: GetArtifactOptions | undefined): void {
  if (options?.sha256 !== undefined && options.sha256.toLowerCase() !== info.sha256) {
    throw new CorruptFileError(`artifact ${name} holds sha256 ${info.sha256.slice(0, 12)}..., not the ${options.sha256.slice(0, 12)}... that was recorded for it (it was replaced or damaged)`)
  }
}

export interface FileStoreOptions {
  /** The store folder; defaults to `$WOTD_HOME` or `./.wotd`. */
  dir?: string
}

export class FileStore implements Store {
  readonly kind = 'file'
  readonly location: string
  readonly root: string
  /** In-process serialization of read-modify-write updates, by file. */
  private chains = new Map<string, Promise<unknown>>()

  constructor(options: FileStoreOptions = {}) {
    this.root = resolve(options.dir ?? defaultStoreDir())
    this.location = this.root
  }

  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(key) ?? Promise.resolve()
    const next = prev.then(fn, fn)
    const tail = next.catch(() => {})
    this.chains.set(key, tail)
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key)
    })
    return next
  }

  // -------------------------------------------------------------------------------------
  // JSON envelopes

  private corpusPath(setId: string, cell: Cell): string {
    checkId('corpus set id', setId)
    return join(this.root, 'corpora', setId, `${cellSlug(cell)}.json`)
  }

  private statePath(key: string): string {
    checkId('state key', key)
    return join(this.root, 'state', `${key}.json`)
  }

  private runPath(id: string): string {
    checkId('run id', id)
    return join(this.root, 'runs', `${id}.json`)
  }

  private semanticPath(runId: string): string {
    checkId('run id', runId)
    return join(this.root, 'semantic_ids', `${runId}.json`)
  }

  /** A user's name in file names: itself when safe, else hashed (`_` cannot start a SAFE_ID). */
  private userKey(user: string): string {
    checkUser(user)
    return SAFE_ID.test(user) ? user : `_${sha256Hex(user).slice(0, 32)}`
  }

  private historyDir(user: string): string {
    return join(this.root, 'history', this.userKey(user))
  }

  private profilePath(user: string): string {
    return join(this.root, 'profiles', `${this.userKey(user)}.json`)
  }

  private async readEnvelope(path: string): Promise<unknown | null> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if (isENOENT(err)) return null
      throw new StoreError(`cannot read ${path}`, { cause: err })
    }
    let env: Envelope
    try {
      env = JSON.parse(text) as Envelope
    } catch (err) {
      throw new StoreError(`${path} is corrupt (not JSON); delete it to rebuild what it held`, { cause: err })
    }
    if (!env || env.format !== FORMAT || typeof env.sha256 !== 'string' || !('data' in env)) {
      throw new StoreError(`${path} is not a wotd store file (format ${JSON.stringify(env?.format)}); delete it to rebuild what it held`)
    }
    if (sha256Hex(JSON.stringify(env.data)) !== env.sha256) {
      throw new StoreError(`${path} is corrupt (checksum mismatch); delete it to rebuild what it held`)
    }
    return env.data
  }

  private async writeEnvelope(path: string, data: unknown): Promise<void> {
    const body = JSON.stringify(data)
    const env = `{"format":${JSON.stringify(FORMAT)},"sha256":"${sha256Hex(body)}","data":${body}}\n`
    try {
      await writeFileAtomic(path, env)
    } catch (err) {
      throw new StoreError(`cannot write ${path}`, { cause: err })
    }
  }

  /**
   * Writes an envelope only if `path` does not exist: the complete file is made under a
   * temporary name, then hard-linked to `path`, which fails when another writer got there
   * first. Returns false then.
   */
  private async createEnvelope(path: string, data: unknown): Promise<boolean> {
    const body = JSON.stringify(data)
    const env = `{"format":${JSON.stringify(FORMAT)},"sha256":"${sha256Hex(body)}","data":${body}}\n`
    const dir = dirname(path)
    const tmp = tempSibling(path)
    try {
      await mkdir(dir, { recursive: true })
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(env)
        await fh.sync()
      } finally {
        await fh.close()
      }
      try {
        await link(tmp, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
        throw err
      }
      await syncDir(dir)
      return true
    } catch (err) {
      throw new StoreError(`cannot write ${path}`, { cause: err })
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  private async unlinkIfThere(path: string): Promise<boolean> {
    try {
      await unlink(path)
      return true
    } catch (err) {
      if (isENOENT(err)) return false
      throw new StoreError(`cannot delete ${path}`, { cause: err })
    }
  }

  private async list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir)
    } catch (err) {
      if (isENOENT(err)) return []
      throw new StoreError(`cannot list ${dir}`, { cause: err })
    }
  }

  /**
   * Removes temporary files left by writers that died mid-write (a SIGKILL between the
   * temporary file and the rename): their pid is in the name and no longer runs.
   */
  private async sweep(dir: string, files: string[]): Promise<void> {
    for (const f of files) {
      const m = /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(f)
      if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue
      await unlink(join(dir, f)).catch(() => {})
    }
  }

  // -------------------------------------------------------------------------------------
  // corpora and state

  async getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null> {
    const path = this.corpusPath(setId, cell)
    const doc = (await this.readEnvelope(path)) as StoredCorpus | null
    if (doc && (doc.setId !== setId || cellSlug(doc.cell) !== cellSlug(cell))) {
      throw new StoreError(`${path} holds ${doc.setId}/${cellSlug(doc.cell)}, not ${setId}/${cellSlug(cell)}`)
    }
    return doc
  }

  async putCorpus(doc: StoredCorpus): Promise<void> {
    const path = this.corpusPath(doc.setId, doc.cell)
    await this.writeEnvelope(path, toStorable(`corpus ${doc.setId}/${cellSlug(doc.cell)}`, doc))
  }

  async listCorpora(setId?: string): Promise<StoredCorpus[]> {
    const base = join(this.root, 'corpora')
    let sets: string[]
    if (setId !== undefined) {
      checkId('corpus set id', setId)
      sets = [setId]
    } else {
      sets = (await this.list(base)).filter((s) => SAFE_ID.test(s)).sort()
    }
    const out: StoredCorpus[] = []
    for (const s of sets) {
      const all = await this.list(join(base, s))
      await this.sweep(join(base, s), all)
      const files = all.filter((f) => f.endsWith('.json'))
      const docs: StoredCorpus[] = []
      for (const f of files) {
        let cell: Cell
        try {
          cell = parseCellKey(f.slice(0, -'.json'.length))
        } catch {
          continue // not a cell file
        }
        const doc = await this.getCorpus(s, cell)
        if (doc) docs.push(doc)
      }
      docs.sort((a, b) => cellIndex(a.cell) - cellIndex(b.cell))
      out.push(...docs)
    }
    return out
  }

  async deleteCorpus(setId: string, cell: Cell): Promise<boolean> {
    return this.unlinkIfThere(this.corpusPath(setId, cell))
  }

  async getState<T = unknown>(key: string): Promise<T | null> {
    return (await this.readEnvelope(this.statePath(key))) as T | null
  }

  async putState(key: string, value: unknown): Promise<void> {
    const path = this.statePath(key)
    if (value === null || value === undefined) {
      await this.unlinkIfThere(path)
      return
    }
    await this.writeEnvelope(path, toStorable(`state ${key}`, value))
  }

  // -------------------------------------------------------------------------------------
  // runs

  async putRun(run: RunDoc): Promise<void> {
    const doc = checkRun(run)
    await this.writeEnvelope(this.runPath(doc.id), doc)
  }

  async getRun(id: string): Promise<RunDoc | null> {
    const path = this.runPath(id)
    const raw = await this.readEnvelope(path)
    const doc = raw === null ? null : storedRun(raw, path)
    if (doc && doc.id !== id) throw new StoreError(`${path} holds run ${doc.id}, not ${id}`)
    return doc
  }

  async listRuns(options: ListRunsOptions = {}): Promise<RunDoc[]> {
    const limit = checkLimit(options.limit)
    const dir = join(this.root, 'runs')
    const files = await this.list(dir)
    await this.sweep(dir, files)
    const runs: RunDoc[] = []
    for (const f of files) {
      if (!f.endsWith('.json') || !SAFE_ID.test(f.slice(0, -5))) continue
      const r = await this.getRun(f.slice(0, -5))
      if (r && runMatches(r, options)) runs.push(r)
    }
    runs.sort(compareRunsNewestFirst)
    return limit === undefined ? runs : runs.slice(0, limit)
  }

  async latestRun(options: Omit<ListRunsOptions, 'limit'> = {}): Promise<RunDoc | null> {
    return (await this.listRuns({ ...options, limit: 1 }))[0] ?? null
  }

  async deleteRun(id: string): Promise<boolean> {
    const had = await this.unlinkIfThere(this.runPath(id))
    await this.deleteSemanticIds(id)
    return had
  }

  // -------------------------------------------------------------------------------------
  // semantic IDs: one file per run, `{runId, entries: [[word, codes], ...]}` sorted by word

  private async readSemantic(runId: string): Promise<Map<string, SemanticCodes>> {
    const path = this.semanticPath(runId)
    const data = (await this.readEnvelope(path)) as { runId: string; entries: [string, SemanticCodes][] } | null
    if (!data) return new Map()
    if (data.runId !== runId || !Array.isArray(data.entries)) throw new StoreError(`${path} does not hold the semantic IDs of run ${runId}`)
    return new Map(data.entries)
  }

  async putSemanticIds(runId: string, entries: Iterable<readonly [string, SemanticCodes]> | Map<string, SemanticCodes>): Promise<void> {
    const path = this.semanticPath(runId)
    const add = semanticEntries(entries)
    if (add.size === 0) return
    await this.serial(path, async () => {
      const all = await this.readSemantic(runId)
      for (const [w, c] of add) all.set(w, c)
      const sorted = [...all].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      await this.writeEnvelope(path, { runId, entries: sorted })
    })
  }

  async getSemanticIds(runId: string, words?: readonly string[]): Promise<Map<string, SemanticCodes>> {
    const path = this.semanticPath(runId)
    const all = await this.serial(path, () => this.readSemantic(runId))
    if (!words) return all
    const out = new Map<string, SemanticCodes>()
    for (const w of words) {
      const c = all.get(w)
      if (c) out.set(w, c)
    }
    return out
  }

  async deleteSemanticIds(runId: string): Promise<number> {
    const path = this.semanticPath(runId)
    return this.serial(path, async () => {
      let n = 0
      try {
        n = (await this.readSemantic(runId)).size
      } catch (err) {
        if (!(err instanceof StoreError)) throw err // a corrupt file is deleted all the same
      }
      await this.unlinkIfThere(path)
      return n
    })
  }

  // -------------------------------------------------------------------------------------
  // artifacts

  private artifactPaths(name: string): { data: string; meta: string } {
    const parts = checkArtifactName(name)
    const data = join(this.root, 'artifacts', ...parts)
    return { data, meta: `${data}.meta.json` }
  }

  private async readSidecar(name: string, path: string): Promise<Sidecar | null> {
    let data: Sidecar | null
    try {
      data = (await this.readEnvelope(path)) as Sidecar | null
    } catch (err) {
      if (err instanceof StoreError) throw new CorruptFileError(`artifact ${name}: its metadata ${path} is damaged (${err.message})`, { cause: err })
      throw err
    }
    if (data && (data.name !== name || typeof data.sha256 !== 'string' || typeof data.size !== 'number')) {
      throw new CorruptFileError(`artifact ${name}: ${path} does not describe it`)
    }
    return data
  }

  /**
   * Which version the bytes with this hash are: the current one, the one being replaced, or
   * none (null: the first write of it was interrupted before its bytes were in place).
   */
  private resolveVersion(name: string, path: string, side: Sidecar, got: { size: number; sha256: string }): ArtifactInfo | null {
    if (got.sha256 === side.sha256 && got.size === side.size) return artifactInfo(side)
    if (side.previous && got.sha256 === side.previous.sha256 && got.size === side.previous.size) return artifactInfo(side.previous)
    if (side.previous === null) return null
    throw new CorruptFileError(
      `artifact ${name} is corrupt: ${path} has sha256 ${got.sha256.slice(0, 12)}... (${got.size} bytes), expected ${side.sha256.slice(0, 12)}... (${side.size} bytes); write it again`,
    )
  }

  async putArtifact(name: string, source: ArtifactSource, options: PutArtifactOptions = {}): Promise<ArtifactInfo> {
    const p = this.artifactPaths(name)
    checkArtifactSource(source)
    const meta = options.meta === undefined ? undefined : toStorable(`artifact ${name} meta`, options.meta)
    return this.serial(p.data, async () => {
      await mkdir(dirname(p.data), { recursive: true }).catch((err) => {
        throw new StoreError(`cannot create ${dirname(p.data)}`, { cause: err })
      })
      // Leftovers of a writer killed mid-write (its temporary files) go before the new one lands.
      await this.sweep(dirname(p.data), await this.list(dirname(p.data)))
      const tmp = tempSibling(p.data)
      try {
        let got: { size: number; sha256: string }
        try {
          got = await copyHashing(source, tmp)
        } catch (err) {
          if (!(source instanceof Uint8Array) && isENOENT(err)) throw new InvalidInputError(`artifact ${name}: no file ${source.path}`, { cause: err })
          throw new StoreError(`cannot write ${tmp}`, { cause: err })
        }
        const info: ArtifactInfo = {
          name,
          size: got.size,
          sha256: got.sha256,
          ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
          ...(meta !== undefined ? { meta } : {}),
          createdAt: new Date().toISOString(),
        }
        // The old version, if its bytes are still the ones its sidecar describes.
        let previous: ArtifactInfo | null = null
        const old = await this.readSidecar(name, p.meta).catch(() => null)
        if (old) {
          const onDisk = await hashFile(p.data).catch(() => null)
          if (onDisk) {
            try {
              previous = this.resolveVersion(name, p.data, old, onDisk)
            } catch {
              previous = null
            }
          }
        }
        await this.writeEnvelope(p.meta, { ...info, previous })
        try {
          await rename(tmp, p.data)
        } catch (err) {
          throw new StoreError(`cannot write ${p.data}`, { cause: err })
        }
        await syncDir(dirname(p.data))
        await this.writeEnvelope(p.meta, info)
        return info
      } finally {
        await unlink(tmp).catch(() => {})
      }
    })
  }

  async statArtifact(name: string): Promise<ArtifactInfo | null> {
    const p = this.artifactPaths(name)
    const side = await this.readSidecar(name, p.meta)
    if (!side) return null
    if (side.previous === undefined) return artifactInfo(side)
    // A replacement is under way (or was interrupted): the bytes say which version is there.
    const got = await hashFile(p.data).catch((err) => (isENOENT(err) ? null : Promise.reject(err)))
    if (!got) return side.previous === null ? null : artifactInfo(side)
    return this.resolveVersion(name, p.data, side, got)
  }

  async getArtifact(name: string, options?: GetArtifactOptions): Promise<Buffer | null> {
    const p = this.artifactPaths(name)
    const side = await this.readSidecar(name, p.meta)
    if (!side) return null
    let bytes: Buffer
    try {
      bytes = await readFile(p.data)
    } catch (err) {
      if (!isENOENT(err)) throw new StoreError(`cannot read ${p.data}`, { cause: err })
      if (side.previous === null) return null // the first write of it was interrupted
      throw new CorruptFileError(`artifact ${name} is missing its bytes (${p.data}); write it again`, { cause: err })
    }
    const info = this.resolveVersion(name, p.data, side, { size: bytes.length, sha256: sha256Hex(bytes) })
    if (!info) return null
    checkExpected(name, info, options)
    return bytes
  }

  async getArtifactToFile(name: string, path: string, options?: GetArtifactOptions): Promise<ArtifactInfo | null> {
    const p = this.artifactPaths(name)
    const side = await this.readSidecar(name, p.meta)
    if (!side) return null
    const dest = resolve(path)
    await mkdir(dirname(dest), { recursive: true })
    const tmp = tempSibling(dest)
    try {
      let got: { size: number; sha256: string }
      try {
        got = await copyHashing({ path: p.data }, tmp)
      } catch (err) {
        if (!isENOENT(err)) throw new StoreError(`cannot copy ${p.data} to ${dest}`, { cause: err })
        if (side.previous === null) return null
        throw new CorruptFileError(`artifact ${name} is missing its bytes (${p.data}); write it again`, { cause: err })
      }
      const info = this.resolveVersion(name, p.data, side, got)
      if (!info) return null
      checkExpected(name, info, options)
      await rename(tmp, dest)
      return info
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  async listArtifacts(prefix = ''): Promise<ArtifactInfo[]> {
    const base = join(this.root, 'artifacts')
    const out: ArtifactInfo[] = []
    const walk = async (dir: string, rel: string[]): Promise<void> => {
      const names = await this.list(dir)
      await this.sweep(dir, names)
      for (const n of names) {
        if (n.endsWith('.meta.json')) {
          const name = [...rel, n.slice(0, -'.meta.json'.length)].join('/')
          if (!name.startsWith(prefix)) continue
          const info = await this.statArtifact(name).catch((err) => {
            if (err instanceof InvalidInputError) return null // not one of ours
            throw err
          })
          if (info) out.push(info)
        } else if (SAFE_ID.test(n) && !n.endsWith('.tmp')) {
          const sub = join(dir, n)
          const st = await stat(sub).catch(() => null)
          if (st?.isDirectory()) await walk(sub, [...rel, n])
        }
      }
    }
    await walk(base, [])
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async deleteArtifact(name: string): Promise<boolean> {
    const p = this.artifactPaths(name)
    return this.serial(p.data, async () => {
      // The sidecar goes first: once it is gone the artifact is gone, whatever happens next.
      const had = await this.unlinkIfThere(p.meta)
      await this.unlinkIfThere(p.data)
      return had
    })
  }

  // -------------------------------------------------------------------------------------
  // history: one file per user and date

  async putHistory(entry: HistoryEntry): Promise<void> {
    const e = checkHistory(entry)
    await this.writeEnvelope(join(this.historyDir(e.user), `${e.date}.json`), e)
  }

  async getHistories(users: readonly string[], query: HistoryQuery = {}): Promise<Map<string, HistoryEntry[]>> {
    const out = new Map<string, HistoryEntry[]>()
    for (const u of users) out.set(u, await this.getHistory(u, query))
    return out
  }

  async getHistory(user: string, query: HistoryQuery = {}): Promise<HistoryEntry[]> {
    const dir = this.historyDir(user)
    const q = checkHistoryQuery(query)
    const files = await this.list(dir)
    await this.sweep(dir, files)
    const dates = files
      .filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f))
      .map((f) => f.slice(0, 10))
      .filter((date) => historyInWindow({ date } as HistoryEntry, q))
      .sort()
      .reverse()
      .slice(0, q.limit)
    const out: HistoryEntry[] = []
    for (const date of dates) {
      const path = join(dir, `${date}.json`)
      const raw = await this.readEnvelope(path)
      if (raw === null) continue
      const e = storedHistory(raw, path)
      if (e.user !== user || e.date !== date) throw new StoreError(`${path} holds the entry of ${JSON.stringify(e.user)} on ${e.date}, not ${JSON.stringify(user)} on ${date}`)
      out.push(e)
    }
    return out
  }

  async putHistoryIfAbsent(entry: HistoryEntry): Promise<HistoryEntry> {
    const e = checkHistory(entry)
    const path = join(this.historyDir(e.user), `${e.date}.json`)
    if (await this.createEnvelope(path, e)) return e
    const there = await this.readEnvelope(path)
    if (!there) throw new StoreError(`${path} vanished while it was being read; try again`)
    return storedHistory(there, path)
  }

  async deleteHistory(user: string): Promise<number> {
    const dir = this.historyDir(user)
    let n = 0
    for (const f of await this.list(dir)) {
      if (await this.unlinkIfThere(join(dir, f))) n += /^\d{4}-\d{2}-\d{2}\.json$/.test(f) ? 1 : 0
    }
    try {
      await rm(dir, { recursive: true, force: true })
    } catch (err) {
      throw new StoreError(`cannot delete ${dir}`, { cause: err })
    }
    return n
  }

  // -------------------------------------------------------------------------------------
  // profiles: one file per user

  async getProfile(user: string): Promise<ProfileDoc | null> {
    const path = this.profilePath(user)
    const raw = await this.readEnvelope(path)
    const doc = raw === null ? null : storedProfile(raw, path)
    if (doc && doc.user !== user) throw new StoreError(`${path} holds the profile of ${JSON.stringify(doc.user)}, not ${JSON.stringify(user)}`)
    return doc
  }

  async putProfile(doc: ProfileDoc): Promise<void> {
    const d = checkProfile(doc)
    await this.writeEnvelope(this.profilePath(d.user), d)
  }

  /** In file-name order (a safe name is its own file name; others sort by their hash). */
  async listProfiles(options: ListProfilesOptions = {}): Promise<ProfileDoc[]> {
    const o = checkListProfiles(options)
    if (o.limit === 0) return []
    const dir = join(this.root, 'profiles')
    const files = await this.list(dir)
    await this.sweep(dir, files)
    const after = o.after === undefined ? undefined : `${this.userKey(o.after)}.json`
    const names = files.filter((f) => f.endsWith('.json') && !f.endsWith('.tmp') && (after === undefined || f > after)).sort()
    const out: ProfileDoc[] = []
    for (const f of names) {
      if (o.limit !== undefined && out.length >= o.limit) break
      const raw = await this.readEnvelope(join(dir, f))
      if (raw !== null) out.push(storedProfile(raw, join(dir, f)))
    }
    return out
  }

  async countProfiles(): Promise<number> {
    return (await this.list(join(this.root, 'profiles'))).filter((f) => f.endsWith('.json')).length
  }

  async deleteProfile(user: string): Promise<boolean> {
    return this.unlinkIfThere(this.profilePath(user))
  }

  // -------------------------------------------------------------------------------------
  // locks: `locks/<name>.lock`, created exclusively; refreshed by touching its mtime

  private lockBackend(): LockBackend {
    const dir = join(this.root, 'locks')
    const pathOf = (name: string) => join(dir, `${name}.lock`)
    type Found = { holder: LockHolder; ttlMs: number; mtimeMs: number; raw: string }
    const read = async (path: string): Promise<Found | null> => {
      let raw: string
      let mtimeMs: number
      try {
        const fh = await open(path, 'r')
        try {
          mtimeMs = (await fh.stat()).mtimeMs
          raw = await fh.readFile('utf8')
        } finally {
          await fh.close()
        }
      } catch (err) {
        if (isENOENT(err)) return null
        throw new StoreError(`cannot read the lock ${path}`, { cause: err })
      }
      try {
        const j = JSON.parse(raw) as LockHolder & { ttlMs: number }
        if (typeof j.token !== 'string') throw new Error('no token')
        return { holder: j, ttlMs: Number(j.ttlMs) > 0 ? Number(j.ttlMs) : 120_000, mtimeMs, raw }
      } catch {
        // being written right now (created, not yet filled), or damaged: stale after 10 s
        return { holder: { pid: 0, hostname: '?', acquiredAt: new Date(mtimeMs).toISOString(), token: '' }, ttlMs: 10_000, mtimeMs, raw }
      }
    }
    /** Removes a stale lock if it is still the same one, under a short-lived `.break` guard. */
    const breakStale = async (path: string, seen: Found): Promise<void> => {
      const guard = `${path}.break`
      let fh
      try {
        fh = await open(guard, 'wx')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(`cannot create ${guard}`, { cause: err })
        const st = await stat(guard).catch(() => null)
        if (st && Date.now() - st.mtimeMs > 30_000) await unlink(guard).catch(() => {}) // a breaker that died
        return
      }
      try {
        await fh.close()
        const now = await read(path)
        if (now && now.raw === seen.raw) await unlink(path).catch(() => {})
      } finally {
        await unlink(guard).catch(() => {})
      }
    }
    return {
      tryAcquire: async (name, holder, ttlMs) => {
        const path = pathOf(name)
        await mkdir(dir, { recursive: true }).catch((err) => {
          throw new StoreError(`cannot create ${dir}`, { cause: err })
        })
        let last: LockHolder | null = null
        for (let attempt = 0; attempt < 4; attempt++) {
          try {
            const fh = await open(path, 'wx', 0o644)
            try {
              await fh.writeFile(JSON.stringify({ ...holder, ttlMs }) + '\n')
              await fh.sync()
            } finally {
              await fh.close()
            }
            return null
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(`cannot create the lock ${path}`, { cause: err })
          }
          const found = await read(path)
          if (!found) continue // released meanwhile
          last = found.holder
          if (!isStale(found.holder, found.mtimeMs, found.ttlMs)) return found.holder
          await breakStale(path, found)
        }
        return last ?? { pid: 0, hostname: '?', acquiredAt: new Date().toISOString(), token: '' }
      },
      refresh: async (name, holder) => {
        const found = await read(pathOf(name))
        if (!found || found.holder.token !== holder.token) return false
        const now = new Date()
        await utimes(pathOf(name), now, now)
        return true
      },
      release: async (name, holder) => {
        const found = await read(pathOf(name))
        if (found && found.holder.token === holder.token) await unlink(pathOf(name)).catch(() => {})
      },
      holder: async (name) => (await read(pathOf(name)))?.holder ?? null,
    }
  }

  acquireLock(name: string, options: LockOptions = {}): Promise<StoreLock> {
    return acquireLockWith(this.location, name, options, this.lockBackend())
  }

  async close(): Promise<void> {}
}
