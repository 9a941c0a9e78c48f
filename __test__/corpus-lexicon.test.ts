// The generator with the offline lexicon provider: the default without a key, deterministic
// for a seed, resumable, idempotent, and exact.
import test from 'ava'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SyntheticGenerator, type CorpusEvent, type CorpusResult } from '../src/corpus/generator.js'
import { defaultLexiconDir, LexiconProvider, lexiconByCell, loadLexicon, sampleLexicon } from '../src/corpus/lexicon.js'
import { CancelledError, ProviderError } from '../src/errors.js'
import { FileStore } from '../src/store/file.js'
import { MemoryStore } from '../src/store/memory.js'
import { cellKey, DEFAULT_CELLS, resolveCells } from '../src/types.js'

function words(r: CorpusResult): string[][] {
  return r.corpora.map((c) => c.words.map((w) => w.word))
}

function tmp(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-lex-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('without OPENAI_API_KEY the lexicon is used, and the generator says so once', async (t) => {
  const events: CorpusEvent[] = []
  const gen = new SyntheticGenerator({ env: { OPENAI_API_KEY: '  ' }, store: null, onEvent: (e) => events.push(e) })
  t.true(gen.provider instanceof LexiconProvider)
  const r = await gen.generate()
  await gen.generate()
  const notices = events.filter((e) => e.type === 'notice')
  t.is(notices.length, 1)
  t.regex((notices[0] as { message: string }).message, /OPENAI_API_KEY is not set: using the bundled offline lexicon/)
  t.is(r.provider, 'lexicon')
  t.is(r.setId, 'lexicon-seed42')
  t.is(r.usage.costUSD, 0)
  // 12 cells x 100 distinct words, each carrying its cell's attributes.
  t.is(r.corpora.length, 12)
  const all = new Set<string>()
  r.corpora.forEach((c, i) => {
    t.is(cellKey(c.cell), cellKey(DEFAULT_CELLS[i]))
    t.is(c.words.length, 100)
    t.is(c.id, `lexicon-seed42/${cellKey(c.cell).replace(/\//g, '-')}`)
    for (const w of c.words) {
      t.is(cellKey(w), cellKey(c.cell))
      t.is(w.source, 'lexicon')
      t.truthy(w.definition)
      all.add(w.word)
    }
  })
  t.is(all.size, 1200)
  // With a key set, auto picks openai.
  t.is(new SyntheticGenerator({ env: { OPENAI_API_KEY: 'sk-x' }, store: null }).provider.name, 'openai')
})

test('the same seed gives the same words; another seed gives others', async (t) => {
  const a = await new SyntheticGenerator({ provider: 'lexicon', seed: 7, store: null }).generate()
  const b = await new SyntheticGenerator({ provider: 'lexicon', seed: 7, store: new FileStore({ dir: tmp(t) }) }).generate()
  const c = await new SyntheticGenerator({ provider: 'lexicon', seed: 8, store: null }).generate()
  t.deepEqual(words(a), words(b))
  t.notDeepEqual(words(a), words(c))
  t.deepEqual(
    words(a)[0],
    sampleLexicon(DEFAULT_CELLS[0], 100, 7).map((e) => e.word),
  )
  t.is(c.setId, 'lexicon-seed8')
})

test('a larger N extends a smaller one; a rerun rewrites nothing', async (t) => {
  const dir = tmp(t)
  const small = await new SyntheticGenerator({ provider: 'lexicon', wordsPerCorpus: 40, store: new FileStore({ dir }) }).generate()
  const folder = join(dir, 'corpora', 'lexicon-seed42')
  t.is(readdirSync(folder).length, 12)
  const big = await new SyntheticGenerator({ provider: 'lexicon', wordsPerCorpus: 100, store: new FileStore({ dir }) }).generate()
  t.true(big.cells.every((c) => c.fromStore === 40 && c.generated === 60))
  words(big).forEach((w, i) => t.deepEqual(w.slice(0, 40), words(small)[i]))
  t.deepEqual(words(big), words(await new SyntheticGenerator({ provider: 'lexicon', store: null }).generate()))
  const stamp = readdirSync(folder).map((f) => [f, statSync(join(folder, f)).mtimeMs, readFileSync(join(folder, f), 'utf8')])
  const again = await new SyntheticGenerator({ provider: 'lexicon', wordsPerCorpus: 100, store: new FileStore({ dir }) }).generate()
  t.deepEqual(words(again), words(big))
  t.true(again.cells.every((c) => c.fromStore === 100 && c.requests === 0))
  t.deepEqual(
    readdirSync(folder).map((f) => [f, statSync(join(folder, f)).mtimeMs, readFileSync(join(folder, f), 'utf8')]),
    stamp,
  )
  // Asking for fewer returns the first N of what is stored.
  const fewer = await new SyntheticGenerator({ provider: 'lexicon', wordsPerCorpus: 10, store: new FileStore({ dir }) }).generate()
  words(fewer).forEach((w, i) => t.deepEqual(w, words(big)[i].slice(0, 10)))
})

test('cancelled mid-run then resumed: the same words as an uninterrupted run', async (t) => {
  const store = new MemoryStore()
  const ac = new AbortController()
  let complete = 0
  const gen = new SyntheticGenerator({ provider: 'lexicon', store })
  await t.throwsAsync(
    gen.generate({
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'cell-complete' && ++complete === 5) ac.abort()
      },
    }),
    { instanceOf: CancelledError },
  )
  const saved = await store.listCorpora('lexicon-seed42')
  t.true(saved.length >= 5 && saved.length < 12)
  const resumed = await new SyntheticGenerator({ provider: 'lexicon', store }).generate()
  t.is(resumed.cells.filter((c) => c.fromStore === 100).length, saved.filter((d) => d.status === 'complete').length)
  t.deepEqual(words(resumed), words(await new SyntheticGenerator({ provider: 'lexicon', store: null }).generate()))
  await t.throwsAsync(new SyntheticGenerator({ provider: 'lexicon', store: null }).generate({ signal: AbortSignal.abort() }), { instanceOf: CancelledError })
})

test('all 64 cells at 10 words; too many words for a cell is a clear ProviderError', async (t) => {
  const r = await new SyntheticGenerator({ provider: 'lexicon', cells: 'all', wordsPerCorpus: 10, store: null }).generate()
  t.is(r.corpora.length, 64)
  t.true(r.corpora.every((c) => c.words.length === 10))
  t.is(new Set(r.corpora.flatMap((c) => c.words.map((w) => w.word))).size, 640)
  const byCell = lexiconByCell(loadLexicon())
  const smallest = Math.min(...resolveCells('all').map((c) => byCell.get(cellKey(c))?.length ?? 0))
  const err = await t.throwsAsync(new SyntheticGenerator({ provider: 'lexicon', cells: 'all', wordsPerCorpus: smallest + 1, store: null }).generate(), {
    instanceOf: ProviderError,
  })
  t.regex(err!.message, new RegExp(`Ask for at most ${smallest} words per corpus, or use --provider openai`))
})

test('the lexicon is found from the package root', (t) => {
  t.true(defaultLexiconDir().endsWith(join('data', 'lexicon')))
  t.true(loadLexicon().length > 0)
})
