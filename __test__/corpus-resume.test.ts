// Kill -9 mid-run, then resume: a child process generates against the fake server into a file
// store and is killed with SIGKILL twice at different points; the final run must end with
// exactly N distinct words per cell, no word in two cells, and never ask again for a cell
// that was already complete.
import test from 'ava'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SyntheticGenerator } from '../src/corpus/generator.js'
import { FileStore } from '../src/store/file.js'
import { cellKey } from '../src/types.js'
import { startFakeOpenAI } from './helpers/fake-openai.js'

const root = join(import.meta.dirname, '..')
const KEY = 'sk-test-RESUMEKEY-0123456789'
const N = 30

const CHILD = `
const { SyntheticGenerator } = await import(${JSON.stringify(join(root, 'src', 'corpus', 'generator.js'))})
const { FileStore } = await import(${JSON.stringify(join(root, 'src', 'store', 'file.js'))})
const cfg = JSON.parse(process.env.WOTD_TEST_CFG)
const gen = new SyntheticGenerator({
  provider: 'openai', cells: 'default', wordsPerCorpus: cfg.n, store: new FileStore({ dir: cfg.dir }), env: {},
  openai: { apiKey: cfg.key, baseURL: cfg.baseURL, wordsPerRequest: 10, concurrency: 2, maxRetries: 0, timeoutMs: 5000 },
})
await gen.generate()
process.stdout.write('done\\n')
`

interface Snapshot {
  complete: Set<string>
  partial: number
}

async function snapshot(store: FileStore): Promise<Snapshot> {
  const docs = await store.listCorpora()
  return { complete: new Set(docs.filter((d) => d.status === 'complete').map((d) => cellKey(d.cell))), partial: docs.filter((d) => d.status === 'partial').length }
}

/** Runs the generator in a child and SIGKILLs it once `killWhen` holds; resolves to how it ended. */
function runChild(cfg: object, store: FileStore, killWhen: (s: Snapshot) => boolean): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string; atKill?: Snapshot }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', '--input-type=module', '-e', CHILD], {
      cwd: root,
      env: { ...process.env, WOTD_TEST_CFG: JSON.stringify(cfg) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    let atKill: Snapshot | undefined
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setInterval(async () => {
      if (atKill) return
      const s = await snapshot(store).catch(() => undefined)
      if (s && killWhen(s) && !atKill) {
        atKill = s
        child.kill('SIGKILL')
      }
    }, 5)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearInterval(timer)
      resolve({ code, signal, stderr, atKill })
    })
  })
}

test('killed with SIGKILL twice mid-run, then resumed: exact counts, no duplicates, no gaps', async (t) => {
  const fake = await startFakeOpenAI({ delayMs: 30 })
  t.teardown(() => fake.close())
  const dir = mkdtempSync(join(tmpdir(), 'wotd-resume-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = new FileStore({ dir })
  const cfg = { n: N, dir, key: KEY, baseURL: fake.baseURL }

  const first = await runChild(cfg, store, (s) => s.complete.size >= 3)
  t.is(first.signal, 'SIGKILL', `child ended on its own: ${first.stderr}`)
  const afterFirst = await snapshot(store)
  t.true(afterFirst.complete.size >= 3 && afterFirst.complete.size < 12)
  const requestsAfterFirst = fake.requests.length

  const second = await runChild(cfg, store, (s) => s.complete.size >= afterFirst.complete.size + 3)
  t.is(second.signal, 'SIGKILL', `child ended on its own: ${second.stderr}`)
  const afterSecond = await snapshot(store)
  t.true(afterSecond.complete.size < 12)
  // The second child never asked for a cell the first had completed.
  const secondRequests = fake.requests.slice(requestsAfterFirst)
  t.true(secondRequests.length > 0)
  for (const r of secondRequests) t.false(afterFirst.complete.has(r.cell!), `asked again for complete cell ${r.cell}`)
  const requestsAfterSecond = fake.requests.length

  // The last run, in process, finishes the job.
  const gen = new SyntheticGenerator({
    provider: 'openai',
    cells: 'default',
    wordsPerCorpus: N,
    store,
    env: {},
    openai: { apiKey: KEY, baseURL: fake.baseURL, wordsPerRequest: 10, concurrency: 2, maxRetries: 0 },
  })
  const r = await gen.generate()
  for (const q of fake.requests.slice(requestsAfterSecond)) t.false(afterSecond.complete.has(q.cell!))
  t.is(r.corpora.length, 12)
  const seen = new Map<string, string>()
  for (const c of r.corpora) {
    t.is(c.words.length, N)
    t.is(new Set(c.words.map((w) => w.word)).size, N)
    for (const w of c.words) {
      t.false(seen.has(w.word), `${w.word} in ${seen.get(w.word)} and ${cellKey(c.cell)}`)
      seen.set(w.word, cellKey(c.cell))
    }
  }
  t.is(seen.size, 12 * N)
  t.true(r.cells.filter((c) => c.fromStore === N).length >= afterSecond.complete.size)
  // What is stored is exactly what was returned.
  const docs = await store.listCorpora(gen.setId)
  t.is(docs.length, 12)
  for (const d of docs) {
    t.is(d.status, 'complete')
    const mine = r.corpora.find((c) => cellKey(c.cell) === cellKey(d.cell))!
    t.deepEqual(
      d.words.map((w) => w.word),
      mine.words.map((w) => w.word),
    )
  }
  // Temporary files of killed writers are swept; only cell files remain.
  for (const f of readdirSync(join(dir, 'corpora', gen.setId))) t.regex(f, /^[a-z]+-[a-z]+-[a-z]+\.json$/)
  // A rerun is a no-op.
  const before = fake.requests.length
  const again = await gen.generate()
  t.is(fake.requests.length, before)
  t.deepEqual(
    again.corpora.map((c) => c.words),
    r.corpora.map((c) => c.words),
  )
})
