// Attribute enums, cells, word validation, redaction, the seeded PRNG and the limiter.
import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLimiter, sleep } from '../src/corpus/limiter.js'
import { createRng, hash32, shuffled } from '../src/corpus/random.js'
import { isWellFormedWord, normalizeDefinition, normalizeWord, redact, safeUrl } from '../src/corpus/validate.js'
import { CancelledError, InvalidInputError } from '../src/errors.js'
import { native } from '../src/native.js'
import {
  ALL_CELLS,
  attributeVocab,
  cellAttributeIndices,
  cellIndex,
  cellKey,
  COMPLEXITIES,
  DEFAULT_CELLS,
  ERAS,
  isDefaultCell,
  parseCellKey,
  resolveCells,
  STYLES,
} from '../src/types.js'

const root = join(import.meta.dirname, '..')

test('enum order is the semantic-ID index order', (t) => {
  t.deepEqual([...STYLES], ['classical', 'modern', 'romantic', 'neutral'])
  t.deepEqual([...COMPLEXITIES], ['simple', 'beautiful', 'complex', 'plain'])
  t.deepEqual([...ERAS], ['shakespearean', 'victorian', 'modernist', 'contemporary'])
})

test('the attribute vocabulary of TypeScript is the native default, names and values in order', (t) => {
  t.deepEqual(attributeVocab(), native().defaultAttributeVocab())
  t.deepEqual(attributeVocab().values, [[...STYLES], [...COMPLEXITIES], [...ERAS]])
})

test('the 12 default cells: every attribute value exactly 3 times, the same list as the lexicon README', (t) => {
  t.is(DEFAULT_CELLS.length, 12)
  t.is(new Set(DEFAULT_CELLS.map(cellKey)).size, 12)
  for (const [attr, values] of [['style', STYLES], ['complexity', COMPLEXITIES], ['era', ERAS]] as const) {
    for (const v of values) t.is(DEFAULT_CELLS.filter((c) => c[attr] === v).length, 3, `${attr}=${v}`)
  }
  const readme = readFileSync(join(root, 'data', 'lexicon', 'README.md'), 'utf8')
  const listed = new Set(readme.match(/\b[a-z]+\/[a-z]+\/[a-z]+\b/g) ?? [])
  t.deepEqual([...listed].sort(), DEFAULT_CELLS.map(cellKey).sort())
  t.true(DEFAULT_CELLS.every(isDefaultCell))
})

test('all 64 cells in index order; keys parse back', (t) => {
  t.is(ALL_CELLS.length, 64)
  ALL_CELLS.forEach((c, i) => {
    t.is(cellIndex(c), i)
    t.deepEqual(parseCellKey(cellKey(c)), { ...c })
  })
  t.deepEqual(cellAttributeIndices(parseCellKey('romantic/plain/shakespearean')), [2, 3, 0])
  t.is(resolveCells('all').length, 64)
  t.is(resolveCells().length, 12)
  t.deepEqual(resolveCells(['modern-plain-victorian', 'modern/plain/victorian', { style: 'neutral', complexity: 'simple', era: 'victorian' }]).map(cellKey), [
    'modern/plain/victorian',
    'neutral/simple/victorian',
  ])
  t.throws(() => parseCellKey('modern/plain'), { instanceOf: InvalidInputError })
  t.throws(() => parseCellKey('baroque/plain/victorian'), { instanceOf: InvalidInputError, message: /unknown style "baroque"/ })
  t.throws(() => resolveCells([]), { instanceOf: InvalidInputError })
})

test('word validation: letters with inner hyphens or apostrophes, NFC, lowercase, 2-24 chars', (t) => {
  t.is(normalizeWord('  Gossamer '), 'gossamer')
  t.is(normalizeWord('Mother-In-Law'), 'mother-in-law')
  t.is(normalizeWord('will-o\u2019-the-wisp'), null, 'two separators in a row are not allowed')
  t.is(normalizeWord('Cafe\u0301'), 'caf\u00e9')
  t.is(normalizeWord('o\u2019er'), "o'er")
  t.is(normalizeWord('ox'), 'ox')
  for (const bad of ['a', '', 'two words', 'r2d2', '-ab', 'ab-', "'tis", 'a--b', "a'-b", 'x'.repeat(25), 'e-mail!', 'na\nive', 42, null, undefined]) {
    t.is(normalizeWord(bad), null, JSON.stringify(bad))
  }
  t.is(normalizeWord('x'.repeat(24)), 'x'.repeat(24))
  t.true(isWellFormedWord('caf\u00e9'))
  t.false(isWellFormedWord('cafe\u0301'), 'NFD is not normalised')
  t.false(isWellFormedWord('Cafe'))
  t.is(normalizeDefinition('  one\n line  '), 'one line')
  t.is(normalizeDefinition('   '), null)
  t.is(normalizeDefinition(7), null)
})

test('redaction removes keys, bearer tokens and URL credentials', (t) => {
  const key = 'sk-proj-abcdefghijklmnop1234'
  const s = redact(`Incorrect API key provided: ${key}; Authorization: Bearer ${key}; other sk-live-zzzzzzzzzzzz; http://bob:hunter2@host/v1`, ['custom-secret-value'])
  t.false(s.includes(key))
  t.false(s.includes('sk-live-zzzzzzzzzzzz'))
  t.false(s.includes('hunter2'))
  t.true(s.includes('http://host/v1'))
  t.is(redact('token custom-secret-value!', ['custom-secret-value']), 'token [redacted]!')
  t.is(safeUrl('https://u:p@example.com/v1?key=1#x'), 'https://example.com/v1')
})

test('seeded PRNG: same seed same stream, different seeds differ, unbiased-looking ints', (t) => {
  const a = createRng(42, 's')
  const b = createRng(42, 's')
  const xs = Array.from({ length: 100 }, () => a.next())
  t.deepEqual(Array.from({ length: 100 }, () => b.next()), xs)
  t.true(xs.every((x) => x >= 0 && x < 1))
  t.notDeepEqual(Array.from({ length: 10 }, () => createRng(43, 's').next()), xs.slice(0, 10))
  t.not(createRng(42, 's').next(), createRng(42, 't').next())
  const counts = [0, 0, 0, 0, 0]
  const r = createRng(7)
  for (let i = 0; i < 50_000; i++) counts[r.int(5)]++
  for (const c of counts) t.true(Math.abs(c - 10_000) < 500, `bucket ${c}`)
  const items = Array.from({ length: 50 }, (_, i) => i)
  const s1 = shuffled(items, createRng(1))
  t.deepEqual([...s1].sort((x, y) => x - y), items)
  t.deepEqual(shuffled(items, createRng(1)), s1)
  t.notDeepEqual(s1, items)
  // Pinned values: the stream must not change between versions (lexicon sampling depends on it).
  t.is(hash32('wotd'), 992452019)
  const pin = createRng(42, 'pin')
  t.deepEqual(Array.from({ length: 5 }, () => pin.int(1000)), [525, 100, 47, 177, 562])
})

test('limiter: never more than the bound at once; waiting ends on abort', async (t) => {
  const lim = createLimiter(3)
  let active = 0
  let peak = 0
  await Promise.all(
    Array.from({ length: 20 }, () =>
      lim.run(async () => {
        active++
        peak = Math.max(peak, active)
        await sleep(2)
        active--
      }),
    ),
  )
  t.is(peak, 3)
  const one = createLimiter(1)
  const hold = one.run(() => sleep(50))
  const ac = new AbortController()
  const waiting = one.run(async () => 'ran', ac.signal)
  ac.abort()
  await t.throwsAsync(waiting, { instanceOf: CancelledError })
  await hold
  t.is(one.pending, 0)
  t.is(await one.run(async () => 'ok'), 'ok')
})
