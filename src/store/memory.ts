/**
 * An in-memory `Store` (tests, or callers that keep nothing). Same contract as the others:
 * documents are kept as JSON copies, artifacts are verified against their sha256 on read, and
 * locks work between callers of one instance.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { writeFileAtomic } from '../files/atomic.js'
import { CorruptFileError, InvalidInputError, StoreError } from '../errors.js'
import { cellIndex, type Cell } from '../types.js'
import { checkArtifactSource, checkExpected, sha256Hex } from './file.js'
import { acquireLockWith, isStale, type LockBackend } from './lock.js'
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

const clone = <T>(s: string): T => JSON.parse(s) as T

export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly location = 'memory'
  private corpora = new Map<string, string>()
  private state = new Map<string, string>()
  private runs = new Map<string, string>()
  private semantic = new Map<string, Map<string, SemanticCodes>>()
  private artifacts = new Map<string, { bytes: Buffer; info: string }>()
  private history = new Map<string, string>()
  private profiles = new Map<string, string>()
  private locks = new Map<string, { holder: LockHolder; ttlMs: number; refreshedAt: number }>()

  async getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null> {
    const s = this.corpora.get(`${setId}/${cellSlug(cell)}`)
    return s === undefined ? null : clone<StoredCorpus>(s)
  }

  async putCorpus(doc: StoredCorpus): Promise<void> {
    checkId('corpus set id', doc.setId)
    this.corpora.set(`${doc.setId}/${cellSlug(doc.cell)}`, JSON.stringify(toStorable(`corpus ${doc.setId}/${cellSlug(doc.cell)}`, doc)))
  }

  async listCorpora(setId?: string): Promise<StoredCorpus[]> {
    return [...this.corpora.values()]
      .map((s) => clone<StoredCorpus>(s))
      .filter((d) => setId === undefined || d.setId === setId)
      .sort((a, b) => (a.setId === b.setId ? cellIndex(a.cell) - cellIndex(b.cell) : a.setId < b.setId ? -1 : 1))
  }

  async deleteCorpus(setId: string, cell: Cell): Promise<boolean> {
    return this.corpora.delete(`${setId}/${cellSlug(cell)}`)
  }

  async getState<T = unknown>(key: string): Promise<T | null> {
    checkId('state key', key)
    const s = this.state.get(key)
    return s === undefined ? null : clone<T>(s)
  }

  async putState(key: string, value: unknown): Promise<void> {
    checkId('state key', key)
    if (value === null || value === undefined) this.state.delete(key)
    else this.state.set(key, JSON.stringify(toStorable(`state ${key}`, value)))
  }

  async putRun(run: RunDoc): Promise<void> {
    const doc = checkRun(run)
    this.runs.set(doc.id, JSON.stringify(doc))
  }

  async getRun(id: string): Promise<RunDoc | null> {
    checkId('run id', id)
    const s = this.runs.get(id)
    return s === undefined ? null : clone<RunDoc>(s)
  }

  async listRuns(options: ListRunsOptions = {}): Promise<RunDoc[]> {
    const limit = checkLimit(options.limit)
    const runs = [...this.runs.values()].map((s) => clone<RunDoc>(s)).filter((r) => runMatches(r, options))
    runs.sort(compareRunsNewestFirst)
    return limit === undefined ? runs : runs.slice(0, limit)
  }

  async latestRun(options: Omit<ListRunsOptions, 'limit'> = {}): Promise<RunDoc | null> {
    return (await this.listRuns({ ...options, limit: 1 }))[0] ?? null
  }

  async deleteRun(id: string): Promise<boolean> {
    checkId('run id', id)
    const had = this.runs.delete(id)
    this.semantic.delete(id)
    return had
  }

  async putSemanticIds(runId: string, entries: Iterable<readonly [string, SemanticCodes]> | Map<string, SemanticCodes>): Promise<void> {
    checkId('run id', runId)
    const add = semanticEntries(entries)
    if (add.size === 0) return
    const m = this.semantic.get(runId) ?? new Map<string, SemanticCodes>()
    for (const [w, c] of add) m.set(w, c)
    this.semantic.set(runId, m)
  }

  async getSemanticIds(runId: string, words?: readonly string[]): Promise<Map<string, SemanticCodes>> {
    checkId('run id', runId)
    const m = this.semantic.get(runId) ?? new Map<string, SemanticCodes>()
    const out = new Map<string, SemanticCodes>()
    for (const w of words ?? m.keys()) {
      const c = m.get(w)
      if (c) out.set(w, [...c])
    }
    return out
  }

  async deleteSemanticIds(runId: string): Promise<number> {
    checkId('run id', runId)
    const n = this.semantic.get(runId)?.size ?? 0
    this.semantic.delete(runId)
    return n
  }

  async putArtifact(name: string, source: ArtifactSource, options: PutArtifactOptions = {}): Promise<ArtifactInfo> {
    checkArtifactName(name)
    checkArtifactSource(source)
    const meta = options.meta === undefined ? undefined : toStorable(`artifact ${name} meta`, options.meta)
    let bytes: Buffer
    if (source instanceof Uint8Array) bytes = Buffer.from(source)
    else {
      try {
        bytes = await readFile(source.path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InvalidInputError(`artifact ${name}: no file ${source.path}`, { cause: err })
        throw new StoreError(`cannot read ${source.path}`, { cause: err })
      }
    }
    const info: ArtifactInfo = {
      name,
      size: bytes.length,
      sha256: sha256Hex(bytes),
      ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
      ...(meta !== undefined ? { meta } : {}),
      createdAt: new Date().toISOString(),
    }
    this.artifacts.set(name, { bytes, info: JSON.stringify(info) })
    return info
  }

  private verified(name: string, options?: GetArtifactOptions): { bytes: Buffer; info: ArtifactInfo } | null {
    checkArtifactName(name)
    const a = this.artifacts.get(name)
    if (!a) return null
    const info = clone<ArtifactInfo>(a.info)
    const sha = sha256Hex(a.bytes)
    if (sha !== info.sha256 || a.bytes.length !== info.size) {
      throw new CorruptFileError(`artifact ${name} is corrupt: sha256 ${sha.slice(0, 12)}... (${a.bytes.length} bytes), expected ${info.sha256.slice(0, 12)}... (${info.size} bytes)`)
    }
    checkExpected(name, info, options)
    return { bytes: Buffer.from(a.bytes), info }
  }

  async getArtifact(name: string, options?: GetArtifactOptions): Promise<Buffer | null> {
    return this.verified(name, options)?.bytes ?? null
  }

  async getArtifactToFile(name: string, path: string, options?: GetArtifactOptions): Promise<ArtifactInfo | null> {
    const v = this.verified(name, options)
    if (!v) return null
    const dest = resolve(path)
    await mkdir(dirname(dest), { recursive: true })
    await writeFileAtomic(dest, v.bytes, { mode: 0o644 })
    return v.info
  }

  async statArtifact(name: string): Promise<ArtifactInfo | null> {
    checkArtifactName(name)
    const a = this.artifacts.get(name)
    return a ? clone<ArtifactInfo>(a.info) : null
  }

  async listArtifacts(prefix = ''): Promise<ArtifactInfo[]> {
    return [...this.artifacts.entries()]
      .filter(([n]) => n.startsWith(prefix))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, a]) => clone<ArtifactInfo>(a.info))
  }

  async deleteArtifact(name: string): Promise<boolean> {
    checkArtifactName(name)
    return this.artifacts.delete(name)
  }

  async putHistory(entry: HistoryEntry): Promise<void> {
    const e = checkHistory(entry)
    this.history.set(JSON.stringify([e.user, e.date]), JSON.stringify(e))
  }

  async getHistories(users: readonly string[], query: HistoryQuery = {}): Promise<Map<string, HistoryEntry[]>> {
    const out = new Map<string, HistoryEntry[]>()
    for (const u of users) out.set(u, await this.getHistory(u, query))
    return out
  }

  async getHistory(user: string, query: HistoryQuery = {}): Promise<HistoryEntry[]> {
    checkUser(user)
    const q = checkHistoryQuery(query)
    return [...this.history.values()]
      .map((s) => clone<HistoryEntry>(s))
      .filter((e) => e.user === user && historyInWindow(e, q))
      .sort((a, b) => (a.date < b.date ? 1 : a.date > b.date ? -1 : 0))
      .slice(0, q.limit)
  }

  async putHistoryIfAbsent(entry: HistoryEntry): Promise<HistoryEntry> {
    const e = checkHistory(entry)
    const key = JSON.stringify([e.user, e.date])
    const there = this.history.get(key)
    if (there !== undefined) return clone<HistoryEntry>(there)
    this.history.set(key, JSON.stringify(e))
    return clone<HistoryEntry>(JSON.stringify(e))
  }

  async deleteHistory(user: string): Promise<number> {
    checkUser(user)
    let n = 0
    for (const [k, v] of this.history) {
      if (clone<HistoryEntry>(v).user === user) {
        this.history.delete(k)
        n++
      }
    }
    return n
  }

  async getProfile(user: string): Promise<ProfileDoc | null> {
    checkUser(user)
    const s = this.profiles.get(user)
    return s === undefined ? null : clone<ProfileDoc>(s)
  }

  async putProfile(doc: ProfileDoc): Promise<void> {
    const d = checkProfile(doc)
    this.profiles.set(d.user, JSON.stringify(d))
  }

  async listProfiles(options: ListProfilesOptions = {}): Promise<ProfileDoc[]> {
    const o = checkListProfiles(options)
    return [...this.profiles.keys()]
      .filter((u) => o.after === undefined || u > o.after)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, o.limit)
      .map((u) => clone<ProfileDoc>(this.profiles.get(u)!))
  }

  async countProfiles(): Promise<number> {
    return this.profiles.size
  }

  async deleteProfile(user: string): Promise<boolean> {
    checkUser(user)
    return this.profiles.delete(user)
  }

  acquireLock(name: string, options: LockOptions = {}): Promise<StoreLock> {
    const backend: LockBackend = {
      tryAcquire: async (n, holder, ttlMs) => {
        const cur = this.locks.get(n)
        if (cur && !isStale(cur.holder, cur.refreshedAt, cur.ttlMs)) return cur.holder
        this.locks.set(n, { holder, ttlMs, refreshedAt: Date.now() })
        return null
      },
      refresh: async (n, holder) => {
        const cur = this.locks.get(n)
        if (!cur || cur.holder.token !== holder.token) return false
        cur.refreshedAt = Date.now()
        return true
      },
      release: async (n, holder) => {
        if (this.locks.get(n)?.holder.token === holder.token) this.locks.delete(n)
      },
      holder: async (n) => this.locks.get(n)?.holder ?? null,
    }
    return acquireLockWith(this.location, name, options, backend)
  }

  async close(): Promise<void> {}
}
