// The corpus store: the same contract for FileStore and MemoryStore, and the file store's
// checksums, atomic writes and default location.
import test from 'ava'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { emptyUsage } from '../src/corpus/provider.js'
import { ConfigError, InvalidInputError, StoreError } from '../src/errors.js'
import { defaultStoreDir, FileStore, MemoryStore, openStore, STORED_CORPUS_SCHEMA, type CorpusStore, type StoredCorpus } from '../src/store/index.js'
import { parseCellKey, type Cell } from '../src/types.js'

function tmp(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function doc(setId: string, key: string, words: string[], status: 'partial' | 'complete' = 'complete'): StoredCorpus {
  const cell: Cell = parseCellKey(key)
  return {
    schema: STORED_CORPUS_SCHEMA,
    id: `${setId}/${key.replace(/\//g, '-')}`,
    setId,
    cell,
    status,
    target: words.length,
    provider: { name: 'lexicon' },
    seed: 1,
    words: words.map((word) => ({ word, definition: `def of ${word}`, partOfSpeech: 'noun', ...cell, source: 'lexicon' })),
    usage: emptyUsage(),
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  }
}

const contract = (name: string, make: (t: import('ava').ExecutionContext) => CorpusStore) => {
  test(`${name}: put, get, list in cell order, delete, state`, async (t) => {
    const s = make(t)
    t.is(await s.getCorpus('set-a', parseCellKey('neutral/plain/contemporary')), null)
    await s.putCorpus(doc('set-a', 'neutral/plain/contemporary', ['plain'], 'partial'))
    await s.putCorpus(doc('set-a', 'classical/simple/shakespearean', ['valor', 'honor']))
    await s.putCorpus(doc('set-b', 'modern/plain/victorian', ['gear']))
    await s.putCorpus(doc('set-a', 'neutral/plain/contemporary', ['plain', 'sofa'])) // replaces
    const got = await s.getCorpus('set-a', parseCellKey('neutral/plain/contemporary'))
    t.deepEqual(got, doc('set-a', 'neutral/plain/contemporary', ['plain', 'sofa']))
    t.deepEqual(
      (await s.listCorpora('set-a')).map((d) => d.words.length),
      [2, 2],
    )
    t.deepEqual(
      (await s.listCorpora('set-a')).map((d) => d.cell.style),
      ['classical', 'neutral'],
    )
    t.is((await s.listCorpora()).length, 3)
    t.true(await s.deleteCorpus('set-b', parseCellKey('modern/plain/victorian')))
    t.false(await s.deleteCorpus('set-b', parseCellKey('modern/plain/victorian')))
    t.is((await s.listCorpora()).length, 2)
    t.is(await s.getState('batch-x'), null)
    await s.putState('batch-x', { batchId: 'b1', n: 2 })
    t.deepEqual(await s.getState('batch-x'), { batchId: 'b1', n: 2 })
    await s.putState('batch-x', null)
    t.is(await s.getState('batch-x'), null)
    await s.putState('batch-x', null) // deleting twice is fine
    await s.close()
  })
}

contract('FileStore', (t) => new FileStore({ dir: tmp(t) }))
contract('MemoryStore', () => new MemoryStore())

test('FileStore: one checksummed JSON file per cell, written atomically, no temp files left', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  await Promise.all(Array.from({ length: 20 }, (_, i) => s.putCorpus(doc('set-a', 'classical/simple/shakespearean', [`word${'abcdefghijklmnopqrst'[i]}`]))))
  const folder = join(dir, 'corpora', 'set-a')
  t.deepEqual(readdirSync(folder), ['classical-simple-shakespearean.json'])
  const env = JSON.parse(readFileSync(join(folder, 'classical-simple-shakespearean.json'), 'utf8'))
  t.is(env.format, 'wotd-store/1')
  t.regex(env.sha256, /^[0-9a-f]{64}$/)
  t.is(env.data.setId, 'set-a')
  t.is((await s.getCorpus('set-a', parseCellKey('classical/simple/shakespearean')))!.words.length, 1)
})

test('FileStore: temporary files of dead writers are swept, those of live ones kept', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  await s.putCorpus(doc('set-a', 'modern/plain/victorian', ['gear']))
  const folder = join(dir, 'corpora', 'set-a')
  const dead = 'modern-plain-victorian.json.999999999.0badcafe.tmp'
  const live = `modern-plain-victorian.json.${process.pid}.0000beef.tmp`
  writeFileSync(join(folder, dead), '{"half')
  writeFileSync(join(folder, live), '{"half')
  t.is((await s.listCorpora('set-a')).length, 1)
  t.deepEqual(readdirSync(folder).sort(), [live, 'modern-plain-victorian.json'].sort())
})

test('FileStore: a corrupt or tampered file is a StoreError naming the file', async (t) => {
  const dir = tmp(t)
  const s = new FileStore({ dir })
  const cell = parseCellKey('modern/beautiful/victorian')
  await s.putCorpus(doc('set-a', 'modern/beautiful/victorian', ['sleek']))
  const path = join(dir, 'corpora', 'set-a', 'modern-beautiful-victorian.json')
  writeFileSync(path, readFileSync(path, 'utf8').replace('sleek', 'sneak'))
  await t.throwsAsync(s.getCorpus('set-a', cell), { instanceOf: StoreError, message: /modern-beautiful-victorian\.json is corrupt \(checksum mismatch\)/ })
  writeFileSync(path, '{"format":"wotd-store/1","sha256":"')
  await t.throwsAsync(s.getCorpus('set-a', cell), { instanceOf: StoreError, message: /not JSON/ })
  await t.throwsAsync(s.listCorpora('set-a'), { instanceOf: StoreError })
  writeFileSync(path, '{"hello":1}')
  await t.throwsAsync(s.getCorpus('set-a', cell), { instanceOf: StoreError, message: /not a wotd store file/ })
})

test('FileStore: ids that are not safe file names are refused; default folder and openStore', async (t) => {
  const s = new FileStore({ dir: tmp(t) })
  await t.throwsAsync(s.getCorpus('../evil', parseCellKey('modern/plain/victorian')), { instanceOf: InvalidInputError })
  await t.throwsAsync(s.putState('a/b', { x: 1 }), { instanceOf: InvalidInputError })
  t.is(defaultStoreDir({ WOTD_HOME: '/tmp/wotd-home-x' }), '/tmp/wotd-home-x')
  t.is(defaultStoreDir({}), join(process.cwd(), '.wotd'))
  const dir = tmp(t)
  const opened = await openStore(undefined, { WOTD_HOME: dir })
  t.is(opened.kind, 'file')
  t.is(opened.location, dir)
  t.is((await openStore(join(dir, 'sub'))).location, join(dir, 'sub'))
  t.false(existsSync(join(dir, 'sub')), 'opening creates nothing')
  await t.throwsAsync(openStore('postgres://127.0.0.1:5432/wotd'), { instanceOf: ConfigError }) // mongodb:// opens a MongoStore (store-mongo.test.ts)
})
