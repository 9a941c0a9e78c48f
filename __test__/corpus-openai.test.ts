// The openai provider against a fake OpenAI-compatible server on 127.0.0.1 (real HTTP through
// the official SDK): retries, timeouts, re-asks, filtering and top-up, the concurrency bound,
// cost accounting, key hygiene and the Batch API.
import test from 'ava'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { SyntheticGenerator, type CorpusEvent, type SyntheticGeneratorOptions } from '../src/corpus/generator.js'
import { OpenAIProvider, priceFor, DEFAULT_PRICES } from '../src/corpus/openai.js'
import { CancelledError, causeChain, ConfigError, ProviderError } from '../src/errors.js'
import { FileStore } from '../src/store/file.js'
import { MemoryStore } from '../src/store/memory.js'
import { cellKey, DEFAULT_CELLS } from '../src/types.js'
import { fakeEntry, freshWord, startFakeOpenAI, type FakeOpenAI } from './helpers/fake-openai.js'

const KEY = 'sk-test-SECRETKEY-0123456789abcdefXYZ'
const A = 'classical/simple/shakespearean'
const B = 'classical/beautiful/modernist'

function make(
  fake: FakeOpenAI,
  opts: Partial<SyntheticGeneratorOptions> & { openai?: SyntheticGeneratorOptions['openai'] } = {},
): { gen: SyntheticGenerator; events: CorpusEvent[] } {
  const events: CorpusEvent[] = []
  const gen = new SyntheticGenerator({
    provider: 'openai',
    cells: [A],
    wordsPerCorpus: 10,
    store: new MemoryStore(),
    env: {},
    onEvent: (e) => events.push(e),
    ...opts,
    openai: { apiKey: KEY, baseURL: fake.baseURL, maxRetries: 1, timeoutMs: 2000, wordsPerRequest: 10, ...opts.openai },
  })
  return { gen, events }
}

function assertExact(t: import('ava').ExecutionContext, corpora: { words: { word: string }[] }[], n: number) {
  const all = new Set<string>()
  for (const c of corpora) {
    t.is(c.words.length, n)
    const mine = new Set(c.words.map((w) => w.word))
    t.is(mine.size, n, 'distinct within the cell')
    for (const w of mine) {
      t.false(all.has(w), `"${w}" appears in two cells`)
      all.add(w)
    }
  }
}

/** Everything a user could see or that is kept: error text, causes, inspected objects, events. */
function visible(err: unknown, events: CorpusEvent[]): string {
  return [String(err), causeChain(err).join('\n'), inspect(err, { depth: 20, showHidden: true }), JSON.stringify(events)].join('\n')
}

test('a grid of cells: exact counts, no duplicates, bounded concurrency, token and cost accounting', async (t) => {
  const fake = await startFakeOpenAI({ delayMs: 15 })
  t.teardown(() => fake.close())
  const { gen } = make(fake, { cells: 'default', wordsPerCorpus: 20, openai: { apiKey: KEY, concurrency: 3, model: 'gpt-4o-mini-2024-07-18' } })
  const r = await gen.generate()
  t.is(r.corpora.length, 12)
  assertExact(t, r.corpora, 20)
  t.true(fake.maxInFlight <= 3, `max in flight ${fake.maxInFlight}`)
  t.is(fake.maxInFlight, 3, 'the bound is also reached (requests do overlap)')
  for (const c of r.corpora) for (const w of c.words) t.is(w.source, 'openai')
  // Every request got an answer once; usage adds up to what the server reported.
  const n = fake.requests.length
  t.is(r.usage.requests, n)
  t.is(r.usage.promptTokens, 100 * n)
  t.is(r.usage.totalTokens, r.usage.promptTokens + r.usage.completionTokens)
  const price = DEFAULT_PRICES['gpt-4o-mini']
  t.is(r.usage.costUSD!.toFixed(9), ((r.usage.promptTokens * price.input + r.usage.completionTokens * price.output) / 1e6).toFixed(9))
  // The model, schema and key went over the wire.
  const first = fake.requests[0]
  t.is(first.body.model, 'gpt-4o-mini-2024-07-18')
  t.is(first.body.response_format.type, 'json_schema')
  t.is(first.body.response_format.json_schema.strict, true)
  t.is(first.headers.authorization, `Bearer ${KEY}`)
})

test('429 with retry-after-ms: 0 is retried by the SDK and succeeds', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.queue({ type: 'status', status: 429, headers: { 'retry-after-ms': '0' }, body: { error: { message: 'slow down', type: 'rate_limit' } } })
  const { gen } = make(fake)
  const r = await gen.generate()
  assertExact(t, r.corpora, 10)
  t.is(fake.requests.length, 2)
  t.is(r.usage.requests, 1, 'only the answered request is billed')
})

test('persistent 500 ends in a ProviderError after the retries, without the key', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.script = (req) => ({
    type: 'status',
    status: 500,
    headers: { 'retry-after-ms': '0' },
    body: { error: { message: `boom; you sent ${req.headers.authorization}`, type: 'server_error' } },
  })
  const { gen, events } = make(fake)
  const err = await t.throwsAsync(gen.generate(), { instanceOf: ProviderError })
  t.is(err!.code, 'PROVIDER')
  t.regex(err!.message, /500/)
  t.regex(err!.message, /2 attempts/)
  t.is(fake.requests.length, 2, 'maxRetries 1 = 2 attempts')
  t.false(visible(err, events).includes(KEY))
  t.false(visible(err, events).includes('SECRETKEY'))
})

test('a socket reset mid-response is retried; a persistent one is a typed error', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.queue({ type: 'reset' })
  const ok = await make(fake).gen.generate()
  assertExact(t, ok.corpora, 10)
  t.is(fake.requests.length, 2)

  fake.script = () => ({ type: 'reset' })
  const { gen } = make(fake, { openai: { apiKey: KEY, maxRetries: 0 }, setId: 'reset-run' })
  const err = await t.throwsAsync(gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /connection|terminated|socket/i)
})

test('a server that hangs past the timeout gives a typed timeout error', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.script = () => ({ type: 'hang' })
  const { gen } = make(fake, { openai: { apiKey: KEY, maxRetries: 0, timeoutMs: 150 } })
  const started = Date.now()
  const err = await t.throwsAsync(gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /timed out after 150 ms/)
  t.true(Date.now() - started < 3000)
})

test('malformed JSON, a schema violation, a refusal and finish_reason "length" are re-asked', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.queue(
    { type: 'content', content: '{"words": [{"word": "unterminated' },
    { type: 'content', content: JSON.stringify({ words: [{ word: 'lonely' }] }) },
    { type: 'content', content: null, refusal: 'I cannot help with that.' },
    { type: 'content', content: '{"words":[{"word":"cut', finishReason: 'length' },
  )
  const { gen, events } = make(fake, { openai: { apiKey: KEY, maxReasks: 4 } })
  const r = await gen.generate()
  assertExact(t, r.corpora, 10)
  const reasons = events.filter((e) => e.type === 'reask').map((e) => (e as { reason: string }).reason)
  t.is(reasons.length, 4)
  t.regex(reasons[0], /not valid JSON/)
  t.regex(reasons[1], /schema/)
  t.regex(reasons[2], /refused/)
  t.regex(reasons[3], /cut off/)
  // Re-asks say why; after "length" the request asks for half as many words.
  t.regex(fake.requests[1].prompt, /could not be used: the answer was not valid JSON/)
  t.is(fake.requests[3].count, 12, '10 missing + 20% over-ask')
  t.is(fake.requests[4].count, 6)
  // Answers that were not usable still cost tokens.
  t.is(r.usage.requests, fake.requests.length)
})

test('a persistent refusal ends in a clear ProviderError after the bounded re-asks', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.script = () => ({ type: 'content', content: null, refusal: 'No.' })
  const { gen } = make(fake, { openai: { apiKey: KEY, maxReasks: 2 } })
  const err = await t.throwsAsync(gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /no usable answer for cell classical\/simple\/shakespearean after 3 attempts; last: the model refused/)
  t.is(fake.requests.length, 3)
})

test('duplicates, non-words and words of another cell are filtered and the cell is topped up', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  // Strings that pass the schema but are not words (a non-string would be a schema violation: re-asked).
  const junk = ['hello world', 'x', 'r2d2', '-ab', "ab'", '', 'a--b', 'y'.repeat(30), 'e-mail!']
  fake.script = (req) => {
    if (req.cell === B && !fake.requests.some((r) => r.cell === B && r.index < req.index)) {
      // B's first answer: three of A's words (another cell), junk, a duplicate, and 4 fresh words.
      const fresh = [0, 1, 2, 3].map((i) => fakeEntry(freshWord(B, 1000 + i)))
      return {
        type: 'words',
        words: [
          ...[0, 1, 2].map((i) => fakeEntry(freshWord(A, i))),
          ...junk.map(fakeEntry),
          fakeEntry('CAFE\u0301'), // NFD + uppercase: normalised to "café"
          fakeEntry('café'), // then a duplicate of it
          { word: 'nodefinition', partOfSpeech: 'noun', definition: '   ' },
          ...fresh,
          fresh[0],
        ],
      }
    }
    return undefined
  }
  // Concurrency 1: A is built before B, so A's words are taken when B sees them.
  const { gen, events } = make(fake, { cells: [A, B], openai: { apiKey: KEY, concurrency: 1 } })
  const r = await gen.generate()
  assertExact(t, r.corpora, 10)
  const b = r.cells[1]
  t.is(b.key, B)
  t.is(b.rejected.otherCell, 3)
  t.is(b.rejected.duplicate, 2)
  t.is(b.rejected.invalid, junk.length + 1)
  const bWords = r.corpora[1].words.map((w) => w.word)
  t.true(bWords.includes('café'))
  t.is(bWords.filter((w) => w === 'café').length, 1)
  t.true(bWords.every((w) => w === w.normalize('NFC') && w === w.toLowerCase()))
  t.true(b.rounds >= 2, 'topped up in a second round')
  t.true(events.some((e) => e.type === 'rejected' && e.cell === B))
})

test('a cell that cannot be filled ends in a ProviderError after maxRounds, keeping its words', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  // Always the same 4 words: the cell can never reach 10.
  fake.script = () => ({ type: 'words', words: [0, 1, 2, 3].map((i) => fakeEntry(freshWord(A, i))) })
  const store = new MemoryStore()
  const { gen } = make(fake, { store, maxRounds: 3 })
  const err = await t.throwsAsync(gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /cell classical\/simple\/shakespearean has 4 of 10 distinct valid words after 3 rounds/)
  t.regex(err!.message, /duplicate/)
  const saved = await store.getCorpus(gen.setId, DEFAULT_CELLS[0])
  t.is(saved?.status, 'partial')
  t.is(saved?.words.length, 4)
})

test('the API key never appears in errors, events or stored documents', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const dir = mkdtempSync(join(tmpdir(), 'wotd-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  // A successful run into a file store.
  const ok = make(fake, { store: new FileStore({ dir }), cells: [A, B] })
  const r = await ok.gen.generate()
  assertExact(t, r.corpora, 10)
  const files: string[] = []
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f)
      if (statSync(p).isDirectory()) walk(p)
      else files.push(p)
    }
  }
  walk(dir)
  t.true(files.length >= 2)
  for (const f of files) t.false(readFileSync(f, 'utf8').includes(KEY), f)

  // A server that echoes the Authorization header back in a 401 and in a refusal.
  fake.script = (req) => ({ type: 'status', status: 401, body: { error: { message: `Incorrect API key provided: ${req.headers.authorization}`, type: 'invalid_request_error' } } })
  // The SDK's own debug log (what OPENAI_LOG=debug prints) goes through the same scrubbing.
  const logLines: string[] = []
  const logger = Object.fromEntries(['error', 'warn', 'info', 'debug'].map((l) => [l, (...args: unknown[]) => logLines.push(inspect(args, { depth: 20 }))])) as any
  const bad = make(fake, { setId: 'key-401', openai: { apiKey: KEY, logger, logLevel: 'debug' } })
  const err = await t.throwsAsync(bad.gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /401/)
  t.regex(err!.message, /OPENAI_API_KEY/)
  t.false(visible(err, bad.events).includes(KEY))
  t.false(visible(err, bad.events).includes('SECRETKEY'))
  t.true(logLines.length > 0)
  t.false(logLines.join('\n').includes('SECRETKEY'))

  fake.script = (req) => ({ type: 'content', content: null, refusal: `I will not, ${req.headers.authorization}` })
  const refused = make(fake, { setId: 'key-refusal', openai: { apiKey: KEY, maxReasks: 0 } })
  const err2 = await t.throwsAsync(refused.gen.generate(), { instanceOf: ProviderError })
  t.false(visible(err2, refused.events).includes(KEY))

  // Connection failures name the server without credentials.
  const p = new OpenAIProvider({ apiKey: KEY, baseURL: 'http://user:pw@127.0.0.1:9/v1', maxRetries: 0, timeoutMs: 500 })
  t.is(p.baseURL, 'http://127.0.0.1:9/v1')
  const g = new SyntheticGenerator({ provider: p, cells: [A], wordsPerCorpus: 2, store: null })
  const err3 = await t.throwsAsync(g.generate(), { instanceOf: ProviderError })
  t.false(visible(err3, []).includes(KEY))
  t.false(visible(err3, []).includes('pw@'))
})

test('AbortSignal cancels with CancelledError; a rerun completes from the saved progress', async (t) => {
  const fake = await startFakeOpenAI({ delayMs: 30 })
  t.teardown(() => fake.close())
  const store = new MemoryStore()
  const ac = new AbortController()
  const first = make(fake, { store, cells: 'default', wordsPerCorpus: 20, openai: { apiKey: KEY, concurrency: 2 } })
  const p = first.gen.generate({
    signal: ac.signal,
    onEvent: (e) => {
      if (e.type === 'cell-complete') ac.abort()
    },
  })
  await t.throwsAsync(p, { instanceOf: CancelledError })
  const saved = await store.listCorpora(first.gen.setId)
  t.true(saved.some((d) => d.status === 'complete'))
  const before = fake.requests.length
  const second = make(fake, { store, cells: 'default', wordsPerCorpus: 20, openai: { apiKey: KEY, concurrency: 2 } })
  const r = await second.gen.generate()
  assertExact(t, r.corpora, 20)
  t.true(r.cells.some((c) => c.fromStore === 20 && c.requests === 0), 'complete cells are not asked for again')
  // A third run has nothing to do.
  const mid = fake.requests.length
  t.true(mid > before)
  const third = await make(fake, { store, cells: 'default', wordsPerCorpus: 20 }).gen.generate()
  t.is(fake.requests.length, mid)
  t.deepEqual(
    third.corpora.map((c) => c.words.map((w) => w.word)),
    r.corpora.map((c) => c.words.map((w) => w.word)),
  )
})

test('batch mode: upload, create, poll, download; invalid lines are topped up in a second batch', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.batchPolls = 2
  let first = true
  fake.script = (req) => {
    if (req.batch && first) {
      first = false
      return { type: 'content', content: 'not json at all' }
    }
    return undefined
  }
  const cells = [A, B, 'modern/plain/victorian' as const]
  const batchEvents: string[] = []
  const { gen } = make(fake, { cells, wordsPerCorpus: 15, batch: true, openai: { apiKey: KEY, batch: { pollIntervalMs: 5 } } })
  const r = await gen.generate({ onEvent: (e) => e.type === 'batch' && batchEvents.push(e.status) })
  assertExact(t, r.corpora, 15)
  t.is(fake.batchesCreated, 2, 'a second batch tops up the cell whose answer was unusable')
  const paths = fake.log.map((l) => `${l.method} ${l.path}`)
  t.true(paths.includes('POST /files'))
  t.true(paths.includes('POST /batches'))
  t.true(paths.some((p) => /^GET \/batches\/batch_/.test(p)))
  t.true(paths.some((p) => /^GET \/files\/file-\d+\/content$/.test(p)))
  t.false(paths.includes('POST /chat/completions'), 'no interactive calls in batch mode')
  t.true(batchEvents.includes('in_progress') && batchEvents.includes('completed'))
  // Batch tokens are billed at half price.
  const price = DEFAULT_PRICES['gpt-4o-mini']
  const full = (r.usage.promptTokens * price.input + r.usage.completionTokens * price.output) / 1e6
  t.is(r.usage.costUSD!.toFixed(9), (full * 0.5).toFixed(9))
  // The uploaded lines carry the structured-output request.
  const line = fake.requests.find((q) => q.batch)!
  t.is(line.body.response_format.json_schema.name, 'word_list')
})

test('batch mode: a cancelled wait resumes the same batch on rerun; a failed batch is a ProviderError', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const store = new MemoryStore()
  fake.batchPolls = 1_000_000
  const ac = new AbortController()
  const opts = { store, cells: [A, B], wordsPerCorpus: 12, batch: true, openai: { apiKey: KEY, batch: { pollIntervalMs: 5 } } }
  const p = make(fake, opts).gen.generate({
    signal: ac.signal,
    onEvent: (e) => e.type === 'batch' && e.status === 'in_progress' && ac.abort(),
  })
  await t.throwsAsync(p, { instanceOf: CancelledError })
  t.is(fake.batchesCreated, 1)
  t.truthy(await store.getState('batch-openai-gpt-4o-mini-seed42'))
  fake.batchPolls = 0
  const events: CorpusEvent[] = []
  const r = await make(fake, opts).gen.generate({ onEvent: (e) => events.push(e) })
  assertExact(t, r.corpora, 12)
  t.is(fake.batchesCreated, 1, 'the pending batch was collected, not submitted again')
  t.true(events.some((e) => e.type === 'notice' && /resuming batch/.test(e.message)))
  t.is(await store.getState('batch-openai-gpt-4o-mini-seed42'), null)

  fake.batchEndStatus = 'failed'
  const err = await t.throwsAsync(make(fake, { ...opts, store: new MemoryStore() }).gen.generate(), { instanceOf: ProviderError })
  t.regex(err!.message, /batch .* failed: the fake batch failed/)
})

test('configuration: prices by model family, a missing key, batch needs openai', (t) => {
  t.deepEqual(priceFor('gpt-4o-mini-2024-07-18', DEFAULT_PRICES), DEFAULT_PRICES['gpt-4o-mini'])
  t.deepEqual(priceFor('gpt-4o-2024-08-06', DEFAULT_PRICES), DEFAULT_PRICES['gpt-4o'])
  t.is(priceFor('llama3.1:8b', DEFAULT_PRICES), undefined)
  t.throws(() => new OpenAIProvider({ env: {} }), { instanceOf: ConfigError, message: /OPENAI_API_KEY/ })
  // A local server needs no key.
  t.notThrows(() => new OpenAIProvider({ env: { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' } }))
  t.throws(() => new SyntheticGenerator({ provider: 'lexicon', batch: true, store: null }), { instanceOf: ConfigError })
  t.is(cellKey(DEFAULT_CELLS[0]), A)
})

test('an unknown model price gives a null cost but counts tokens', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const { gen } = make(fake, { openai: { apiKey: KEY, model: 'llama3.1:8b' } })
  const r = await gen.generate()
  t.is(r.usage.costUSD, null)
  t.true(r.usage.totalTokens > 0)
  t.is(r.setId, 'openai-llama3.1_8b-seed42')
})

test('a huge Retry-After is cut to maxRetryWaitMs, and the wait ends at once on cancel', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const slowDown = { type: 'status' as const, status: 429, headers: { 'retry-after': '999999' }, body: { error: { message: 'slow down', type: 'rate_limit' } } }
  fake.queue(slowDown)
  const started = Date.now()
  const capped = await make(fake, { openai: { apiKey: KEY, maxRetryWaitMs: 100 } }).gen.generate()
  assertExact(t, capped.corpora, 10)
  t.is(fake.requests.length, 2, 'retried after the capped wait')
  t.true(Date.now() - started < 5000, `${Date.now() - started} ms`)

  // The default cap (60 s) is still long: a signal ends the wait.
  fake.script = () => slowDown
  const ac = new AbortController()
  const { gen } = make(fake, { setId: 'cancelled-wait' })
  const t0 = Date.now()
  setTimeout(() => ac.abort(), 300)
  await t.throwsAsync(gen.generate({ signal: ac.signal }), { instanceOf: CancelledError })
  t.true(Date.now() - t0 < 3000, `cancelled within ${Date.now() - t0} ms`)
})
