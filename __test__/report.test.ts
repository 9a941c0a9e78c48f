/**
 * `wotd report` / `buildReport` on synthetic runs in temporary FileStores: every section from a
 * complete run, graceful "not available" sections from unfinished ones, escaping, the
 * self-contained page, the PCA, the benchmark table and the CLI command.
 */
import test from 'ava'
import { Command } from 'commander'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { registerReport } from '../src/cli/commands/report.js'
import { InvalidInputError } from '../src/errors.js'
import { FileStore } from '../src/store/index.js'
import { buildReport, escapeHtml, jacobiEigen, parseMarkdownTables, pca, readBenchmarks, samplePatterns } from '../src/report/index.js'
import { fakeModel, makeSyntheticRun, removeTempDirs, tempDir } from './report-fixture.js'

const ALL_PLOTS = ['timings', 'loss', 'codebooks', 'pca-style', 'pca-complexity', 'pca-era']

const emptyDir = () => tempDir('wotd-report-out-')

test.after.always(removeTempDirs)

/** The text of one `<section id=...>` of the page. */
function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}">`)
  if (start < 0) return ''
  return html.slice(start, html.indexOf('</section>', start))
}

function assertSelfContained(t: import('ava').ExecutionContext, html: string): void {
  t.false(/<script/i.test(html), 'no scripts')
  t.false(/<link\b/i.test(html), 'no linked resources')
  t.false(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html), 'nothing fetched')
  t.false(/url\(\s*["']?(https?:)?\/\//i.test(html), 'no remote CSS urls')
  t.false(/@import/i.test(html), 'no CSS imports')
}

test('pca finds the principal axes of data with known variances', (t) => {
  // Points with standard deviations 3, 2 and 0.5 along three orthogonal axes rotated into 6-D.
  const rows: number[][] = []
  let seed = 1
  const rnd = () => {
    // mulberry32, mapped to [-1, 1)
    seed = (seed + 0x6d2b79f5) >>> 0
    let x = Math.imul(seed ^ (seed >>> 15), seed | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return (((x ^ (x >>> 14)) >>> 0) / 4294967296) * 2 - 1
  }
  const axes = [
    [1, 1, 0, 0, 0, 0].map((x) => x / Math.SQRT2),
    [0, 0, 1, 0, 0, 0],
    [1, -1, 0, 0, 0, 0].map((x) => x / Math.SQRT2),
  ]
  for (let i = 0; i < 3000; i++) {
    const a = rnd() * 3 * Math.sqrt(3)
    const b = rnd() * 2 * Math.sqrt(3)
    const c = rnd() * 0.5 * Math.sqrt(3)
    rows.push(axes[0].map((x, k) => 5 + a * x + b * axes[1][k] + c * axes[2][k]))
  }
  const r = pca(rows, 2)
  t.is(r.points.length, rows.length)
  t.true(Math.abs(r.eigenvalues[0] - 9) < 0.6, `λ1 ${r.eigenvalues[0]}`)
  t.true(Math.abs(r.eigenvalues[1] - 4) < 0.4, `λ2 ${r.eigenvalues[1]}`)
  const dot = (u: ArrayLike<number>, v: number[]) => v.reduce((s, x, i) => s + x * u[i], 0)
  t.true(Math.abs(Math.abs(dot(r.components[0], axes[0])) - 1) < 1e-3)
  t.true(Math.abs(Math.abs(dot(r.components[1], axes[1])) - 1) < 1e-3)
  t.true(r.explained[0] > r.explained[1] && r.explained[0] + r.explained[1] < 1)
  // Deterministic.
  t.deepEqual(pca(rows, 2).points[7], r.points[7])
})

test('pca agrees with a full Jacobi decomposition of the covariance', (t) => {
  let seed = 99
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1
  const d = 12
  const rows = Array.from({ length: 400 }, () => Array.from({ length: d }, (_, j) => rnd() * (1 + j / 3)))
  const mean = Array.from({ length: d }, (_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length)
  const cov = new Float64Array(d * d)
  for (const r of rows) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j] += ((r[i] - mean[i]) * (r[j] - mean[j])) / (rows.length - 1)
  const full = jacobiEigen(cov, d)
  const r = pca(rows, 2)
  t.true(Math.abs(r.eigenvalues[0] - full.values[0]) < 1e-6 * full.values[0])
  t.true(Math.abs(r.eigenvalues[1] - full.values[1]) < 1e-6 * full.values[0])
})

test('a complete run gives every section and plot, in one self-contained page', async (t) => {
  const f = await makeSyntheticRun()
  const out = join(await emptyDir(), 'nested', 'report.html')
  const bench = await emptyDir()
  const model = fakeModel(f.words)
  const r = await buildReport({ store: f.store, out, model, benchmarkDir: bench })
  t.is(r.path, out)
  t.is(r.runId, f.runId)
  t.deepEqual(r.plots, ALL_PLOTS)
  const html = await readFile(out, 'utf8')
  t.is(r.bytes, Buffer.byteLength(html))
  assertSelfContained(t, html)
  t.true(html.startsWith('<!DOCTYPE html>'))
  for (const id of ALL_PLOTS) t.regex(html, new RegExp(`<figure class="plot" id="plot-${id}" data-plot="${id}"><svg `))
  t.regex(html, /<meta name="wotd-plots" content="timings loss codebooks pca-style pca-complexity pca-era">/)
  // Only the benchmarks are missing, and the page says how to make them.
  t.deepEqual(
    r.unavailable.map((u) => u.section),
    ['benchmarks'],
  )
  t.regex(section(html, 'benchmarks'), /not available: no benchmark results .*npm run bench/)
  // Summary and config.
  const summary = section(html, 'summary')
  t.true(summary.includes(f.runId))
  t.true(summary.includes('1200 words in 12 cells from lexicon (lexicon-seed42)'))
  t.true(summary.includes('sentence-transformers/all-MiniLM-L6-v2, 384 dimensions'))
  t.true(summary.includes('&quot;wordsPerCorpus&quot;: 100'), 'the config is shown')
  // The sample grid: 12 distinct regions, LM words next to the baseline.
  t.is(model.calls.length, 12)
  t.is(new Set(model.calls).size, 12)
  const samples = section(html, 'samples')
  t.is((samples.match(/<tr><td><code>\[/g) ?? []).length, 12)
  t.true(samples.includes('classical / simple / shakespearean'))
  t.true(samples.includes('class="known"'), 'training words are marked')
  t.false(samples.includes('not available'))
  // The PCA plots have a point per word; the codebook heatmap a cell per code.
  const pcaSvg = html.slice(html.indexOf('id="plot-pca-style"'), html.indexOf('</figure>', html.indexOf('id="plot-pca-style"')))
  t.true((pcaSvg.match(/<path /g) ?? []).length >= f.words.length)
  t.true(html.includes('PC1 ('))
  t.regex(section(html, 'codebooks'), /level 0<\/td><td>\d+ \/ 32/)
})

test('the retrieval baseline stands alone when the LM is left out, and says why', async (t) => {
  const f = await makeSyntheticRun()
  const out = join(await emptyDir(), 'r.html')
  const r = await buildReport({ store: f.store, out, model: false, benchmarkDir: await emptyDir() })
  const samples = section(await readFile(out, 'utf8'), 'samples')
  t.regex(samples, /not available: generated words: the LM was left out/)
  t.deepEqual(r.unavailable.find((u) => u.section === 'samples')?.why, 'generated words: the LM was left out (--no-lm)')
  // Every row has baseline words from the region's own members first.
  const rows = samples.split('<tr><td><code>').slice(1)
  t.is(rows.length, 12)
  for (const row of rows) t.regex(row, /<span class="words"><span class="known">/)
})

test('by default the run’s own model is tried, and a model that cannot load degrades to the baseline', async (t) => {
  const f = await makeSyntheticRun()
  const out = join(await emptyDir(), 'r.html')
  // The synthetic run's adapter is not a real one: whatever fails (the import, the adapter,
  // the base model), the report is still written, with the reason in the samples section.
  const r = await buildReport({ store: f.store, out, benchmarkDir: await emptyDir() })
  t.deepEqual(r.plots, ALL_PLOTS)
  const samples = section(await readFile(out, 'utf8'), 'samples')
  t.is((samples.match(/<tr><td><code>\[/g) ?? []).length, 12)
  t.regex(samples, /retrieval baseline/)
  t.true(/not available: generated words: /.test(samples) || !samples.includes('not available'), samples.slice(0, 600))
})

test('a run still in its embed stage: timings and the projection, the rest not available', async (t) => {
  const f = await makeSyntheticRun({ upTo: 'embed', lastStatus: 'completed' })
  await f.store.putRun({ ...f.run, status: 'running', stages: { ...f.run.stages, rvq: { status: 'running', startedAt: f.run.updatedAt } } })
  const out = join(await emptyDir(), 'r.html')
  const r = await buildReport({ store: f.store, out, benchmarkDir: await emptyDir() })
  t.deepEqual(r.plots, ['timings', 'pca-style', 'pca-complexity', 'pca-era'])
  const html = await readFile(out, 'utf8')
  t.true(section(html, 'summary').includes('no run in this store has completed; this one is running'))
  t.regex(section(html, 'training'), /not available: this run has no dsl stage yet/)
  t.regex(section(html, 'codebooks'), /not available: the rvq stage is running; IDs are written when it finishes/)
  t.regex(section(html, 'samples'), /not available: the rvq stage is running/)
  t.true(section(html, 'projection').includes('Colours from the corpus (lexicon-seed42)'))
  t.deepEqual([...new Set(r.unavailable.map((u) => u.section))].sort(), ['benchmarks', 'codebooks', 'samples', 'training'])
})

test('a run with only a running corpus stage still gives a page, with no plots', async (t) => {
  const f = await makeSyntheticRun({ upTo: 'corpus' })
  await f.store.putRun({ ...f.run, stages: { corpus: { status: 'running' } } })
  const out = join(await emptyDir(), 'r.html')
  const r = await buildReport({ store: f.store, out, benchmarkDir: await emptyDir() })
  t.deepEqual(r.plots, [])
  const html = await readFile(out, 'utf8')
  t.regex(section(html, 'timings'), /not available: no stage of this run has finished yet/)
  t.regex(section(html, 'projection'), /not available: this run has no embed stage yet/)
  assertSelfContained(t, html)
})

test('without a corpus, aligned semantic IDs colour the projection', async (t) => {
  const f = await makeSyntheticRun({ upTo: 'rvq', lastStatus: 'completed' })
  await f.store.putRun({ ...f.run, stages: { ...f.run.stages, corpus: { ...f.run.stages.corpus, metrics: { words: 1200 } } } })
  const out = join(await emptyDir(), 'r.html')
  await buildReport({ store: f.store, out, benchmarkDir: await emptyDir() })
  const html = await readFile(out, 'utf8')
  t.true(section(html, 'projection').includes('Colours from the semantic IDs (aligned mode: code &gt;&gt; 3 names the value)'))
  t.regex(section(html, 'samples'), /not available: generated words: this run has no dsl stage yet/)
})

test('a damaged embeddings artifact is reported, not thrown', async (t) => {
  const f = await makeSyntheticRun()
  const ref = f.run.stages.embed.artifacts!.embeddings
  await f.store.putArtifact(ref.name, Buffer.from('not the vectors'))
  const out = join(await emptyDir(), 'r.html')
  const r = await buildReport({ store: f.store, out, model: false, benchmarkDir: await emptyDir() })
  t.false(r.plots.includes('pca-style'))
  t.regex(section(await readFile(out, 'utf8'), 'projection'), /not available: the embeddings could not be read: /)
})

test('everything from the run and the store is escaped', async (t) => {
  const evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
  const f = await makeSyntheticRun({ patch: { error: evil } })
  f.run.stages.dsl.metrics!.baseModel = evil
  f.run.stages.dsl.error = evil
  ;(f.run.config as Record<string, unknown>).note = evil
  await f.store.putRun(f.run)
  const bench = await emptyDir()
  await writeFile(join(bench, 'evil.json'), JSON.stringify({ date: '2026-11-25T00:00:00Z', command: evil, table: { headers: [evil], rows: [[evil]] } }))
  const out = join(await emptyDir(), 'r.html')
  await buildReport({ store: f.store, out, model: fakeModel(f.words), benchmarkDir: bench })
  const html = await readFile(out, 'utf8')
  assertSelfContained(t, html)
  t.false(html.includes('<img'))
  t.true(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'))
  t.is(escapeHtml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&#39;')
})

test('benchmark results: newest first, their own tables, Markdown siblings, else a field list', async (t) => {
  const dir = await emptyDir()
  await writeFile(join(dir, 'old.json'), JSON.stringify({ date: '2026-01-01T00:00:00Z', command: 'npm run bench', table: { headers: ['stage', 'seconds'], rows: [['embed', 2.3456789]] } }))
  await writeFile(join(dir, 'new.json'), JSON.stringify({ date: '2026-06-01T00:00:00Z', machine: { cpu: 'x', cores: 2 } }))
  await writeFile(join(dir, 'new.md'), '# Bench\n\n| metric | ours | reference |\n|---|---:|---:|\n| words/s | **515** | 60 |\n| peak RSS \\| MB | 287 | 900 |\n')
  await writeFile(join(dir, 'flat.json'), JSON.stringify({ a: { b: 1, c: [1, 2] }, d: 'x' }))
  await writeFile(join(dir, 'broken.json'), '{nope')
  await writeFile(join(dir, 'report-screenshot.png'), 'png')
  const r = await readBenchmarks(dir)
  t.truthy(r)
  const byName = Object.fromEntries(r!.files.map((f) => [f.file, f]))
  t.true(r!.files.findIndex((f) => f.file === 'new.json') < r!.files.findIndex((f) => f.file === 'old.json'), 'newest first')
  t.deepEqual(byName['old.json'].tables[0], { headers: ['stage', 'seconds'], rows: [['embed', '2.346']] })
  t.deepEqual(byName['new.json'].tables[0].headers, ['metric', 'ours', 'reference'])
  t.deepEqual(byName['new.json'].tables[0].rows, [
    ['words/s', '515', '60'],
    ['peak RSS | MB', '287', '900'],
  ])
  t.is(byName['new.json'].machine, 'cpu x, cores 2')
  t.deepEqual(byName['flat.json'].tables[0].rows, [
    ['a.b', '1'],
    ['a.c', '1, 2'],
    ['d', 'x'],
  ])
  t.deepEqual(r!.skipped.map((s) => s.file), ['broken.json'])
  t.is(await readBenchmarks(await emptyDir()), null)
  t.deepEqual(parseMarkdownTables('no tables here'), [])

  const f = await makeSyntheticRun({ upTo: 'corpus' })
  const out = join(await emptyDir(), 'r.html')
  const rep = await buildReport({ store: f.store, out, benchmarkDir: dir })
  t.false(rep.unavailable.some((u) => u.section === 'benchmarks'))
  const html = section(await readFile(out, 'utf8'), 'benchmarks')
  t.true(html.indexOf('new.json') < html.indexOf('old.json'))
  t.true(html.includes('<td>peak RSS | MB</td>'))
  t.true(html.includes('broken.json'))
})

test('the sample grid spreads over distinct regions before repeating one', (t) => {
  const ids = new Map<string, number[]>()
  let n = 0
  const add = (c: number[], k: number) => {
    for (let i = 0; i < k; i++) ids.set(`w${n++}`, [...c, i % 32])
  }
  add([0, 0, 0], 9)
  add([1, 1, 1], 8) // same aligned region as [0,0,0]
  add([8, 0, 0], 3)
  add([16, 8, 24], 2)
  const aligned = samplePatterns(ids, 3, true)
  t.deepEqual(
    aligned.map((p) => p.fields),
    [
      [0, 0, 0],
      [8, 0, 0],
      [16, 8, 24],
    ],
  )
  t.deepEqual(
    samplePatterns(ids, 3, false).map((p) => p.fields),
    [
      [0, 0, 0],
      [1, 1, 1],
      [8, 0, 0],
    ],
  )
  t.is(samplePatterns(ids, 10, true).length, 4)
})

test('unknown runs and empty stores are one-line errors', async (t) => {
  const f = await makeSyntheticRun({ upTo: 'corpus' })
  const e1 = await t.throwsAsync(buildReport({ store: f.store, runId: 'run-nope', out: join(await emptyDir(), 'x.html') }), { instanceOf: InvalidInputError })
  t.regex(e1!.message, /unknown run id "run-nope"; list runs with `wotd runs list`/)
  const empty = new FileStore({ dir: await emptyDir() })
  const e2 = await t.throwsAsync(buildReport({ store: empty, out: join(await emptyDir(), 'x.html') }), { instanceOf: InvalidInputError })
  t.regex(e2!.message, /no training run in .*; run `npx wotd train` first/)
})

// picocolors colours output when CI is set, even without a terminal.
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, '')

async function runCommand(args: string[]): Promise<{ stdout: string; error?: unknown }> {
  const program = new Command('wotd').exitOverride()
  registerReport(program)
  let stdout = ''
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  }) as typeof process.stdout.write
  try {
    await program.parseAsync(['node', 'wotd', 'report', ...args])
    return { stdout: stripAnsi(stdout) }
  } catch (error) {
    return { stdout: stripAnsi(stdout), error }
  } finally {
    process.stdout.write = write
  }
}

// Serial: it changes the working folder (AVA runs serial tests before the concurrent ones).
test.serial('wotd report writes wotd-report-<run>.html in the working folder by default', async (t) => {
  const f = await makeSyntheticRun()
  const cwd = process.cwd()
  const here = await emptyDir()
  await mkdir(join(here, 'benchmark', 'results'), { recursive: true })
  process.chdir(here)
  try {
    const r = await runCommand(['--store', f.dir, '--no-lm'])
    t.falsy(r.error)
    const file = join(here, `wotd-report-${f.runId}.html`)
    t.true(existsSync(file))
    t.regex(r.stdout, new RegExp(`wrote .*wotd-report-${f.runId}\\.html \\(.*\\) for run ${f.runId}: 6 plots`))
    t.regex(r.stdout, /not available samples: generated words: the LM was left out/)
  } finally {
    process.chdir(cwd)
  }
})

test('wotd report --json --out --run --samples', async (t) => {
  const f = await makeSyntheticRun()
  const out = join(await emptyDir(), 'x.html')
  const r = await runCommand(['--store', f.dir, '--run', f.runId, '--out', out, '--samples', '4', '--no-lm', '--json'])
  t.falsy(r.error)
  const j = JSON.parse(r.stdout) as { path: string; runId: string; plots: string[]; unavailable: unknown[] }
  t.is(j.path, out)
  t.is(j.runId, f.runId)
  t.deepEqual(j.plots, ALL_PLOTS)
  t.is((section(await readFile(out, 'utf8'), 'samples').match(/<tr><td><code>\[/g) ?? []).length, 4)
  const bad = await runCommand(['--store', f.dir, '--samples', 'lots'])
  t.true(bad.error instanceof InvalidInputError)
  t.regex((bad.error as Error).message, /--samples must be a whole number 1-64/)
})

test('--out: a symlink is written through, a FIFO streamed, a folder refused, a file replaced keeping its mode', async (t) => {
  const { lstat, readlink, stat, symlink, chmod } = await import('node:fs/promises')
  const { spawn, spawnSync } = await import('node:child_process')
  const f = await makeSyntheticRun()
  const dir = await emptyDir()
  const build = (out: string) => buildReport({ store: f.store, out, model: false, benchmarkDir: dir })

  // A symlink stays a symlink; its target gets the report.
  const target = join(dir, 'real.html')
  const link = join(dir, 'link.html')
  await writeFile(target, 'old')
  await chmod(target, 0o644)
  await symlink('real.html', link)
  const r = await build(link)
  t.true((await lstat(link)).isSymbolicLink(), 'the link is not replaced')
  t.is(await readlink(link), 'real.html')
  t.is(r.path, target)
  t.regex(await readFile(target, 'utf8'), /^<!doctype html>/i)
  t.is((await stat(target)).mode & 0o777, 0o644, 'the file keeps its mode')

  // A dangling symlink is written through too.
  const dangling = join(dir, 'dangling.html')
  await symlink('made-later.html', dangling)
  await build(dangling)
  t.true((await lstat(dangling)).isSymbolicLink())
  t.true(existsSync(join(dir, 'made-later.html')))

  // A FIFO stays a FIFO and its reader gets the whole page.
  const fifo = join(dir, 'pipe')
  if (spawnSync('mkfifo', [fifo]).status === 0) {
    const reader = spawn('cat', [fifo])
    let got = ''
    reader.stdout.setEncoding('utf8').on('data', (d) => (got += d))
    const closed = new Promise((res) => reader.on('close', res))
    const w = await build(fifo)
    await closed
    t.true((await lstat(fifo)).isFIFO(), 'the FIFO is still a FIFO')
    t.is(w.bytes, Buffer.byteLength(got))
    t.regex(got, /<\/html>\s*$/)
  } else t.log('mkfifo unavailable: FIFO case not run')

  // A character device is written, not replaced.
  await build('/dev/null')
  t.true((await lstat('/dev/null')).isCharacterDevice())

  // A folder is a clear error, and nothing is written into it.
  await t.throwsAsync(build(dir), { instanceOf: InvalidInputError, message: /is a folder; give a file name/ })
})
