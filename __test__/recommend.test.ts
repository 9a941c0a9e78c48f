// Ranking catalogue words: the region back-off, distinct baselines, novelty and relatives, on a
// hand-made catalogue with hybrid codebooks trained on synthetic labelled vectors.
import test from 'ava'
import { Catalogue, type CatalogueEntry } from '../src/catalogue/index.js'
import { CatalogueIndex, rankPattern, rankTaste, related, wordsForPattern } from '../src/recommend/index.js'
import { SemanticEncoder, sideFeatureRows } from '../src/semantic/index.js'
import { createRng } from '../src/corpus/random.js'
import { encodeCatalogue } from '../src/pipeline/stages/catalogue.js'

const DIM = 12
const STYLES = ['classical', 'modern', 'romantic', 'neutral'] as const
const COMPLEXITIES = ['simple', 'beautiful', 'complex', 'plain'] as const
const ERAS = ['shakespearean', 'victorian', 'modernist', 'contemporary'] as const

/** A unit vector whose first 12 dims encode (style, complexity, era) in 3 blocks of 4, plus noise. */
function vectorFor(v: [number, number, number], rng: ReturnType<typeof createRng>): Float32Array {
  const x = new Float32Array(DIM)
  for (let a = 0; a < 3; a++) x[a * 4 + v[a]] = 1
  for (let i = 0; i < DIM; i++) x[i] += (rng.next() - 0.5) * 0.6
  const n = Math.hypot(...x)
  return x.map((y) => y / n)
}

const fixture = (async () => {
  const rng = createRng(7, 'recommend-test')
  const values: [number, number, number][] = []
  const vectors: Float32Array[] = []
  for (let i = 0; i < 640; i++) {
    const v: [number, number, number] = [i % 4, (i >> 2) % 4, (i >> 4) % 4]
    values.push(v)
    vectors.push(vectorFor(v, rng))
  }
  const labels = values.map((v) => ({ style: STYLES[v[0]], complexity: COMPLEXITIES[v[1]], era: ERAS[v[2]] }))
  const encoder = await SemanticEncoder.train(vectors.slice(0, 320), { mode: 'hybrid', labels: labels.slice(0, 320), seed: 3, facts: vectors.slice(0, 320).map((_, i) => ({ word: `train${i}` })) })
  // The catalogue: 320 training words and 320 others, a few of them relatives ("gloom...").
  // Four-letter names share no 5-letter beginning, so none is a relative of another.
  const name = (i: number) => [i % 26, Math.floor(i / 26) % 26, Math.floor(i / 676) % 26].map((d) => String.fromCharCode(97 + d)).join('') + 'e'
  const words = vectors.map((_, i) => (i < 320 ? `train${i}` : i === 400 ? 'gloomy' : i === 401 ? 'gloominess' : name(i)))
  const entries: CatalogueEntry[] = words.map((word) => ({ word, partOfSpeech: 'noun', definition: `a ${word}`, example: null, zipf: 3, senses: 1, usage: [], source: 'wordnet' }))
  const catalogue = Catalogue.fromEntries(entries)
  // Rows follow the catalogue's (sorted) order.
  const data = new Float32Array(catalogue.size * DIM)
  catalogue.entries.forEach((e, r) => data.set(vectors[words.indexOf(e.word)], r * DIM))
  const matrix = { data, rows: catalogue.size, dim: DIM, cachedRows: 0, diskBytes: 0 }
  const ids = encodeCatalogue(catalogue, matrix, encoder)
  const index = CatalogueIndex.build(catalogue, matrix, ids, encoder, words.slice(0, 320))
  return { index, encoder, catalogue }
})()

test('an empty exact region backs off to the nearest tier, never to everything', async (t) => {
  const { index } = await fixture
  // A full ID nobody carries: a carried 3-level prefix with a variation code none of its words has.
  const row = [...Array(index.size).keys()].find((r) => !index.training[r])!
  const [s, c, e] = index.id(row)
  const used = new Set<number>()
  for (let r = 0; r < index.size; r++) if (index.ids[4 * r] === s && index.ids[4 * r + 1] === c && index.ids[4 * r + 2] === e) used.add(index.ids[4 * r + 3])
  const free = [...Array(32).keys()].find((x) => !used.has(x))
  t.not(free, undefined, 'the prefix does not use every variation code')
  const ranked = rankPattern(index, [s, c, e, free!], { limit: 10 })
  t.is(ranked.length, 10)
  t.true(ranked.every((r) => !r.inRegion))
  // Every word given has the requested values and the exact 3-level prefix when enough do.
  const sameValues = [...Array(index.size).keys()].filter((r) => !index.training[r] && index.id(r).slice(0, 3).every((x, l) => x >> 3 === [s, c, e][l] >> 3))
  if (sameValues.length >= 10) t.true(ranked.every((r) => r.valueMatches === 3))
  // Tiers never increase down the list.
  for (let i = 1; i < ranked.length; i++) {
    const key = (x: (typeof ranked)[0]) => x.valueMatches * 10 + x.exactPrefix
    t.true(key(ranked[i]) <= key(ranked[i - 1]))
  }
})

test('different IDs give different baselines, and words in the region come first', async (t) => {
  const { index } = await fixture
  const a = rankPattern(index, [0 * 8 + index.ids[0] % 8, null, null, null], { scorer: 'region', limit: 8 }).map((r) => r.row)
  const b = rankPattern(index, [3 * 8 + index.ids[0] % 8, null, null, null], { scorer: 'region', limit: 8 }).map((r) => r.row)
  t.notDeepEqual(a, b)
  for (const [rows, value] of [
    [a, 0],
    [b, 3],
  ] as const) {
    t.true(rows.every((r) => index.ids[4 * r] >> 3 === value), 'a single-attribute request is answered in that attribute')
  }
})

test('training words, excluded words and relatives of avoided words never come back', async (t) => {
  const { index, catalogue } = await fixture
  const all = rankPattern(index, [null, null, null, null], { limit: 400 })
  t.is(all.length, 319, 'every word that is not a training word (gloomy and gloominess count once: one family)')
  t.true(all.every((r) => !index.entry(r.row).word.startsWith('train')))
  const gloomy = catalogue.indexOf('gloomy')!
  const taste = { vector: index.vector(gloomy), values: index.id(gloomy).slice(0, 3).map((c) => c >> 3) }
  const near = rankTaste(index, taste, { exclude: new Set([gloomy]), avoidRelativesOf: ['gloomy'], limit: 50 }).map((r) => index.entry(r.row).word)
  t.false(near.includes('gloomy'))
  t.false(near.includes('gloominess'), 'a relative of a liked word is not new to the person')
  t.true(related('gloomy', 'gloominess') && !related('understand', 'underneath'))
  const excluded = new Set(near.slice(0, 5).map((w) => catalogue.indexOf(w)!))
  const again = rankTaste(index, taste, { exclude: new Set([gloomy, ...excluded]), limit: 20 }).map((r) => r.row)
  t.true(again.every((r) => !excluded.has(r)))
})

test('a vocabulary restricts the answer, and seeded sampling is repeatable and varied', async (t) => {
  const { index } = await fixture
  const allow = new Set([...Array(index.size).keys()].filter((r) => !index.training[r] && r % 3 === 0))
  const words = wordsForPattern(index, [8, null, null, null], { allow, count: 6 })
  t.is(words.length, 6)
  t.true(words.every((w) => allow.has(index.catalogue.indexOf(w.word)!)))
  const s1 = wordsForPattern(index, [8, null, null, null], { count: 6, seed: 1, temperature: 1 }).map((w) => w.word)
  const s1again = wordsForPattern(index, [8, null, null, null], { count: 6, seed: 1, temperature: 1 }).map((w) => w.word)
  const s2 = wordsForPattern(index, [8, null, null, null], { count: 6, seed: 2, temperature: 1 }).map((w) => w.word)
  t.deepEqual(s1, s1again)
  t.notDeepEqual(s1, s2)
})

test('hybrid codes name the predicted values; side features are read from the facts', async (t) => {
  const { encoder } = await fixture
  t.is(encoder.mode, 'hybrid')
  t.true(encoder.named)
  const rng = createRng(11, 'held-out')
  let right = 0
  for (let i = 0; i < 64; i++) {
    const v: [number, number, number] = [i % 4, (i >> 2) % 4, (i >> 4) % 4]
    const id = encoder.encode(vectorFor(v, rng), { facts: { word: 'held' } })
    right += id.slice(0, 3).filter((c, a) => c >> 3 === v[a]).length
  }
  t.true(right / (64 * 3) > 0.9, `held-out value accuracy ${right / 192}`)
  t.is(sideFeatureRows([{ word: 'abc', zipf: 3.5, senses: 40 }]).join(','), [0.5, 1, 0.25].join(','))
})
