/**
 * Assembles the report: one self-contained HTML page (inline CSS, inline SVG plots, no
 * scripts, nothing fetched). Every piece of text from the run, the store or a results file is
 * escaped; the SVGs come from vega's own serializer, which escapes the text it writes.
 */
import type { TopLevelSpec } from 'vega-lite'
import { codebookSpec, lossSpec, projectionSpec, renderSvg, timingsSpec } from './charts.js'
import { ATTRIBUTES, type ReportData, type Section } from './collect.js'

/** Escapes text for HTML element content and (quoted) attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

const e = escapeHtml

export interface RenderedReport {
  html: string
  /** Ids of the plots in the page (`timings`, `loss`, `codebooks`, `pca-style`, ...). */
  plots: string[]
  /** Sections (or parts) that are not available, with why. */
  unavailable: { section: string; why: string }[]
}

const PALETTE = ['#4c78a8', '#f58518', '#e45756', '#54a24b']
const UNKNOWN = '#b9b9b9'

function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—'
  const s = ms / 1000
  if (s < 1) return `${ms.toFixed(0)} ms`
  if (s < 120) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  return `${m} min ${Math.round(s - m * 60)} s`
}

function table(headers: string[], rows: string[][], cls = ''): string {
  return `<table${cls ? ` class="${e(cls)}"` : ''}><thead><tr>${headers.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${e(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

function keyValues(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${e(v)}</td></tr>`).join('')}</tbody></table>`
}

const STYLE = `
:root{color-scheme:light;--fg:#1d2228;--muted:#5f6b76;--line:#e2e6ea;--accent:#4c78a8;--bg:#fafbfc}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 "DejaVu Sans","Liberation Sans",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1f3550;color:#fff;padding:20px 32px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:16px 20px;margin:20px 0}
h2{margin:0 0 12px;font-size:18px}
h3{margin:16px 0 8px;font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:#f3f5f7}
table.kv th{font-weight:normal;color:var(--muted);white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:12px}
figure.plot{margin:8px 0;padding:0}
figure.plot svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:12px;margin-top:4px}
.na{color:#8a4b08;background:#fff7e6;border:1px solid #f5d9a8;border-radius:4px;padding:6px 10px;margin:8px 0}
.note{color:var(--muted);font-size:12px}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:4px;padding:10px;overflow:auto;font-size:12px;max-height:420px}
code{font-family:"DejaVu Sans Mono",monospace;font-size:12px}
.words span{display:inline-block;margin:0 6px 2px 0}
.words .known{color:var(--muted);font-style:italic}
.status-completed{color:#2d7a2d}.status-failed{color:#b3261e}.status-running{color:#a15c00}
details summary{cursor:pointer;color:var(--accent)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:16px}
`

function na(why: string): string {
  return `<p class="na">not available: ${e(why)}</p>`
}

export async function renderReport(data: ReportData, meta: { version: string }): Promise<RenderedReport> {
  const plots: string[] = []
  const unavailable: { section: string; why: string }[] = []
  const missing = (section: string, why: string) => {
    unavailable.push({ section, why })
    return na(why)
  }
  const need = <T>(section: string, s: Section<T>, f: (v: T) => Promise<string> | string): Promise<string> | string => (s.ok ? f(s.value) : missing(section, s.why))
  const plot = async (id: string, section: string, spec: TopLevelSpec, caption?: string): Promise<string> => {
    try {
      const svg = await renderSvg(spec)
      plots.push(id)
      return `<figure class="plot" id="plot-${e(id)}" data-plot="${e(id)}">${svg}${caption ? `<figcaption>${e(caption)}</figcaption>` : ''}</figure>`
    } catch (err) {
      return missing(section, `the ${id} plot could not be drawn: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  const { run } = data

  // 1. Summary and config.
  const totalMs = data.stages.reduce((a, s) => a + (s.ms ?? 0), 0)
  const corpus = run.stages.corpus?.metrics ?? {}
  const embed = run.stages.embed?.metrics ?? {}
  const dsl = run.stages.dsl?.metrics ?? {}
  const summaryRows: [string, string][] = [
    ['run', run.id],
    ['status', run.status + (run.error ? ` (${run.error})` : '')],
    ['chosen as', data.chosen],
    ['created', run.createdAt],
    ['last updated', run.updatedAt],
    ['store', `${data.store.kind}: ${data.store.location}`],
    ['config hash', run.configHash],
    ['time in stages', fmtMs(totalMs)],
  ]
  if (corpus.words !== undefined) summaryRows.push(['corpus', `${corpus.words} words${corpus.cells !== undefined ? ` in ${corpus.cells} cells` : ''}${corpus.provider ? ` from ${corpus.provider}` : ''}${corpus.setId ? ` (${corpus.setId})` : ''}`])
  if (embed.model !== undefined) summaryRows.push(['embedder', `${embed.model}${embed.dimension ? `, ${embed.dimension} dimensions` : ''}${embed.pooling ? `, ${embed.pooling} pooling` : ''}`])
  if (dsl.baseModel !== undefined) summaryRows.push(['decoder (LoRA base)', String(dsl.baseModel)])
  const stageTable = `<table><thead><tr><th>stage</th><th>status</th><th class="num">time</th><th>finished</th><th>metrics</th></tr></thead><tbody>${data.stages
    .map(
      (s) =>
        `<tr><td>${e(s.name)}</td><td class="status-${e(s.status)}">${e(s.status)}${s.error ? `<br><span class="note">${e(s.error)}</span>` : ''}</td><td class="num">${e(fmtMs(s.ms))}</td><td>${e(s.finishedAt ?? '—')}</td><td class="note">${e(
          s.scalars.map(([k, v]) => `${k}=${v}`).join('  '),
        )}</td></tr>`,
    )
    .join('')}</tbody></table>`
  const summary = `<section id="summary"><h2>Run summary</h2>${keyValues(summaryRows)}<h3>Stages</h3>${
    data.stages.length ? stageTable : missing('summary', 'this run has no stages yet')
  }<details><summary>Training config</summary><pre><code>${e(JSON.stringify(run.config, null, 2))}</code></pre></details></section>`

  // 2. Timings.
  const timings = `<section id="timings"><h2>Stage timings</h2>${await need('timings', data.timings, (rows) =>
    plot('timings', 'timings', timingsSpec(rows), 'Wall time of each stage in its last execution (a skipped stage keeps the time it took when it ran).'),
  )}</section>`

  // 3. Training.
  const training = `<section id="training"><h2>Training and validation loss</h2>${await need('training', data.losses, (l) =>
    plot('loss', 'training', lossSpec(l.points), `${l.steps} training steps, ${l.validations} validation evaluations.`),
  )}${data.dslSummary.ok ? keyValues(data.dslSummary.value) : ''}</section>`

  // 4. Semantic IDs.
  const codebooks = `<section id="codebooks"><h2>Codebook utilisation</h2>${await need('codebooks', data.codebooks, async (c) => {
    const svg = await plot('codebooks', 'codebooks', codebookSpec(c.cells, c.words), 'Words of the run per code of each RVQ level, counted from the semantic IDs in the store.')
    const rows = c.levels.map((l) => [`level ${l.level}`, `${l.used} / 32`, l.perplexity.toFixed(3), String(l.top)])
    return svg + table(['level', 'codes used', 'perplexity exp(H)/32', 'largest code'], rows)
  })}<h3>RVQ scorecard (from the rvq stage)</h3>${data.rvqScorecard.ok ? table(data.rvqScorecard.value.headers, data.rvqScorecard.value.rows) : missing('codebooks', data.rvqScorecard.why)}</section>`

  // 5. Projection.
  const projection = `<section id="projection"><h2>Word embeddings, 2-D PCA</h2>${await need('projection', data.projection, async (p) => {
    const [e1, e2] = p.explained.map((x) => `${(x * 100).toFixed(1)}%`)
    const figs: string[] = []
    for (const a of ATTRIBUTES) {
      const values = [...a.values]
      if (p.points.some((pt) => pt[a.name] === 'unknown')) values.push('unknown')
      figs.push(
        await plot(
          `pca-${a.name}`,
          'projection',
          projectionSpec(
            p.points.map((pt) => ({ x: pt.x, y: pt.y, value: pt[a.name] })),
            { title: `by ${a.name}`, legend: a.name, domain: values, range: values.map((v, i) => (v === 'unknown' ? UNKNOWN : PALETTE[i % PALETTE.length])), xTitle: `PC1 (${e1})`, yTitle: `PC2 (${e2})` },
          ),
        ),
      )
    }
    const note = `${p.words} words, ${p.dimension} dimensions; PCA of the covariance in ${p.ms.toFixed(0)} ms${p.points.length < p.words ? `; ${p.points.length} of them plotted` : ''}. Colours from ${p.labelSource ?? 'nowhere: no labels are available for these words'}.`
    return `<div class="plots">${figs.join('')}</div><p class="note">${e(note)}</p>${p.labelSource ? '' : missing('projection', 'word labels (style, complexity, era) are not available: the run has no corpus in the store and its IDs are not aligned')}`
  })}</section>`

  // 6. Samples.
  const samples = `<section id="samples"><h2>Sample generations</h2>${await need('samples', data.samples, (s) => {
    const words = (ws: string[] | null) =>
      ws === null ? '<span class="note">—</span>' : `<span class="words">${ws.map((w) => `<span${s.known.has(w) ? ' class="known"' : ''}>${e(w)}</span>`).join('')}</span>`
    const head = `<p class="note">One row per ID prefix (the most populated regions of the run, spread over distinct style / complexity / era first). Default path: real catalogue words in the region, ranked by fit and calibrated attribute probability (never training words). Baseline: catalogue words in the region nearest its centre. The tuned LM (${e(
      s.lmModel ?? 'the run’s decoder',
    )} with its LoRA adapter) is measured against both in the evaluation (the benchmark tables below, <code>npm run eval</code>): it does not beat the catalogue ranking on held-out words, so it is not the default path; it writes coined words on request. <i>Italic</i> words are in the training corpora; the rest are new.</p>`
    const rows = s.rows
      .map(
        (r) =>
          `<tr><td><code>${e(r.pattern)}</code></td><td>${e(r.description ?? '—')}</td><td class="num">${r.members}</td><td>${words(r.lm)}</td><td>${words(r.baseline)}</td><td class="num">${
            r.msPerWord === null ? '—' : e(r.msPerWord.toFixed(1))
          }</td></tr>`,
      )
      .join('')
    return `${head}${s.lmWhy ? missing('samples', `generated words: ${s.lmWhy}`) : ''}${s.baselineWhy ? missing('samples', `retrieval baseline: ${s.baselineWhy}`) : ''}<table class="samples"><thead><tr><th>pattern</th><th>region</th><th class="num">training words</th><th>words (default path: catalogue)</th><th>ID-region retrieval baseline</th><th class="num">ms/word</th></tr></thead><tbody>${rows}</tbody></table>`
  })}</section>`

  // 7. Benchmarks.
  const benchmarks = `<section id="benchmarks"><h2>Benchmarks</h2>${await need('benchmarks', data.benchmarks, (b) => {
    const files = b.files
      .map(
        (f) =>
          `<h3>${e(f.file)} <span class="note">${e(f.date)}</span></h3>${f.command ? `<p class="note">command: <code>${e(f.command)}</code></p>` : ''}${f.machine ? `<p class="note">machine: ${e(f.machine)}</p>` : ''}${f.tables
            .map((t) => {
              const body = table(t.headers, t.rows) + (t.note ? `<p class="note">${e(t.note)}</p>` : '')
              // A long field list (a results file without its own table) is folded away.
              return t.rows.length > 16 ? `<details><summary>${t.rows.length} rows</summary>${body}</details>` : body
            })
            .join('')}`,
      )
      .join('')
    const skipped = b.skipped.length ? `<p class="note">skipped: ${e(b.skipped.map((s) => `${s.file} (${s.why})`).join('; '))}</p>` : ''
    return `<p class="note">From ${e(b.dir)}, newest first. Re-run with <code>npm run bench</code>.</p>${files}${skipped}`
  })}</section>`

  const nav = [
    ['summary', 'Summary'],
    ['timings', 'Timings'],
    ['training', 'Loss'],
    ['codebooks', 'Codebooks'],
    ['projection', 'Embeddings'],
    ['samples', 'Samples'],
    ['benchmarks', 'Benchmarks'],
  ]
    .map(([id, label]) => `<a href="#${id}">${label}</a>`)
    .join('')

  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="wotd-ml ${e(meta.version)}">
<meta name="wotd-plots" content="${e(plots.join(' '))}">
<title>wotd-ml report: ${e(run.id)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>wotd-ml training report</h1><p>${e(run.id)} · ${e(run.status)} · created ${e(run.createdAt)}</p></header>
<nav>${nav}</nav>
<main>
${summary}
${timings}
${training}
${codebooks}
${projection}
${samples}
${benchmarks}
</main>
<footer>Generated ${e(data.generatedAt)} by wotd-ml ${e(meta.version)} (<code>wotd report</code>). Self-contained: no scripts, nothing fetched.</footer>
</body>
</html>
`
  return { html, plots, unavailable }
}
