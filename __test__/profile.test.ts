// Profiles: the update rule, like / dislike / profile / forget on a tiny trained run, the word
// of the day from a profile (deterministic, no repeat, concurrent callers, dislikes), bad names
// and words, and the CLI.
import test from 'ava'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CancelledError, FileStore, InvalidInputError, WOTDModel, WOTDTrainer } from '../src/index.js'
import { DISLIKE_SHARE, likeWeights, preferenceVector, vectorFromBase64, vectorToBase64, withFeedback, emptyProfile } from '../src/profile/index.js'
import { runCli } from './helpers/cli.js'
import { tinyConfig } from './helpers/tiny-pipeline.js'

const unit = (xs: number[]) => {
  const n = Math.hypot(...xs)
  return Float32Array.from(xs, (x) => x / n)
}
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0)

test('the rule: recent likes weigh more, halving every 30 days; dislikes push away; no likes, no taste', (t) => {
  t.deepEqual(likeWeights(['2026-01-31T00:00:00Z', '2026-01-01T00:00:00Z', '2025-12-02T00:00:00Z']), [1, 0.5, 0.25])
  const a = unit([1, 0, 0])
  const b = unit([0, 1, 0])
  const old = { vector: a, at: '2026-01-01T00:00:00Z' }
  const recent = { vector: b, at: '2026-01-31T00:00:00Z' }
  const v = preferenceVector([old, recent], [])!
  // weights 0.5 and 1 -> (1/3, 2/3) before normalising
  t.true(Math.abs(v[0] / v[1] - 0.5) < 1e-6)
  t.true(Math.abs(Math.hypot(...v) - 1) < 1e-6)
  const d = unit([0, 0.6, 0.8])
  const withDislike = preferenceVector([old, recent], [{ vector: d, at: '2026-02-01T00:00:00Z' }])!
  t.true(dot(withDislike, d) < dot(v, d), 'a dislike moves the taste away from the disliked word')
  // Exactly the documented formula, centre included.
  const centre = Float32Array.from([0.1, 0.2, 0.3])
  const got = preferenceVector([recent], [{ vector: d, at: '2026-02-01T00:00:00Z' }], centre)!
  const want = unit([0 - DISLIKE_SHARE * (d[0] - 0.1), 1 - DISLIKE_SHARE * (d[1] - 0.2), 0 - DISLIKE_SHARE * (d[2] - 0.3)])
  for (let i = 0; i < 3; i++) t.true(Math.abs(got[i] - want[i]) < 1e-6)
  t.is(preferenceVector([], [{ vector: d, at: '2026-02-01T00:00:00Z' }]), undefined)
  t.deepEqual(Array.from(vectorFromBase64(vectorToBase64(v))), Array.from(v))
})

test('feedback: a word is liked or disliked, never both; liking again moves it to the end', (t) => {
  let p = withFeedback(emptyProfile('ada'), 'liked', ['a', 'b'], '2026-01-01T00:00:00Z')
  p = withFeedback(p, 'disliked', ['b', 'c'], '2026-01-02T00:00:00Z')
  p = withFeedback(p, 'liked', ['a'], '2026-01-03T00:00:00Z')
  t.deepEqual(p.liked, [{ word: 'a', at: '2026-01-03T00:00:00Z' }])
  t.deepEqual(p.disliked.map((d) => d.word), ['b', 'c'])
})

const trained = (async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-profile-'))
  const store = join(dir, 'store')
  await new WOTDTrainer(tinyConfig, { store }).trainCompletePipeline()
  return { dir, store }
})()
test.after.always(async () => rmSync((await trained).dir, { recursive: true, force: true }))

test.serial('like, dislike, profile and forget; the word of the day follows the profile', async (t) => {
  const { store } = await trained
  const m = await WOTDModel.open({ store })
  try {
    const empty = await m.profile('ada')
    t.deepEqual([empty.liked, empty.disliked, empty.shown, empty.id], [[], [], [], null])

    const p = await m.like('ada', ['Gossamer', ' moonlight ', 'zzyzxqua'])
    t.deepEqual(p.liked.map((l) => l.word), ['gossamer', 'moonlight', 'zzyzxqua'], 'trimmed, lower case; a word outside the catalogue is kept')
    t.truthy(p.id)
    t.true(Math.abs(Math.hypot(...p.vector!) - 1) < 1e-5)
    t.truthy(p.meaning)
    const d = await m.dislike('ada', ['zzyzxqua', 'gloom'])
    t.deepEqual(d.liked.map((l) => l.word), ['gossamer', 'moonlight'])
    t.deepEqual(d.disliked.map((l) => l.word), ['zzyzxqua', 'gloom'])

    const day = await m.wordOfTheDay({ user: 'ada', date: '2026-12-01' })
    t.true(day.source === 'taste' || day.source === 'explore')
    t.false(['gossamer', 'moonlight', 'zzyzxqua', 'gloom'].includes(day.word))
    t.true(day.nearestLiked.length > 0 && day.nearestLiked.every((w) => ['gossamer', 'moonlight'].includes(w)))
    t.is((await m.wordOfTheDay({ user: 'ada', date: '2026-12-01' })).word, day.word, 'the same all day')
    // No repeat on either side of a date within the window.
    const later = await m.wordOfTheDay({ user: 'ada', date: '2026-12-20' })
    const between = await m.wordOfTheDay({ user: 'ada', date: '2026-12-07' })
    t.is(new Set([day.word, later.word, between.word]).size, 3)
    t.deepEqual((await m.profile('ada')).shown.map((s) => s.date), ['2026-12-20', '2026-12-07', '2026-12-01'])

    // Concurrent likes are all kept.
    await Promise.all(['alpha', 'beta', 'gamma', 'delta', 'epsilon'].map((w) => m.like('cy', [w])))
    t.deepEqual((await m.profile('cy')).liked.map((l) => l.word).sort(), ['alpha', 'beta', 'delta', 'epsilon', 'gamma'])

    const gone = await m.forget('ada')
    t.deepEqual(gone, { user: 'ada', profile: true, history: 3 })
    const after = await m.profile('ada')
    t.deepEqual([after.liked, after.disliked, after.shown, after.id], [[], [], [], null])
    t.deepEqual(await m.forget('ada'), { user: 'ada', profile: false, history: 0 })
  } finally {
    await m.close()
  }
})

test.serial('concurrent callers of one user and day get one word and one history entry', async (t) => {
  const { store } = await trained
  const models = await Promise.all([0, 1, 2, 3].map(() => WOTDModel.open({ store })))
  try {
    const likes = [['gossamer'], ['moonlight'], ['forsooth'], ['software']]
    const days = await Promise.all(models.map((m, i) => m.wordOfTheDay({ user: 'bob', date: '2026-12-01', likedWords: likes[i] })))
    t.is(new Set(days.map((d) => d.word)).size, 1)
    const fs = new FileStore({ dir: store })
    const h = await fs.getHistory('bob')
    t.is(h.length, 1)
    t.is(h[0].word, days[0].word)
  } finally {
    for (const m of models) await m.close()
  }
})

test.serial('names are data: hostile names are kept as names, bad names and words are refused', async (t) => {
  const { store, dir } = await trained
  const m = await WOTDModel.open({ store })
  try {
    for (const user of ['../../x', '{"$gt":""}', 'grace@example.com', 'Zoë']) {
      const p = await m.like(user, ['gossamer'])
      t.is(p.user, user)
      t.deepEqual((await m.profile(user)).liked.map((l) => l.word), ['gossamer'])
      await m.wordOfTheDay({ user, date: '2026-12-02' })
      t.deepEqual(await m.forget(user), { user, profile: true, history: 1 })
    }
    t.false(existsSync(join(dir, 'x')))
    t.false(readdirSync(dir).some((f) => f !== 'store'), 'nothing is written outside the store')
    for (const [user, msg] of [
      ['', /user name "" must be 1 to 200/],
      ['x'.repeat(201), /201 characters/],
      ['a\u0007b', /control characters/],
      ['   ', /blank/],
    ] as const) {
      await t.throwsAsync(m.like(user, ['gossamer']), { instanceOf: InvalidInputError, message: msg })
      await t.throwsAsync(m.wordOfTheDay({ user, date: '2026-12-02' }), { instanceOf: InvalidInputError })
    }
    await t.throwsAsync(m.like('ada', []), { instanceOf: InvalidInputError, message: /no words given/ })
    await t.throwsAsync(m.like('ada', ['  ']), { instanceOf: InvalidInputError, message: /empty word/ })
    await t.throwsAsync(m.dislike('ada', ['x'.repeat(65)]), { instanceOf: InvalidInputError, message: /65 characters long; a word has at most 64/ })
    t.deepEqual((await m.profile('ada')).liked, [], 'a refused change writes nothing')
  } finally {
    await m.close()
  }
})

test.serial('the CLI: like, dislike, profile, today from the profile, forget', async (t) => {
  const { store } = await trained
  const env = { WOTD_HOME: store, MONGODB_URI: '' }
  const like = await runCli(['like', 'gossamer', 'moonlight', '--user', 'dee', '--json'], { env })
  t.is(like.code, 0, like.stderr)
  t.deepEqual(JSON.parse(like.stdout).liked.map((l: { word: string }) => l.word), ['gossamer', 'moonlight'])
  t.true(JSON.parse(like.stdout).hasTaste)
  t.is((await runCli(['dislike', 'gloom', '--user', 'dee'], { env })).code, 0)
  const today = await runCli(['today', '--user', 'dee', '--date', '2026-12-03', '--json'], { env })
  t.is(today.code, 0, today.stderr)
  const word = JSON.parse(today.stdout)
  t.true(['taste', 'explore'].includes(word.source))
  const prof = await runCli(['profile', '--user', 'dee', '--json'], { env })
  const p = JSON.parse(prof.stdout)
  t.deepEqual(p.disliked.map((l: { word: string }) => l.word), ['gloom'])
  t.deepEqual(p.shown, [{ date: '2026-12-03', word: word.word }])
  const bad = await runCli(['like', '--user', 'dee', ''], { env })
  t.is(bad.code, 2)
  t.regex(bad.stderr, /empty word/)
  const forget = await runCli(['forget', '--user', 'dee'], { env })
  t.is(forget.code, 0)
  t.regex(forget.stdout, /forgot dee: profile, 1 word of the day/)
})

test.serial('every profile gets its day: paged, resumable after a cancel, the same words as one by one; the CLI', async (t) => {
  const { store } = await trained
  const fs = new FileStore({ dir: store })
  const m = await WOTDModel.open({ store })
  const users = ['u1', 'u2', 'u3', 'u4', 'u5']
  try {
    for (const [i, u] of users.entries()) await m.like(u, [['gossamer'], ['moonlight'], ['software'], ['forsooth'], ['gloom']][i])
    const total = await fs.countProfiles()
    t.true(total >= users.length)
    const ac = new AbortController()
    await t.throwsAsync(
      m.wordsOfTheDayForAll({ date: '2026-12-10', pageSize: 2, signal: ac.signal, onProgress: (p) => p.done === 2 && ac.abort() }),
      { instanceOf: CancelledError, message: new RegExp(`cancelled after 2 of ${total} profiles \\(2 words stored\\); run it again`) },
    )
    const r = await m.wordsOfTheDayForAll({ date: '2026-12-10', pageSize: 2 })
    t.deepEqual([r.users, r.existing, r.made, r.failedCount], [total, 2, total - 2, 0], 'the two made before the cancel are kept')
    const again = await m.wordsOfTheDayForAll({ date: '2026-12-10' })
    t.deepEqual([again.made, again.existing], [0, total], 'a rerun makes nothing new')
    for (const u of users) {
      const h = await fs.getHistory(u, { from: '2026-12-10', to: '2026-12-10' })
      t.is(h.length, 1)
      t.is((await m.wordOfTheDay({ user: u, date: '2026-12-10' })).word, h[0].word, 'the same word as asking for the one user')
    }
    await t.throwsAsync(m.wordsOfTheDayForAll({ date: '2026-13-01' }), { instanceOf: InvalidInputError, message: /bad date/ })
  } finally {
    await m.close()
  }
  const env = { WOTD_HOME: store, MONGODB_URI: '' }
  const cli = await runCli(['today', '--all', '--date', '2026-12-11', '--json'], { env })
  t.is(cli.code, 0, cli.stderr)
  const out = JSON.parse(cli.stdout)
  t.is(out.users, await fs.countProfiles())
  t.deepEqual([out.made, out.existing], [out.users, 0])
  const bad = await runCli(['today', '--all', '--like', 'x'], { env })
  t.is(bad.code, 2)
  t.regex(bad.stderr, /--like is for one user/)
})

test.serial('never a silent short answer: greedy LM for many words is refused; fewer words than asked come with a warning', async (t) => {
  const { store } = await trained
  const m = await WOTDModel.open({ store })
  try {
    await t.throwsAsync(m.generateWordsFromId('[*,9,*,*]', { count: 50, temperature: 0, coined: true }), { instanceOf: InvalidInputError, message: /greedy decoding: one prompt gives one word, so it cannot give 50 different words/ })
    await t.throwsAsync(m.generateWordsFromId('[*,9,*,*]', { count: 2, temperature: 0, method: 'lm' }), { instanceOf: InvalidInputError, message: /greedy/ })
    const ok = await m.generateWordsFromId('[*,9,*,*]', { count: 5 })
    t.deepEqual([ok.words.length, ok.warnings], [5, []])
    // Everything but a handful excluded: the region cannot fill 200.
    const many = await m.generateWordsFromId('[3,31,31,31]', { count: 200, vocabulary: ['gossamer', 'moonlight', 'software'] })
    t.true(many.words.length < 200)
    t.regex(many.warnings[0], new RegExp(`^only ${many.words.length} of 200 words: `))
  } finally {
    await m.close()
  }
})

test.serial('a reader that goes away (`wotd encode ... | head -1`) ends the output quietly, exit 0', async (t) => {
  const { spawn } = await import('node:child_process')
  const { store } = await trained
  const root = join(import.meta.dirname, '..')
  const words = Array.from({ length: 400 }, (_, i) => `word${i}`)
  const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(root, 'src', 'cli', 'bin.ts'), 'encode', ...words, '--store', store], {
    cwd: root,
    env: { ...process.env, MONGODB_URI: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  child.stdout.once('data', () => child.stdout.destroy())
  const code = await new Promise<number | null>((r) => child.on('close', r))
  t.is(code, 0, stderr)
  t.notRegex(stderr, /EPIPE|at .*\.ts:\d+/)
})

test.serial('a store whose work folder cannot be written still serves describe, encode and generate', async (t) => {
  const { store } = await trained
  // A work folder under a file can never be made (what a read-only store folder looks like to root too).
  const env = { WOTD_HOME: store, WOTD_WORK: '/dev/null/work', MONGODB_URI: '' }
  for (const args of [
    ['describe', '[*,9,*,*]'],
    ['encode', 'gossamer', 'moonlight'],
    ['generate', '[*,9,*,*]', '-n', '3'],
    // The LM path unpacks the adapter into the work folder.
    ['generate', '[*,9,*,*]', '-n', '2', '--method', 'lm', '--temperature', '1'],
  ]) {
    const r = await runCli([...args, '--store', store, '--json'], { env })
    t.is(r.code, 0, `${args[0]}: ${r.stderr}`)
  }
})

test.serial('the catalogue\'s attribute probabilities come from the cache exactly as computed, and a damaged cache file is recomputed', async (t) => {
  const { readdirSync: ls, writeFileSync: write, statSync } = await import('node:fs')
  const { cacheDir } = await import('../src/cache/embeddings.js')
  const { store } = await trained
  const first = await WOTDModel.open({ store })
  const a = (await first.catalogueIndex()).probabilities
  await first.close()
  t.truthy(a, 'the tiny run is hybrid: it has attribute probabilities')
  const dir = join(cacheDir(), 'catalogue')
  const files = ls(dir).filter((f) => f.startsWith('probs-'))
  t.true(files.length > 0)
  const newest = files.map((f) => join(dir, f)).sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs)[0]
  const again = await WOTDModel.open({ store })
  const b = (await again.catalogueIndex()).probabilities
  await again.close()
  t.deepEqual(Array.from(b!.data), Array.from(a!.data))
  write(newest, 'damaged')
  const third = await WOTDModel.open({ store })
  const c = (await third.catalogueIndex()).probabilities
  await third.close()
  t.deepEqual(Array.from(c!.data), Array.from(a!.data))
})
