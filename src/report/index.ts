/**
 * `buildReport`: one self-contained HTML report of a training run (summary and config, stage
 * timings, loss curves, codebook utilisation, a PCA of the word embeddings, sample generations
 * beside the retrieval baseline, and the benchmark table). Plots are vega-lite specs rendered
 * to SVG in Node. Parts the run does not have yet say "not available" and why.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { packageRoot } from '../corpus/lexicon.js'
import { openStore, type Store } from '../store/index.js'
import { writeReportFile } from './write.js'
import { collectReportData, type ReportModel } from './collect.js'
import { renderReport } from './html.js'

export { collectReportData, samplePatterns, regionBaseline, type ReportData, type ReportModel, type Section, type CollectOptions } from './collect.js'
export { renderReport, escapeHtml, type RenderedReport } from './html.js'
export { pca, jacobiEigen, type PcaResult } from './pca.js'
export { readBenchmarks, parseMarkdownTables, type BenchmarkResults, type BenchmarkFile, type BenchmarkTable } from './benchmarks.js'

export interface BuildReportOptions {
  /** A store, or its spec (a folder or mongodb:// URI); default `$MONGODB_URI`, else `$WOTD_HOME` or `./.wotd`. */
  store?: string | Store
  /** Default: the newest completed run (else the newest run of any status). */
  runId?: string
  /**
   * Output file; default `wotd-report-<runId>.html` in the working folder. A symlink is
   * followed; a FIFO or character device is written as a stream; `-` is standard output.
   */
  out?: string
  /**
   * The model for the sample generations: a loaded `WOTDModel` (or anything with its
   * `generateWordsFromId`), `false` for the retrieval baseline alone; default: the run's own,
   * when its dsl stage finished and its models load.
   */
  model?: ReportModel | false
  /** ID patterns in the sample grid (default 12) and words per pattern (default 8). */
  samples?: number
  wordsPerSample?: number
  /** Folder of benchmark `*.json` results (default `./benchmark/results`, else the package's). */
  benchmarkDir?: string
}

export interface ReportResult {
  /** Absolute path of the written file. */
  path: string
  runId: string
  bytes: number
  /** Ids of the plots drawn. */
  plots: string[]
  /** Sections (or parts) that are not available, with why. */
  unavailable: { section: string; why: string }[]
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(resolve(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

/** Builds the report of a run and writes it as one HTML file. */
export async function buildReport(opts: BuildReportOptions = {}): Promise<ReportResult> {
  const store = typeof opts.store === 'object' ? opts.store : await openStore(opts.store)
  const owns = typeof opts.store !== 'object'
  try {
    const data = await collectReportData({
      store,
      runId: opts.runId,
      model: opts.model,
      samples: opts.samples,
      wordsPerSample: opts.wordsPerSample,
      benchmarkDir: opts.benchmarkDir,
    })
    const r = await renderReport(data, { version: version() })
    const { path } = await writeReportFile(opts.out ?? resolve(`wotd-report-${data.run.id}.html`), r.html)
    return { path, runId: data.run.id, bytes: Buffer.byteLength(r.html), plots: r.plots, unavailable: r.unavailable }
  } finally {
    if (owns) await store.close()
  }
}
