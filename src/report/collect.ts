/**
 * Gathers what the report shows from a run document and the store (semantic IDs, the
 * embeddings artifact, the corpus) and, when the run's models load, from `WOTDModel`. Every
 * part is a `Section`: its data, or why it is not available, so a half-finished run still
 * gives a report.
 */
import { join } from 'node:path'
import { packageRoot } from '../corpus/lexicon.js'
import { rows } from '../embed/matrix.js'
import { InvalidInputError, StoreError } from '../errors.js'
import { RunArtifacts, type RunEmbeddings } from '../pipeline/artifacts.js'
import { rankRegion } from '../recommend/index.js'
import type { RunDoc, Store } from '../store/index.js'
import { COMPLEXITIES, ERAS, STYLES } from '../types.js'
import { readBenchmarks, type BenchmarkResults } from './benchmarks.js'
import type { CodeCell, LossPoint, TimingRow } from './charts.js'
import { pca } from './pca.js'

export type Section<T> = { ok: true; value: T } | { ok: false; why: string }

const ok = <T>(value: T): Section<T> => ({ ok: true, value })
const na = <T>(why: string): Section<T> => ({ ok: false, why })

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]
}

/** What the report needs of a loaded model (`WOTDModel` fits; tests may pass a stand-in). */
export interface ReportModel {
  generateWordsFromId(pattern: string, opts?: { count?: number; seed?: number }): Promise<{ words: string[]; baseline: string[]; msPerWord: number }>
  close?(): Promise<void>
}

export const STAGE_ORDER = ['corpus', 'embed', 'rvq', 'catalogue', 'dsl'] as const
export const ATTRIBUTES = [
  { name: 'style', values: STYLES as readonly string[] },
  { name: 'complexity', values: COMPLEXITIES as readonly string[] },
  { name: 'era', values: ERAS as readonly string[] },
] as const
export type AttributeName = (typeof ATTRIBUTES)[number]['name']

export interface StageRow {
  name: string
  status: string
  ms?: number
  timings: Record<string, number>
  startedAt?: string
  finishedAt?: string
  error?: string
  scalars: [string, string][]
}

export interface ProjectionData {
  points: { x: number; y: number; style: string; complexity: string; era: string }[]
  explained: number[]
  words: number
  dimension: number
  /** Where the colours come from, in words. */
  labelSource: string | null
  ms: number
}

export interface SampleRow {
  pattern: string
  /** `style / complexity / era` for aligned runs. */
  description: string | null
  /** Training words with this prefix. */
  members: number
  lm: string[] | null
  baseline: string[] | null
  msPerWord: number | null
}

export interface SamplesData {
  rows: SampleRow[]
  /** Why the LM column is empty, when it is. */
  lmWhy: string | null
  /** Why the baseline column is empty, when it is. */
  baselineWhy: string | null
  lmModel: string | null
  /** Training words, to mark generated words that are not new. */
  known: Set<string>
}

export interface ReportData {
  run: RunDoc
  /** How the run was chosen. */
  chosen: string
  store: { kind: string; location: string }
  generatedAt: string
  stages: StageRow[]
  timings: Section<TimingRow[]>
  losses: Section<{ points: LossPoint[]; steps: number; validations: number }>
  dslSummary: Section<[string, string][]>
  codebooks: Section<{ cells: CodeCell[]; words: number; levels: { level: number; used: number; perplexity: number; top: number }[] }>
  rvqScorecard: Section<{ headers: string[]; rows: string[][] }>
  projection: Section<ProjectionData>
  samples: Section<SamplesData>
  benchmarks: Section<BenchmarkResults>
}

export interface CollectOptions {
  store: Store
  runId?: string
  /** A loaded model for the sample generations; `false` for the baseline only; default: open the run's. */
  model?: ReportModel | false
  /** How many ID patterns the sample grid has (default 12). */
  samples?: number
  /** Words per pattern (default 8). */
  wordsPerSample?: number
  /** Where `*.json` benchmark results are read (default `./benchmark/results`, else the package's). */
  benchmarkDir?: string
  /** At most this many points per projection plot (default 2500; PCA still uses every word). */
  maxPoints?: number
}

function fmtScalar(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(4))
  if (typeof v === 'string') return v
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (v === null) return '—'
  return JSON.stringify(v)
}

async function pickRun(store: Store, runId?: string): Promise<{ run: RunDoc; chosen: string }> {
  if (runId) {
    const run = await store.getRun(runId)
    if (!run) throw new InvalidInputError(`unknown run id ${JSON.stringify(runId)}; list runs with \`wotd runs list\``)
    return { run, chosen: 'named on the command line' }
  }
  const done = await store.latestRun({ status: 'completed' })
  if (done) return { run: done, chosen: 'the newest completed run' }
  const any = await store.latestRun()
  if (any) return { run: any, chosen: `the newest run (no run in this store has completed; this one is ${any.status})` }
  throw new InvalidInputError(`no training run in ${store.location}; run \`npx wotd train\` first`)
}

function stageRows(run: RunDoc): StageRow[] {
  const names = [...STAGE_ORDER.filter((s) => run.stages[s]), ...Object.keys(run.stages).filter((s) => !(STAGE_ORDER as readonly string[]).includes(s))]
  return names.map((name) => {
    const s = run.stages[name]
    const scalars = Object.entries(s.metrics ?? {})
      .filter(([, v]) => v === null || typeof v !== 'object')
      .map(([k, v]) => [k, fmtScalar(v)] as [string, string])
    return { name, status: s.status, ms: s.timings?.total, timings: s.timings ?? {}, startedAt: s.startedAt, finishedAt: s.finishedAt, error: s.error, scalars }
  })
}

function timingsOf(stages: StageRow[]): Section<TimingRow[]> {
  const rows = stages.filter((s) => typeof s.ms === 'number' && Number.isFinite(s.ms)).map((s) => ({ stage: s.name, seconds: (s.ms as number) / 1000, status: s.status }))
  if (rows.length === 0) return na(stages.length ? 'no stage of this run has finished yet, so none has a recorded time' : 'this run has no stages yet')
  return ok(rows)
}

function lossesOf(run: RunDoc): Section<{ points: LossPoint[]; steps: number; validations: number }> {
  const dsl = run.stages.dsl
  if (!dsl) return na('this run has no dsl stage yet (the LM is trained in the last stage)')
  const m = (dsl.metrics ?? {}) as { losses?: unknown; valLosses?: unknown }
  const losses = Array.isArray(m.losses) ? m.losses.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)) : []
  const vals = Array.isArray(m.valLosses)
    ? (m.valLosses as unknown[]).filter((v): v is { step: number; loss: number } => !!v && typeof v === 'object' && Number.isFinite((v as { step: number }).step) && Number.isFinite((v as { loss: number }).loss))
    : []
  if (losses.length === 0 && vals.length === 0) {
    return na(dsl.status === 'completed' ? 'the dsl stage recorded no losses' : `the dsl stage is ${dsl.status}${dsl.error ? ` (${dsl.error})` : ''}; its losses are recorded when it finishes`)
  }
  const points: LossPoint[] = [
    ...losses.map((loss, i) => ({ step: i + 1, loss, series: 'training' as const })),
    ...vals.map((v) => ({ step: v.step, loss: v.loss, series: 'validation' as const })),
  ]
  return ok({ points, steps: losses.length, validations: vals.length })
}

function dslSummaryOf(run: RunDoc): Section<[string, string][]> {
  const dsl = run.stages.dsl
  if (!dsl?.metrics) return na(dsl ? `the dsl stage is ${dsl.status}` : 'this run has no dsl stage yet')
  const keys = ['baseModel', 'steps', 'totalSteps', 'stopped', 'finalLoss', 'bestValLoss', 'bestStep', 'tokensPerSecond', 'trainExamples', 'validationExamples', 'trainTokens']
  const rows = keys.filter((k) => k in dsl.metrics!).map((k) => [k, fmtScalar(dsl.metrics![k])] as [string, string])
  return rows.length ? ok(rows) : na('the dsl stage recorded no summary metrics')
}

function rvqScorecardOf(run: RunDoc): Section<{ headers: string[]; rows: string[][] }> {
  const rvq = run.stages.rvq
  if (!rvq?.metrics) return na(rvq ? `the rvq stage is ${rvq.status}` : 'this run has no rvq stage yet')
  const m = rvq.metrics as {
    utilisation?: number[]
    perplexity?: number[]
    reconstruction?: { levels: number; mean: number; p10: number }[]
    nmi?: (number[] | Record<string, number>)[] | null
    labelAccuracy?: number[] | null
    collisionRate3?: number
    collisionRate4?: number
    locality?: number
  }
  const f = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '—')
  const headers = ['metric', 'level 0', 'level 1', 'level 2', 'level 3']
  const rows: string[][] = []
  const perLevel = (name: string, xs: unknown) => {
    if (Array.isArray(xs)) rows.push([name, ...[0, 1, 2, 3].map((i) => f(xs[i]))])
  }
  perLevel('utilisation (codes used / 32)', m.utilisation)
  perLevel('normalised perplexity exp(H)/32', m.perplexity)
  if (Array.isArray(m.reconstruction)) {
    perLevel('reconstruction cosine, mean (levels 0..l)', m.reconstruction.map((r) => r?.mean))
    perLevel('reconstruction cosine, p10 (levels 0..l)', m.reconstruction.map((r) => r?.p10))
  }
  if (Array.isArray(m.nmi)) {
    ATTRIBUTES.forEach((a, ai) =>
      perLevel(
        `NMI with ${a.name}`,
        (m.nmi as (number[] | Record<string, number>)[]).map((lv) => (Array.isArray(lv) ? lv[ai] : lv?.[a.name])),
      ),
    )
  }
  const single = (name: string, v: unknown) => rows.push([name, f(v), '', '', ''])
  if (Array.isArray(m.labelAccuracy)) ATTRIBUTES.forEach((a, i) => single(`label accuracy: code >> 3 vs ${a.name} (level ${i})`, m.labelAccuracy![i]))
  if (m.collisionRate3 !== undefined) single('collision rate, 3 levels', m.collisionRate3)
  if (m.collisionRate4 !== undefined) single('collision rate, 4 levels', m.collisionRate4)
  if (m.locality !== undefined) single('locality (nearest neighbour shares level 0)', m.locality)
  return rows.length ? ok({ headers, rows }) : na('the rvq stage recorded no metrics')
}

function codebooksOf(ids: Map<string, number[]>, why: string | null): ReportData['codebooks'] {
  if (why) return na(why)
  if (ids.size === 0) return na('the store holds no semantic IDs for this run (they are written by the rvq stage)')
  const counts = [0, 1, 2, 3].map(() => new Array<number>(32).fill(0))
  for (const codes of ids.values()) codes.slice(0, 4).forEach((c, l) => c >= 0 && c < 32 && counts[l][c]++)
  const cells: CodeCell[] = []
  counts.forEach((row, l) => row.forEach((count, code) => cells.push({ level: `level ${l}`, code, count })))
  const levels = counts.map((row, level) => {
    const total = row.reduce((a, b) => a + b, 0)
    const h = row.reduce((acc, c) => (c > 0 ? acc - (c / total) * Math.log(c / total) : acc), 0)
    return { level, used: row.filter((c) => c > 0).length, perplexity: total ? Math.exp(h) / 32 : 0, top: Math.max(...row) }
  })
  return ok({ cells, words: ids.size, levels })
}

async function loadEmbeddings(store: Store, run: RunDoc): Promise<Section<RunEmbeddings>> {
  const embed = run.stages.embed
  if (!embed) return na('this run has no embed stage yet')
  try {
    const value = await new RunArtifacts(store, run).embeddings()
    if (value.words.length === 0) return na('the embeddings artifact holds no words')
    return ok(value)
  } catch (err) {
    if (err instanceof StoreError && embed.status !== 'completed') return na(`the embed stage is ${embed.status}; its vectors are saved when it finishes`)
    if (err instanceof StoreError) return na(`the embeddings artifact of run ${run.id} is missing from the store`)
    return na(`the embeddings could not be read: ${message(err)}`)
  }
}

/** Each word's (style, complexity, era): from the run's corpus, else from aligned semantic IDs. */
async function wordLabels(store: Store, run: RunDoc, ids: Map<string, number[]>): Promise<{ labels: Map<string, [string, string, string]>; source: string | null }> {
  const setId = (run.stages.corpus?.metrics as { setId?: unknown } | undefined)?.setId
  if (typeof setId === 'string' && setId) {
    try {
      const corpora = await store.listCorpora(setId)
      const labels = new Map<string, [string, string, string]>()
      for (const c of corpora) for (const w of c.words) labels.set(w.word, [w.style, w.complexity, w.era])
      if (labels.size) return { labels, source: `the corpus (${setId})` }
    } catch {
      // fall through to the IDs
    }
  }
  const mode = (run.config as { rvq?: { mode?: string } } | undefined)?.rvq?.mode
  if (mode !== 'unsupervised' && ids.size) {
    const labels = new Map<string, [string, string, string]>()
    for (const [w, c] of ids) labels.set(w, [STYLES[c[0] >> 3] ?? 'unknown', COMPLEXITIES[c[1] >> 3] ?? 'unknown', ERAS[c[2] >> 3] ?? 'unknown'])
    return { labels, source: 'the semantic IDs (aligned mode: code >> 3 names the value)' }
  }
  return { labels: new Map(), source: null }
}

function projectionOf(emb: Section<RunEmbeddings>, labels: Map<string, [string, string, string]>, labelSource: string | null, maxPoints: number): Section<ProjectionData> {
  if (!emb.ok) return emb
  const { words, embeddings } = emb.value
  const dimension = embeddings.dim
  if (words.length < 3) return na(`a projection needs at least 3 words; the run has ${words.length}`)
  const t0 = performance.now()
  const r = pca(rows(embeddings), 2)
  const ms = performance.now() - t0
  const stride = Math.max(1, Math.ceil(words.length / maxPoints))
  const points: ProjectionData['points'] = []
  for (let i = 0; i < words.length; i += stride) {
    const l = labels.get(words[i])
    points.push({ x: r.points[i][0], y: r.points[i][1], style: l?.[0] ?? 'unknown', complexity: l?.[1] ?? 'unknown', era: l?.[2] ?? 'unknown' })
  }
  return ok({ points, explained: r.explained, words: words.length, dimension, labelSource, ms })
}

/** The grid of ID patterns: the most populated 3-level prefixes, spread over distinct regions first. */
export function samplePatterns(ids: Map<string, number[]>, n: number, aligned: boolean): { fields: [number, number, number]; members: number }[] {
  const counts = new Map<string, { fields: [number, number, number]; members: number }>()
  for (const c of ids.values()) {
    const key = `${c[0]},${c[1]},${c[2]}`
    const e = counts.get(key) ?? { fields: [c[0], c[1], c[2]] as [number, number, number], members: 0 }
    e.members++
    counts.set(key, e)
  }
  const byCount = [...counts.values()].sort((a, b) => b.members - a.members || (a.fields.join(',') < b.fields.join(',') ? -1 : 1))
  const region = (f: number[]) => (aligned ? f.map((x) => x >> 3).join(',') : String(f[0]))
  const picked: typeof byCount = []
  const seen = new Set<string>()
  for (const e of byCount) {
    if (picked.length >= n) break
    if (!seen.has(region(e.fields))) {
      seen.add(region(e.fields))
      picked.push(e)
    }
  }
  for (const e of byCount) {
    if (picked.length >= n) break
    if (!picked.includes(e)) picked.push(e)
  }
  return picked.sort((a, b) => a.fields[0] - b.fields[0] || a.fields[1] - b.fields[1] || a.fields[2] - b.fields[2])
}

/**
 * The retrieval baseline of a region pattern over the run's training words, for when the run's
 * model cannot be opened: the same region ranking the model's own baseline uses
 * (`rankRegion`), over the words the store has IDs for.
 */
export function regionBaseline(emb: RunEmbeddings, ids: Map<string, number[]>, fields: readonly (number | null)[], count: number, named = true): string[] {
  const codes = new Uint8Array(emb.words.length * 4)
  const known = emb.words.map((w, i) => {
    const c = ids.get(w)
    if (c) codes.set(c.slice(0, 4), 4 * i)
    return c !== undefined
  })
  const space = { size: emb.words.length, vectors: emb.embeddings, ids: codes, named }
  return rankRegion(space, fields, count, (i) => known[i]).map((i) => emb.words[i])
}

async function openModel(store: Store, run: RunDoc): Promise<{ model: ReportModel | null; why: string | null }> {
  if (!run.stages.dsl) return { model: null, why: 'this run has no dsl stage yet, so there is no LM to ask' }
  if (run.stages.dsl.status !== 'completed') return { model: null, why: `the dsl stage is ${run.stages.dsl.status}${run.stages.dsl.error ? ` (${run.stages.dsl.error})` : ''}` }
  if (run.status !== 'completed') return { model: null, why: `the run is ${run.status}, not completed` }
  try {
    // Imported here, not at the top: the report must still build where the LM cannot load.
    const { WOTDModel } = await import('../pipeline/inference.js')
    return { model: await WOTDModel.open({ store, runId: run.id }), why: null }
  } catch (err) {
    return { model: null, why: `the run's models could not be loaded: ${message(err)}` }
  }
}

async function samplesOf(
  store: Store,
  run: RunDoc,
  ids: Map<string, number[]>,
  idsWhy: string | null,
  emb: Section<RunEmbeddings>,
  opts: CollectOptions,
): Promise<Section<SamplesData>> {
  if (idsWhy) return na(idsWhy)
  if (ids.size === 0) return na('the store holds no semantic IDs for this run, so there are no IDs to ask about')
  const aligned = ((run.config as { rvq?: { mode?: string } } | undefined)?.rvq?.mode ?? 'aligned') !== 'unsupervised'
  const patterns = samplePatterns(ids, opts.samples ?? 12, aligned)
  const count = opts.wordsPerSample ?? 8
  let model: ReportModel | null = null
  let lmWhy: string | null = null
  let owned = false
  if (opts.model === false) lmWhy = 'the LM was left out (--no-lm)'
  else if (opts.model) model = opts.model
  else {
    const r = await openModel(store, run)
    model = r.model
    lmWhy = r.why
    owned = !!model
  }
  const rows: SampleRow[] = []
  try {
    for (const p of patterns) {
      const pattern = `[${p.fields.join(',')},*]`
      const description = aligned ? `${STYLES[p.fields[0] >> 3] ?? '?'} / ${COMPLEXITIES[p.fields[1] >> 3] ?? '?'} / ${ERAS[p.fields[2] >> 3] ?? '?'}` : null
      let lm: string[] | null = null
      let baseline: string[] | null = null
      let msPerWord: number | null = null
      if (model) {
        try {
          const r = await model.generateWordsFromId(pattern, { count, seed: 42 })
          lm = r.words
          baseline = r.baseline
          msPerWord = r.msPerWord
        } catch (err) {
          lmWhy = `the LM failed on ${pattern}: ${message(err)}`
          model = null
        }
      }
      if (!baseline && emb.ok) baseline = regionBaseline(emb.value, ids, [...p.fields, null], count, aligned)
      rows.push({ pattern, description, members: p.members, lm, baseline, msPerWord })
    }
  } finally {
    if (owned && model?.close) await model.close().catch(() => {})
  }
  const baselineWhy = rows.some((r) => r.baseline) ? null : emb.ok ? 'no baseline words' : emb.why
  const lmModel = String((run.stages.dsl?.metrics as { baseModel?: unknown } | undefined)?.baseModel ?? '') || null
  if (!rows.some((r) => r.lm) && !lmWhy) lmWhy = 'the LM gave no words'
  if (!rows.some((r) => r.lm || r.baseline)) return na(`neither the LM (${lmWhy}) nor the retrieval baseline (${baselineWhy}) is available`)
  const known = new Set<string>(emb.ok ? emb.value.words : ids.keys())
  return ok({ rows, lmWhy, baselineWhy, lmModel, known })
}

function benchmarkDirs(opts: CollectOptions): string[] {
  if (opts.benchmarkDir) return [opts.benchmarkDir]
  const dirs = [join(process.cwd(), 'benchmark', 'results')]
  try {
    dirs.push(join(packageRoot(), 'benchmark', 'results'))
  } catch {
    // not inside the package: only the working folder
  }
  return [...new Set(dirs)]
}

async function benchmarksOf(opts: CollectOptions): Promise<Section<BenchmarkResults>> {
  const dirs = benchmarkDirs(opts)
  for (const dir of dirs) {
    try {
      const r = await readBenchmarks(dir)
      if (r && r.files.length) return ok(r)
    } catch (err) {
      return na(`the benchmark results in ${dir} could not be read: ${message(err)}`)
    }
  }
  return na(`no benchmark results (${dirs.map((d) => `${d}/*.json`).join(' or ')}); produce them with \`npm run bench\` in the wotd-ml repository`)
}

export async function collectReportData(opts: CollectOptions): Promise<ReportData> {
  const { store } = opts
  const { run, chosen } = await pickRun(store, opts.runId)
  const stages = stageRows(run)
  let ids = new Map<string, number[]>()
  let idsWhy: string | null = null
  if (!run.stages.rvq) idsWhy = 'this run has no rvq stage yet, so its words have no semantic IDs'
  else {
    try {
      ids = await store.getSemanticIds(run.id)
      if (ids.size === 0) idsWhy = run.stages.rvq.status === 'completed' ? 'the store holds no semantic IDs for this run' : `the rvq stage is ${run.stages.rvq.status}; IDs are written when it finishes`
    } catch (err) {
      idsWhy = `the semantic IDs could not be read: ${message(err)}`
    }
  }
  const emb = await loadEmbeddings(store, run)
  const { labels, source } = await wordLabels(store, run, ids)
  const [samples, benchmarks] = [await samplesOf(store, run, ids, idsWhy, emb, opts), await benchmarksOf(opts)]
  return {
    run,
    chosen,
    store: { kind: store.kind, location: store.location },
    generatedAt: new Date().toISOString(),
    stages,
    timings: timingsOf(stages),
    losses: lossesOf(run),
    dslSummary: dslSummaryOf(run),
    codebooks: codebooksOf(ids, idsWhy),
    rvqScorecard: rvqScorecardOf(run),
    projection: projectionOf(emb, labels, source, opts.maxPoints ?? 2500),
    samples,
    benchmarks,
  }
}
