/**
 * The inference API over a trained run: patterns -> words (the LM, with the retrieval
 * baseline beside it), liked words -> ID -> recommendations, and a word of the day.
 * `WOTDModel.open()` loads the newest completed run of the store (or a named one); models and
 * artifacts are loaded lazily, on first use.
 */
import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { BGEEmbedder } from '../embed/index.js'
import { InvalidInputError, StoreError } from '../errors.js'
import { parsePattern, formatPattern, preferenceToId, toPatternText, type SemanticEncoder, type SemanticId } from '../semantic/index.js'
import { openStore, type RunDoc, type Store } from '../store/index.js'
import type { TrainingConfig } from './config.js'
import { COMPLEXITIES, ERAS, STYLES } from '../types.js'
import { retrieveWords, type KnownWord } from './retrieval.js'
import { unpackVectors } from './stages/embed.js'
import { loadRunEncoder } from './stages/rvq.js'
import { runWorkDir } from './workdir.js'
import { WordGenerator } from '../dsl/index.js'

export interface GenerateOptions {
  count?: number
  temperature?: number
  topP?: number
  topK?: number
  seed?: number
  /** Leave out words of the training corpora. */
  novelOnly?: boolean
  /** Only ever produce words from this list (constrained decoding by a token trie). */
  vocabulary?: string[]
}

export interface GenerationResult {
  pattern: string
  words: string[]
  /** The nearest-neighbour retrieval baseline for the same pattern. */
  baseline: string[]
  msPerWord: number
}

export interface WordOfTheDay {
  user: string
  date: string
  word: string
  pattern: string
  source: 'lm' | 'retrieval'
  runId: string
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

function seedOf(...parts: string[]): number {
  return createHash('sha256').update(parts.join('\u0000')).digest().readUInt32LE(0) & 0x7fffffff
}

function daysBefore(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() - days)
  return d.toISOString().slice(0, 10)
}

export class WOTDModel {
  private encoderP?: Promise<SemanticEncoder>
  private embedderP?: Promise<BGEEmbedder>
  private knownP?: Promise<KnownWord[]>
  private generatorP?: Promise<WordGenerator>

  private constructor(
    readonly store: Store,
    readonly run: RunDoc,
    private readonly ownsStore: boolean,
  ) {}

  /** The newest completed run of the store, or the named one. */
  static async open(opts: { store?: string | Store; runId?: string } = {}): Promise<WOTDModel> {
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
      return new WOTDModel(store, run, owns)
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

  private workDir(): string {
    return runWorkDir(this.run.id)
  }

  encoder(): Promise<SemanticEncoder> {
    this.encoderP ??= loadRunEncoder({ store: this.store, workDir: this.workDir() }, this.run.stages.rvq?.artifacts ?? {})
    return this.encoderP
  }

  embedder(): Promise<BGEEmbedder> {
    const model = String((this.run.stages.embed?.metrics as { model?: string } | undefined)?.model ?? this.config.profile)
    this.embedderP ??= BGEEmbedder.load(model)
    return this.embedderP
  }

  /** The training words with their vectors and IDs (for the retrieval baseline and novelty). */
  known(): Promise<KnownWord[]> {
    this.knownP ??= (async () => {
      const arts = this.run.stages.embed?.artifacts ?? {}
      const read = async (role: string) => {
        const ref = arts[role]
        const buf = ref ? await this.store.getArtifact(ref.name, { sha256: ref.sha256 }) : null
        if (!buf) throw new StoreError(`run ${this.run.id}: its ${role} artifact is missing from ${this.store.location}`)
        return buf
      }
      const [vecBuf, wordsBuf, enc] = await Promise.all([read('embeddings'), read('words'), this.encoder()])
      const words = JSON.parse(wordsBuf.toString('utf8')) as string[]
      const vectors = unpackVectors(vecBuf, enc.dimension)
      const ids = await this.store.getSemanticIds(this.run.id)
      return words.map((word, i) => ({ word, vector: vectors[i], id: (ids.get(word) ?? enc.encode(vectors[i])) as SemanticId }))
    })()
    return this.knownP
  }

  generator(): Promise<WordGenerator> {
    this.generatorP ??= (async () => {
      const dir = join(this.workDir(), 'adapter')
      await mkdir(dir, { recursive: true })
      for (const [role, ref] of Object.entries(this.run.stages.dsl?.artifacts ?? {})) {
        // The adapter, and the prompt settings it was trained with (`dsl_prompt.json`).
        if (!role.startsWith('adapter_') && !role.startsWith('dsl_')) continue
        await this.store.getArtifactToFile(ref.name, join(dir, basename(ref.name)), { sha256: ref.sha256 })
      }
      const base = String((this.run.stages.dsl?.metrics as { baseModel?: string } | undefined)?.baseModel ?? '')
      // Prompts must read exactly as in training: aligned runs name the attribute values.
      return WordGenerator.load({
        baseModel: base,
        adapterDir: dir,
        // f32: batched sampling (a row per wanted word) is faster in f32 than in candle's Q8_0 here.
        quantize: 'f32',
        aligned: this.config.rvq.mode === 'aligned',
        attributeNames: ['style', 'complexity', 'era'],
        attributeValues: [[...STYLES], [...COMPLEXITIES], [...ERAS]],
      })
    })()
    return this.generatorP
  }

  /** "modern / beautiful / shakespearean / variation 5" for aligned runs. */
  async describe(pattern: string | readonly (number | null)[]): Promise<string> {
    return (await this.encoder()).describe(pattern)
  }

  /** The semantic ID of each word (training words from the store, others embedded and encoded). */
  async encode(words: string[]): Promise<{ word: string; id: SemanticId; known: boolean }[]> {
    const cleaned = words.map((w) => w.trim().toLowerCase()).filter((w) => w.length > 0)
    if (cleaned.length === 0) throw new InvalidInputError('no words given: pass at least one word')
    const stored = await this.store.getSemanticIds(this.run.id, cleaned)
    const missing = cleaned.filter((w) => !stored.has(w))
    const fresh = new Map<string, SemanticId>()
    if (missing.length) {
      const [emb, enc] = await Promise.all([this.embedder(), this.encoder()])
      const vecs = await emb.embed(missing)
      enc.encodeMany(vecs).forEach((id, i) => fresh.set(missing[i], id))
    }
    return cleaned.map((w) => ({ word: w, id: (stored.get(w) ?? fresh.get(w)) as SemanticId, known: stored.has(w) }))
  }

  /** Liked words -> one preference vector -> one ID. */
  async preferenceToId(words: string[]): Promise<SemanticId> {
    const [emb, enc] = await Promise.all([this.embedder(), this.encoder()])
    return preferenceToId(words, emb, enc)
  }

  /** The retrieval baseline alone. */
  async retrieve(pattern: string, count = 10): Promise<string[]> {
    const p = parsePattern(pattern)
    return retrieveWords(await this.encoder(), await this.known(), p.fields, count)
  }

  async generateWordsFromId(pattern: string | readonly (number | null)[], opts: GenerateOptions = {}): Promise<GenerationResult> {
    const p = parsePattern(toPatternText(pattern))
    const count = opts.count ?? 10
    if (!Number.isInteger(count) || count < 1 || count > 200) throw new InvalidInputError(`count must be an integer 1-200, got ${count}`)
    const known = await this.known()
    const gen = await this.generator()
    const r = await gen.generate(p.text, {
      count,
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK,
      seed: opts.seed,
      novelOnly: opts.novelOnly,
      trainingWords: opts.novelOnly ? known.map((k) => k.word) : undefined,
      vocabulary: opts.vocabulary,
    })
    const baseline = retrieveWords(await this.encoder(), known, p.fields, count)
    return { pattern: p.text, words: r.words.slice(0, count), baseline, msPerWord: r.msPerWord }
  }

  /** Liked words -> their ID -> new words of the same style, complexity and era. */
  async recommend(likedWords: string[], opts: GenerateOptions = {}): Promise<GenerationResult & { id: SemanticId }> {
    const id = await this.preferenceToId(likedWords)
    const liked = new Set(likedWords.map((w) => w.trim().toLowerCase()))
    const r = await this.generateWordsFromId([id[0], id[1], id[2], null], { novelOnly: true, ...opts, count: (opts.count ?? 10) + liked.size })
    const count = opts.count ?? 10
    return { ...r, id, words: r.words.filter((w) => !liked.has(w)).slice(0, count), baseline: r.baseline.filter((w) => !liked.has(w)).slice(0, count) }
  }

  /**
   * The word of the day for a user and date: the same answer every time it is asked (it is
   * kept in the store's history), and no word repeats within `windowDays`.
   */
  async wordOfTheDay(opts: { user: string; date: string; windowDays?: number; likedWords?: string[] }): Promise<WordOfTheDay> {
    const user = opts.user?.trim()
    if (!user) throw new InvalidInputError('user must be a non-empty name')
    const date = parseDate(opts.date)
    const windowDays = opts.windowDays ?? 30
    if (!Number.isInteger(windowDays) || windowDays < 0 || windowDays > 3650) throw new InvalidInputError(`windowDays must be an integer 0-3650, got ${windowDays}`)
    const history = await this.store.getHistory(user, { from: daysBefore(date, windowDays), to: date })
    const today = history.find((h) => h.date === date)
    if (today) return { user, date, word: today.word, pattern: String(today.meta?.pattern ?? ''), source: (today.meta?.source as 'lm' | 'retrieval') ?? 'lm', runId: today.runId ?? this.run.id }

    const recent = new Set(history.map((h) => h.word))
    const seed = seedOf(user, date)
    const known = await this.known()
    // The user's region: their liked words when given, else a stable anchor word for the user.
    const id: SemanticId = opts.likedWords?.length ? await this.preferenceToId(opts.likedWords) : known[seedOf(user) % known.length].id
    const fields = [id[0], id[1], id[2], null]
    const pattern = formatPattern(fields)
    let word: string | undefined
    let source: 'lm' | 'retrieval' = 'lm'
    const lm = await this.generateWordsFromId(pattern, { count: 12, seed, temperature: 0.9 })
    word = lm.words.find((w) => !recent.has(w))
    if (!word) {
      source = 'retrieval'
      word = retrieveWords(await this.encoder(), known, fields, known.length).find((w) => !recent.has(w))
    }
    if (!word) throw new InvalidInputError(`every candidate word for ${user} was used in the last ${windowDays} days; use a shorter window`)
    await this.store.putHistory({ user, date, word, runId: this.run.id, meta: { pattern, source }, createdAt: new Date().toISOString() })
    return { user, date, word, pattern, source, runId: this.run.id }
  }

  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close()
  }
}

/** One-shot convenience: open the newest (or named) run, generate, close. */
export async function generateWordsFromId(
  pattern: string | readonly (number | null)[],
  opts: GenerateOptions & { store?: string | Store; runId?: string } = {},
): Promise<GenerationResult> {
  const m = await WOTDModel.open({ store: opts.store, runId: opts.runId })
  try {
    return await m.generateWordsFromId(pattern, opts)
  } finally {
    await m.close()
  }
}
