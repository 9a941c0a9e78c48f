/**
 * `npm run bench`: the compact pipeline on the bundled lexicon, measured, and the reference
 * Python stack side by side in the same invocation (numbers, never pass/fail).
 *
 *   npm run bench -- [--steps N | --quick] [--name compact] [--no-reference] [--threads N]
 *                    [--patterns 12] [--omp-default] [--keep] [--out DIR]
 *   (= node --expose-gc --import @oxc-node/core/register benchmark/run.ts ...)
 *
 *   --steps N        DSL optimizer steps (default 12; `--steps 60` is the config's full length)
 *   --quick          4 steps, 6 patterns, one reference round each: a smoke run of a few minutes
 *   --no-reference   skip the Python reference stack (benchmark/reference/README.md installs it)
 *   --omp-default    leave OMP_WAIT_POLICY unset for the reference (default: PASSIVE, see README)
 *   --keep           keep the temporary store/cache/work folder and print its path
 *   --no-eval        skip the quality evaluation (benchmark/eval.ts) run on the bench's own run
 *
 * Writes benchmark/results/<name>.json (figures, raw timings, a `markdown` field the HTML report
 * shows) and <name>.md (the tables).
 *
 * What it does, in order (ours and theirs alternate wherever there is a "theirs"):
 *   1. this machine's f32 matmul peak through candle (again at the end; the larger is used);
 *   2. embeddings: benchmark/embed.mjs (BGEEmbedder vs sentence-transformers, same 1,200
 *      words, same batch and threads, interleaved), run as a child and folded in;
 *   3. the pipeline (corpus -> embed -> rvq -> dsl) into a temporary store, with cold caches:
 *      wall time and peak RSS per stage, training tokens/s and model-FLOP utilisation;
 *   4. the RVQ scorecard: unsupervised vs aligned trained on a seeded 80%, label accuracy on
 *      the held-out 20%;
 *   5. LoRA side by side: the same DSL examples, LoRA config, batch and steps through the
 *      Rust trainer and through transformers + PEFT, alternating;
 *   6. generation (when the generator is available): ms per word p50/p95 for f32 and q8_0,
 *      validity, novelty, round-trip consistency, distinct-1 and fidelity, LM vs the retrieval
 *      baseline on the same patterns, and the public `WOTDModel.generateWordsFromId` path;
 *   7. decoding side by side: our single-stream ms/token vs llama.cpp (llama-cpp-python) on
 *      the merged adapter exported to GGUF Q8_0 (same weights) and on the base Q4_1 GGUF;
 *   8. bytes on disk, then benchmark/results/<name>.json and <name>.md;
 *   9. the quality evaluation (npm run eval) on this run: benchmark/results/eval.{json,md}.
 *
 * The DSL stage runs 12 steps by default (the config's default is far more): on 2 shared
 * cores a full-length run does not fit the ~10 minute budget of a bench run. Every table says
 * how many steps were run and extrapolates the full-length time.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, homedir, loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadDictionary, scoreOutputs, type PatternOutput, type QualityScores } from './lib/quality.ts'
import { bytesOnDisk, median, percentile, referencePythons, RssMeter, runPythonJson, sum } from './lib/sys.ts'
import { fmt, mb, na, pct, ratio, table, verdict } from './lib/format.ts'
import { decodeSideBySide, type ReferenceDecode, type SingleStream } from './lib/decode-side-by-side.ts'
import { loraSideBySide } from './lib/lora-side-by-side.ts'
import { rvqScorecard, type ModeScore } from './lib/rvq-scorecard.ts'
import { ggufParameterCount, safetensorsParameterCount } from './lib/weights.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: {
    name: { type: 'string', default: 'compact' },
    steps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-reference': { type: 'boolean', default: false },
    threads: { type: 'string' },
    patterns: { type: 'string' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    'omp-default': { type: 'boolean', default: false },
    'no-eval': { type: 'boolean', default: false },
  },
})
const quick = args.quick
const DEFAULT_BENCH_STEPS = 12
const steps = Number(args.steps ?? (quick ? 4 : DEFAULT_BENCH_STEPS))
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer, got ${args.steps}`)
const threads = Number(args.threads ?? process.env.RAYON_NUM_THREADS ?? availableParallelism())
const nPatterns = Number(args.patterns ?? (quick ? 6 : 12))
const WORDS_PER_REQUEST = 8
// LoRA side by side runs ours, theirs, ours (ABA: our median brackets theirs in time); quick: ours, theirs.
const SBS = { loraRounds: quick ? 1 : 2, loraSteps: quick ? 2 : 3, loraExamples: 64, decodeRounds: quick ? 1 : 2, decodePrompts: quick ? 2 : 4, embedRepeats: quick ? 1 : 3 }
const outDir = resolve(args.out ?? join(root, 'benchmark', 'results'))

// Everything the run writes lives in one temporary folder: store, caches, work, exports.
const tmp = mkdtempSync(join(tmpdir(), 'wotd-bench-'))
const storeDir = join(tmp, 'store')
Object.assign(process.env, {
  WOTD_HOME: join(tmp, 'home'),
  WOTD_CACHE: join(tmp, 'cache'),
  WOTD_WORK: join(tmp, 'work'),
  WOTD_OFFLINE: '1',
  HF_HUB_OFFLINE: '1',
  RAYON_NUM_THREADS: String(threads),
})

const now = () => performance.now() / 1000
const started = now()
const notes: string[] = []
const note = (s: string) => {
  notes.push(s)
  console.log(`note: ${s}`)
}
const log = (s: string) => console.log(`[${(now() - started).toFixed(0).padStart(4)} s] ${s}`)
const why = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300)
const rss = new RssMeter()
// Native memory is freed when its JS handle is collected: collect between phases (npm run bench
// passes --expose-gc) so one phase's models do not inflate the next phase's peak.
const gc = () => (globalThis as { gc?: () => void }).gc?.()
// OpenMP threads that spin-wait collapse when the cores are shared (llama.cpp decoded 10x
// slower here with the default policy): the reference runs with passive waiting unless asked.
const refEnv: Record<string, string> = args['omp-default'] || process.env.OMP_WAIT_POLICY ? {} : { OMP_WAIT_POLICY: 'PASSIVE' }
const rssNowMb = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024
const loads: { at: string; load: number[]; rssMb: number }[] = [{ at: 'start', load: loadavg(), rssMb: rssNowMb() }]
// The matmul peak is sampled at every phase boundary too and the best kept: on a shared machine
// the least disturbed moment is the closest to what the hardware can do.
const peakSamples: number[] = []
const markLoad = (at: string) => {
  const p = matmulPeak(3)
  if (p) peakSamples.push(p.bestGflops)
  loads.push({ at, load: loadavg(), rssMb: rssNowMb() })
}

const { native } = await import('../src/native.ts')
const { WOTDTrainer } = await import('../src/pipeline/trainer.ts')
const { trainingConfig } = await import('../src/pipeline/config.ts')
const { openStore } = await import('../src/store/index.ts')
const { runWorkDir } = await import('../src/pipeline/workdir.ts')
const { loadRunEncoder } = await import('../src/pipeline/stages/rvq.ts')
const { RunArtifacts } = await import('../src/pipeline/artifacts.ts')
const { rows } = await import('../src/embed/matrix.ts')
const { createRng, shuffled } = await import('../src/corpus/random.ts')
const { describePattern } = await import('../src/semantic/index.ts')
const { BGEEmbedder } = await import('../src/embed/index.ts')
const { DEFAULT_CELLS, cellKey } = await import('../src/types.ts')
type Binding = ReturnType<typeof native>
type NativeGen = InstanceType<Binding['NativeWordGenerator']>
type KnownWord = import('../src/pipeline/artifacts.ts').KnownWord

const pythons = args['no-reference'] ? undefined : referencePythons(root)
if (args['no-reference']) note('reference stack skipped (--no-reference)')
else {
  if (!pythons!.torch.python) note(`transformers/PEFT/sentence-transformers reference skipped: no interpreter could import them (${pythons!.torch.tried.join('; ')}); see benchmark/reference/README.md`)
  if (!pythons!.lcpp.python) note(`llama.cpp reference skipped: no interpreter could import llama_cpp (${pythons!.lcpp.tried.join('; ')}); see benchmark/reference/README.md`)
}

// ---------------------------------------------------------------------------------------
// 1. matmul peak
function matmulPeak(reps = 5): { bestGflops: number; medianGflops: number; n: number; threads: number } | undefined {
  const f = (native() as Partial<Binding>).matmulGflops
  if (typeof f !== 'function') return undefined
  return f(2048, reps)
}
const peakStart = matmulPeak()
if (!peakStart) note('matmulGflops is missing from the native addon (rebuild it: npm run build:native); MFU uses the torch matmul peak instead')
else log(`candle f32 2048^3 matmul: ${peakStart.bestGflops.toFixed(1)} GFLOP/s best (${threads} threads)`)

// ---------------------------------------------------------------------------------------
// 2. embeddings side by side (benchmark/embed.mjs, interleaved ours/theirs)
let embedBench: any
{
  const out = join(tmp, 'embed.json')
  log('embeddings: benchmark/embed.mjs (BGEEmbedder vs sentence-transformers, interleaved)')
  const r = spawnSync(
    process.execPath,
    [join(root, 'benchmark', 'embed.mjs'), '--repeats', String(SBS.embedRepeats), '--threads', String(threads), '--out', out, ...(pythons?.torch.python ? [] : ['--no-reference'])],
    { encoding: 'utf8', env: { ...process.env, ...refEnv, WOTD_REF_PYTHON: pythons?.torch.python ?? '' }, maxBuffer: 1 << 24 },
  )
  if (r.status === 0 && existsSync(out)) embedBench = JSON.parse(readFileSync(out, 'utf8'))
  else note(`embedding benchmark failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`)
  markLoad('after embeddings')
}

// ---------------------------------------------------------------------------------------
// 3. the pipeline
const defaults = trainingConfig({})
const dslDefaults = defaults.dsl as Record<string, unknown> & { steps: number }
const dslConfig: Record<string, unknown> = { ...dslDefaults, steps }
for (const k of ['evalEvery', 'checkpointEvery'] as const) if (typeof dslDefaults[k] === 'number') dslConfig[k] = Math.min(dslDefaults[k] as number, steps)
if (typeof dslDefaults.warmupSteps === 'number') dslConfig.warmupSteps = Math.min(dslDefaults.warmupSteps as number, Math.floor(steps / 4))
const config = { ...defaults, corpus: { ...defaults.corpus, provider: 'lexicon' as const }, dsl: dslConfig as typeof defaults.dsl }
if (steps !== dslDefaults.steps) {
  note(`DSL stage cut to ${steps} steps (the config default is ${dslDefaults.steps}) to keep a bench run near 10 minutes on 2 shared cores; evalEvery/checkpointEvery/warmup clamped to fit`)
}

const stageWall: Record<string, number> = {}
const stageRss: Record<string, number> = {}
const stageStart: Record<string, number> = {}
const stepTimes: number[] = []
let endPhase: (() => number) | undefined
let lastStepAt = 0
log(`pipeline: corpus -> embed -> rvq -> dsl (${steps} DSL steps) into ${storeDir}`)
const pipelinePhase = rss.phase()
const pipeStart = now()
const trainer = new WOTDTrainer(config, { store: storeDir })
const results = await trainer.trainCompletePipeline({
  onProgress: (p) => {
    const t = now()
    if (p.phase === 'start') {
      stageStart[p.stage] = t
      endPhase = rss.phase()
      lastStepAt = t
      log(`  ${p.stage}: start`)
    } else if (p.phase === 'done') {
      stageWall[p.stage] = t - stageStart[p.stage]
      stageRss[p.stage] = endPhase?.() ?? rss.peakMb()
      log(`  ${p.stage}: ${stageWall[p.stage].toFixed(1)} s, peak RSS ${stageRss[p.stage].toFixed(0)} MB`)
    } else if (p.stage === 'dsl' && p.done !== undefined && p.loss !== undefined) {
      stepTimes.push(t - lastStepAt)
      lastStepAt = t
      if (p.done === 1 || p.done % 4 === 0 || p.done === p.total) log(`  dsl step ${p.done}/${p.total} loss ${p.loss.toFixed(3)} ${p.tokensPerSecond?.toFixed(1)} tok/s`)
    }
  },
})
const pipelineWall = now() - pipeStart
const pipelinePeak = pipelinePhase()
gc()
markLoad('after pipeline')
const runId = results.runId
const dslMetrics = results.stages.dsl.metrics as Record<string, any>
log(`pipeline done in ${pipelineWall.toFixed(1)} s (run ${runId})`)

// The run's data back from the store: words, labels, vectors, IDs, codebooks.
const store = await openStore(storeDir)
const run = (await store.getRun(runId))!
const corpusMetrics = results.stages.corpus.metrics as { setId: string }
const corpora = await store.listCorpora(corpusMetrics.setId)
const labelOf = new Map<string, { style: string; complexity: string; era: string; cell: string }>()
for (const c of corpora) for (const w of c.words) labelOf.set(w.word, { style: w.style, complexity: w.complexity, era: w.era, cell: cellKey(w) })
const artifacts = new RunArtifacts(store, run)
const { words: wordOrder, embeddings } = await artifacts.embeddings()
const encoder = await loadRunEncoder(artifacts, runWorkDir(runId))
const vectors = rows(embeddings)
const storedIds = await store.getSemanticIds(runId)
const known: KnownWord[] = wordOrder.map((word, i) => ({ word, vector: vectors[i], id: (storedIds.get(word) ?? encoder.encode(vectors[i])) as KnownWord['id'] }))
const training = new Set(wordOrder.map((w) => w.toLowerCase()))
const labelIdx = (w: string) => {
  const l = labelOf.get(w)!
  return { style: l.style, complexity: l.complexity, era: l.era } as any
}

// ---------------------------------------------------------------------------------------
// 4. RVQ scorecard: unsupervised vs aligned, seeded 80/20 split
log('RVQ scorecard: unsupervised vs aligned, trained on a seeded 80%, label accuracy on the held-out 20%')
const rvqPhase = rss.phase()
const { trainIdx, heldIdx, scores: rvqScores } = await rvqScorecard(
  embeddings,
  wordOrder.map((w) => labelIdx(w)),
  { seed: config.seed, iterations: config.rvq.iterations },
)
const rvqPeak = rvqPhase()
markLoad('after rvq scorecard')

// ---------------------------------------------------------------------------------------
// Shared by training, generation and decoding.
const baseModel = String(dslMetrics.baseModel ?? '')
const resolved = await native().resolveModel(baseModel, { offline: true })
const ggufPath = resolved.file ?? (existsSync(join(resolved.dir, 'model.Q4_1.gguf')) ? join(resolved.dir, 'model.Q4_1.gguf') : undefined)
let baseParams: number | undefined
try {
  if (ggufPath) baseParams = ggufParameterCount(ggufPath).parameters
} catch (err) {
  note(`could not count the base model's parameters: ${why(err)}`)
}
const dslDir = join(runWorkDir(runId), 'dsl')
const adapterDir = [join(dslDir, 'best-adapter'), join(dslDir, 'adapter')].find((d) => existsSync(join(d, 'adapter_model.safetensors')))
let loraParams: number | undefined
if (adapterDir) loraParams = safetensorsParameterCount(join(adapterDir, 'adapter_model.safetensors'))
else note(`no adapter_model.safetensors under ${dslDir}`)
const peakFor = () => Math.max(peakStart?.bestGflops ?? 0, peakEnd?.bestGflops ?? 0, ...peakSamples) || undefined
let peakEnd: ReturnType<typeof matmulPeak>
const flopsPerToken = baseParams ? 4 * baseParams + 6 * (loraParams ?? 0) : undefined

// ---------------------------------------------------------------------------------------
// 5. LoRA side by side: same examples, LoRA, batch, steps; ours and theirs alternating.
function sampleExamples(n: number, seed: number): { pattern: string; words: string[] }[] {
  const kinds: ((id: number[]) => (number | null)[])[] = [
    (id) => [...id],
    (id) => [id[0], id[1], id[2], null],
    (id) => [id[0], id[1], null, null],
    (id) => [id[0], null, null, null],
    (id) => [null, id[1], null, null],
    (id) => [null, null, id[2], null],
  ]
  const out: { pattern: string; words: string[] }[] = []
  const seen = new Set<string>()
  const r = createRng(seed, 'bench-lora-examples')
  for (let tries = 0; out.length < n && tries < n * 50; tries++) {
    const k = kinds[out.length % kinds.length]
    const fields = k(known[r.int(known.length)].id)
    const text = native().formatPattern(fields)
    if (seen.has(text)) continue
    seen.add(text)
    const words = shuffled(
      known.filter((w) => fields.every((f, l) => f === null || w.id[l] === f)).map((w) => w.word),
      createRng(seed + tries, 'bench-lora-words'),
    ).slice(0, WORDS_PER_REQUEST)
    out.push({ pattern: text, words })
  }
  return out
}
const loraCfg = config.lora
const sbsExamples = sampleExamples(SBS.loraExamples, config.seed)
const lr = Number((config.dsl as Record<string, unknown>).learningRate ?? 2e-4)
const batchSize = Number((config.dsl as Record<string, unknown>).batchSize ?? 8)
const theirsLabel = pythons?.torch.python ? (SBS.loraRounds > 1 ? 'ours, theirs, ours' : 'ours, theirs') : 'ours only'
log(`LoRA side by side: ${sbsExamples.length} examples, batch ${batchSize}, ${SBS.loraSteps} steps a run (${theirsLabel})`)
const { ours: loraOurs, theirs: loraTheirs, errors: loraErrors } = await loraSideBySide({
  baseModel,
  ggufPath,
  examples: sbsExamples,
  lora: { rank: loraCfg.rank, alpha: loraCfg.alpha, dropout: loraCfg.dropout, targetModules: loraCfg.targetModules },
  batchSize,
  lr,
  steps: SBS.loraSteps,
  rounds: SBS.loraRounds,
  seed: config.seed,
  threads,
  tmp,
  python: pythons?.torch.python,
  env: refEnv,
  describe: (pattern) => describePattern(pattern),
  log,
})
for (const e of loraErrors) note(`LoRA side by side: ${e}`)
markLoad('after LoRA side by side')

// ---------------------------------------------------------------------------------------
// 6. generation
const dictionary = loadDictionary()
// One prefix-3 pattern per default cell: the (style, complexity, era) codes most of its words carry.
const patterns: { text: string; fields: (number | null)[]; cell: string }[] = []
for (const cell of DEFAULT_CELLS) {
  const key = cellKey(cell)
  const counts = new Map<string, number>()
  for (const k of known) if (labelOf.get(k.word)?.cell === key) counts.set(k.id.slice(0, 3).join(','), (counts.get(k.id.slice(0, 3).join(',')) ?? 0) + 1)
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]
  if (!best) continue
  const fields = [...best[0].split(',').map(Number), null]
  patterns.push({ text: native().formatPattern(fields), fields, cell: key })
}
patterns.splice(nPatterns)
const targets = new Map<string, Float32Array>()
for (const p of patterns) {
  const members = known.filter((k) => p.fields.every((f, l) => f === null || k.id[l] === f))
  const acc = new Float32Array(encoder.dimension)
  for (const m of members) for (let i = 0; i < acc.length; i++) acc[i] += m.vector[i]
  const norm = Math.hypot(...acc) || 1
  targets.set(
    p.text,
    acc.map((x) => x / norm),
  )
}

interface GenRun {
  weights: 'f32' | 'q8_0'
  loadS: number
  peakRssMb: number
  msPerWord: number[]
  outputs: (PatternOutput & { raw: string[]; tokens: number; elapsedMs: number; prefillMs: number; malformed: number })[]
  singleStream: SingleStream[]
}
const gen: Partial<Record<'f32' | 'q8_0', GenRun>> = {}
const generators: Partial<Record<'f32' | 'q8_0', NativeGen>> = {}
let generationWhy: string | undefined
const hasNativeGen = typeof (native() as Partial<Binding>).NativeWordGenerator === 'function'
if (!hasNativeGen) generationWhy = 'the native addon has no NativeWordGenerator (generation bindings not built yet)'
else if (!adapterDir) generationWhy = `the DSL stage left no adapter under ${dslDir}`

async function generateAll(weights: 'f32' | 'q8_0', pats: typeof patterns): Promise<GenRun> {
  const end = rss.phase()
  const t = now()
  const g = await native().NativeWordGenerator.load(baseModel, adapterDir!, { quantize: weights, offline: true })
  generators[weights] = g
  const loadS = now() - t
  const run: GenRun = { weights, loadS, peakRssMb: 0, msPerWord: [], outputs: [], singleStream: [] }
  for (const [i, p] of pats.entries()) {
    const r = await g.generate(p.fields, { count: WORDS_PER_REQUEST, temperature: 0.8, topP: 0.95, topK: 50, seed: config.seed + i })
    run.msPerWord.push(r.msPerWord)
    run.outputs.push({ pattern: p.text, fields: p.fields, words: r.words, raw: r.raw, tokens: r.tokens, elapsedMs: r.elapsedMs, prefillMs: r.prefillMs, malformed: r.malformed.length })
  }
  run.peakRssMb = end()
  return run
}
let decodeTheirs: ReferenceDecode[] = []
let mergedGguf: string | undefined
let apiCheck: any
if (!generationWhy) {
  try {
    log(`generation q8_0: ${patterns.length} patterns x ${WORDS_PER_REQUEST} words`)
    gen.q8_0 = await generateAll('q8_0', patterns)
    const fPats = patterns.slice(0, quick ? 3 : 6)
    log(`generation f32: ${fPats.length} patterns x ${WORDS_PER_REQUEST} words`)
    gen.f32 = await generateAll('f32', fPats)
    markLoad('after generation')
  } catch (err) {
    generationWhy = `generation failed: ${why(err)}`
  }
}
if (generationWhy) note(`generation figures not available: ${generationWhy}`)

// The public API path: WOTDModel.generateWordsFromId (catalogue words + the ID-region baseline),
// and the baseline alone for every pattern (WOTDModel.retrieve: the catalogue's nearest words of
// the region, backing off by prefix then cosine).
let baselineOutputs: PatternOutput[] = []
try {
  const { WOTDModel } = await import('../src/pipeline/inference.ts')
  const m = await WOTDModel.open({ store, runId })
  const apiGen = (await (m as unknown as { generator(): Promise<{ prompt?(p: string): string }> }).generator())
  const apiPrompt = apiGen.prompt?.(patterns[0].text)
  const trainedPrompt = generators.q8_0?.prompt(patterns[0].fields)
  const t = now()
  const calls = []
  for (const [i, p] of patterns.slice(0, 3).entries()) {
    const r = await m.generateWordsFromId(p.text, { count: WORDS_PER_REQUEST, seed: config.seed + i })
    calls.push({ pattern: p.text, words: r.words, method: r.method, baseline: r.baseline, msPerWord: r.msPerWord })
  }
  baselineOutputs = []
  for (const p of patterns) baselineOutputs.push({ pattern: p.text, fields: p.fields, words: await m.retrieve(p.text, WORDS_PER_REQUEST) })
  apiCheck = { available: true, wallS: now() - t, calls, msPerWordP50: median(calls.map((c) => c.msPerWord)), prompt: apiPrompt, trainedPrompt, promptMatchesTraining: apiPrompt && trainedPrompt ? apiPrompt === trainedPrompt : undefined }
  if (apiCheck.promptMatchesTraining === false) note(`WOTDModel.generateWordsFromId prompts ${JSON.stringify(apiPrompt)}, but the adapter was trained on ${JSON.stringify(trainedPrompt)} (its dsl_prompt.json is not restored beside the adapter)`)
  await m.close()
} catch (err) {
  apiCheck = { available: false, why: why(err) }
  note(`WOTDModel.generateWordsFromId not available: ${apiCheck.why}`)
}

// ---------------------------------------------------------------------------------------
// 7. decoding side by side: single stream, same prompts, ours vs llama.cpp.
if (generators.q8_0 && !generationWhy) {
  const d = await decodeSideBySide({
    generators: Object.fromEntries((['q8_0', 'f32'] as const).filter((w) => gen[w]).map((w) => [w, generators[w]])),
    prompts: patterns.slice(0, SBS.decodePrompts),
    rounds: SBS.decodeRounds,
    baseGguf: ggufPath,
    python: pythons?.lcpp.python,
    threads,
    env: refEnv,
    tmp,
    log,
    note,
  })
  for (const w of ['q8_0', 'f32'] as const) gen[w]?.singleStream.push(...(d.ours[w] ?? []))
  decodeTheirs = d.theirs
  mergedGguf = d.mergedGguf
  markLoad('after decoding')
}
for (const k of Object.keys(generators) as ('f32' | 'q8_0')[]) delete generators[k]
gc()

// Generation's own memory, in fresh processes (this one still holds what training allocated).
const genFresh: Partial<Record<'f32' | 'q8_0', any>> = {}
if (!generationWhy) {
  for (const w of ['q8_0', 'f32'] as const) {
    const jobPath = join(tmp, `gen-${w}.json`)
    writeFileSync(jobPath, JSON.stringify({ baseModel, adapterDir, quantize: w, patterns: patterns.slice(0, 3).map((p) => p.fields), count: WORDS_PER_REQUEST, seed: config.seed }))
    const r = spawnSync(process.execPath, ['--import', '@oxc-node/core/register', join(root, 'benchmark', 'lib', 'gen-child.ts'), jobPath], { cwd: root, encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 })
    if (r.status === 0) genFresh[w] = JSON.parse(r.stdout.trim().split('\n').pop()!)
    else note(`fresh-process generation (${w}) failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`)
  }
}

// ---------------------------------------------------------------------------------------
// 8. quality scores, bytes on disk, the matmul peak again
async function quality(outputs: PatternOutput[] | undefined): Promise<QualityScores | undefined> {
  if (!outputs) return undefined
  const words = [...new Set(outputs.flatMap((o) => o.words))]
  const vecs = new Map<string, Float32Array>()
  const ids = new Map<string, number[]>()
  if (words.length) {
    const emb = await embedderP
    const v = await emb.embed(words)
    const e = encoder.encodeMany(v)
    words.forEach((w, i) => {
      vecs.set(w, v[i])
      ids.set(w, e[i])
    })
  }
  return scoreOutputs({ outputs, requested: WORDS_PER_REQUEST, dictionary: dictionary.files.length ? dictionary.words : undefined, training, vectors: vecs, ids, targets, aligned: encoder.mode === 'aligned' })
}
const embedderP = BGEEmbedder.load(String((run.stages.embed!.metrics as { model?: string }).model ?? 'compact'), { offline: true, cache: false })
const scores = {
  q8_0: await quality(gen.q8_0?.outputs),
  f32: await quality(gen.f32?.outputs),
  baseline: baselineOutputs.length ? await quality(baselineOutputs) : undefined,
  // The baseline on the same patterns as the f32 run, for a like-for-like row.
  baselineF32Patterns: gen.f32 && baselineOutputs.length ? await quality(baselineOutputs.slice(0, gen.f32.outputs.length)) : undefined,
}
peakEnd = matmulPeak()
markLoad('end')

const embedder = await embedderP
const bytes = {
  adapter: artifacts.bytes('dsl', 'adapter_'),
  codebooks: artifacts.bytes('rvq', 'rvq_'),
  embeddingCache: bytesOnDisk(process.env.WOTD_CACHE!),
  store: bytesOnDisk(storeDir),
  workDir: bytesOnDisk(process.env.WOTD_WORK!),
  embedderModel: bytesOnDisk(embedder.dir),
  decoderModel: ggufPath ? bytesOnDisk(ggufPath) : undefined,
  mergedQ8Gguf: mergedGguf ? bytesOnDisk(mergedGguf) : undefined,
}
const peakRssMb = rss.peakMb()
rss.stop()

// ---------------------------------------------------------------------------------------
// Figures, the table, the files.
const peak = peakFor()
const torchPeak = loraTheirs.length ? Math.max(...loraTheirs.map((r) => r.torch_matmul_gflops)) : undefined
const mfu = (tps: number | undefined, gflops = peak ?? torchPeak) => (tps && flopsPerToken && gflops ? (flopsPerToken * tps) / (gflops * 1e9) : undefined)
const oursTps = median(loraOurs.map((r) => r.tokensPerSecond))
// Tokens per CPU-second (all threads): less sensitive than wall time to other jobs on the machine.
// Ours: updates 2..N at the mean example length (the Rust trainer reports no per-step counts); theirs: updates 2..N exactly.
const oursTpc = median(loraOurs.flatMap((r) => (r.cpuAfterFirstS && r.steps > 1 ? [((r.trainTokens / Math.max(1, r.trainExamples)) * batchSize * (r.steps - 1)) / r.cpuAfterFirstS] : [])))
const theirsTpc = median(loraTheirs.filter((r) => r.step_cpu_seconds.length > 1).map((r) => sum(r.step_tokens.slice(1)) / sum(r.step_cpu_seconds.slice(1))))
const theirsTps = median(loraTheirs.map((r) => r.tokens_per_second))
const msPerStep = median(stepTimes)
const q8 = gen.q8_0
const f32 = gen.f32
const decodeOurs = (w: 'f32' | 'q8_0') => median(gen[w]?.singleStream.map((s) => s.msPerToken) ?? [])
const decodeRef = (i: number) => median(decodeTheirs[i]?.runs.map((r) => r.decode_ms_per_token).filter((x) => x != null) ?? [])
const embedOurs = embedBench?.wotd?.coldWordsPerS
const embedRef = embedBench?.reference?.wordsPerS
const MB = 1024 * 1024

const checkpointLabel = (v: boolean | number) => (v === true || v === 1 ? 'every layer' : v === false || v === 0 ? 'off' : `1 in ${v} layers`)
const genNa = generationWhy ? na(generationWhy) : undefined

// Full-length estimate: this run plus the missing steps at the median step time, plus the extra
// validation passes the default schedule makes (each costs what the evaluating step took beyond
// the median here).
const evalsAt = (n: number, every: unknown) => (typeof every === 'number' && every > 0 ? Math.floor(n / every) : 0)
const evalExtraS = stepTimes.length && msPerStep !== undefined ? Math.max(0, stepTimes[stepTimes.length - 1] - msPerStep) : 0
const extraEvals = Math.max(0, evalsAt(dslDefaults.steps, dslDefaults.evalEvery) - evalsAt(steps, dslConfig.evalEvery))
const projectedWall = msPerStep !== undefined ? pipelineWall + Math.max(0, dslDefaults.steps - steps) * msPerStep + extraEvals * evalExtraS : undefined

type Row = [string, string, string, string, string, string]
const main: Row[] = [
  ['Whole pipeline, wall', `${fmt(pipelineWall, 0)} s (${steps} DSL steps)`, projectedWall ? `≈ ${fmt(projectedWall / 60, 1)} min at ${dslDefaults.steps} steps (extrapolated)` : '', '~10 min CPU', '≤ 5 min', verdict(projectedWall !== undefined ? projectedWall <= 300 : undefined)],
  ...(['corpus', 'embed', 'rvq', 'catalogue', 'dsl'] as const).map(
    (s): Row => [`  stage ${s}`, `${fmt(stageWall[s] ?? (results.stages[s].timings.total ?? 0) / 1000, 1)} s, peak RSS ${fmt(stageRss[s], 0)} MB`, s === 'dsl' && msPerStep ? `${fmt(msPerStep, 1)} s/step` : '', '', '', ''],
  ),
  ['Peak RSS, pipeline', `${fmt(pipelinePeak, 0)} MB`, `whole bench process ${fmt(peakRssMb, 0)} MB; transformers+PEFT training ${loraTheirs.length ? fmt(Math.max(...loraTheirs.map((r) => r.peak_rss_mb)), 0) + ' MB' : 'n/a'}`, '< 2 GB', '< 2 GB', verdict(pipelinePeak < 2048)],
  [`Training tokens/s (pipeline DSL stage; activation checkpointing: ${checkpointLabel(config.dsl.gradientCheckpointing)})`, fmt(dslMetrics.tokensPerSecond, 1), `MFU ${pct(mfu(dslMetrics.tokensPerSecond), 2)} (recomputation not counted)`, '', '', ''],
  ['Training tokens/s, same examples, no activation checkpointing (ours vs transformers+PEFT)', fmt(oursTps, 1), theirsTps ? `${fmt(theirsTps, 1)}; ours ${ratio(oursTps, theirsTps)}` : na(loraErrors[0] ?? 'reference stack absent'), '', '≥ 1x reference', verdict(oursTps && theirsTps ? oursTps >= theirsTps : undefined)],
  ['Training tokens per CPU-second, same examples (updates after the first; ours ≈ at mean example length)', fmt(oursTpc, 1), theirsTpc ? `${fmt(theirsTpc, 1)}; ours ${ratio(oursTpc, theirsTpc)}` : 'n/a', '', '', ''],
  [
    'Model-FLOP utilisation, same examples (vs candle peak; vs torch peak)',
    `${pct(mfu(oursTps), 1)}; ${pct(mfu(oursTps, torchPeak), 1)}`,
    theirsTps ? `${pct(mfu(theirsTps), 1)}; ${pct(mfu(theirsTps, torchPeak), 1)}` : 'n/a',
    '',
    '',
    '',
  ],
  ['f32 matmul peak 2048³ (GFLOP/s)', `${fmt(peak, 0)} (candle)`, torchPeak ? `${fmt(torchPeak, 0)} (torch)` : '', '', '≈ 340 (OpenBLAS, quiet machine)', ''],
  ['Peak RSS, generation in a fresh process (q8_0 / f32; load + 3 requests)', genNa ?? `${fmt(genFresh.q8_0?.peakRssMb, 0)} / ${fmt(genFresh.f32?.peakRssMb, 0)} MB`, `model load ${fmt(genFresh.q8_0?.loadS, 1)} / ${fmt(genFresh.f32?.loadS, 1)} s`, '< 2 GB', '< 2 GB', verdict(genFresh.q8_0 ? genFresh.q8_0.peakRssMb < 2048 : undefined)],
  ['ms per word, q8_0 (p50 / p95)', genNa ?? `${fmt(median(q8!.msPerWord), 1)} / ${fmt(percentile(q8!.msPerWord, 95), 1)}`, '', '< 100 ms', '≤ 30 ms p50', verdict(q8 ? median(q8.msPerWord)! <= 30 : undefined)],
  ['ms per word via WOTDModel.generateWordsFromId (q8_0, p50)', apiCheck?.available ? `${fmt(apiCheck.msPerWordP50, 1)}${apiCheck.promptMatchesTraining === false ? ' (prompt differs from training!)' : ''}` : na(apiCheck?.why ?? 'not run'), `${apiCheck?.calls?.length ?? 0} calls`, '< 100 ms', '≤ 30 ms p50', verdict(apiCheck?.available ? apiCheck.msPerWordP50 <= 30 : undefined)],
  ['ms per word, f32 (p50 / p95)', genNa ?? `${fmt(median(f32!.msPerWord), 1)} / ${fmt(percentile(f32!.msPerWord, 95), 1)}`, '', '< 100 ms', '≤ 30 ms p50', verdict(f32 ? median(f32.msPerWord)! <= 30 : undefined)],
  [
    'Decode ms/token, single stream (ours q8_0 vs llama.cpp, same merged Q8_0 GGUF)',
    genNa ?? fmt(decodeOurs('q8_0'), 1),
    decodeTheirs[0]?.runs.length ? `${fmt(decodeRef(0), 1)}; ours ${ratio(decodeOurs('q8_0'), decodeRef(0), false)} llama.cpp's speed` : na(pythons?.lcpp.python ? 'no llama.cpp run' : 'llama-cpp-python absent'),
    '',
    '',
    '',
  ],
  [
    'Prefill ms, ~55-token prompt (ours q8_0 vs llama.cpp merged Q8_0)',
    genNa ?? fmt(median(gen.q8_0?.singleStream.map((x) => x.prefillMs) ?? []), 0),
    decodeTheirs[0]?.runs.length ? `${fmt(median(decodeTheirs[0].runs.map((r) => r.prefill_ms)), 0)}; ours ${ratio(median(gen.q8_0?.singleStream.map((x) => x.prefillMs) ?? []), median(decodeTheirs[0].runs.map((r) => r.prefill_ms)), false)} llama.cpp's speed` : 'n/a',
    '',
    '',
    '',
  ],
  ['Decode ms/token, ours f32 / llama.cpp base Q4_1', genNa ?? fmt(decodeOurs('f32'), 1), decodeTheirs[1]?.runs.length ? fmt(decodeRef(1), 1) : 'n/a', '', '', ''],
  [
    'Decode CPU-ms per generated token, prefill included (ours q8_0 vs llama.cpp merged Q8_0)',
    genNa ?? fmt(median(gen.q8_0?.singleStream.map((x) => x.cpuMsPerToken) ?? []), 1),
    decodeTheirs[0]?.runs.length ? fmt(median(decodeTheirs[0].runs.map((r) => r.cpu_ms / Math.max(1, r.tokens))), 1) : 'n/a',
    '',
    '',
    '',
  ],
  ['Embedding words/s, 1,200 words (ours vs sentence-transformers)', fmt(embedOurs, 0), embedRef ? `${fmt(embedRef, 0)}; ours ${ratio(embedOurs, embedRef)}` : na('reference absent or failed'), '', '≥ 1x reference', verdict(embedOurs && embedRef ? embedOurs >= embedRef : undefined)],
  ['Adapter + codebooks on disk', `${mb(bytes.adapter)} + ${mb(bytes.codebooks)}`, '', '~50 MB models', '≤ 50 MB', verdict(bytes.adapter + bytes.codebooks <= 50 * MB)],
  ['Caches on disk (embedding cache)', mb(bytes.embeddingCache), `store ${mb(bytes.store)}, work dir (checkpoints) ${mb(bytes.workDir)}`, '~10 MB cache', '≤ 10 MB', verdict(bytes.embeddingCache <= 10 * MB)],
  ['Models on disk (embedder + decoder)', `${mb(bytes.embedderModel)} + ${mb(bytes.decoderModel)}`, bytes.mergedQ8Gguf ? `merged Q8_0 export ${mb(bytes.mergedQ8Gguf)}` : '', '~50 MB models', '', ''],
]

const qRow = (label: string, f: (s: QualityScores) => string): string[] => [
  label,
  scores.q8_0 ? f(scores.q8_0) : genNa ?? 'n/a',
  scores.baseline ? f(scores.baseline) : 'n/a',
  scores.f32 ? f(scores.f32) : 'n/a',
  scores.baselineF32Patterns ? f(scores.baselineF32Patterns) : 'n/a',
]
const quality_: string[][] = [
  qRow('words scored', (s) => String(s.words)),
  qRow('validity (in the npm word-list)', (s) => pct(s.validity)),
  qRow('novelty (not in training corpora)', (s) => pct(s.novelty)),
  qRow('round-trip: all fixed attributes match', (s) => pct(s.roundTrip)),
  qRow('round-trip: style / complexity / era', (s) => (s.roundTripByAttribute ?? []).map((x) => pct(x, 0)).join(' / ')),
  qRow('distinct-1', (s) => pct(s.distinct1)),
  qRow('fidelity: cosine to the pattern region', (s) => fmt(s.fidelity, 3)),
  qRow('requests short of 8 words', (s) => pct(s.shortRequests, 0)),
]

const lvl = (xs: number[] | undefined, d = 2) => (xs ? xs.map((x) => fmt(x, d)).join(' / ') : 'n/a')
const rvqRow = (label: string, f: (m: ModeScore) => string, goal = ''): string[] => [label, f(rvqScores.unsupervised), f(rvqScores.aligned), goal]
const rvq_: string[][] = [
  rvqRow('utilisation per level', (m) => lvl(m.all.utilisation), '100% every level'),
  rvqRow('normalised perplexity per level', (m) => lvl(m.all.perplexity), '≥ 0.85'),
  rvqRow('reconstruction cosine, 4 levels (mean / p10)', (m) => `${fmt(m.all.reconstruction[3]?.mean, 3)} / ${fmt(m.all.reconstruction[3]?.p10, 3)}`),
  rvqRow('collision rate 3 / 4 levels', (m) => `${pct(m.all.collisionRate3)} / ${pct(m.all.collisionRate4)}`, '4 levels ≤ 1%'),
  rvqRow('locality (NN shares level 0)', (m) => pct(m.all.locality)),
  rvqRow('held-out label accuracy style / complexity / era', (m) => (m.heldOut.labelAccuracy ?? []).map((x: number) => pct(x, 0)).join(' / '), 'well above 25%'),
  rvqRow('held-out NMI, level 0-2 vs own attribute', (m) => { const nmi = m.heldOut.nmi; return nmi ? [0, 1, 2].map((l) => fmt(nmi[l]?.[l], 2)).join(' / ') : 'n/a' }),
  rvqRow('train time (s) / encode (vectors/s)', (m) => `${fmt(m.trainS, 2)} / ${fmt(m.encodePerS, 0)}`),
]

const machine = {
  cpu: cpus()[0]?.model,
  cores: availableParallelism(),
  threads,
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  loadAvgStart: loads[0].load.map((x) => +x.toFixed(2)),
  loadAvgEnd: loads[loads.length - 1].load.map((x) => +x.toFixed(2)),
}
// The issue-14 targets as plain numbers (null where the reference stack was not there): what the
// README's target table and any later comparison read.
const prefillOurs = median(gen.q8_0?.singleStream.map((x) => x.prefillMs) ?? [])
const prefillTheirs = median(decodeTheirs[0]?.runs.map((r) => r.prefill_ms) ?? [])
const orNull = (x: number | undefined | null) => (x === undefined || x === null || Number.isNaN(x) ? null : +x.toFixed(4))
const summary = {
  trainingTokensPerS: orNull(oursTps),
  trainingRatioVsPeft: orNull(oursTps && theirsTps ? oursTps / theirsTps : undefined),
  prefillRatioVsLlamaCpp: orNull(prefillOurs && prefillTheirs ? prefillTheirs / prefillOurs : undefined),
  decodeRatioVsLlamaCpp: orNull(decodeOurs('q8_0') && decodeRef(0) ? decodeRef(0)! / decodeOurs('q8_0')! : undefined),
  msPerWordP50: orNull(apiCheck?.available ? apiCheck.msPerWordP50 : undefined),
  pipelineWallS: orNull(steps === dslDefaults.steps ? pipelineWall : projectedWall),
  pipelinePeakRssMb: orNull(pipelinePeak),
  embedRatioVsSentenceTransformers: orNull(embedOurs && embedRef ? embedOurs / embedRef : undefined),
  machine: { cpu: machine.cpu, cores: machine.cores, threads, loadAvgStart: machine.loadAvgStart, loadAvgEnd: machine.loadAvgEnd },
}
const targetRows: string[][] = [
  ['LoRA training tokens/s vs transformers+PEFT (same examples, no checkpointing, same dropout)', summary.trainingRatioVsPeft === null ? 'n/a' : `${fmt(summary.trainingRatioVsPeft, 2)}x`, `${fmt(oursTps, 1)} vs ${fmt(theirsTps, 1)} tokens/s`, '≥ 1.3x', verdict(summary.trainingRatioVsPeft === null ? undefined : summary.trainingRatioVsPeft >= 1.3)],
  ['Prefill, same merged Q8_0 GGUF, vs llama.cpp (speed ratio)', summary.prefillRatioVsLlamaCpp === null ? 'n/a' : `${fmt(summary.prefillRatioVsLlamaCpp, 2)}x`, `${fmt(prefillOurs, 0)} vs ${fmt(prefillTheirs, 0)} ms`, '≥ 1.0x', verdict(summary.prefillRatioVsLlamaCpp === null ? undefined : summary.prefillRatioVsLlamaCpp >= 1)],
  ['Decode, same merged Q8_0 GGUF, vs llama.cpp (speed ratio)', summary.decodeRatioVsLlamaCpp === null ? 'n/a' : `${fmt(summary.decodeRatioVsLlamaCpp, 2)}x`, `${fmt(decodeOurs('q8_0'), 1)} vs ${fmt(decodeRef(0), 1)} ms/token`, '≥ 1.0x', verdict(summary.decodeRatioVsLlamaCpp === null ? undefined : summary.decodeRatioVsLlamaCpp >= 1)],
  ['Default word generation, ms per word p50 (WOTDModel.generateWordsFromId)', fmt(summary.msPerWordP50, 1), '', '≤ 30 ms', verdict(summary.msPerWordP50 === null ? undefined : summary.msPerWordP50 <= 30)],
  [`Pipeline wall at the default ${dslDefaults.steps} DSL steps${steps === dslDefaults.steps ? '' : ' (extrapolated)'}`, summary.pipelineWallS === null ? 'n/a' : `${fmt(summary.pipelineWallS, 0)} s`, '', '≤ 180 s', verdict(summary.pipelineWallS === null ? undefined : summary.pipelineWallS <= 180)],
  ['Pipeline peak RSS', `${fmt(summary.pipelinePeakRssMb, 0)} MB`, '', '≤ 1,536 MB', verdict(summary.pipelinePeakRssMb === null ? undefined : summary.pipelinePeakRssMb <= 1536)],
  ['Embedding words/s vs sentence-transformers', summary.embedRatioVsSentenceTransformers === null ? 'n/a' : `${fmt(summary.embedRatioVsSentenceTransformers, 2)}x`, `${fmt(embedOurs, 0)} vs ${fmt(embedRef, 0)} words/s`, '≥ 1.5x', verdict(summary.embedRatioVsSentenceTransformers === null ? undefined : summary.embedRatioVsSentenceTransformers >= 1.5)],
]
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
const md = [
  `# wotd-ml benchmark: ${args.name}`,
  '',
  `${new Date().toISOString()} · \`${command}\` · ${machine.cpu}, ${machine.cores} cores, ${threads} threads, load average ${machine.loadAvgStart.join('/')} at start, ${machine.loadAvgEnd.join('/')} at end (1/5/15 min; other jobs shared the machine) · ${fmt((now() - started) / 60, 1)} min for the whole bench`,
  '',
  `Compact profile (${embedder.modelId} + ${baseModel}), bundled lexicon, 12 default cells x 100 words; DSL stage ${steps} steps (default ${dslDefaults.steps}). "Context" holds the reference stack and derived figures; ratios are ours over theirs in speed (>1x: ours faster).`,
  '',
  'Speed targets (issue 14), the same figures as `summary` in the JSON:',
  '',
  table(['target', 'wotd-ml', 'measured', 'target', 'vs target'], targetRows),
  '',
  table(['figure', 'wotd-ml', 'context / reference', "seed's claim", 'DESIGN.md target', 'vs target'], main),
  '',
  `Generation quality on ${patterns.length} prefix-3 patterns (one per default cell), ${WORDS_PER_REQUEST} words each, temperature 0.8, top-p 0.95, top-k 50 (raw LM sampling, no catalogue constraint; the baseline is WOTDModel.retrieve, catalogue words of the region; the default path and the taste figures are in eval.md, written by the same run):`,
  '',
  table(['figure', 'raw LM q8_0', 'ID-region baseline (catalogue)', `LM f32 (first ${gen.f32?.outputs.length ?? 'n/a'} patterns)`, 'baseline, same patterns'], quality_),
  '',
  `RVQ scorecard (4 x 32 codes; ${trainIdx.length} training words, ${heldIdx.length} held out, seed ${config.seed}; structure metrics on all ${vectors.length} words):`,
  '',
  table(['metric', 'unsupervised', 'aligned', 'goal (issue 5)'], rvq_),
  '',
  `Formulas. LoRA training FLOPs per token = 4·N + 6·N_lora: forward 2·N, backward to the input only 2·N (frozen base weights get no weight gradient), LoRA A/B forward and both backward products 6·N_lora; N = ${fmt(baseParams, 0)} parameters of the base model (the tied embedding counted once, as the LM head), N_lora = ${fmt(loraParams, 0)}; attention score products left out (short sequences). MFU = FLOPs/token x tokens/s / the candle f32 matmul peak measured in this run (${fmt(peak, 0)} GFLOP/s, the best of ${peakSamples.length + 2} samples taken between phases; ${fmt(Math.min(...[peakStart?.bestGflops ?? Infinity, ...peakSamples]), 0)} at the worst moment). Tokens are real (unpadded) tokens of the training batches, prompt included. Decode ms/token = (generation time - prefill) / generated tokens, one stream, 48 new tokens at most.`,
  '',
  ...(notes.length ? ['Notes:', '', ...notes.map((n) => `- ${n}`), ''] : []),
].join('\n')

const result = {
  date: new Date().toISOString(),
  command,
  machine,
  markdown: md,
  summary,
  settings: { name: args.name, steps, defaultSteps: dslDefaults.steps, quick, threads, patterns: patterns.length, wordsPerRequest: WORDS_PER_REQUEST, sideBySide: SBS, config },
  loadAverages: loads,
  matmul: { candleStart: peakStart, candleEnd: peakEnd, samplesGflops: peakSamples, peakGflops: peak, torchGflops: torchPeak },
  pipeline: {
    runId,
    wallS: pipelineWall,
    projectedWallAtDefaultStepsS: projectedWall,
    peakRssMb: pipelinePeak,
    stages: Object.fromEntries((['corpus', 'embed', 'rvq', 'catalogue', 'dsl'] as const).map((s) => [s, { wallS: stageWall[s], peakRssMb: stageRss[s], status: results.stages[s].status, metrics: s === 'dsl' ? { ...dslMetrics, losses: undefined } : results.stages[s].metrics }])),
    dslLosses: dslMetrics.losses,
    dslStepSeconds: stepTimes,
  },
  training: { tokensPerSecond: dslMetrics.tokensPerSecond, mfu: mfu(dslMetrics.tokensPerSecond), baseParams, loraParams, flopsPerToken, formula: 'FLOPs/token = 4*N + 6*N_lora (forward 2N, backward-to-input 2N, LoRA 6*N_lora)' },
  rvq: { ...rvqScores, pipeline: results.stages.rvq.metrics },
  generation: {
    available: !generationWhy,
    why: generationWhy,
    patterns,
    q8_0: q8 && { ...q8, p50: median(q8.msPerWord), p95: percentile(q8.msPerWord, 95) },
    f32: f32 && { ...f32, p50: median(f32.msPerWord), p95: percentile(f32.msPerWord, 95) },
    baseline: baselineOutputs,
    scores,
    api: apiCheck,
    dictionaries: dictionary.files,
  },
  reference: {
    pythons: pythons && { torch: pythons.torch.python, lcpp: pythons.lcpp.python },
    embed: embedBench,
    lora: { examples: sbsExamples.length, stepsPerRound: SBS.loraSteps, ours: loraOurs, theirs: loraTheirs, oursTokensPerSecond: oursTps, theirsTokensPerSecond: theirsTps, ratio: oursTps && theirsTps ? oursTps / theirsTps : undefined, errors: loraErrors },
    decode: { ours: { q8_0: decodeOurs('q8_0'), f32: decodeOurs('f32') }, theirs: decodeTheirs.map((d) => ({ ...d, msPerToken: median(d.runs.map((r) => r.decode_ms_per_token).filter((x) => x != null)) })) },
  },
  peakRssMb,
  generationFreshProcess: genFresh,
  bytes,
  claims: { seed: { trainingMin: 10, peakRssGb: 2, msPerWord: 100, modelsMb: 50, cacheMb: 10 }, design: { pipelineMin: 5, peakRssGb: 2, msPerWordP50: 30, adapterPlusCodebooksMb: 50, cachesMb: 10 } },
  notes,
}
mkdirSync(outDir, { recursive: true })
// Results are committed: this machine's paths (home, the bench's temporary folder) become
// placeholders, so they say what a file was without saying where it lived.
const portable = (text: string) => text.split(tmp).join('<bench-tmp>').split(homedir()).join('~')
writeFileSync(join(outDir, `${args.name}.json`), portable(JSON.stringify(result, null, 2)) + '\n')
writeFileSync(join(outDir, `${args.name}.md`), md + '\n')
console.log(`\n${md}\nresults: ${join(outDir, `${args.name}.json`)} and .md`)

await store.close()

// The quality evaluation (benchmark/eval.ts) on the run this bench trained: taste, attribute
// precision and validity of every system side by side, written to <out>/eval.{json,md}.
if (!args['no-eval']) {
  log('evaluation: benchmark/eval.ts on this run (eval.json, eval.md)')
  const r = spawnSync(process.execPath, ['--import', '@oxc-node/core/register', join(root, 'benchmark', 'eval.ts'), '--store', storeDir, '--run', runId, '--out', outDir, ...(quick ? ['--quick'] : [])], { cwd: root, encoding: 'utf8', env: process.env, stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) console.log(`evaluation failed (exit ${r.status}); rerun: npm run eval`)
}
if (args.keep) console.log(`kept ${tmp}`)
else rmSync(tmp, { recursive: true, force: true })
process.exit(0)
