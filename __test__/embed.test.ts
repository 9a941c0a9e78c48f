/**
 * BGEEmbedder over the tiny fixtures (data/fixtures/{bert,xlm_roberta}): parity of the pooled
 * vectors with PyTorch through the binding, edge cases, progress, cancellation, cache use.
 * Runs everywhere (no real model needed); the real model is in embed-real.test.ts.
 */
import test from 'ava'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EmbeddingCache } from '../src/cache/index.js'
import { BGEEmbedder, cosine, meanVector } from '../src/embed/index.js'
import { CancelledError, InvalidInputError, ModelNotFoundError } from '../src/errors.js'

const fixtures = join(import.meta.dirname, '..', 'data', 'fixtures')

interface Reference {
  texts: string[]
  tolerances: { pooled: { atol: number; rtol: number } }
}

/** The pooled reference rows straight from reference.safetensors (f32, little-endian). */
function referenceRows(name: string, tensor: string): Float32Array[] {
  const buf = readFileSync(join(fixtures, name, 'reference.safetensors'))
  const headerLen = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'))
  const { dtype, shape, data_offsets } = header[tensor]
  if (dtype !== 'F32') throw new Error(`${tensor} is ${dtype}`)
  const start = 8 + headerLen + data_offsets[0]
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + 8 + headerLen + data_offsets[1]))
  return Array.from({ length: shape[0] }, (_, i) => all.slice(i * shape[1], (i + 1) * shape[1]))
}

function tmpCache(): { cache: EmbeddingCache; dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-embed-test-'))
  return { cache: new EmbeddingCache({ dir }), dir, done: () => rmSync(dir, { recursive: true, force: true }) }
}

for (const name of ['bert', 'xlm_roberta']) {
  test(`${name}: pooled vectors match PyTorch within 1e-4 (CLS and mean)`, async (t) => {
    const ref = JSON.parse(readFileSync(join(fixtures, name, 'reference.json'), 'utf8')) as Reference
    const { atol, rtol } = ref.tolerances.pooled
    for (const [pooling, key] of [
      [undefined, 'cls_pooled_normalized'],
      ['mean', 'mean_pooled_normalized'],
    ] as const) {
      const e = await BGEEmbedder.load(join(fixtures, name), { pooling, cache: false })
      t.is(e.pooling, pooling ?? 'cls', 'pooling is read from 1_Pooling/config.json')
      t.is(e.dimension, 32, 'dimension is read from config.json')
      const got = await e.embed(ref.texts, { batchSize: 3 })
      const want = referenceRows(name, key)
      t.is(got.length, want.length)
      for (let i = 0; i < want.length; i++) {
        for (let j = 0; j < want[i].length; j++) {
          const tol = atol + rtol * Math.abs(want[i][j])
          if (Math.abs(got[i][j] - want[i][j]) > tol) {
            t.fail(`${key} text ${i} dim ${j}: ${got[i][j]} vs ${want[i][j]}`)
            return
          }
        }
      }
    }
    t.pass()
  })
}

test('edge cases: empty, whitespace, very long (truncated, reported), non-Latin, emoji, NUL', async (t) => {
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: false })
  const long = 'serendipity '.repeat(200)
  const texts = ['', '  \t\n ', long, 'Привет, мир', '日本語のテキスト', 'emoji: 😀🎉', 'a\u0000b', 'ab']
  const r = await e.embedDetailed(texts)
  t.is(r.vectors.length, texts.length)
  for (const [i, v] of r.vectors.entries()) {
    t.is(v.length, 32)
    t.true(v.every(Number.isFinite), `vector ${i} finite`)
    t.true(Math.abs(Math.hypot(...v) - 1) < 1e-5, `vector ${i} is unit length`)
  }
  t.deepEqual(r.truncated, [false, false, true, false, false, false, false, false])
  t.is(r.tokenCounts[2], e.maxLength)
  t.is(r.tokenCounts[0], 2, 'empty text is [CLS] [SEP]')
  t.true(cosine(r.vectors[0], r.vectors[1]) > 0.99999, 'whitespace-only embeds like the empty string')
  t.deepEqual(e.tokenize('a\u0000b').ids, e.tokenize('ab').ids, 'NUL is dropped by the BERT normaliser')
  t.true(e.tokenize(long).truncated)
})

test('an empty batch returns [] without touching the model', async (t) => {
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: false })
  let calls = 0
  t.deepEqual(await e.embed([], { onProgress: () => calls++ }), [])
  t.is(calls, 0)
})

test('progress ends at total, duplicates are embedded once, order is kept', async (t) => {
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: false })
  const texts = ['hello', 'the quick brown fox', 'hello', 'a', 'serendipity', 'hello', 'dog']
  const seen: number[] = []
  const r = await e.embedDetailed(texts, { batchSize: 2, onProgress: (p) => seen.push(p.done) })
  t.is(seen.at(-1), texts.length)
  t.deepEqual([...seen].sort((a, b) => a - b), seen, 'progress never goes backwards')
  t.deepEqual(Array.from(r.vectors[0]), Array.from(r.vectors[2]))
  const alone = await e.embed(['serendipity'])
  t.true(cosine(alone[0], r.vectors[4]) > 0.99999)
  t.not(r.vectors[0], r.vectors[2], 'duplicates get their own arrays')
})

test('an aborted signal cancels with CancelledError; a pre-aborted one never starts', async (t) => {
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: false })
  const pre = new AbortController()
  pre.abort()
  await t.throwsAsync(e.embed(['x'], { signal: pre.signal }), { instanceOf: CancelledError })

  const texts = Array.from({ length: 400 }, (_, i) => `word number ${i} ${'x'.repeat(i % 40)}`)
  const ac = new AbortController()
  const running = e.embed(texts, { batchSize: 1, signal: ac.signal })
  ac.abort(new Error('user pressed Ctrl-C'))
  const err = await t.throwsAsync(running, { instanceOf: CancelledError })
  t.is(err?.code, 'CANCELLED')
  // The embedder is still usable after a cancellation.
  t.is((await e.embed(['still works'])).length, 1)
})

test('preferenceVector is the renormalised mean; empty list is InvalidInputError', async (t) => {
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: false })
  const words = ['luminous', 'gossamer', 'serene']
  const vecs = await e.embed(words)
  const pref = await e.preferenceVector(words)
  t.true(Math.abs(Math.hypot(...pref) - 1) < 1e-6)
  t.true(cosine(pref, meanVector(vecs)) > 0.999999)
  for (const v of vecs) t.true(cosine(pref, v) > 0)
  await t.throwsAsync(e.preferenceVector([]), { instanceOf: InvalidInputError })
  const map = await e.embedWords(['a', 'b', 'a'])
  t.deepEqual([...map.keys()], ['a', 'b'])
})

test('second embedding of the same texts is served from the cache, identically', async (t) => {
  const { cache, done } = tmpCache()
  t.teardown(done)
  const e = await BGEEmbedder.load(join(fixtures, 'bert'), { cache })
  const texts = ['alpha', 'beta', 'gamma', 'a much longer phrase than the others', 'alpha']
  const first = await e.embedDetailed(texts)
  t.deepEqual(first.cache, { hits: 0, misses: 5 })
  const second = await e.embedDetailed(texts)
  t.deepEqual(second.cache, { hits: 5, misses: 0 })
  for (let i = 0; i < texts.length; i++) t.deepEqual(Array.from(second.vectors[i]), Array.from(first.vectors[i]))
  t.deepEqual(second.tokenCounts, first.tokenCounts)
  // A fresh process (new cache object, same dir) sees the entries too.
  const e2 = await BGEEmbedder.load(join(fixtures, 'bert'), { cache: new EmbeddingCache({ dir: cache.dir }) })
  t.deepEqual((await e2.embedDetailed(texts)).cache, { hits: 5, misses: 0 })
  // Another pooling is another cache space.
  const mean = await BGEEmbedder.load(join(fixtures, 'bert'), { cache, pooling: 'mean' })
  t.deepEqual((await mean.embedDetailed(['alpha'])).cache, { hits: 0, misses: 1 })
})

test('loading a missing model is ModelNotFoundError naming where it looked', async (t) => {
  const err = await t.throwsAsync(BGEEmbedder.load('/definitely/not/here/model', { cache: false }), { instanceOf: ModelNotFoundError })
  t.regex(err!.message, /definitely\/not\/here/)
})
