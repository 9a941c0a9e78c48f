/** The evaluation as Markdown tables (benchmark/results/eval.md, the report, the README). */
import type { EvalReport, SystemScores } from './harness.js'
import type { Share } from './metrics.js'

const pct = (s: Share | undefined) => (s && s.n ? `${(s.value * 100).toFixed(1)}% [${(s.low * 100).toFixed(1)}-${(s.high * 100).toFixed(1)}]` : 'n/a')
const num = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d))
const ms = (s: SystemScores) => (s.msPerWord ? `${num(s.msPerWord.p50, 1)} / ${num(s.msPerWord.p95, 1)}` : 'n/a')

export const SYSTEM_NAMES: Record<string, string> = {
  random: 'random',
  nearest: 'nearest neighbours of the taste (no ID)',
  region: 'ID-region retrieval (plain baseline)',
  lm: 'LM alone',
  'lm-rerank': 'LM choosing among the default candidates',
  default: 'default path',
}

export function evalMarkdown(r: EvalReport): string {
  const name = (s: string) => SYSTEM_NAMES[s] ?? s
  const lines: string[] = []
  lines.push(`Run \`${r.runId}\`: ${r.trainingWords} training words, ${r.heldOut} held-out gold words, catalogue of ${r.catalogueWords} words; ${r.people} simulated people. Intervals are Wilson 95%. Options: ${JSON.stringify(r.options)}.`)
  lines.push('', '**E1: attribute precision on held-out words** (64 cells, k words each, answers restricted to held-out words; chance 25% per attribute, 1.6% jointly)', '')
  lines.push('| system | style | complexity | era | mean | all three | ms/word p50 / p95 |', '|---|---:|---:|---:|---:|---:|---:|')
  for (const s of r.e1) {
    if (!s.precision) lines.push(`| ${name(s.system)} | n/a | n/a | n/a | n/a | n/a | ${s.note ?? ''} |`)
    else lines.push(`| ${name(s.system)} | ${pct(s.precision.style)} | ${pct(s.precision.complexity)} | ${pct(s.precision.era)} | ${num(s.precision.mean * 100, 1)}% | ${pct(s.precision.joint)} | ${ms(s)} |`)
  }
  lines.push('', `**E2: taste** (${r.people} people, each liking ${r.options.likes} held-out words of one cell; 10 recommendations each, ${r.options.days} words of the day for the default path; own cell by gold label, else nearest cell centroid, the centroid of the person's cell made without their liked words; lax: with them; chance 1.6%)`, '')
  lines.push('| system | own cell | own cell (lax judge) | own cell, gold-labelled words only | hit@10 of their other words | words of the day in own cell | the same, lax judge | valid | novel | distinct-1 | ms/word p50 / p95 |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const s of r.e2) {
    lines.push(`| ${name(s.system)}${s.note ? ` (${s.note})` : ''} | ${pct(s.ownCell)} | ${pct(s.ownCellWithLiked)} | ${pct(s.ownCellGold)} | ${pct(s.hitAt10)} | ${pct(s.wotdOwnCell)} | ${pct(s.wotdOwnCellWithLiked)} | ${pct(s.validity)} | ${pct(s.novelty)} | ${num(s.distinct1)} | ${ms(s)} |`)
  }
  if (r.judgeCeiling) {
    lines.push('', `The centroid judge itself puts ${pct(r.judgeCeiling.strict)} (lax ${pct(r.judgeCeiling.lax)}) of each person's other held-out words of their own cell in that cell when their gold label is hidden and each is left out of its cell's centroid: about the most a recommender of unlabelled words can expect from this judge.`)
  }
  if (r.learningCurve?.length) {
    const dis = Math.max(...r.learningCurve.map((p) => p.dislikes))
    lines.push('', `**Learning curve of the word of the day** (${r.options.curvePeople} people, one per cell, each as ${r.learningCurve.length} profiles made through \`like\` / \`dislike\`; the share of their next ${r.options.days} words of the day in their own cell, judged as in E2; 0 likes is the no-profile baseline; chance 1.6%)`, '')
    lines.push(`| likes | own cell | lax judge | own cell, also ${dis} wrong-cell dislikes | lax judge |`, '|---:|---:|---:|---:|---:|')
    for (const likes of [...new Set(r.learningCurve.map((p) => p.likes))]) {
      const a = r.learningCurve.find((p) => p.likes === likes && p.dislikes === 0)
      const b = r.learningCurve.find((p) => p.likes === likes && p.dislikes > 0)
      lines.push(`| ${likes} | ${pct(a?.ownCell)} | ${pct(a?.ownCellLax)} | ${pct(b?.ownCell)} | ${pct(b?.ownCellLax)} |`)
    }
  }
  lines.push('', '**Semantic ID on held-out words**: `code >> 3` of levels 0-2 against the gold values (unsupervised: each value read from the code its training words most often carry), and E1 mean / joint precision of the default scorer through that mode\'s IDs', '')
  lines.push('| mode | style | complexity | era | mean | E1 mean | E1 all three |', '|---|---:|---:|---:|---:|---:|---:|')
  for (const a of r.idAccuracy) lines.push(`| ${a.mode} | ${pct(a.style)} | ${pct(a.complexity)} | ${pct(a.era)} | ${num(a.mean * 100, 1)}% | ${a.e1Mean === undefined ? 'n/a' : `${num(a.e1Mean * 100, 1)}%`} | ${pct(a.e1Joint)} |`)
  return lines.join('\n') + '\n'
}
