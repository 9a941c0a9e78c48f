// The whole pipeline on the tiny fixture models: train, then the inference API; faults
// (a kill in each stage, then resume), corrupted artifacts, two trainers, bad input.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ConfigError,
  CorruptFileError,
  FileStore,
  InvalidInputError,
  InvalidPatternError,
  StoreError,
  WOTDModel,
  WOTDTrainer,
  trainingConfig,
} from '../src/index.js'
import { runCli } from './helpers/cli.js'
import { tinyConfig } from './helpers/tiny-pipeline.js'

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `wotd-${p}-`))
const child = join(import.meta.dirname, 'helpers', 'train-child.ts')

function runChild(store: string, env: NodeJS.ProcessEnv, killAt?: string) {
  return spawnSync(process.execPath, ['--import', '@oxc-node/core/register', child, store, ...(killAt ? ['--kill-at', killAt] : [])], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 300_000,
  })
}

test.serial('train on tiny models, then generate, encode, describe and today', async (t) => {
  const home = tmp('pipe')
  const prev = process.env.WOTD_HOME
  process.env.WOTD_HOME = home
  try {
    const events = new Set<string>()
    const r = await new WOTDTrainer(tinyConfig).trainCompletePipeline({ onProgress: (p) => events.add(`${p.stage}:${p.phase}`) })
    for (const s of ['corpus', 'embed', 'rvq', 'catalogue', 'dsl']) {
      t.is(r.stages[s as 'corpus'].status, 'completed', s)
      t.true(events.has(`${s}:start`) && events.has(`${s}:done`), s)
    }
    t.is(r.stages.corpus.metrics.words, 120)
    t.deepEqual(r.stages.rvq.metrics.utilisation && (r.stages.rvq.metrics.utilisation as number[]).length, 4)
    t.true(Object.keys(r.stages.dsl.artifacts).some((k) => k.startsWith('adapter_')))

    // A second run with the same config skips every stage.
    const again = await new WOTDTrainer(tinyConfig).trainCompletePipeline()
    t.is(again.runId, r.runId)
    for (const s of Object.values(again.stages)) t.is(s.status, 'skipped')

    const m = await WOTDModel.open()
    try {
      t.is(m.runId, r.runId)
      const g = await m.generateWordsFromId('[*,*,*,*]', { count: 5, seed: 1 })
      t.is(g.words.length, 5)
      for (const w of g.words) t.regex(w, /^[a-z][a-z'-]*[a-z]$/)
      t.true(g.baseline.length > 0)
      // Real, novel words with their meanings, by default.
      const index = await m.catalogueIndex()
      const training = new Set((await m.known()).map((k) => k.word))
      for (const e of g.entries) {
        t.true(index.catalogue.has(e.word), e.word)
        t.false(training.has(e.word), e.word)
        t.false(e.coined)
        t.is(e.definition, index.catalogue.get(e.word)!.definition)
      }
      const shown = await m.generateWordsFromId('[*,*,*,*]', { count: 5, seed: 1, exclude: g.words })
      t.deepEqual(shown.words.filter((w) => g.words.includes(w)), [], 'words already shown are not shown again')
      const region = await m.generateWordsFromId([9, null, null, null], { count: 5 })
      t.true(region.entries.every((e) => e.id[0] >> 3 === 1), 'a style request gets that style')
      // Coined words: labelled, never catalogue words.
      const coined = await m.generateWordsFromId('[*,*,*,*]', { count: 3, seed: 1, coined: true })
      for (const e of coined.entries) {
        t.true(e.coined)
        t.false(index.catalogue.has(e.word), e.word)
      }
      const rec = await m.recommend(['gossamer', 'moonlight'], { count: 5 })
      t.is(rec.words.length, 5)
      t.true(rec.words.every((w) => !['gossamer', 'moonlight'].includes(w) && !training.has(w) && index.catalogue.has(w)))
      const liked = await m.wordOfTheDay({ user: 'bea', date: '2026-11-25', likedWords: ['gossamer', 'moonlight'] })
      t.is(liked.source === 'taste' || liked.source === 'explore', true)
      t.true(index.catalogue.has(liked.word))
      t.is(liked.definition, index.catalogue.get(liked.word)!.definition)
      t.true(liked.nearestLiked.length > 0 && liked.nearestLiked.every((w) => ['gossamer', 'moonlight'].includes(w)))
      const enc = await m.encode(['gossamer', 'forsooth'])
      for (const e of enc) t.is(e.id.length, 4)
      t.regex(await m.describe('[9,*,*,*]'), /modern/)
      const day1 = await m.wordOfTheDay({ user: 'ada', date: '2026-11-25' })
      const day1again = await m.wordOfTheDay({ user: 'ada', date: '2026-11-25' })
      t.is(day1again.word, day1.word)
      const day2 = await m.wordOfTheDay({ user: 'ada', date: '2026-11-26' })
      t.not(day2.word, day1.word)
      await t.throwsAsync(m.wordOfTheDay({ user: 'ada', date: '2026-02-30' }), { instanceOf: InvalidInputError })
      await t.throwsAsync(m.generateWordsFromId('[32,0,0,0]'), { instanceOf: InvalidPatternError, message: /field 1: 32 is out of range 0-31/ })
      await t.throwsAsync(m.preferenceToId([]), { instanceOf: InvalidInputError })
    } finally {
      await m.close()
    }
    await t.throwsAsync(WOTDModel.open({ runId: 'no-such-run' }), { instanceOf: InvalidInputError, message: /unknown run id/ })

    // The CLI over the same store.
    const env = { WOTD_HOME: home }
    const gen = await runCli(['generate', '[*,*,*,*]', '-n', '3', '--json'], { env })
    t.is(gen.code, 0, gen.stderr)
    t.true(Array.isArray(JSON.parse(gen.stdout).words))
    const today = await runCli(['today', '--user', 'bob', '--date', '2026-11-25', '--json'], { env })
    t.is(today.code, 0, today.stderr)
    t.is(JSON.parse(today.stdout).user, 'bob')
    const bad = await runCli(['generate', '[1,2,3]'], { env })
    t.is(bad.code, 2)
    t.regex(bad.stderr, /expected 4 fields, found 3/)
    const badDate = await runCli(['today', '--date', '25/11/2026'], { env })
    t.is(badDate.code, 2)
    const badRun = await runCli(['runs', 'show', 'nope'], { env })
    t.is(badRun.code, 2)
    const badProfile = await runCli(['train', '--profile', 'huge'], { env })
    t.is(badProfile.code, 2)
    t.regex(badProfile.stderr, /profile/)
  } finally {
    // Assigning undefined would store the string 'undefined'.
    if (prev === undefined) delete process.env.WOTD_HOME
    else process.env.WOTD_HOME = prev
    rmSync(home, { recursive: true, force: true })
  }
})

for (const stage of ['corpus', 'embed', 'rvq', 'catalogue', 'dsl']) {
  test(`a run killed during the ${stage} stage resumes and ends like an uninterrupted run`, async (t) => {
    const home = tmp(`kill-${stage}`)
    const ref = tmp(`ref-${stage}`)
    try {
      const killed = runChild(join(home, 'store'), { WOTD_HOME: home }, stage)
      t.is(killed.signal, 'SIGKILL', killed.stderr)
      const resumed = runChild(join(home, 'store'), { WOTD_HOME: home })
      t.is(resumed.status, 0, resumed.stderr)
      const straight = runChild(join(ref, 'store'), { WOTD_HOME: ref })
      t.is(straight.status, 0, straight.stderr)
      const a = new FileStore({ dir: join(home, 'store') })
      const b = new FileStore({ dir: join(ref, 'store') })
      const ra = (await a.latestRun({ status: 'completed' }))!
      const rb = (await b.latestRun({ status: 'completed' }))!
      t.truthy(ra)
      t.deepEqual([...(await a.getSemanticIds(ra.id)).entries()].sort(), [...(await b.getSemanticIds(rb.id)).entries()].sort())
      const la = ra.stages.dsl.metrics!.losses as number[]
      const lb = rb.stages.dsl.metrics!.losses as number[]
      t.is(la.length, lb.length)
      la.forEach((x, i) => t.true(Math.abs(x - lb[i]) <= 1e-5, `loss ${i}: ${x} vs ${lb[i]}`))
      // The catalogue's IDs, and the held-out precision the kept adapter was chosen by.
      t.is(ra.stages.catalogue.artifacts!.ids.sha256, rb.stages.catalogue.artifacts!.ids.sha256)
      t.deepEqual(ra.stages.dsl.metrics!.precision, rb.stages.dsl.metrics!.precision)
    } finally {
      rmSync(home, { recursive: true, force: true })
      rmSync(ref, { recursive: true, force: true })
    }
  })
}

test('a corrupted artifact is detected when a run is loaded', async (t) => {
  const home = tmp('corrupt')
  try {
    const r = runChild(join(home, 'store'), { WOTD_HOME: home })
    t.is(r.status, 0, r.stderr)
    const store = new FileStore({ dir: join(home, 'store') })
    const run = (await store.latestRun({ status: 'completed' }))!
    const ref = run.stages.embed.artifacts!.embeddings
    // Flip one byte of the stored blob.
    const files = readdirSync(join(home, 'store'), { recursive: true }) as string[]
    const blob = files.find((f) => f.endsWith('embeddings.f32'))!
    const path = join(home, 'store', blob)
    const bytes = readFileSync(path)
    bytes[10] ^= 0xff
    writeFileSync(path, bytes)
    await t.throwsAsync(store.getArtifact(ref.name, { sha256: ref.sha256 }), { instanceOf: CorruptFileError })
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('a damaged adapter of a finished run: the rerun finds it, redoes that stage, and the run works again', async (t) => {
  const home = tmp('repair')
  try {
    const store = join(home, 'store')
    await new WOTDTrainer(tinyConfig, { store }).trainCompletePipeline()
    const fs = new FileStore({ dir: store })
    const run = (await fs.latestRun({ status: 'completed' }))!
    const files = readdirSync(store, { recursive: true }) as string[]
    const blob = join(store, files.find((f) => f.endsWith('adapter_model.safetensors'))!)
    const bytes = readFileSync(blob)
    bytes[bytes.length - 5] ^= 0xff
    writeFileSync(blob, bytes)
    const m0 = await WOTDModel.open({ store })
    await t.throwsAsync(m0.generator(), { instanceOf: CorruptFileError })
    await m0.close()

    const events: string[] = []
    const r = await new WOTDTrainer(tinyConfig, { store }).trainCompletePipeline({ onProgress: (p) => (p.phase === 'redo' || p.phase === 'skip') && events.push(`${p.stage}:${p.phase}:${p.message ?? ''}`) })
    t.is(r.runId, run.id, 'the same run is repaired')
    t.deepEqual(events.filter((e) => e.includes(':skip:')).map((e) => e.split(':')[0]), ['corpus', 'embed', 'rvq', 'catalogue'])
    const redo = events.find((e) => e.startsWith('dsl:redo:'))
    t.truthy(redo, events.join(' | '))
    t.regex(redo!, /its artifact .*adapter_model\.safetensors is damaged; doing the stage again/)
    t.is(r.stages.dsl.status, 'completed')
    const m = await WOTDModel.open({ store })
    try {
      await t.notThrowsAsync(m.generator())
    } finally {
      await m.close()
    }
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('a second trainer on the same store fails clearly while the first holds it', async (t) => {
  const home = tmp('lock')
  try {
    const store = new FileStore({ dir: join(home, 'store') })
    const lock = await store.acquireLock('train', { purpose: 'test holder' })
    try {
      const err = await t.throwsAsync(new WOTDTrainer(tinyConfig, { store: join(home, 'store') }).trainCompletePipeline(), { instanceOf: StoreError })
      t.regex(err!.message, /test holder|held/)
    } finally {
      await lock.release()
    }
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('invalid configs name the field', (t) => {
  t.throws(() => trainingConfig({ lora: { rank: 0 } }), { instanceOf: ConfigError, message: /lora\.rank/ })
  t.throws(() => trainingConfig({ profile: 'huge' as never }), { instanceOf: ConfigError, message: /profile/ })
  t.throws(() => trainingConfig({ dsl: { steps: 5, bogus: 1 } as never }), { instanceOf: ConfigError, message: /dsl/ })
  const d = trainingConfig()
  t.is(d.corpus.wordsPerCorpus, 100)
  t.is(d.lora.rank, 16)
  t.is(d.lora.alpha, 32)
  t.is(d.profile, 'compact')
})

test('SIGTERM during training is Ctrl-C: a checkpoint at the step it stopped, the lock released, exit 130; the rerun finishes', async (t) => {
  const { spawn } = await import('node:child_process')
  const home = tmp('sigterm')
  try {
    const config = join(home, 'config.json')
    writeFileSync(config, JSON.stringify({ ...tinyConfig, dsl: { ...tinyConfig.dsl, steps: 400, evalEvery: 400, checkpointEvery: 100 } }))
    const store = join(home, 'store')
    const env = { ...process.env, WOTD_HOME: home, WOTD_WORK: join(home, 'work'), MONGODB_URI: '' }
    const root = join(import.meta.dirname, '..')
    const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(root, 'src', 'cli', 'bin.ts'), 'train', '--config', config, '--store', store], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const closed = new Promise<number | null>((r) => child.on('close', r))
    let stderr = ''
    let sent = false
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      // Plain progress lines (not a terminal): stop once the LoRA steps have begun.
      if (!sent && /^dsl\s+\d+\/400/m.test(stderr)) {
        sent = true
        child.kill('SIGTERM')
      }
    })
    const code = await closed
    t.true(sent, stderr)
    t.is(code, 130, stderr)
    t.regex(stderr, /CANCELLED/)
    t.false(existsSync(join(store, 'locks', 'train.lock')), 'the lock was released')
    const checkpoints = (readdirSync(join(home, 'work'), { recursive: true }) as string[]).filter((f) => /checkpoint-\d+$/.test(f))
    t.true(checkpoints.length > 0, 'a checkpoint was written at the step it stopped')
    const again = await runCli(['train', '--config', config, '--store', store, '--json'], { env, timeoutMs: 300_000 })
    t.is(again.code, 0, again.stderr)
    t.is(JSON.parse(again.stdout).stages.dsl.status, 'completed')
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('a lock that cannot be released hides nothing: the training failure is reported, else the release failure with its cause', async (t) => {
  const { MemoryStore } = await import('../src/store/index.js')
  const lost = new Error('connection to the server was lost')
  class FlakyStore extends MemoryStore {
    override async acquireLock(name: string, options = {}) {
      const lock = await super.acquireLock(name, options)
      return Object.assign(Object.create(Object.getPrototypeOf(lock)), lock, {
        check: () => lock.check(),
        release: async () => {
          await lock.release()
          throw new StoreError('releasing the lock train failed', { cause: lost })
        },
      })
    }
  }
  // Training fails (no such decoder): that failure is what the caller sees.
  const broken = { ...tinyConfig, decoderModel: join(tmp('missing'), 'no-model-here') }
  const err = await t.throwsAsync(new WOTDTrainer(broken, { store: new FlakyStore() }).trainCompletePipeline())
  t.notRegex(err!.message, /releasing the lock/)
  // Training succeeds: the release failure is reported with the real cause beneath it.
  const rel = await t.throwsAsync(new WOTDTrainer(tinyConfig, { store: new FlakyStore() }).trainCompletePipeline(), { instanceOf: StoreError })
  t.regex(rel!.message, /training finished, but releasing the lock "train" of .* failed/)
  const { causeChain } = await import('../src/errors.js')
  t.true(causeChain(rel).some((m) => m.includes('connection to the server was lost')), causeChain(rel).join(' <- '))
})
