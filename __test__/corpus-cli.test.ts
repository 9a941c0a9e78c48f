// `wotd corpus` as a user runs it (a child process on the TypeScript sources).
import test from 'ava'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.js'
import { startFakeOpenAI } from './helpers/fake-openai.js'

const KEY = 'sk-test-CLIKEY-0123456789abcdef'

function tmp(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const noKey = { OPENAI_API_KEY: '', OPENAI_BASE_URL: '', WOTD_HOME: '' }

interface CliJson {
  setId: string
  provider: string
  seed: number
  wordsPerCorpus: number
  cells: { cell: string; style: string; complexity: string; era: string; words: { word: string; style: string }[] }[]
}

test('no key: --json gives 12 cells x 100 distinct lexicon words, the same for the same seed', async (t) => {
  const [a, b] = await Promise.all([
    runCli(['corpus', '--json', '--store', tmp(t)], { env: noKey }),
    runCli(['corpus', '--json', '--seed', '42', '--store', tmp(t)], { env: noKey }),
  ])
  t.is(a.code, 0, a.stderr)
  t.is(b.code, 0, b.stderr)
  t.regex(a.stderr, /OPENAI_API_KEY is not set: using the bundled offline lexicon/)
  const ja = JSON.parse(a.stdout) as CliJson
  const jb = JSON.parse(b.stdout) as CliJson
  t.is(ja.provider, 'lexicon')
  t.is(ja.cells.length, 12)
  const all = new Set<string>()
  for (const c of ja.cells) {
    t.is(c.words.length, 100)
    t.is(c.cell, `${c.style}/${c.complexity}/${c.era}`)
    for (const w of c.words) all.add(w.word)
  }
  t.is(all.size, 1200)
  t.deepEqual(jb.cells, ja.cells)
})

test('summary table, WOTD_HOME store, usage errors exit 2, an unfillable request exits 5', async (t) => {
  const home = tmp(t)
  const r = await runCli(['corpus', '--words-per-corpus', '5', '--seed', '3'], { env: { ...noKey, WOTD_HOME: home } })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /classical\/simple\/shakespearean\s+5\s+0\s+5/)
  t.regex(r.stdout, /12 cells x 5 words = 60 distinct words from lexicon, seed 3/)
  t.deepEqual(readdirSync(join(home, 'corpora')), ['lexicon-seed3'])
  const again = await runCli(['corpus', '--words-per-corpus', '5', '--seed', '3'], { env: { ...noKey, WOTD_HOME: home } })
  t.regex(again.stdout, /classical\/simple\/shakespearean\s+5\s+5\s+0/, 'the rerun reads the store')

  const bad = await Promise.all([
    runCli(['corpus', '--words-per-corpus', 'ten'], { env: noKey }),
    runCli(['corpus', '--cells', 'some'], { env: noKey }),
    runCli(['corpus', '--store', 'mongodb://127.0.0.1/x'], { env: noKey }),
    runCli(['corpus', '--cells', 'all', '--store', tmp(t), '--json'], { env: noKey }),
  ])
  t.is(bad[0].code, 2)
  t.regex(bad[0].stderr, /--words-per-corpus must be a whole number/)
  t.is(bad[1].code, 2)
  // No MongoDB listens on 127.0.0.1:27017 here: a StoreError (exit 4), fast.
  t.is(bad[2].code, 4)
  t.regex(bad[2].stderr, /STORE/)
  t.is(bad[3].code, 5)
  t.regex(JSON.parse(bad[3].stderr.trim().split('\n').at(-1)!).error.message, /Ask for at most \d+ words per corpus/)
})

test('--provider openai against a local OpenAI-compatible server; the key never printed', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: fake.baseURL, WOTD_HOME: '' }
  const store = tmp(t)
  const r = await runCli(['corpus', '--provider', 'openai', '--words-per-corpus', '8', '--json', '--store', store, '--model', 'llama3.1:8b'], { env })
  t.is(r.code, 0, r.stderr)
  const j = JSON.parse(r.stdout) as CliJson & { model: string; usage: { requests: number; costUSD: number | null } }
  t.is(j.provider, 'openai')
  t.is(j.model, 'llama3.1:8b')
  t.is(j.cells.length, 12)
  t.true(j.cells.every((c) => c.words.length === 8))
  t.is(j.usage.requests, fake.requests.length)
  t.false(r.stdout.includes(KEY) || r.stderr.includes(KEY))
  t.is(fake.requests[0].headers.authorization, `Bearer ${KEY}`)

  fake.script = (req) => ({ type: 'status', status: 401, body: { error: { message: `bad key ${req.headers.authorization}` } } })
  const denied = await runCli(['corpus', '--words-per-corpus', '9', '--store', tmp(t), '--verbose'], { env })
  t.is(denied.code, 5)
  t.regex(denied.stderr, /\[PROVIDER\].*401/)
  t.false(denied.stdout.includes(KEY) || denied.stderr.includes(KEY))
})

test('Ctrl-C while a server asks to wait days (Retry-After) exits 130 at once', async (t) => {
  const { spawn } = await import('node:child_process')
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  fake.script = () => ({ type: 'status', status: 429, headers: { 'retry-after': '999999' }, body: { error: { message: 'slow down' } } })
  const root = join(import.meta.dirname, '..')
  const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(root, 'src', 'cli', 'bin.ts'), 'corpus', '--provider', 'openai', '--words-per-corpus', '5', '--store', tmp(t)], {
    cwd: root,
    env: { ...process.env, OPENAI_API_KEY: KEY, OPENAI_BASE_URL: fake.baseURL, WOTD_HOME: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  // Wait until the server has answered 429, then interrupt once.
  for (let i = 0; i < 300 && fake.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
  t.true(fake.requests.length > 0, 'the CLI reached the server')
  await new Promise((r) => setTimeout(r, 300))
  const sent = Date.now()
  child.kill('SIGINT')
  const code = await new Promise<number | null>((r) => child.on('close', r))
  t.is(code, 130, stderr)
  t.true(Date.now() - sent < 10_000, `exited ${Date.now() - sent} ms after the signal`)
  t.regex(stderr, /CANCELLED/)
})
