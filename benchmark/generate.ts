/**
 * `npm run bench:generate`: how fast the default word generation answers, the way people call
 * it, written to benchmark/results/generate.{json,md} (numbers, never pass/fail).
 *
 *   npm run bench:generate -- [--store DIR|mongodb://...] [--runs 7] [--out DIR]
 *
 * 1. `npx wotd generate <pattern> -n 10` as a whole process (node start, loading the run and
 *    the word catalogue, ranking, printing; `bin/wotd.js` over `dist/`): wall seconds, min / median / max of `--runs`,
 *    after one untimed run that fills the caches (target: <= 1.5 s);
 * 2. in one process, after loading: ms per word of `generateWordsFromId(pattern, { count: 10 })`
 *    over five patterns, p50 / p95 of 50 calls (target: <= 30 ms).
 * Needs a trained run (default: the newest completed run of $WOTD_HOME or ./.wotd).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { WOTDModel } from '../src/pipeline/inference.ts'
import { redactText } from '../src/store/index.ts'
import { percentile } from './lib/sys.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({ options: { store: { type: 'string' }, runs: { type: 'string', default: '7' }, out: { type: 'string' } } })
const runs = Number(args.runs)
const PATTERNS = ['[*,9,*,*]', '[2,*,17,*]', '[1,*,*,*]', '[3,20,5,*]', '[*,*,30,*]']
const storeArgs = args.store ? ['--store', args.store] : []

// The installed command (`bin/wotd.js` over the compiled `dist/`, as `npx wotd` runs it).
const bin = join(root, 'bin', 'wotd.js')
if (!existsSync(join(root, 'dist', 'cli', 'bin.js'))) throw new Error('dist/ is missing: run `npm run build:ts` first')
const cli = (pattern: string) => {
  const t0 = performance.now()
  const r = spawnSync(process.execPath, [bin, 'generate', pattern, '-n', '10', ...storeArgs], { cwd: root, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`wotd generate failed: ${r.stderr}`)
  return (performance.now() - t0) / 1000
}
cli(PATTERNS[0])
const walls: number[] = []
for (let i = 0; i < runs; i++) walls.push(cli(PATTERNS[i % PATTERNS.length]))
walls.sort((a, b) => a - b)

const model = await WOTDModel.open({ store: args.store })
const loadStart = performance.now()
await model.catalogueIndex()
const loadS = (performance.now() - loadStart) / 1000
const perWord: number[] = []
for (let i = 0; i < 50; i++) {
  const t0 = performance.now()
  const r = await model.generateWordsFromId(PATTERNS[i % PATTERNS.length], { count: 10 })
  perWord.push((performance.now() - t0) / Math.max(1, r.words.length))
}
const runId = model.runId
await model.close()

const result = {
  date: new Date().toISOString(),
  command: redactText(`npm run bench:generate -- ${process.argv.slice(2).join(' ')}`.trim()),
  runId,
  cliWallS: { min: walls[0], median: walls[Math.floor(walls.length / 2)], max: walls.at(-1), runs },
  loadS,
  msPerWord: { p50: percentile(perWord, 50), p95: percentile(perWord, 95), calls: perWord.length },
}
const md = [
  '# Default word generation',
  '',
  `Run ${runId}; ${new Date().toISOString().slice(0, 10)}; 2 shared cores; the CLI as installed (\`bin/wotd.js\` over \`dist/\`).`,
  '',
  '| figure | measured | target |',
  '|---|---:|---:|',
  `| \`wotd generate <pattern> -n 10\`, whole process, s (min / median / max of ${runs}) | ${walls[0].toFixed(2)} / ${result.cliWallS.median.toFixed(2)} / ${walls.at(-1)!.toFixed(2)} | <= 1.5 |`,
  `| loading a run's catalogue index in a process, s | ${loadS.toFixed(2)} | |`,
  `| ms per word, warm, p50 / p95 of 50 calls of 10 words | ${result.msPerWord.p50!.toFixed(1)} / ${result.msPerWord.p95!.toFixed(1)} | <= 30 |`,
  '',
].join('\n')
const out = resolve(args.out ?? join(root, 'benchmark', 'results'))
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'generate.json'), JSON.stringify({ ...result, markdown: md }, null, 2) + '\n')
writeFileSync(join(out, 'generate.md'), md)
process.stdout.write(md + '\n')
