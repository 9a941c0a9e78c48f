#!/usr/bin/env node
// Stage 2 benchmark (numbers, not a test): words/s of BGEEmbedder on the 1,200-word lexicon
// corpus (the 12 default cells x 100 words), cold (empty cache) and cached, peak RSS, and, when
// the reference Python stack is installed (benchmark/reference/), sentence-transformers' words/s
// on the same model, words, batch size and thread count, measured in the same run.
//
//   node benchmark/embed.mjs [--model ID|DIR] [--batch 64] [--ref-batch 32] [--repeats 5] [--threads N] [--no-reference]
//
// Writes benchmark/results/embed.json and prints a Markdown table.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { register } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'compact' },
    batch: { type: 'string', default: '64' },
    'ref-batch': { type: 'string', default: '32' },
    repeats: { type: 'string', default: '5' },
    threads: { type: 'string' },
    'no-reference': { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'benchmark', 'results', 'embed.json') },
  },
})
const threads = Number(args.threads ?? process.env.RAYON_NUM_THREADS ?? availableParallelism())
// Both sides get the same number of threads for their matmuls.
process.env.RAYON_NUM_THREADS = String(threads)
// Each side at its own default unless told otherwise: wotd-ml 64 (least CPU per word in
// measurements here), sentence-transformers 32 (its `encode` default).
const batchSize = Number(args.batch)
const refBatchSize = Number(args['ref-batch'])
const repeats = Math.max(1, Number(args.repeats))

// Run the TypeScript sources directly (no build step needed for the benchmark).
register('@oxc-node/core/esm', import.meta.url)
const { BGEEmbedder } = await import('../src/embed/index.ts')
const { EmbeddingCache } = await import('../src/cache/index.ts')
const { loadLexicon, lexiconByCell } = await import('../src/corpus/index.ts')
const { DEFAULT_CELLS } = await import('../src/types.ts')

const byCell = lexiconByCell(loadLexicon())
const words = DEFAULT_CELLS.flatMap((c) => (byCell.get(`${c.style}/${c.complexity}/${c.era}`) ?? []).slice(0, 100).map((e) => e.word))
if (words.length !== 1200) console.warn(`warning: corpus has ${words.length} words, not 1,200`)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
// Best of N is each side's speed when nothing else got in its way; the machine is shared
// (2 cores), and the median is reported beside it.
const best = (xs) => Math.min(...xs)
const now = () => performance.now() / 1000

// Other work on the machine skews both sides; the load average says how much there was.
const loadAvgBefore = loadavg()
let t = now()
const loader = await BGEEmbedder.load(args.model, { offline: true, cache: false })
const loadS = now() - t
await loader.embed(Array.from({ length: 64 }, (_, i) => `warm up ${i}`), { batchSize })

function findPython() {
  const candidates = [process.env.WOTD_REF_PYTHON, join(root, 'benchmark', 'reference', '.venv', 'bin', 'python'), 'python3'].filter(Boolean)
  for (const py of candidates) {
    if (py.includes('/') && !existsSync(py)) continue
    const r = spawnSync(py, ['-c', 'import sentence_transformers, torch'], { encoding: 'utf8' })
    if (r.status === 0) return py
  }
  return undefined
}

function runReference(py) {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-bench-'))
  try {
    const job = join(dir, 'job.json')
    writeFileSync(job, JSON.stringify({ model_dir: loader.dir, words, batch_size: refBatchSize, threads, repeats: 2 }))
    const r = spawnSync(py, [join(root, 'benchmark', 'reference', 'embed_reference.py'), job], { encoding: 'utf8', maxBuffer: 1 << 24 })
    if (r.status !== 0) throw new Error(`reference failed: ${r.stderr.slice(-2000)}`)
    return JSON.parse(r.stdout.trim().split('\n').pop())
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const py = args['no-reference'] ? undefined : findPython()
if (!py && !args['no-reference']) {
  console.warn('note: sentence-transformers not found (set WOTD_REF_PYTHON or install benchmark/reference/requirements.txt); reference skipped')
}

// Interleave our runs with the reference's, so a busy machine slows both alike.
const cold = []
const coldCpu = []
const cached = []
const ref = []
let cacheBytes = 0
let stats
for (let i = 0; i < repeats; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-bench-cache-'))
  try {
    const e = loader.withCache(new EmbeddingCache({ dir }))
    const c0 = process.cpuUsage()
    t = now()
    const first = await e.embedDetailed(words, { batchSize })
    cold.push(now() - t)
    const c1 = process.cpuUsage(c0)
    coldCpu.push((c1.user + c1.system) / 1e6)
    if (first.cache.hits !== 0) throw new Error('cold run hit the cache')
    // A new cache object reads the segment files from disk, as a second process would.
    const again = loader.withCache(new EmbeddingCache({ dir }))
    t = now()
    const second = await again.embedDetailed(words, { batchSize })
    cached.push(now() - t)
    if (second.cache.hits !== words.length) throw new Error(`cached run missed ${second.cache.misses} words`)
    stats = again.cacheStats()
    cacheBytes = await again.cache.diskBytes(again.space)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (py) ref.push(runReference(py))
}

const peakRssMb = process.resourceUsage().maxRSS / 1024
const refRuns = ref.map((r) => Math.min(...r.seconds))
const coldS = best(cold)
const cachedS = best(cached)
const refS = ref.length ? best(refRuns) : undefined
const result = {
  date: new Date().toISOString(),
  command: `node benchmark/embed.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  machine: { cpu: cpus()[0]?.model, cores: availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}`, loadAvgBefore, loadAvgAfter: loadavg() },
  model: { id: loader.modelId, revision: loader.revision, dim: loader.dimension, pooling: loader.pooling, maxLength: loader.maxLength },
  corpus: { source: 'data/lexicon, 12 default cells x first 100 words', words: words.length },
  settings: { batchSize, referenceBatchSize: refBatchSize, threads, repeats, statistic: 'best of repeats (median also given)' },
  wotd: {
    loadS,
    coldS: cold,
    cachedS: cached,
    coldWordsPerS: words.length / coldS,
    cachedWordsPerS: words.length / cachedS,
    coldWordsPerSMedian: words.length / median(cold),
    // CPU seconds (all threads) of a cold run: what the work costs, whatever else ran.
    coldCpuS: coldCpu,
    peakRssMb,
    cacheBytes,
    cacheStats: stats,
  },
  reference: refS
    ? {
        implementation: 'sentence-transformers encode (PyTorch, CPU)',
        versions: ref[0].versions,
        threads: ref[0].threads,
        loadS: median(ref.map((r) => r.load_s)),
        seconds: ref.map((r) => r.seconds),
        wordsPerS: words.length / refS,
        wordsPerSMedian: words.length / median(refRuns),
        cpuS: ref.flatMap((r) => r.cpu_seconds),
        ompWaitPolicy: ref[0].omp_wait_policy ?? 'default',
        peakRssMb: Math.max(...ref.map((r) => r.peak_rss_mb)),
      }
    : null,
  ratio: refS ? { coldVsReference: refS / coldS, coldVsReferenceMedian: median(refRuns) / median(cold), cachedVsReference: refS / cachedS } : null,
}
mkdirSync(dirname(args.out), { recursive: true })
writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n')

const f = (x, d = 0) => (x === undefined ? 'n/a' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }))
const rows = [
  ['wotd-ml, cold (empty cache)', f(result.wotd.coldWordsPerS), f(result.wotd.coldWordsPerSMedian), f(coldS, 2), f(median(coldCpu), 2), f(peakRssMb)],
  ['wotd-ml, cached', f(result.wotd.cachedWordsPerS), f(words.length / median(cached)), f(cachedS, 3), '', f(peakRssMb)],
]
if (result.reference) {
  rows.push(['sentence-transformers', f(result.reference.wordsPerS), f(result.reference.wordsPerSMedian), f(refS, 2), f(median(result.reference.cpuS), 2), f(result.reference.peakRssMb)])
}
console.log(`\nEmbedding ${words.length} lexicon words with ${loader.modelId} (batch ${batchSize}, reference batch ${refBatchSize}, ${threads} threads, best of ${repeats}; ${result.machine.cpu})\n`)
console.log('| implementation | words/s (best) | words/s (median) | seconds (best) | CPU s (median) | peak RSS (MB) |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
if (result.ratio) {
  console.log(`\nwotd-ml cold is ${f(result.ratio.coldVsReference, 2)}x the reference's words/s, best vs best (median vs median: ${f(result.ratio.coldVsReferenceMedian, 2)}x; cached: ${f(result.ratio.cachedVsReference, 0)}x).`)
}
console.log(`load average before/after: ${loadAvgBefore.map((x) => x.toFixed(1)).join(' ')} / ${loadavg().map((x) => x.toFixed(1)).join(' ')} (1/5/15 min)`)
console.log(`cache on disk: ${f(cacheBytes / 1024, 0)} KiB for ${words.length} vectors; model load ${f(loadS, 2)} s`)
console.log(`results: ${args.out}`)
