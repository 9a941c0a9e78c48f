/**
 * The unified cache: hit after miss, damaged entries detected and recomputed, concurrent
 * writers (separate processes) leave it consistent.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { EmbeddingCache, embeddingKey, type EmbeddingSpace } from '../src/cache/index.js'
import { BGEEmbedder } from '../src/embed/index.js'
import { SPACE, textsOf, vectorFor } from './cache-writer.js'

const run = promisify(execFile)
const fixtures = join(import.meta.dirname, '..', 'data', 'fixtures')

function tmp(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-cache-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.wseg')).map((n) => join(dir, n))
}

const entry = (text: string) => ({ text, vector: vectorFor(text), tokenCount: 7, truncated: text.startsWith('long') })

test('miss, then hit; values, token counts and truncation survive the round trip', async (t) => {
  const dir = tmp(t)
  const cache = new EmbeddingCache({ dir })
  t.deepEqual(await cache.lookup(SPACE, ['a', 'b']), [undefined, undefined])
  await cache.save(SPACE, [entry('a'), entry('long b')])
  const fresh = new EmbeddingCache({ dir })
  const [a, b, c] = await fresh.lookup(SPACE, ['a', 'long b', 'c'])
  t.deepEqual(Array.from(a!.vector), Array.from(vectorFor('a')))
  t.is(a!.tokenCount, 7)
  t.false(a!.truncated)
  t.true(b!.truncated)
  t.is(c, undefined)
  t.deepEqual(fresh.stats(), { hits: 2, misses: 1, writes: 0, corrupt: 0 })
  t.deepEqual(cache.stats(), { hits: 0, misses: 2, writes: 2, corrupt: 0 })
})

test('the key covers model id, revision, pooling, normalisation and the exact text', (t) => {
  const base: EmbeddingSpace = { ...SPACE }
  const k = (s: Partial<EmbeddingSpace>, text = 'word') => embeddingKey({ ...base, ...s }, text).toString('hex')
  const keys = new Set([k({}), k({ modelId: 'other' }), k({ revision: 'r2' }), k({ pooling: 'cls' }), k({ normalize: false }), k({}, 'word '), k({}, 'Word')])
  t.is(keys.size, 7)
  t.is(k({}), k({}))
})

test('a corrupted entry is detected, dropped and recomputed; the rest still hit', async (t) => {
  const root = tmp(t)
  const cache = new EmbeddingCache({ dir: root })
  const texts = ['one', 'two', 'three', 'four']
  await cache.save(SPACE, texts.map(entry))
  const [file] = segments(cache.spaceDir(SPACE))
  // Flip one byte inside the second record's vector.
  const buf = readFileSync(file)
  const recordBytes = 32 + 4 + SPACE.dim * 4 + 4
  buf[24 + recordBytes + 40] ^= 0xff
  writeFileSync(file, buf)

  const reader = new EmbeddingCache({ dir: root })
  const found = await reader.lookup(SPACE, texts)
  t.is(found.filter(Boolean).length, 3, 'exactly one entry lost')
  t.is(reader.stats().corrupt, 1)
  const lost = texts.filter((_, i) => !found[i])
  await reader.save(SPACE, lost.map(entry))
  // The damaged file was replaced by one holding the survivors; a new reader sees no damage.
  const again = new EmbeddingCache({ dir: root })
  const all = await again.lookup(SPACE, texts)
  t.true(all.every(Boolean))
  t.deepEqual(again.stats(), { hits: 4, misses: 0, writes: 0, corrupt: 0 })
  for (const [i, e] of all.entries()) t.deepEqual(Array.from(e!.vector), Array.from(vectorFor(texts[i])))
})

test('a truncated segment and a garbage file lose only what they must', async (t) => {
  const root = tmp(t)
  const cache = new EmbeddingCache({ dir: root })
  const texts = Array.from({ length: 10 }, (_, i) => `w${i}`)
  await cache.save(SPACE, texts.map(entry))
  const [file] = segments(cache.spaceDir(SPACE))
  truncateSync(file, statSync(file).size - 10) // cuts into the last record
  writeFileSync(join(cache.spaceDir(SPACE), 'seg-garbage.wseg'), 'not a segment at all')
  const reader = new EmbeddingCache({ dir: root })
  const found = await reader.lookup(SPACE, texts)
  t.is(found.filter(Boolean).length, 9)
  t.is(found[9], undefined)
  t.true(reader.stats().corrupt >= 2)
  t.false(readdirSync(cache.spaceDir(SPACE)).includes('seg-garbage.wseg'), 'the unreadable file is removed')
})

test('concurrent writers in separate processes do not corrupt the cache', async (t) => {
  const root = tmp(t)
  const writers = 4
  const batches = 12 // > the compaction threshold across writers, so merges race with writes
  const perBatch = 25
  const script = join(import.meta.dirname, 'cache-writer.ts')
  const outs = await Promise.all(
    Array.from({ length: writers }, (_, w) =>
      run(process.execPath, ['--import', '@oxc-node/core/register', script, root, String(w), String(batches), String(perBatch)], {
        cwd: join(import.meta.dirname, '..'),
      }),
    ),
  )
  for (const o of outs) t.is(JSON.parse(o.stdout.trim()).corrupt, 0)
  const expected = new Set<string>()
  for (let w = 0; w < writers; w++) for (const text of textsOf(w, batches, perBatch)) expected.add(text)
  const reader = new EmbeddingCache({ dir: root })
  const texts = [...expected]
  const found = await reader.lookup(SPACE, texts)
  t.is(reader.stats().corrupt, 0)
  t.is(found.filter(Boolean).length, texts.length, 'every written entry is readable')
  for (const [i, e] of found.entries()) {
    if (!e || e.vector.some((x, j) => x !== vectorFor(texts[i])[j])) {
      t.fail(`wrong value for ${texts[i]}`)
      return
    }
  }
  t.false(readdirSync(reader.spaceDir(SPACE)).some((n) => n.startsWith('.tmp-')), 'no temp files left behind')
  t.true(segments(reader.spaceDir(SPACE)).length < writers * batches, 'segments were merged while others wrote')
})

test('through BGEEmbedder: a corrupted entry is recomputed to the same vector', async (t) => {
  const root = tmp(t)
  const texts = ['alpha', 'beta', 'gamma']
  const e1 = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: { dir: root } })
  const first = await e1.embed(texts)
  const [file] = segments(e1.cache!.spaceDir(e1.space))
  const buf = readFileSync(file)
  buf[buf.length - 8] ^= 0x55 // inside the last record
  writeFileSync(file, buf)
  const e2 = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: { dir: root } })
  const second = await e2.embedDetailed(texts)
  t.deepEqual(second.cache, { hits: 2, misses: 1 })
  t.is(e2.cacheStats()!.corrupt, 1)
  // Recomputed alone rather than in a padded batch: equal up to float rounding.
  for (let i = 0; i < texts.length; i++) t.true(second.vectors[i].every((x, j) => Math.abs(x - first[i][j]) < 1e-5), texts[i])
  const e3 = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: { dir: root } })
  t.deepEqual((await e3.embedDetailed(texts)).cache, { hits: 3, misses: 0 })
})
