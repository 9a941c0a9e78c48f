/**
 * `npm run eval`: the evaluation of src/eval/harness.ts on a trained run, written to
 * benchmark/results/eval.json and eval.md (numbers, never pass/fail).
 *
 *   npm run eval -- [--store DIR|mongodb://...] [--run ID] [--quick] [--no-lm] [--no-curve] [--out DIR]
 *
 * Without --store, trains a run at the defaults (`npx wotd train`) into a temporary store
 * first. --quick asks fewer words and people (a smoke run); --no-lm leaves the LM systems out;
 * --no-curve the word of the day's learning curve (which writes profiles of made-up users,
 * `wotd-eval-curve-*`, into the store and forgets them again).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { evaluate, evalMarkdown } from '../src/eval/index.ts'
import { WOTDModel } from '../src/pipeline/inference.ts'
import { WOTDTrainer } from '../src/pipeline/trainer.ts'
import { redactText } from '../src/store/index.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: {
    store: { type: 'string' },
    run: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-lm': { type: 'boolean', default: false },
    'no-curve': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const log = (m: string) => process.stderr.write(`[eval] ${m}\n`)
let store = args.store
if (!store) {
  store = mkdtempSync(join(tmpdir(), 'wotd-eval-'))
  log(`training a run at the defaults into ${store}`)
  let last = ''
  await new WOTDTrainer({}, { store }).trainCompletePipeline({
    onProgress: (p) => {
      const line = `${p.stage} ${p.phase}${p.done !== undefined ? ` ${p.done}/${p.total}` : ''}`
      if (p.phase !== 'progress' || line.split(' ')[0] !== last) log(line)
      last = line.split(' ')[0]
    },
  })
}
const model = await WOTDModel.open({ store, runId: args.run })
try {
  const report = await evaluate(model, {
    k: args.quick ? 5 : 10,
    peoplePerCell: args.quick ? 1 : 3,
    lm: !args['no-lm'],
    lmPeople: args.quick ? 12 : 48,
    curvePeople: args['no-curve'] ? 0 : args.quick ? 8 : 32,
    onProgress: log,
  })
  const md = evalMarkdown(report)
  const out = resolve(args.out ?? join(root, 'benchmark', 'results'))
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, 'eval.json'), JSON.stringify({ date: new Date().toISOString(), command: redactText(`npm run eval -- ${process.argv.slice(2).join(' ')}`.trim()), ...report, markdown: md }, null, 2) + '\n')
  writeFileSync(join(out, 'eval.md'), `# Evaluation on held-out words\n\n${md}`)
  process.stdout.write(md)
  log(`done in ${(report.elapsedMs / 1000).toFixed(0)} s; wrote ${join(out, 'eval.json')} and eval.md`)
} finally {
  await model.close()
}
