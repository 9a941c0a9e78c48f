/**
 * A synthetic training run in a temporary FileStore, laid out exactly as the pipeline writes
 * it, for the report tests: the lexicon corpus of the 12 default cells (100 words each), 384-d
 * embeddings (`runs/<id>/embeddings.f32`, little-endian f32 rows, and
 * `runs/<id>/embeddings.words.json`, the row order), aligned semantic IDs, and a run document
 * with realistic per-stage metrics, timings and artifact references. The vectors are made, not
 * embedded: a direction per style, complexity and era plus noise, so a PCA shows clusters.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { emptyUsage, lexiconByCell, loadLexicon } from '../src/corpus/index.js'
import { trainingConfig } from '../src/pipeline/config.js'
import { RunArtifacts } from '../src/pipeline/artifacts.js'
import { toMatrix } from '../src/embed/matrix.js'
import { FileStore, cellSlug, type ArtifactRef, type RunDoc, type StoredCorpus } from '../src/store/index.js'
import { COMPLEXITIES, DEFAULT_CELLS, ERAS, STYLES, type WOTDWord } from '../src/types.js'
import type { ReportModel } from '../src/report/index.js'

export const DIM = 384

const created: string[] = []

/** A fresh temporary folder, removed by `removeTempDirs`. */
export async function tempDir(prefix = 'wotd-report-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  created.push(dir)
  return dir
}

/** Removes every folder made by `tempDir` and `makeSyntheticRun` in this process. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(created.splice(0).map((d) => rm(d, { recursive: true, force: true })))
}

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())
}

function direction(r: () => number): Float64Array {
  const v = new Float64Array(DIM)
  for (let i = 0; i < DIM; i++) v[i] = gaussian(r) / Math.sqrt(DIM)
  return v
}

export type FixtureStage = 'corpus' | 'embed' | 'rvq' | 'dsl'

export interface FixtureOptions {
  /** The last stage the run has (earlier ones completed); default `dsl`. */
  upTo?: FixtureStage
  /** Status of the last stage when `upTo` is not `dsl` (default `running`). */
  lastStatus?: 'running' | 'failed' | 'completed'
  /** Words per cell (default 100). */
  perCell?: number
  /** Extra fields merged into the run document (e.g. a hostile `error`). */
  patch?: Partial<RunDoc>
}

export interface Fixture {
  dir: string
  store: FileStore
  runId: string
  run: RunDoc
  words: WOTDWord[]
}

function ref(info: { name: string; sha256: string; size: number }): ArtifactRef {
  return { name: info.name, sha256: info.sha256, size: info.size }
}

export async function makeSyntheticRun(opts: FixtureOptions = {}): Promise<Fixture> {
  const dir = await tempDir()
  const store = new FileStore({ dir })
  const order: FixtureStage[] = ['corpus', 'embed', 'rvq', 'dsl']
  const upTo = order.indexOf(opts.upTo ?? 'dsl')
  const has = (s: FixtureStage) => order.indexOf(s) <= upTo
  const statusOf = (s: FixtureStage) => (order.indexOf(s) < upTo || upTo === 3 ? 'completed' : (opts.lastStatus ?? 'running'))
  const perCell = opts.perCell ?? 100
  const r = rng(42)
  const setId = 'lexicon-seed42'
  const runId = 'run-20261125-010203-5f3a9c1e-ab12'
  const t = (min: number) => new Date(Date.UTC(2026, 10, 25, 1, 2, 3) + min * 60_000).toISOString()

  // Stage 1: the corpus, per cell.
  const byCell = lexiconByCell(loadLexicon())
  const words: WOTDWord[] = []
  const seen = new Set<string>()
  for (const cell of DEFAULT_CELLS) {
    const entries = (byCell.get(`${cell.style}/${cell.complexity}/${cell.era}`) ?? []).filter((e) => !seen.has(e.word)).slice(0, perCell)
    const cellWords = entries.map((e) => ({ ...e, source: 'lexicon' }) as WOTDWord)
    cellWords.forEach((w) => seen.add(w.word))
    words.push(...cellWords)
    const doc: StoredCorpus = {
      schema: 1,
      id: `${setId}/${cellSlug(cell)}`,
      setId,
      cell,
      status: 'complete',
      target: perCell,
      provider: { name: 'lexicon' },
      seed: 42,
      words: cellWords,
      usage: emptyUsage(),
      createdAt: t(0),
      updatedAt: t(0),
    }
    await store.putCorpus(doc)
  }

  const stages: RunDoc['stages'] = {
    corpus: {
      status: statusOf('corpus'),
      inputHash: '0f1e2d3c4b5a6978',
      metrics: { words: words.length, cells: DEFAULT_CELLS.length, setId, provider: 'lexicon', wordsHash: 'a1b2c3d4e5f60718', usage: emptyUsage() },
      timings: { total: 412 },
      startedAt: t(0),
      finishedAt: t(0.01),
    },
  }

  // Stage 2: embeddings, as `runEmbedStage` writes them.
  const dirs = {
    style: STYLES.map(() => direction(r)),
    complexity: COMPLEXITIES.map(() => direction(r)),
    era: ERAS.map(() => direction(r)),
  }
  const vectors = words.map((w) => {
    const v = new Float32Array(DIM)
    const s = dirs.style[STYLES.indexOf(w.style)]
    const c = dirs.complexity[COMPLEXITIES.indexOf(w.complexity)]
    const e = dirs.era[ERAS.indexOf(w.era)]
    let norm = 0
    for (let i = 0; i < DIM; i++) {
      v[i] = 1.0 * s[i] + 0.75 * c[i] + 0.55 * e[i] + (0.9 * gaussian(r)) / Math.sqrt(DIM)
      norm += v[i] * v[i]
    }
    norm = Math.sqrt(norm)
    for (let i = 0; i < DIM; i++) v[i] /= norm
    return v
  })
  if (has('embed')) {
    // Written as the embed stage writes it, so the report reads what a real run leaves.
    const artifacts = await new RunArtifacts(store, { id: runId, stages }).putEmbeddings({ words: words.map((w) => w.word), embeddings: toMatrix(vectors) }, 'sentence-transformers/all-MiniLM-L6-v2')
    stages.embed = {
      status: statusOf('embed'),
      inputHash: '1a2b3c4d5e6f7081',
      metrics: { words: words.length, model: 'sentence-transformers/all-MiniLM-L6-v2', dimension: DIM, pooling: 'mean', cacheHits: 0, cacheMisses: words.length },
      timings: { total: 2331 },
      artifacts,
      startedAt: t(0.01),
      finishedAt: t(0.05),
    }
  }

  // Stage 3: aligned semantic IDs (codes 8k..8k+7 of levels 0-2 belong to value k).
  if (has('rvq')) {
    const skew = () => Math.min(7, Math.floor(8 * r() ** 1.6))
    const ids = words.map((w) => [
      STYLES.indexOf(w.style) * 8 + skew(),
      COMPLEXITIES.indexOf(w.complexity) * 8 + skew(),
      ERAS.indexOf(w.era) * 8 + skew(),
      Math.min(31, Math.floor(32 * r() ** 1.3)),
    ])
    await store.putSemanticIds(
      runId,
      words.map((w, i) => [w.word, ids[i]] as const),
    )
    const codebook = await store.putArtifact(`runs/${runId}/rvq/codebooks.safetensors`, Buffer.from('synthetic codebooks'))
    stages.rvq = {
      status: statusOf('rvq'),
      inputHash: '2b3c4d5e6f708192',
      metrics: {
        utilisation: [0, 1, 2, 3].map((l) => new Set(ids.map((c) => c[l])).size / 32),
        perplexity: [0, 1, 2, 3].map((l) => {
          const counts = new Map<number, number>()
          for (const c of ids) counts.set(c[l], (counts.get(c[l]) ?? 0) + 1)
          const h = [...counts.values()].reduce((a, n) => a - (n / ids.length) * Math.log(n / ids.length), 0)
          return Math.exp(h) / 32
        }),
        reconstruction: [
          { levels: 1, mean: 0.71, p10: 0.58 },
          { levels: 2, mean: 0.8, p10: 0.69 },
          { levels: 3, mean: 0.86, p10: 0.77 },
          { levels: 4, mean: 0.91, p10: 0.85 },
        ],
        collisionRate3: 0.93,
        collisionRate4: 0.31,
        locality: 0.88,
        labelAccuracy: [1, 1, 1],
        nmi: [
          [0.92, 0.05, 0.04],
          [0.06, 0.9, 0.05],
          [0.04, 0.05, 0.91],
          [0.02, 0.02, 0.03],
        ],
      },
      timings: { total: 1874 },
      artifacts: { 'rvq/codebooks': ref(codebook) },
      startedAt: t(0.05),
      finishedAt: t(0.08),
    }
  }

  // Stage 4: the LM's losses, per step and per evaluation.
  if (has('dsl')) {
    const losses = Array.from({ length: 240 }, (_, i) => 0.62 + 2.9 * Math.exp(-i / 38) + 0.08 * Math.sin(i * 1.7) * Math.exp(-i / 120) + 0.05 * (r() - 0.5))
    const valLosses = [40, 80, 120, 160, 200, 240].map((step) => ({ step, loss: 0.8 + 2.4 * Math.exp(-step / 45) + 0.02 * (step / 240) }))
    const adapter = await store.putArtifact(`runs/${runId}/adapter/adapter_model.safetensors`, Buffer.from('synthetic adapter'))
    stages.dsl = {
      status: 'completed',
      inputHash: '3c4d5e6f708192a3',
      metrics: {
        baseModel: 'HuggingFaceTB/SmolLM2-135M',
        steps: 240,
        totalSteps: 240,
        finalLoss: losses[losses.length - 1],
        bestValLoss: Math.min(...valLosses.map((v) => v.loss)),
        bestStep: 240,
        stopped: 'completed',
        tokensPerSecond: 1843.2,
        trainExamples: 864,
        validationExamples: 96,
        trainTokens: 142_560,
        losses,
        valLosses,
      },
      timings: { total: 512_345 },
      artifacts: { 'adapter/adapter_model': ref(adapter) },
      startedAt: t(0.08),
      finishedAt: t(8.6),
    }
  }

  const done = upTo === 3
  const run: RunDoc = {
    schema: 1,
    id: runId,
    config: trainingConfig({ corpus: { provider: 'lexicon' } }),
    configHash: '5f3a9c1e77d0b2a4',
    status: done ? 'completed' : opts.lastStatus === 'failed' ? 'failed' : 'running',
    stages,
    createdAt: t(0),
    updatedAt: t(done ? 8.6 : 1),
    ...opts.patch,
  }
  await store.putRun(run)
  return { dir, store, runId, run, words }
}

/** A stand-in for `WOTDModel`: made-up LM words (some new, some from the corpus) and a baseline. */
export function fakeModel(words: WOTDWord[]): ReportModel & { calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    async generateWordsFromId(pattern: string, opts: { count?: number } = {}) {
      calls.push(pattern)
      const n = opts.count ?? 10
      const h = [...pattern].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7)
      const lm = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? words[(h + i * 97) % words.length].word : `${words[(h + i * 13) % words.length].word.slice(0, 4)}ence`))
      const baseline = Array.from({ length: n }, (_, i) => words[(h + i * 41) % words.length].word)
      return { words: lm, baseline, msPerWord: 23.5 }
    },
  }
}
