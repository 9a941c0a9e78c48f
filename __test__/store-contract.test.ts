// One contract for every store: FileStore, MemoryStore and MongoStore (against FerretDB 1.24
// through the project's launcher, or any MongoDB named by WOTD_TEST_MONGODB_URI).
import test, { type ExecutionContext } from 'ava'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { emptyUsage } from '../src/corpus/provider.js'
import { CorruptFileError, InvalidInputError, StoreError } from '../src/errors.js'
import {
  FileStore,
  MemoryStore,
  PROFILE_SCHEMA,
  RUN_SCHEMA,
  sha256Hex,
  STORED_CORPUS_SCHEMA,
  type ProfileDoc,
  type RunDoc,
  type Store,
  type StoredCorpus,
} from '../src/store/index.js'
import { parseCellKey, type Cell } from '../src/types.js'
import { MongoStore } from '../src/store/mongo.js'
import { dropDatabase, testMongoServer, uniqueDbName, warnSkipped } from './helpers/mongo.js'

// Found (or started) before any test is declared: ava wants every test declared synchronously.
const mongo = await testMongoServer()

function tmp(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-store-contract-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function corpus(setId: string, key: string, words: string[]): StoredCorpus {
  const cell: Cell = parseCellKey(key)
  return {
    schema: STORED_CORPUS_SCHEMA,
    id: `${setId}/${key.replace(/\//g, '-')}`,
    setId,
    cell,
    status: 'complete',
    target: words.length,
    provider: { name: 'lexicon' },
    seed: 1,
    words: words.map((word) => ({ word, definition: `def of ${word}`, partOfSpeech: 'noun', ...cell, source: 'lexicon' })),
    usage: emptyUsage(),
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  }
}

const HASH = 'a'.repeat(64)

function run(id: string, createdAt: string, extra: Partial<RunDoc> = {}): RunDoc {
  return {
    schema: RUN_SCHEMA,
    id,
    config: { corpora: 12, wordsPerCorpus: 100, rvq: { levels: 4, codebookSize: 32 }, lora: { rank: 16, alpha: 32 } },
    configHash: 'cfg-1',
    status: 'running',
    stages: {
      corpus: { status: 'completed', inputHash: 'h-corpus', metrics: { words: 1200 }, timings: { total: 1234 } },
      rvq: {
        status: 'completed',
        inputHash: 'h-rvq',
        metrics: { recon_mse: 0.0123, codebook_usage: [0.9, 0.8, 0.7, 0.6] },
        artifacts: { codebooks: { name: `runs/${id}/codebooks.safetensors`, sha256: HASH, size: 10 } },
      },
      lora: { status: 'pending' },
    },
    createdAt,
    updatedAt: createdAt,
    ...extra,
  }
}

type Factory = (t: ExecutionContext) => Promise<Store>

function contract(name: string, make: Factory): void {
  test(`${name}: corpora and state`, async (t) => {
    const s = await make(t)
    t.is(await s.getCorpus('set-a', parseCellKey('neutral/plain/contemporary')), null)
    await s.putCorpus(corpus('set-a', 'neutral/plain/contemporary', ['plain']))
    await s.putCorpus(corpus('set-a', 'classical/simple/shakespearean', ['valor', 'honor']))
    await s.putCorpus(corpus('set-b', 'modern/plain/victorian', ['gear']))
    await s.putCorpus(corpus('set-a', 'neutral/plain/contemporary', ['plain', 'sofa'])) // replaces
    t.deepEqual(await s.getCorpus('set-a', parseCellKey('neutral/plain/contemporary')), corpus('set-a', 'neutral/plain/contemporary', ['plain', 'sofa']))
    t.deepEqual(
      (await s.listCorpora('set-a')).map((d) => d.cell.style),
      ['classical', 'neutral'],
    )
    t.deepEqual(
      (await s.listCorpora()).map((d) => d.setId),
      ['set-a', 'set-a', 'set-b'],
    )
    t.true(await s.deleteCorpus('set-b', parseCellKey('modern/plain/victorian')))
    t.false(await s.deleteCorpus('set-b', parseCellKey('modern/plain/victorian')))
    t.is(await s.getState('batch-x'), null)
    await s.putState('batch-x', { batchId: 'b1', requests: [{ id: 'r1', cell: 'modern/plain/victorian' }] })
    t.deepEqual(await s.getState('batch-x'), { batchId: 'b1', requests: [{ id: 'r1', cell: 'modern/plain/victorian' }] })
    await s.putState('counter', 3)
    t.is(await s.getState('counter'), 3)
    await s.putState('batch-x', null)
    t.is(await s.getState('batch-x'), null)
    await s.putState('batch-x', null) // deleting twice is fine
    await t.throwsAsync(s.putState('../x', 1), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.putState('dotted', { 'a.b': 1 }), { instanceOf: InvalidInputError, message: /"a\.b"/ })
  })

  test(`${name}: runs: put, replace, get, newest first, filters, latest, delete`, async (t) => {
    const s = await make(t)
    t.is(await s.getRun('nope'), null)
    t.is(await s.latestRun(), null)
    t.deepEqual(await s.listRuns(), [])
    await s.putRun(run('r-old', '2026-01-01T00:00:00.000Z', { status: 'completed' }))
    await s.putRun(run('r-mid', '2026-01-02T00:00:00.000Z', { status: 'failed', error: 'boom' }))
    await s.putRun(run('r-new', '2026-01-03T00:00:00.000Z'))
    await s.putRun(run('r-tie', '2026-01-03T00:00:00.000Z', { configHash: 'cfg-2' })) // same time: larger id first
    t.deepEqual(
      (await s.listRuns()).map((r) => r.id),
      ['r-tie', 'r-new', 'r-mid', 'r-old'],
    )
    t.deepEqual(
      (await s.listRuns({ limit: 2 })).map((r) => r.id),
      ['r-tie', 'r-new'],
    )
    t.deepEqual(await s.listRuns({ limit: 0 }), [])
    t.deepEqual(
      (await s.listRuns({ status: 'completed' })).map((r) => r.id),
      ['r-old'],
    )
    t.deepEqual(
      (await s.listRuns({ configHash: 'cfg-2' })).map((r) => r.id),
      ['r-tie'],
    )
    t.is((await s.latestRun())!.id, 'r-tie')
    t.is((await s.latestRun({ status: 'failed' }))!.id, 'r-mid')
    t.is(await s.latestRun({ status: 'cancelled' }), null)
    // replace: the whole document, as JSON (undefined fields vanish)
    const done = run('r-new', '2026-01-03T00:00:00.000Z', { status: 'completed', updatedAt: '2026-01-03T01:00:00.000Z', error: undefined })
    done.stages.lora = { status: 'completed', inputHash: 'h-lora', metrics: { loss: 1.5, perplexity: Infinity }, timings: { total: 99 } }
    await s.putRun(done)
    const got = await s.getRun('r-new')
    t.deepEqual(got, JSON.parse(JSON.stringify(done)))
    t.false('error' in got!)
    t.is((got!.stages.lora.metrics as { perplexity: unknown }).perplexity, null)
    t.is((await s.latestRun({ status: 'completed' }))!.id, 'r-new')
    // delete: the run and its semantic IDs
    await s.putSemanticIds('r-old', [['alpha', [1, 2, 3, 4]]])
    t.true(await s.deleteRun('r-old'))
    t.false(await s.deleteRun('r-old'))
    t.is(await s.getRun('r-old'), null)
    t.is((await s.getSemanticIds('r-old')).size, 0)
    t.is((await s.listRuns()).length, 3)
  })

  test(`${name}: runs: invalid documents and ids are refused, nothing written`, async (t) => {
    const s = await make(t)
    await t.throwsAsync(s.getRun('../etc'), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.putRun(run('bad/id', '2026-01-01T00:00:00.000Z')), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.putRun(run('r1', '2026-01-01T00:00:00.000Z', { status: 'done' as never })), { instanceOf: InvalidInputError, message: /status/ })
    await t.throwsAsync(s.putRun(run('r1', 'yesterday')), { instanceOf: InvalidInputError, message: /createdAt/ })
    const dotted = run('r1', '2026-01-01T00:00:00.000Z')
    dotted.stages.corpus.metrics = { 'acc.top1': 0.5 }
    await t.throwsAsync(s.putRun(dotted), { instanceOf: InvalidInputError, message: /acc\.top1/ })
    const badRef = run('r1', '2026-01-01T00:00:00.000Z')
    badRef.stages.rvq.artifacts = { codebooks: { name: 'x', sha256: 'nothex', size: 1 } }
    await t.throwsAsync(s.putRun(badRef), { instanceOf: InvalidInputError, message: /artifact codebooks/ })
    await t.throwsAsync(s.listRuns({ limit: -1 }), { instanceOf: InvalidInputError })
    t.deepEqual(await s.listRuns(), [])
  })

  test(`${name}: semantic IDs: bulk put and get, replace, per run, delete`, async (t) => {
    const s = await make(t)
    const words = Array.from({ length: 2500 }, (_, i) => `w${String(i).padStart(4, '0')}`)
    const odd = ['__proto__', 'constructor', 'naïve', "o'clock", 'x.y', '$dollar', 'a/b', 'Übermensch']
    const codes = (i: number) => [i % 32, (i * 7) % 32, (i * 13) % 32, (i * 31) % 32]
    await s.putSemanticIds('run-1', [...words, ...odd].map((w, i) => [w, codes(i)] as const))
    const all = await s.getSemanticIds('run-1')
    t.is(all.size, words.length + odd.length)
    t.deepEqual(all.get('w0007'), codes(7))
    for (const [i, w] of odd.entries()) t.deepEqual(all.get(w), codes(words.length + i), w)
    // a subset, in the order asked; missing words are absent
    const some = await s.getSemanticIds('run-1', ['w0002', 'missing', '__proto__', 'w0001'])
    t.deepEqual([...some.keys()], ['w0002', '__proto__', 'w0001'])
    // replace some, add one; idempotent
    const update = new Map([
      ['w0001', [9, 9, 9, 9]],
      ['fresh', [0, 1, 2, 3]],
    ])
    await s.putSemanticIds('run-1', update)
    await s.putSemanticIds('run-1', update)
    const after = await s.getSemanticIds('run-1', ['w0001', 'fresh', 'w0002'])
    t.deepEqual(Object.fromEntries(after), { w0001: [9, 9, 9, 9], fresh: [0, 1, 2, 3], w0002: codes(2) })
    t.is((await s.getSemanticIds('run-1')).size, words.length + odd.length + 1)
    // replacing many at once (FerretDB hangs on one update command of 100+ existing documents)
    await s.putSemanticIds('run-1', words.slice(100, 400).map((w, i) => [w, [i % 5, 0, 0, 0]] as const))
    const re = await s.getSemanticIds('run-1', [words[99], words[100], words[399], words[400]])
    t.deepEqual([...re.values()], [codes(99), [0, 0, 0, 0], [299 % 5, 0, 0, 0], codes(400)])
    // runs are separate
    await s.putSemanticIds('run-2', [['w0001', [1, 1, 1, 1]]])
    t.deepEqual(Object.fromEntries(await s.getSemanticIds('run-2')), { w0001: [1, 1, 1, 1] })
    t.deepEqual((await s.getSemanticIds('run-1', ['w0001'])).get('w0001'), [9, 9, 9, 9])
    await s.putSemanticIds('run-2', []) // nothing to do
    // bad input
    await t.throwsAsync(s.putSemanticIds('run-1', [['ok', [1, -2, 3, 4]]]), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.putSemanticIds('run-1', [['', [1, 2, 3, 4]]]), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.putSemanticIds('run-1', [['ok', [1.5]]]), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.getSemanticIds('bad id'), { instanceOf: InvalidInputError })
    t.is(await s.deleteSemanticIds('run-1'), words.length + odd.length + 1)
    t.is(await s.deleteSemanticIds('run-1'), 0)
    t.is((await s.getSemanticIds('run-1')).size, 0)
    t.is((await s.getSemanticIds('run-2')).size, 1)
  })

  test(`${name}: artifacts: bytes and files in and out, verified, listed, replaced, deleted`, async (t) => {
    const s = await make(t)
    const dir = tmp(t)
    const small = Buffer.from('codebooks: 4 x 32 x 384 floats, pretend')
    const big = Buffer.alloc(1_500_000 + 17) // several GridFS chunks, not a whole number of them
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24
    t.is(await s.getArtifact('runs/r1/codebooks.safetensors'), null)
    t.is(await s.statArtifact('runs/r1/codebooks.safetensors'), null)
    t.is(await s.getArtifactToFile('runs/r1/codebooks.safetensors', join(dir, 'nothing.bin')), null)

    const info = await s.putArtifact('runs/r1/codebooks.safetensors', small, { contentType: 'application/octet-stream', meta: { levels: 4, size: 32 } })
    t.like(info, { name: 'runs/r1/codebooks.safetensors', size: small.length, sha256: sha256Hex(small), contentType: 'application/octet-stream', meta: { levels: 4, size: 32 } })
    t.false(Number.isNaN(Date.parse(info.createdAt)))
    t.deepEqual(await s.getArtifact('runs/r1/codebooks.safetensors'), small)
    t.deepEqual(await s.getArtifact('runs/r1/codebooks.safetensors', { sha256: info.sha256 }), small)
    t.deepEqual(await s.statArtifact('runs/r1/codebooks.safetensors'), info)

    const src = join(dir, 'adapter.safetensors')
    writeFileSync(src, big)
    const binfo = await s.putArtifact('runs/r1/adapter.safetensors', { path: src })
    t.is(binfo.size, big.length)
    t.is(binfo.sha256, sha256Hex(big))
    const out = join(dir, 'out', 'adapter.safetensors')
    t.deepEqual(await s.getArtifactToFile('runs/r1/adapter.safetensors', out, { sha256: binfo.sha256 }), binfo)
    t.true(readFileSync(out).equals(big))
    t.true((await s.getArtifact('runs/r1/adapter.safetensors'))!.equals(big))

    const empty = await s.putArtifact('empty', Buffer.alloc(0))
    t.is(empty.size, 0)
    t.deepEqual(await s.getArtifact('empty'), Buffer.alloc(0))
    await s.putArtifact('runs/r2/codebooks.safetensors', Buffer.from('r2'))

    t.deepEqual(
      (await s.listArtifacts()).map((a) => a.name),
      ['empty', 'runs/r1/adapter.safetensors', 'runs/r1/codebooks.safetensors', 'runs/r2/codebooks.safetensors'],
    )
    t.deepEqual(
      (await s.listArtifacts('runs/r1/')).map((a) => [a.name, a.size]),
      [
        ['runs/r1/adapter.safetensors', big.length],
        ['runs/r1/codebooks.safetensors', small.length],
      ],
    )
    t.deepEqual(await s.listArtifacts('zzz'), [])

    // replace: one version, the new one
    const v2 = Buffer.from('codebooks v2')
    const info2 = await s.putArtifact('runs/r1/codebooks.safetensors', v2)
    t.deepEqual(await s.getArtifact('runs/r1/codebooks.safetensors'), v2)
    t.is((await s.listArtifacts('runs/r1/codebooks')).length, 1)
    t.is((await s.statArtifact('runs/r1/codebooks.safetensors'))!.sha256, info2.sha256)
    t.false('meta' in info2)
    // a reference recorded for the old content no longer matches: CorruptFileError, and no file written
    await t.throwsAsync(s.getArtifact('runs/r1/codebooks.safetensors', { sha256: info.sha256 }), { instanceOf: CorruptFileError, message: /runs\/r1\/codebooks/ })
    await t.throwsAsync(s.getArtifactToFile('runs/r1/codebooks.safetensors', join(dir, 'stale.bin'), { sha256: info.sha256 }), { instanceOf: CorruptFileError })
    t.throws(() => readFileSync(join(dir, 'stale.bin')))

    t.true(await s.deleteArtifact('runs/r1/codebooks.safetensors'))
    t.false(await s.deleteArtifact('runs/r1/codebooks.safetensors'))
    t.is(await s.getArtifact('runs/r1/codebooks.safetensors'), null)
    t.is((await s.listArtifacts()).length, 3)

    for (const bad of ['', '/abs', 'a//b', '../x', 'a/../b', 'x.meta.json', 'with space', 'a/b/c/d/e/f/g/h/i']) {
      await t.throwsAsync(s.putArtifact(bad, Buffer.from('x')), { instanceOf: InvalidInputError }, bad)
    }
    await t.throwsAsync(s.putArtifact('from-nowhere', { path: join(dir, 'missing.bin') }), { instanceOf: InvalidInputError, message: /missing\.bin/ })
    t.is(await s.statArtifact('from-nowhere'), null)
  })

  test(`${name}: history: one word per user and date, windows newest first`, async (t) => {
    const s = await make(t)
    const at = '2026-03-01T08:00:00.000Z'
    const users = ['ada', 'grace@example.com']
    for (const user of users) {
      for (const [i, date] of ['2026-02-26', '2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02'].entries()) {
        await s.putHistory({ user, date, word: `${user[0]}-word-${i}`, runId: 'run-1', createdAt: at })
      }
    }
    await s.putHistory({ user: 'ada', date: '2026-03-01', word: 'replaced', createdAt: at }) // same user and date: replaces
    t.deepEqual(await s.getHistory('nobody'), [])
    const ada = await s.getHistory('ada')
    t.deepEqual(
      ada.map((e) => [e.date, e.word]),
      [
        ['2026-03-02', 'a-word-4'],
        ['2026-03-01', 'replaced'],
        ['2026-02-28', 'a-word-2'],
        ['2026-02-27', 'a-word-1'],
        ['2026-02-26', 'a-word-0'],
      ],
    )
    t.deepEqual(ada[1], { user: 'ada', date: '2026-03-01', word: 'replaced', createdAt: at })
    t.deepEqual(
      (await s.getHistory('ada', { from: '2026-02-27', to: '2026-03-01' })).map((e) => e.date),
      ['2026-03-01', '2026-02-28', '2026-02-27'],
    )
    t.deepEqual(
      (await s.getHistory('ada', { to: '2026-02-28', limit: 2 })).map((e) => e.date),
      ['2026-02-28', '2026-02-27'],
    )
    t.deepEqual(await s.getHistory('ada', { limit: 0 }), [])
    t.deepEqual(
      (await s.getHistory('grace@example.com', { from: '2026-03-02' })).map((e) => [e.user, e.word]),
      [['grace@example.com', 'g-word-4']],
    )
    await t.throwsAsync(s.putHistory({ user: 'ada', date: '2026-02-30', word: 'x', createdAt: at }), { instanceOf: InvalidInputError, message: /2026-02-30/ })
    await t.throwsAsync(s.putHistory({ user: '', date: '2026-02-03', word: 'x', createdAt: at }), { instanceOf: InvalidInputError })
    await t.throwsAsync(s.getHistory('ada', { from: 'last week' }), { instanceOf: InvalidInputError })
    // Many users at once: the same entries as one by one, every user a key, limit per user.
    const many = await s.getHistories(['ada', 'grace@example.com', 'nobody', '{"$gt":""}'], { from: '2026-02-27', to: '2026-03-01', limit: 2 })
    t.deepEqual([...many.keys()], ['ada', 'grace@example.com', 'nobody', '{"$gt":""}'])
    t.deepEqual(many.get('ada'), await s.getHistory('ada', { from: '2026-02-27', to: '2026-03-01', limit: 2 }))
    t.deepEqual(many.get('grace@example.com')!.map((e) => e.date), ['2026-03-01', '2026-02-28'])
    t.deepEqual([many.get('nobody'), many.get('{"$gt":""}')], [[], []])
    t.deepEqual((await s.getHistories([])).size, 0)
    await t.throwsAsync(s.getHistories(['ada', '']), { instanceOf: InvalidInputError })
  })

  test(`${name}: history: insert-if-absent keeps the first of concurrent writers; delete a user's history`, async (t) => {
    const s = await make(t)
    const at = '2026-03-01T08:00:00.000Z'
    const words = ['one', 'two', 'three', 'four', 'five', 'six']
    const got = await Promise.all(words.map((word) => s.putHistoryIfAbsent({ user: 'bob', date: '2026-03-01', word, createdAt: at })))
    t.is(new Set(got.map((e) => e.word)).size, 1, 'every caller gets the stored word')
    const stored = await s.getHistory('bob')
    t.deepEqual(stored.map((e) => e.word), [got[0].word])
    t.is((await s.putHistoryIfAbsent({ user: 'bob', date: '2026-03-02', word: 'next', createdAt: at })).word, 'next')
    await s.putHistory({ user: 'amy', date: '2026-03-01', word: 'kept', createdAt: at })
    t.is(await s.deleteHistory('bob'), 2)
    t.deepEqual(await s.getHistory('bob'), [])
    t.deepEqual((await s.getHistory('amy')).map((e) => e.word), ['kept'])
    t.is(await s.deleteHistory('bob'), 0)
  })

  test(`${name}: profiles: put, get, list in pages, delete; hostile names are plain names`, async (t) => {
    const s = await make(t)
    const profile = (user: string, word: string): ProfileDoc => ({
      schema: PROFILE_SCHEMA,
      user,
      liked: [{ word, at: '2026-03-01T08:00:00.000Z' }],
      disliked: [],
      vector: Buffer.from(new Float32Array([0.6, 0.8]).buffer).toString('base64'),
      id: [1, 2, 3, 4],
      runId: 'run-1',
      version: 1,
      updatedAt: '2026-03-01T08:00:00.000Z',
    })
    const users = ['ada', 'bob', '../../x', '{"$gt":""}', 'grace@example.com', 'Zoë', '$where']
    t.is(await s.countProfiles(), 0)
    for (const u of users) await s.putProfile(profile(u, `w-${u.length}`))
    t.is(await s.countProfiles(), users.length)
    t.is(await s.getProfile('nobody'), null)
    t.deepEqual(await s.getProfile('{"$gt":""}'), profile('{"$gt":""}', 'w-10'))
    await s.putProfile({ ...profile('ada', 'replaced'), version: 2 })
    t.is((await s.getProfile('ada'))!.liked[0].word, 'replaced')
    const seen: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await s.listProfiles({ after, limit: 3 })
      if (page.length === 0) break
      t.true(page.length <= 3)
      seen.push(...page.map((p) => p.user))
      after = page.at(-1)!.user
    }
    t.deepEqual([...seen].sort(), [...users].sort(), 'paging visits every profile once')
    t.deepEqual(await s.listProfiles({ limit: 0 }), [])
    t.true(await s.deleteProfile('../../x'))
    t.false(await s.deleteProfile('../../x'))
    t.is(await s.getProfile('../../x'), null)
    t.is((await s.listProfiles()).length, users.length - 1)
    t.is(await s.countProfiles(), users.length - 1)
    await t.throwsAsync(s.putProfile({ ...profile('ada', 'x'), schema: 'other' as never }), { instanceOf: InvalidInputError, message: /schema/ })
    await t.throwsAsync(s.getProfile('x'.repeat(201)), { instanceOf: InvalidInputError, message: /1 to 200/ })
    await t.throwsAsync(s.putProfile(profile('a\u0000b', 'x')), { instanceOf: InvalidInputError, message: /control characters/ })
  })

  test(`${name}: write order: artifacts, then the run that points at them`, async (t) => {
    const s = await make(t)
    const bytes = Buffer.from('rvq codebooks')
    const ref = await s.putArtifact('runs/r9/codebooks.safetensors', bytes)
    await s.putSemanticIds('r9', [['alpha', [1, 2, 3, 4]]])
    const r = run('r9', '2026-01-09T00:00:00.000Z', { status: 'completed' })
    r.stages.rvq.artifacts = { codebooks: { name: ref.name, sha256: ref.sha256, size: ref.size } }
    await s.putRun(r)
    const back = (await s.getRun('r9'))!
    const cb = back.stages.rvq.artifacts!.codebooks
    t.deepEqual(await s.getArtifact(cb.name, { sha256: cb.sha256 }), bytes)
  })

  test(`${name}: locks: the second holder fails naming the first, or waits for it`, async (t) => {
    const s = await make(t)
    const a = await s.acquireLock('train', { purpose: 'wotd train' })
    t.is(a.holder.pid, process.pid)
    t.false(a.lost)
    const e = await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
    t.regex(e!.message, new RegExp(`locked \\("train"\\) by pid ${process.pid} on host .+ \\(since .+, wotd train\\)`))
    const started = Date.now()
    const e2 = await t.throwsAsync(s.acquireLock('train', { wait: true, timeoutMs: 400, pollMs: 50 }), { instanceOf: StoreError })
    t.regex(e2!.message, /still locked .* after waiting 0\.4 s/)
    t.true(Date.now() - started >= 350)
    // another lock name is independent
    const other = await s.acquireLock('today')
    await other.release()
    // a waiter gets it once the holder lets go
    setTimeout(() => void a.release(), 300)
    const b = await s.acquireLock('train', { wait: true, timeoutMs: 10_000, pollMs: 50 })
    t.not(b.holder.token, a.holder.token)
    await a.release() // idempotent, and does not remove b's lock
    await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
    await b.release()
    const c = await s.acquireLock('train')
    await c.release()
    await t.throwsAsync(s.acquireLock('bad name'), { instanceOf: InvalidInputError })
  })

  test(`${name}: locks: a holder keeps a short-ttl lock fresh`, async (t) => {
    const s = await make(t)
    const a = await s.acquireLock('train', { ttlMs: 600 })
    await new Promise((r) => setTimeout(r, 1800)) // three ttls: refreshed meanwhile, so still held
    await t.throwsAsync(s.acquireLock('train'), { instanceOf: StoreError })
    t.false(a.lost)
    await a.release()
  })
}

contract('FileStore', async (t) => new FileStore({ dir: tmp(t) }))
contract('MemoryStore', async () => new MemoryStore())

if (mongo.uri !== null) {
  const uri = mongo.uri
  contract('MongoStore', async (t) => {
    const dbName = uniqueDbName()
    const s = await MongoStore.connect(uri, { dbName })
    t.teardown(async () => {
      await s.close()
      await dropDatabase(uri, dbName)
    })
    return s
  })
} else if (process.env.CI === 'true') {
  test('MongoStore: a MongoDB-wire server is available (required in CI)', (t) => {
    t.fail(mongo.reason)
  })
} else {
  warnSkipped('store-contract.test.ts', mongo.reason)
  test.skip('MongoStore: contract (no server)', () => {})
}
