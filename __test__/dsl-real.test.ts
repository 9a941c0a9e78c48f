/**
 * Stage 4 on the real SmolLM2-135M-Instruct (pulled by `npx wotd models pull` into
 * ~/.cache/wotd/models, resolved by id): a few LoRA steps through DSLTrainer lower the loss on
 * a fixed batch, and generateWordsFromId returns well-formed words (f32 and Q8_0).
 *
 * In CI (CI=true) a missing model is a failure; elsewhere the tests are skipped with a notice.
 */
import test from 'ava'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DSLTrainer, generateWordsFromId, type DSLExample } from '../src/dsl/index.js'
import { findModel } from '../src/models/locate.js'

const MODEL_ID = 'HuggingFaceTB/SmolLM2-135M-Instruct'
const present = await findModel(MODEL_ID)
const inCI = process.env.CI === 'true'

/** Eight examples from the bundled lexicon; batch size 8 makes every update see all of them. */
function fixedBatch(): DSLExample[] {
  const lex = join(import.meta.dirname, '..', 'data', 'lexicon')
  const styles = ['classical', 'modern', 'romantic', 'neutral']
  const out: DSLExample[] = []
  for (const [s, style] of styles.entries()) {
    const words = readFileSync(join(lex, `${style}.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { word: string }).word)
    out.push({ pattern: [s * 8, null, null, null], words: words.slice(0, 6) })
    out.push({ pattern: [s * 8, 9, null, null], words: words.slice(6, 12) })
  }
  return out
}

const WELL_FORMED = /^\p{L}+(?:[-']\p{L}+)*$/u

if (!present && inCI) {
  test(`the real DSL base model is present (run \`npx wotd models pull\`)`, (t) => {
    t.fail(`CI must run the real-model Stage 4 tests, but ${MODEL_ID} is not in the models folder or HF cache`)
  })
} else if (!present) {
  console.warn(
    `\n${'='.repeat(70)}\nSKIPPED dsl-real: ${MODEL_ID} is not available locally.\n` +
      `Fetch it with \`npx wotd models pull\` to run the real-model Stage 4 tests.\n${'='.repeat(70)}\n`,
  )
  test('real-model Stage 4 tests skipped (model not pulled)', (t) => t.pass())
} else {
  test.serial('SmolLM2: a few LoRA steps lower the loss on a fixed batch; generated words are well-formed', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wotd-dsl-real-'))
    try {
      const trainer = new DSLTrainer()
      const r = await trainer.train(fixedBatch(), {
        baseModel: MODEL_ID,
        offline: true,
        outDir: dir,
        validationFraction: 0,
        steps: 5,
        batchSize: 8,
        lr: 2e-3,
        warmupSteps: 1,
        lora: { rank: 8, alpha: 16, dropout: 0 },
        evalEvery: 0,
        checkpointEvery: 0,
        seed: 1,
      })
      t.log(`losses ${r.losses.map((l) => l.toFixed(3)).join(' -> ')}; ${r.tokensPerSecond.toFixed(0)} tokens/s`)
      t.is(r.steps, 5)
      t.true(r.losses[r.losses.length - 1] < r.losses[0] * 0.9, `loss ${r.losses[0]} -> ${r.losses.at(-1)}`)
      for (const quantize of ['f32', 'q8_0'] as const) {
        const out = await generateWordsFromId('[8,9,*,*]', { adapterDir: r.adapterDir, offline: true, quantize, count: 8, seed: 2 })
        t.log(`${quantize}: ${out.words.join(', ')} (${out.msPerWord.toFixed(1)} ms/word; raw ${JSON.stringify(out.raw[0])})`)
        t.true(out.words.length > 0, `${quantize}: no words in ${JSON.stringify(out.raw)}`)
        for (const w of out.words) {
          t.regex(w, WELL_FORMED)
          t.true([...w].length >= 2 && [...w].length <= 24 && w === w.toLowerCase(), w)
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
