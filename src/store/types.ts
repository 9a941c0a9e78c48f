/**
 * The persistent store behind the pipeline: one `Store` interface, three implementations
 * (`FileStore`, the embedded default; `MongoStore`; `MemoryStore` for tests).
 *
 * What it keeps:
 * - corpora, saved per cell (a partial cell is kept until it is complete);
 * - small named state documents (such as a pending batch);
 * - runs: one document per training run (config, status, per-stage status, input hash,
 *   metrics, timings and artifact references);
 * - semantic IDs of a run (word -> codes);
 * - artifacts: named binary blobs (codebooks, LoRA adapters) with their sha256, verified on
 *   every read;
 * - word-of-the-day history (user, date, word);
 * - named inter-process locks.
 *
 * No store has transactions (the MongoDB test server has none). The write-ordering contract
 * is: write artifacts (and semantic IDs) first, then the run document that points at them;
 * delete in the reverse order (run document first). A crash then never leaves a run that
 * points at missing data; at worst it leaves unreferenced artifacts behind.
 *
 * Every document goes in and comes out as JSON: what `get` returns is
 * `JSON.parse(JSON.stringify(what put was given))` (undefined fields vanish, dates become
 * strings). Object keys may not contain `.`, start with `$` or hold NUL (MongoDB and FerretDB
 * refuse such keys; the other stores refuse them too so that every store takes the same data).
 */
import { InvalidInputError } from '../errors.js'
import type { Cell, CorpusUsage, WOTDCorpus, WOTDWord } from '../types.js'

export const STORED_CORPUS_SCHEMA = 1
export const RUN_SCHEMA = 1

/** One cell of a corpus set, as saved. */
export interface StoredCorpus extends WOTDCorpus {
  schema: typeof STORED_CORPUS_SCHEMA
  /** The corpus set this cell belongs to (e.g. `lexicon-seed42`); a word is in one cell of a set. */
  setId: string
  cell: Cell
  /** `complete` once `words.length >= target`. */
  status: 'partial' | 'complete'
  target: number
  /** Who made the words; never credentials. */
  provider: { name: string; model?: string; baseURL?: string }
  seed: number
  words: WOTDWord[]
  /** Tokens and cost spent on this cell, over every run. */
  usage: CorpusUsage
  createdAt: string
  updatedAt: string
}

export interface CorpusStore {
  /** `file`, `memory`, `mongodb`, ... */
  readonly kind: string
  /** Where the data lives, for display (no credentials). */
  readonly location: string
  /** The saved cell of a set, or null when there is none. */
  getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null>
  /** Saves (replaces) one cell atomically: a reader sees the old or the new document, never a mix. */
  putCorpus(doc: StoredCorpus): Promise<void>
  /** Every saved cell of a set (or of every set), in cell index order. */
  listCorpora(setId?: string): Promise<StoredCorpus[]>
  deleteCorpus(setId: string, cell: Cell): Promise<boolean>
  /** A small JSON state document by key, or null. */
  getState<T = unknown>(key: string): Promise<T | null>
  /** Saves a state document; `null` deletes it. */
  putState(key: string, value: unknown): Promise<void>
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------
// Runs

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled'
export const RUN_STATUSES: readonly RunStatus[] = ['running', 'completed', 'failed', 'cancelled']
export type StageStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped'
export const STAGE_STATUSES: readonly StageStatus[] = ['pending', 'running', 'completed', 'failed', 'skipped']

/** Where a run's binary output lives: an artifact name and the bytes it must hold. */
export interface ArtifactRef {
  name: string
  sha256: string
  size: number
}

/** One stage of a run. */
export interface StageRecord {
  status: StageStatus
  /** Hash of everything the stage's output depends on; a finished stage with the same hash is skipped. */
  inputHash?: string
  metrics?: Record<string, unknown>
  /** Durations in milliseconds, by name (e.g. `total`, `embed`). */
  timings?: Record<string, number>
  /** The artifacts this stage wrote, by role (e.g. `codebooks`, `adapter`). */
  artifacts?: Record<string, ArtifactRef>
  startedAt?: string
  finishedAt?: string
  /** One-line error of a failed stage. */
  error?: string
}

/** One training run. */
export interface RunDoc {
  schema: typeof RUN_SCHEMA
  /** Letters, digits, `.`, `_`, `-` (see `SAFE_ID`). */
  id: string
  config: unknown
  configHash: string
  status: RunStatus
  /** By stage name (e.g. `corpus`, `embed`, `rvq`, `lora`). */
  stages: Record<string, StageRecord>
  error?: string
  /** ISO 8601 times; `listRuns` orders by `createdAt`, newest first. */
  createdAt: string
  updatedAt: string
}

export interface ListRunsOptions {
  status?: RunStatus
  configHash?: string
  limit?: number
}

// ---------------------------------------------------------------------------------------
// Semantic IDs, artifacts, history, locks

/** A word's semantic ID: one code per RVQ level. */
export type SemanticCodes = number[]

export interface ArtifactInfo {
  name: string
  size: number
  /** Lowercase hex sha256 of the bytes. */
  sha256: string
  contentType?: string
  meta?: Record<string, unknown>
  createdAt: string
}

export interface PutArtifactOptions {
  contentType?: string
  /** Small JSON metadata kept beside the blob. */
  meta?: Record<string, unknown>
}

export interface GetArtifactOptions {
  /** The sha256 the caller expects (from an `ArtifactRef`); any other content is a `CorruptFileError`. */
  sha256?: string
}

export type ArtifactSource = Uint8Array | { path: string }

export interface HistoryEntry {
  user: string
  /** `YYYY-MM-DD`. */
  date: string
  word: string
  runId?: string
  meta?: Record<string, unknown>
  createdAt: string
}

/** A word a person liked or disliked, and when. */
export interface FeedbackEntry {
  word: string
  /** ISO 8601 time of the (latest) like or dislike. */
  at: string
}

/**
 * What the store keeps about a person: their feedback, and the preference vector and semantic
 * ID made from it (see `src/profile/`) under the run named by `runId`. The words shown to them
 * are their word-of-the-day history.
 */
export interface ProfileDoc {
  schema: typeof PROFILE_SCHEMA
  user: string
  liked: FeedbackEntry[]
  disliked: FeedbackEntry[]
  /** Unit float32 preference vector, base64 (absent with no likes). */
  vector?: string
  /** Its semantic ID under `runId`'s codebooks. */
  id?: number[]
  runId?: string
  /** Bumped on every change. */
  version: number
  updatedAt: string
}

export const PROFILE_SCHEMA = 'wotd.profile/v1'

export interface ListProfilesOptions {
  /** Only users after this one in the store's listing order: a cursor for paging. */
  after?: string
  limit?: number
}

export interface HistoryQuery {
  /** Earliest date, inclusive (`YYYY-MM-DD`). */
  from?: string
  /** Latest date, inclusive (`YYYY-MM-DD`). */
  to?: string
  limit?: number
}

export interface LockOptions {
  /** Wait for the holder to let go (true) or fail at once (false, the default). */
  wait?: boolean
  /** How long to wait at most, in ms (default 30 000); then a `StoreError` naming the holder. */
  timeoutMs?: number
  /**
   * A held lock is refreshed every `ttlMs / 4`; one not refreshed for `ttlMs` (default
   * 120 000) is stale and may be broken. A lock whose holder is a dead pid on this host is
   * broken at once.
   */
  ttlMs?: number
  /** Shown to whoever finds the lock held (e.g. `wotd train`). */
  purpose?: string
  /** Poll interval while waiting, in ms (default 250). */
  pollMs?: number
}

export interface LockHolder {
  pid: number
  hostname: string
  /** ISO 8601. */
  acquiredAt: string
  purpose?: string
  /** Unique per acquisition. */
  token: string
}

export interface StoreLock {
  readonly name: string
  readonly holder: LockHolder
  /** True once a refresh found that someone else broke this lock (it was stale). */
  readonly lost: boolean
  /**
   * Confirms with the store that the lock is still ours (and refreshes it); a `StoreError`
   * naming the new holder when it was lost. Writers call it before every write.
   */
  check(): Promise<void>
  /** Lets go; idempotent. */
  release(): Promise<void>
}

/** Everything the pipeline keeps. See the module comment for the write-ordering contract. */
export interface Store extends CorpusStore {
  // runs
  /** Saves (replaces) a run document. Write its artifacts and semantic IDs first. */
  putRun(run: RunDoc): Promise<void>
  getRun(id: string): Promise<RunDoc | null>
  /** Runs, newest `createdAt` first (ties: larger id first). */
  listRuns(options?: ListRunsOptions): Promise<RunDoc[]>
  /** The newest run (optionally with the given status), or null. */
  latestRun(options?: Omit<ListRunsOptions, 'limit'>): Promise<RunDoc | null>
  /** Deletes the run document, then its semantic IDs (not its artifacts). */
  deleteRun(id: string): Promise<boolean>

  // semantic IDs
  /** Adds or replaces the codes of the given words of a run (idempotent). */
  putSemanticIds(runId: string, entries: Iterable<readonly [string, SemanticCodes]> | Map<string, SemanticCodes>): Promise<void>
  /** The codes of the given words (or of every word) of a run; missing words are absent. */
  getSemanticIds(runId: string, words?: readonly string[]): Promise<Map<string, SemanticCodes>>
  /** Deletes every semantic ID of a run; returns how many there were. */
  deleteSemanticIds(runId: string): Promise<number>

  // artifacts
  /** Saves (replaces) a named blob from bytes or a file; returns its size and sha256. */
  putArtifact(name: string, source: ArtifactSource, options?: PutArtifactOptions): Promise<ArtifactInfo>
  /** The blob's bytes, verified against its sha256 (`CorruptFileError` on mismatch), or null. */
  getArtifact(name: string, options?: GetArtifactOptions): Promise<Buffer | null>
  /**
   * Writes the blob to `path` (atomically; verified before it is moved into place, so a
   * corrupt blob never lands there), or returns null when there is none.
   */
  getArtifactToFile(name: string, path: string, options?: GetArtifactOptions): Promise<ArtifactInfo | null>
  /** The metadata, without reading (or verifying) the bytes. */
  statArtifact(name: string): Promise<ArtifactInfo | null>
  /** Artifacts whose names start with `prefix`, by name. */
  listArtifacts(prefix?: string): Promise<ArtifactInfo[]>
  deleteArtifact(name: string): Promise<boolean>

  // word-of-the-day history
  /** Saves the word of a user and date (one per user and date: a second put replaces it). */
  putHistory(entry: HistoryEntry): Promise<void>
  /** A user's entries in a date window, newest date first. */
  getHistory(user: string, query?: HistoryQuery): Promise<HistoryEntry[]>
  /**
   * `getHistory` for many users at once (one query where the backend can): every given user is
   * a key, with `[]` when they have none; `limit` applies per user.
   */
  getHistories(users: readonly string[], query?: HistoryQuery): Promise<Map<string, HistoryEntry[]>>

  /**
   * Saves the entry unless the user already has one for that date; returns the stored entry
   * (the new one, or the one that was there). Atomic: of concurrent callers exactly one writes.
   */
  putHistoryIfAbsent(entry: HistoryEntry): Promise<HistoryEntry>
  /** Deletes every history entry of a user; returns how many there were. */
  deleteHistory(user: string): Promise<number>

  // profiles (change them through `src/profile/`, which serialises writers per user)
  getProfile(user: string): Promise<ProfileDoc | null>
  /** Saves (replaces) a profile. */
  putProfile(doc: ProfileDoc): Promise<void>
  /**
   * Profiles in a stable order of the store's own (user name in memory and MongoDB, file name
   * on disk), after a cursor (the last user of the previous page): for streaming every profile.
   */
  listProfiles(options?: ListProfilesOptions): Promise<ProfileDoc[]>
  /** How many profiles there are (for progress over `listProfiles`). */
  countProfiles(): Promise<number>
  deleteProfile(user: string): Promise<boolean>

  // locks
  /**
   * Takes the named lock (e.g. `train`) so that two processes never write one store at the
   * same time. When it is held: fails at once with a `StoreError` naming the holder, or with
   * `wait`, waits up to `timeoutMs` and then fails the same way.
   */
  acquireLock(name: string, options?: LockOptions): Promise<StoreLock>
}

/** `style-complexity-era`: a cell's name in file names and ids. */
export function cellSlug(cell: Cell): string {
  return `${cell.style}-${cell.complexity}-${cell.era}`
}

/** Set ids and state keys are used as file names: letters, digits, `.`, `_`, `-` only. */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function checkId(kind: string, id: string): void {
  if (typeof id !== 'string' || !SAFE_ID.test(id)) {
    throw new InvalidInputError(`${kind} "${id}" may hold only letters, digits, ".", "_" and "-" (at most 128, not starting with a symbol)`)
  }
}

/**
 * Artifact names: `/`-separated segments, each a `SAFE_ID` (e.g. `runs/r1/codebooks.safetensors`),
 * at most 8 segments; a segment may not end in `.meta.json` or `.tmp` (the file store's own names).
 */
export function checkArtifactName(name: string): string[] {
  const parts = typeof name === 'string' ? name.split('/') : []
  if (parts.length === 0 || parts.length > 8 || !parts.every((p) => SAFE_ID.test(p) && !p.endsWith('.meta.json') && !p.endsWith('.tmp') && !p.endsWith('.lock'))) {
    throw new InvalidInputError(
      `artifact name "${name}" must be 1 to 8 "/"-separated parts of letters, digits, ".", "_" and "-" (not ending in .meta.json, .tmp or .lock)`,
    )
  }
  return parts
}

/** Longest user name. */
export const MAX_USER_LENGTH = 200

/**
 * A user name: 1 to 200 characters, no control characters. Any other text is a plain name:
 * stores never use it as a path or a query operator unescaped.
 */
export function checkUser(user: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof user !== 'string' || user.length === 0 || user.length > MAX_USER_LENGTH || /[\u0000-\u001f\u007f-\u009f]/.test(user)) {
    const shown = typeof user === 'string' && user.length > 60 ? `${JSON.stringify(user.slice(0, 40))}... (${user.length} characters)` : JSON.stringify(user)
    throw new InvalidInputError(`user name ${shown} must be 1 to ${MAX_USER_LENGTH} characters without control characters`)
  }
}

/** A calendar date `YYYY-MM-DD`. */
export function checkDate(kind: string, date: string): void {
  const m = typeof date === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(date) : null
  const d = m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])) : null
  if (!m || !d || d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3]) {
    throw new InvalidInputError(`${kind} ${JSON.stringify(date)} is not a date (YYYY-MM-DD)`)
  }
}

export function checkWord(word: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof word !== 'string' || word.length === 0 || word.length > 256 || /[\u0000-\u001f\u007f]/.test(word)) {
    throw new InvalidInputError(`word ${JSON.stringify(word)} must be 1 to 256 characters without control characters`)
  }
}

export function checkCodes(word: string, codes: unknown): SemanticCodes {
  if (!Array.isArray(codes) || codes.length === 0 || codes.length > 64 || !codes.every((c) => Number.isSafeInteger(c) && c >= 0)) {
    throw new InvalidInputError(`semantic ID of "${word}" must be 1 to 64 non-negative integers, got ${JSON.stringify(codes)}`)
  }
  return [...(codes as number[])]
}

export function checkLimit(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined
  if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidInputError(`limit must be a non-negative integer, got ${limit}`)
  return limit
}

/**
 * Checks that `value` is storable everywhere (JSON; keys without `.`, a leading `$` or NUL) and
 * returns its JSON copy, which is what every store keeps.
 */
export function toStorable<T>(what: string, value: T): T {
  let text: string
  try {
    text = JSON.stringify(value)
  } catch (err) {
    throw new InvalidInputError(`${what} is not JSON: ${(err as Error).message}`, { cause: err })
  }
  if (text === undefined) throw new InvalidInputError(`${what} is not JSON`)
  const copy = JSON.parse(text) as T
  const walk = (v: unknown, path: string, depth: number): void => {
    if (depth > 64) throw new InvalidInputError(`${what} is nested too deeply (at ${path})`)
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, depth + 1))
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('.') || k.startsWith('$') || k.includes('\u0000')) {
          throw new InvalidInputError(`${what}: key ${JSON.stringify(k)} at ${path || '(top)'} may not contain "." or NUL or start with "$"`)
        }
        walk(x, path ? `${path}.${k}` : k, depth + 1)
      }
    }
  }
  walk(copy, '', 0)
  return copy
}

const SHA256_HEX = /^[0-9a-f]{64}$/

export function checkRun(run: RunDoc): RunDoc {
  if (!run || typeof run !== 'object') throw new InvalidInputError('run must be an object')
  checkId('run id', run.id)
  if (!RUN_STATUSES.includes(run.status)) throw new InvalidInputError(`run ${run.id}: status ${JSON.stringify(run.status)} is not one of ${RUN_STATUSES.join(', ')}`)
  if (typeof run.configHash !== 'string' || run.configHash === '') throw new InvalidInputError(`run ${run.id}: configHash must be a non-empty string`)
  for (const f of ['createdAt', 'updatedAt'] as const) {
    if (typeof run[f] !== 'string' || Number.isNaN(Date.parse(run[f]))) throw new InvalidInputError(`run ${run.id}: ${f} must be an ISO 8601 time`)
  }
  if (!run.stages || typeof run.stages !== 'object' || Array.isArray(run.stages)) throw new InvalidInputError(`run ${run.id}: stages must be an object`)
  for (const [name, st] of Object.entries(run.stages)) {
    if (!st || !STAGE_STATUSES.includes(st.status)) throw new InvalidInputError(`run ${run.id}: stage ${name} has status ${JSON.stringify(st?.status)}`)
    for (const [role, ref] of Object.entries(st.artifacts ?? {})) {
      if (!ref || typeof ref.name !== 'string' || !SHA256_HEX.test(ref.sha256) || !Number.isSafeInteger(ref.size)) {
        throw new InvalidInputError(`run ${run.id}: stage ${name} artifact ${role} must be {name, sha256 (hex), size}`)
      }
      checkArtifactName(ref.name)
    }
  }
  return toStorable(`run ${run.id}`, run)
}

export function checkHistory(entry: HistoryEntry): HistoryEntry {
  if (!entry || typeof entry !== 'object') throw new InvalidInputError('history entry must be an object')
  checkUser(entry.user)
  checkDate('history date', entry.date)
  checkWord(entry.word)
  if (entry.runId !== undefined) checkId('run id', entry.runId)
  if (typeof entry.createdAt !== 'string' || Number.isNaN(Date.parse(entry.createdAt))) throw new InvalidInputError('history entry: createdAt must be an ISO 8601 time')
  return toStorable('history entry', entry)
}

export function checkProfile(doc: ProfileDoc): ProfileDoc {
  if (!doc || typeof doc !== 'object') throw new InvalidInputError('profile must be an object')
  if (doc.schema !== PROFILE_SCHEMA) throw new InvalidInputError(`profile schema must be ${PROFILE_SCHEMA}, got ${JSON.stringify(doc.schema)}`)
  checkUser(doc.user)
  for (const list of [doc.liked, doc.disliked]) {
    if (!Array.isArray(list)) throw new InvalidInputError('profile liked and disliked must be arrays')
    for (const f of list) {
      checkWord(f?.word)
      if (typeof f.at !== 'string' || Number.isNaN(Date.parse(f.at))) throw new InvalidInputError(`profile of ${JSON.stringify(doc.user)}: the time of "${f.word}" must be an ISO 8601 time`)
    }
  }
  if (!Number.isSafeInteger(doc.version) || doc.version < 0) throw new InvalidInputError('profile version must be a non-negative integer')
  if (doc.runId !== undefined) checkId('run id', doc.runId)
  return toStorable('profile', doc)
}

export function checkListProfiles(o: ListProfilesOptions = {}): ListProfilesOptions {
  if (o.after !== undefined) checkUser(o.after)
  checkLimit(o.limit)
  return o
}

export function checkHistoryQuery(q: HistoryQuery = {}): HistoryQuery {
  if (q.from !== undefined) checkDate('history from', q.from)
  if (q.to !== undefined) checkDate('history to', q.to)
  checkLimit(q.limit)
  return q
}

/** Normalizes the entries of `putSemanticIds` (validated, last one wins). */
export function semanticEntries(entries: Iterable<readonly [string, SemanticCodes]> | Map<string, SemanticCodes>): Map<string, SemanticCodes> {
  const out = new Map<string, SemanticCodes>()
  for (const [word, codes] of entries) {
    checkWord(word)
    out.set(word, checkCodes(word, codes))
  }
  return out
}

export function runMatches(r: RunDoc, o: ListRunsOptions): boolean {
  return (o.status === undefined || r.status === o.status) && (o.configHash === undefined || r.configHash === o.configHash)
}

/** Newest first: `createdAt` descending, then id descending. */
export function compareRunsNewestFirst(a: RunDoc, b: RunDoc): number {
  const ta = Date.parse(a.createdAt)
  const tb = Date.parse(b.createdAt)
  if (ta !== tb) return tb - ta
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}

export function historyInWindow(e: HistoryEntry, q: HistoryQuery): boolean {
  return (q.from === undefined || e.date >= q.from) && (q.to === undefined || e.date <= q.to)
}
