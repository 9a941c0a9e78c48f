/**
 * The real compact embedder (sentence-transformers/all-MiniLM-L6-v2, pulled by
 * `npx wotd models pull --profile compact`) against an independent implementation:
 * sentence-transformers on PyTorch, whose token ids and vectors for 171 texts are committed in
 * data/fixtures/real/all-MiniLM-L6-v2.reference.json (scripts/fixtures/real_embedder_reference.py).
 *
 * In CI (CI=true) a missing model is a failure. Elsewhere the tests are skipped with a notice;
 * `WOTD_TEST_EMBEDDER_DIR=<dir>` points them at an unpacked copy instead of the models folder.
 */
import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BGEEmbedder, cosine } from '../src/embed/index.js'
import { ModelNotFoundError } from '../src/errors.js'

const MODEL_ID = 'sentence-transformers/all-MiniLM-L6-v2'
const realDir = join(import.meta.dirname, '..', 'data', 'fixtures', 'real')

interface RefEntry {
  text: string
  ids: number[]
  truncated: boolean
  vector: number[]
}
const reference = JSON.parse(readFileSync(join(realDir, 'all-MiniLM-L6-v2.reference.json'), 'utf8')) as {
  dim: number
  max_seq_length: number
  entries: RefEntry[]
}
const pairs = JSON.parse(readFileSync(join(realDir, 'sanity_pairs.json'), 'utf8')) as {
  related: [string, string][]
  unrelated: [string, string][]
}

let embedder: BGEEmbedder | undefined
let missing = ''
try {
  embedder = await BGEEmbedder.load(process.env.WOTD_TEST_EMBEDDER_DIR || MODEL_ID, { offline: true, cache: false })
} catch (err) {
  if (!(err instanceof ModelNotFoundError)) throw err
  missing = err.message
}

const inCI = process.env.CI === 'true'
if (!embedder && inCI) {
  test('the real compact embedder is present (run `npx wotd models pull --profile compact`)', (t) => {
    t.fail(`CI must run the real-model parity test, but ${MODEL_ID} is missing: ${missing}`)
  })
} else if (!embedder) {
  console.warn(
    `\n*** embed-real.test.ts SKIPPED: ${MODEL_ID} is not on this machine. ` +
      'Run `npx wotd models pull --profile compact` (or set WOTD_TEST_EMBEDDER_DIR) to run the real-model parity tests. ***\n',
  )
}
const real = embedder ? test : test.skip

real('model facts come from its files: 384-d, mean pooling, 256 tokens', (t) => {
  const e = embedder!
  t.is(e.dimension, reference.dim)
  t.is(e.pooling, 'mean')
  t.is(e.maxLength, reference.max_seq_length)
})

real(`token ids are identical to sentence-transformers for all ${reference.entries.length} texts`, (t) => {
  t.true(reference.entries.length >= 100)
  const bad: string[] = []
  for (const r of reference.entries) {
    const got = embedder!.tokenize(r.text)
    if (JSON.stringify(got.ids) !== JSON.stringify(r.ids) || got.truncated !== r.truncated) {
      bad.push(`${JSON.stringify(r.text).slice(0, 40)}: ${JSON.stringify(got.ids).slice(0, 80)} vs ${JSON.stringify(r.ids).slice(0, 80)}`)
    }
  }
  t.deepEqual(bad, [])
})

real('vectors have cosine >= 0.9999 with sentence-transformers (words, phrases, edge cases)', async (t) => {
  const texts = reference.entries.map((r) => r.text)
  const got = await embedder!.embedDetailed(texts, { batchSize: 32 })
  let worst = { cos: 1, text: '' }
  for (const [i, r] of reference.entries.entries()) {
    const c = cosine(got.vectors[i], Float32Array.from(r.vector))
    if (c < worst.cos) worst = { cos: c, text: r.text }
    t.is(got.truncated[i], r.truncated, `truncation of ${JSON.stringify(r.text).slice(0, 40)}`)
  }
  t.log(`lowest cosine ${worst.cos.toFixed(7)} (${JSON.stringify(worst.text).slice(0, 40)})`)
  t.true(worst.cos >= 0.9999, `cosine ${worst.cos} for ${JSON.stringify(worst.text)}`)
  t.true(got.truncated.some(Boolean), 'the over-long text is reported as truncated')
})

real('sanity: related pairs score above unrelated ones', async (t) => {
  const e = embedder!
  const words = [...new Set([...pairs.related, ...pairs.unrelated].flat())]
  const vec = await e.embedWords(words)
  const score = ([a, b]: [string, string]) => cosine(vec.get(a)!, vec.get(b)!)
  const related = pairs.related.map(score)
  const unrelated = pairs.unrelated.map(score)
  for (let i = 0; i < related.length; i++) {
    t.true(related[i] > unrelated[i], `${pairs.related[i].join('~')} ${related[i]} <= ${pairs.unrelated[i].join('~')} ${unrelated[i]}`)
  }
  t.true(Math.min(...related) > Math.max(...unrelated), `min related ${Math.min(...related)} vs max unrelated ${Math.max(...unrelated)}`)
})

const viaModelsDir = embedder && !process.env.WOTD_TEST_EMBEDDER_DIR ? test : test.skip
viaModelsDir('the compact profile loads the first embedder on this machine (bge-small if present, else MiniLM)', async (t) => {
  const e = await BGEEmbedder.load('compact', { offline: true, cache: false })
  t.true(['BAAI/bge-small-en-v1.5', MODEL_ID].includes(e.modelId), e.modelId)
  t.is(e.dimension, 384)
  t.is(e.pooling, e.modelId === MODEL_ID ? 'mean' : 'cls')
})
