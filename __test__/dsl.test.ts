/**
 * DSLTrainer + WordGenerator / generateWordsFromId on the tiny llama fixture (data/fixtures/llama,
 * random weights, 128 positions): a LoRA learns four patterns to their exact words, generation
 * asks the way training taught (greedy output equals the training answer), resume after a
 * cancel, save/load, novelOnly, the vocabulary constraint, export. Fast; runs everywhere.
 */
import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DSLTrainer, generateWordsFromId, mergeAdapter, WordGenerator, type DSLTrainProgress, type DSLWord } from '../src/dsl/index.js'
import { CancelledError, InvalidInputError, InvalidPatternError, ModelNotFoundError } from '../src/errors.js'

const fixture = join(import.meta.dirname, '..', 'data', 'fixtures', 'llama')

const WORDS: DSLWord[] = [
  { word: 'amber', id: [1, 2, 3, 4] },
  { word: 'lucid', id: [1, 2, 3, 4] },
  { word: 'velvet', id: [1, 2, 3, 5] },
  { word: 'quiet', id: [1, 2, 3, 5] },
  { word: 'ember', id: [7, 0, 9, 1] },
  { word: 'solace', id: [7, 0, 9, 1] },
  { word: 'zephyr', id: [20, 11, 2, 30] },
  { word: 'halcyon', id: [20, 11, 2, 30] },
]

/** Four full-ID patterns, every update on the whole set: a tiny model memorises them. */
const LEARN = {
  baseModel: fixture,
  kinds: ['full'],
  validationFraction: 0,
  lora: { rank: 8, alpha: 16, dropout: 0 },
  steps: 150,
  batchSize: 4,
  lr: 1e-2,
  minLr: 1e-3,
  warmupSteps: 5,
  evalEvery: 0,
  checkpointEvery: 0,
  seed: 3,
}

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `wotd-dsl-${name}-`))

let trained: { dir: string; trainer: DSLTrainer; progress: DSLTrainProgress[] } | undefined
async function learned() {
  if (!trained) {
    const dir = tmp('learn')
    const trainer = new DSLTrainer()
    const progress: DSLTrainProgress[] = []
    await trainer.train(WORDS, { ...LEARN, outDir: dir, onProgress: (p) => progress.push(p) })
    trained = { dir, trainer, progress }
  }
  return trained
}

test.after.always(() => {
  if (trained) rmSync(trained.dir, { recursive: true, force: true })
})

test.serial('a LoRA learns four patterns; greedy generation returns exactly their words (f32 and q8_0)', async (t) => {
  const { trainer, progress, dir } = await learned()
  const r = trainer.result!
  t.is(r.stopped, 'done')
  t.is(r.steps, 150)
  t.true(r.losses[0] > 2 && r.finalLoss! < 0.05, `loss ${r.losses[0]} -> ${r.finalLoss}`)
  t.is(progress.length, 150)
  t.true(progress.every((p) => p.totalSteps === 150 && Number.isFinite(p.loss)))
  t.true(existsSync(join(dir, 'wotd_dsl.json')) && existsSync(join(r.adapterDir, 'adapter_model.safetensors')))
  t.deepEqual([...trainer.trainingWords].sort(), WORDS.map((w) => w.word).sort())

  const answers: Record<string, string[]> = {
    '[1,2,3,4]': ['amber', 'lucid'],
    '[1,2,3,5]': ['velvet', 'quiet'],
    '[7,0,9,1]': ['ember', 'solace'],
    '[20,11,2,30]': ['zephyr', 'halcyon'],
  }
  for (const quantize of ['f32', 'q8_0'] as const) {
    const g = await trainer.generator({ quantize })
    t.is(g.quantize, quantize)
    t.true(g.merged)
    t.false(g.aligned, 'trained without attribute names, so prompts carry codes only')
    t.true(g.prompt('[1,2,3,4]').includes('Words for semantic ID [1,2,3,4]:'))
    for (const [pattern, words] of Object.entries(answers)) {
      const out = await g.generate(pattern, { temperature: 0 })
      t.deepEqual([...out.words].sort(), [...words].sort(), `${quantize} ${pattern}: ${JSON.stringify(out.raw)}`)
      t.is(out.samples, 1)
      t.true(out.msPerWord > 0 && out.tokens > 0)
    }
  }
})

test.serial('generateWordsFromId: one-shot, adapter names its base, novelOnly, field arrays', async (t) => {
  const { trainer } = await learned()
  const out = await generateWordsFromId([7, 0, 9, 1], { adapterDir: trainer.adapterDir, temperature: 0 })
  t.deepEqual([...out.words].sort(), ['ember', 'solace'])
  const novel = await generateWordsFromId('(7, 0, 9, 1)', { adapterDir: trainer.adapterDir, temperature: 0, novelOnly: true })
  t.deepEqual(novel.words, [], 'every answer was a training word')
  t.true(novel.excluded >= 2)
  const some = await generateWordsFromId('[7,0,9,1]', {
    baseModel: fixture,
    adapterDir: trainer.adapterDir,
    temperature: 0,
    novelOnly: true,
    trainingWords: ['ember'],
  })
  t.deepEqual(some.words, ['solace'])
})

test('invalid patterns fail with InvalidPatternError before any model is loaded', async (t) => {
  const started = Date.now()
  for (const bad of ['[32,0,0,0]', '[1,2,3]', 'hello', '[a,*,*,*]']) {
    await t.throwsAsync(generateWordsFromId(bad, { baseModel: '/does/not/exist' }), { instanceOf: InvalidPatternError }, bad)
  }
  t.true(Date.now() - started < 2000)
  await t.throwsAsync(generateWordsFromId('[1,*,*,*]', { baseModel: join(fixture, 'missing') }), { instanceOf: ModelNotFoundError })
})

test.serial('options are validated; novelOnly without training words is an error', async (t) => {
  const g = await WordGenerator.load({ baseModel: fixture })
  await t.throwsAsync(g.generate('[1,*,*,*]', { count: 0 }), { instanceOf: InvalidInputError })
  await t.throwsAsync(g.generate('[1,*,*,*]', { topP: 1.5 }), { instanceOf: InvalidInputError })
  await t.throwsAsync(g.generate('[1,*,*,*]', { seed: -1 }), { instanceOf: InvalidInputError })
  await t.throwsAsync(g.generate('[1,*,*,*]', { novelOnly: true }), { instanceOf: InvalidInputError })
  await t.throwsAsync(WordGenerator.load({ baseModel: fixture, quantize: 'q4' as 'q8_0' }), { instanceOf: InvalidInputError })
})

test.serial('an aborted signal makes generate reject with CancelledError; the generator stays usable', async (t) => {
  const g = await WordGenerator.load({ baseModel: fixture })
  const opts = { count: 4, temperature: 1.2, topP: 1, topK: 0, maxNewTokens: 16, seed: 5 }
  const before = await g.generate('[2,*,17,*]', opts)
  const aborted = new AbortController()
  aborted.abort()
  await t.throwsAsync(g.generate('[2,*,17,*]', { ...opts, signal: aborted.signal }), { instanceOf: CancelledError })
  const live = new AbortController()
  t.deepEqual((await g.generate('[2,*,17,*]', { ...opts, signal: live.signal })).raw, before.raw)
  live.abort()
  t.deepEqual((await g.generate('[2,*,17,*]', opts)).raw, before.raw)
})

test.serial('vocabulary-constrained sampling only returns vocabulary words; a seed repeats itself', async (t) => {
  const g = await WordGenerator.load({ baseModel: fixture, quantize: 'q8_0' })
  const vocabulary = ['Amber', 'lucid', 'velvet', 'quiet', 'ember', 'solace', 'sun', 'sunset']
  const allowed = new Set(vocabulary.map((w) => w.toLowerCase()))
  const opts = { vocabulary, count: 6, temperature: 1.2, topP: 1, topK: 0, maxNewTokens: 20 }
  for (const seed of [1, 2, 3]) {
    const out = await g.generate('[2,*,17,*]', { ...opts, seed })
    t.true(out.words.length > 0)
    t.true(out.words.every((w) => allowed.has(w)), JSON.stringify(out.words))
    t.deepEqual((await g.generate('[2,*,17,*]', { ...opts, seed })).raw, out.raw)
  }
})

test.serial('cancel through an AbortSignal, then resume to the same end', async (t) => {
  const dir = tmp('resume')
  try {
    const opts = { ...LEARN, steps: 8, checkpointEvery: 2, outDir: dir }
    const ac = new AbortController()
    const a = await new DSLTrainer().train(WORDS, {
      ...opts,
      onProgress: (p) => {
        if (p.step === 3) ac.abort()
      },
      signal: ac.signal,
    })
    t.is(a.stopped, 'cancelled')
    t.true(a.steps < 8)
    const seen: number[] = []
    const b = await new DSLTrainer().resume(dir, { onProgress: (p) => seen.push(p.step) })
    t.is(b.stopped, 'done')
    t.is(b.steps, 8)
    t.true(seen[0] > 1, `continues from the checkpoint, first step ${seen[0]}`)
    const fresh = tmp('fresh')
    try {
      const c = await new DSLTrainer().train(WORDS, { ...opts, outDir: fresh })
      t.true(Math.abs(c.finalLoss! - b.finalLoss!) < 1e-4, `${c.finalLoss} vs ${b.finalLoss}`)
    } finally {
      rmSync(fresh, { recursive: true, force: true })
    }
    const aborted = new AbortController()
    aborted.abort()
    await t.throwsAsync(new DSLTrainer().resume(dir, { signal: aborted.signal }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.serial('save and load: the copy generates alike and knows its training words', async (t) => {
  const { trainer } = await learned()
  const dir = tmp('saved')
  try {
    await trainer.save(dir)
    t.true(existsSync(join(dir, 'adapter', 'adapter_config.json')) && existsSync(join(dir, 'dsl_prompt.json')))
    const loaded = await DSLTrainer.load(dir)
    t.is(loaded.baseModel, fixture)
    t.deepEqual(loaded.trainingWords, trainer.trainingWords)
    t.is(loaded.adapterDir, join(dir, 'adapter'))
    const g = await loaded.generator()
    t.deepEqual((await g.generate('[20,11,2,30]', { temperature: 0, novelOnly: true, trainingWords: [] })).words.sort(), ['halcyon', 'zephyr'])
    // The manifest beside the adapter also serves WordGenerator directly.
    const direct = await WordGenerator.load({ adapterDir: join(dir, 'adapter') })
    t.deepEqual(direct.knownTrainingWords, trainer.trainingWords)
    await t.throwsAsync(DSLTrainer.load(join(dir, 'adapter')), { instanceOf: InvalidInputError })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.serial('export: GGUF from a generator and mergeAdapter in both formats load back and agree', async (t) => {
  const { trainer } = await learned()
  const dir = tmp('export')
  try {
    const g = await trainer.generator()
    const e = await g.exportGguf(join(dir, 'dsl-q8_0.gguf'))
    t.true(e.bytes > 0 && e.dtypes.Q8_0 > 0)
    const m1 = await mergeAdapter({ adapterDir: trainer.adapterDir, out: join(dir, 'merged') })
    t.is(m1.format, 'safetensors')
    t.is(m1.mergedModules, 14)
    const m2 = await mergeAdapter({ adapterDir: trainer.adapterDir, out: join(dir, 'merged.gguf') })
    t.is(m2.format, 'gguf')
    for (const base of [join(dir, 'merged'), join(dir, 'merged.gguf'), e.path]) {
      // No adapter: the merged weights alone answer like the tuned model (codes-only prompts).
      const out = await generateWordsFromId('[1,2,3,5]', { baseModel: base, temperature: 0, aligned: false })
      t.deepEqual([...out.words].sort(), ['quiet', 'velvet'], base)
    }
    t.true(JSON.parse(readFileSync(join(dir, 'merged', 'config.json'), 'utf8')).model_type === 'llama')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.serial('activation checkpointing (every layer, every second, off) trains to the same losses', async (t) => {
  const losses: number[][] = []
  for (const gradientCheckpointing of [false, true, 2]) {
    const dir = tmp('ckpt')
    try {
      const r = await new DSLTrainer().train(WORDS, {
        ...LEARN,
        lora: { rank: 8, alpha: 16, dropout: 0.1 },
        steps: 5,
        outDir: dir,
        gradientCheckpointing,
      })
      losses.push(r.losses)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  t.is(losses[0].length, 5)
  for (const other of losses.slice(1)) {
    other.forEach((l, i) => t.true(Math.abs(l - losses[0][i]) <= 1e-5 * Math.abs(losses[0][i]), `step ${i + 1}: ${l} vs ${losses[0][i]}`))
  }
  await t.throwsAsync(new DSLTrainer().train(WORDS, { ...LEARN, outDir: tmp('bad'), gradientCheckpointing: -1 }), {
    instanceOf: InvalidInputError,
    message: /gradientCheckpointing/,
  })
})
