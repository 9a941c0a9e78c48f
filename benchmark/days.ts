/**
 * `npm run bench:days`: `wotd today --all` for many simulated people, on a FileStore and on a
 * MongoStore, written to benchmark/results/days.{json,md} (numbers, never pass/fail).
 *
 *   npm run bench:days -- [--store DIR|mongodb://...] [--run ID] [--users 10000] [--mongo URI] [--out DIR]
 *
 * The trained run (default: the newest completed run of `--store`, else of $WOTD_HOME or
 * ./.wotd) is copied into a fresh store of each kind; each simulated person likes 1-10 words of
 * one cell of the catalogue (their profile made with the documented rule, as `wotd like` makes
 * it); then the day's words of every profile are made (users/s), and made again (a resumed run
 * that finds every day stored). MongoDB: `--mongo`, else $WOTD_TEST_MONGODB_URI, else the
 * project's FerretDB launcher (as the tests start it); without one the MongoStore row says why.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createRng } from '../src/corpus/random.ts'
import { WOTDModel } from '../src/pipeline/inference.ts'
import { preferenceVector, vectorToBase64 } from '../src/profile/index.ts'
import { meanFacts } from '../src/semantic/index.ts'
import { copyRun, FileStore, openStore, redactText, type ProfileDoc, type Store } from '../src/store/index.ts'
import { RssMeter } from './lib/sys.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: {
    store: { type: 'string' },
    run: { type: 'string' },
    users: { type: 'string', default: '10000' },
    mongo: { type: 'string' },
    out: { type: 'string' },
    date: { type: 'string', default: '2026-12-06' },
  },
})
const USERS = Number(args.users)
if (!Number.isInteger(USERS) || USERS < 1) throw new Error(`--users must be a positive integer, got ${args.users}`)
const log = (m: string) => process.stderr.write(`[days] ${m}\n`)

interface Row {
  store: string
  users: number
  setupSeconds?: number
  firstPass?: { seconds: number; usersPerSecond: number; made: number; existing: number; failed: number }
  resumedPass?: { seconds: number; usersPerSecond: number; made: number; existing: number }
  peakRssMb?: number
  heapGrowthMb?: number
  skipped?: string
}

/** Profiles of simulated people: 1-10 liked words from one cell, made with the documented rule. */
async function seedProfiles(model: WOTDModel, target: Store, users: number): Promise<void> {
  const [index, enc] = await Promise.all([model.catalogueIndex(), model.encoder()])
  const cells = new Map<string, number[]>()
  for (let row = 0; row < index.size; row++) {
    if (index.training[row] || index.quality[row] < 0) continue
    const id = index.id(row)
    const key = `${id[0]},${id[1]},${id[2]}`
    if (!cells.has(key)) cells.set(key, [])
    cells.get(key)!.push(row)
  }
  const pools = [...cells.values()].filter((rows) => rows.length >= 20)
  const rng = createRng(7, 'bench-days')
  const at = '2026-12-01T08:00:00.000Z'
  for (let u = 0; u < users; u++) {
    const pool = pools[Math.floor(rng.next() * pools.length)]
    const n = 1 + Math.floor(rng.next() * 10)
    const rows = new Set<number>()
    while (rows.size < n) rows.add(pool[Math.floor(rng.next() * pool.length)])
    const liked = [...rows].map((r) => ({ word: index.entry(r).word, at }))
    const vector = preferenceVector([...rows].map((r) => ({ vector: index.vector(r), at })), [], index.centre)!
    const id = enc.encode(vector, { facts: meanFacts([...rows].map((r) => index.entry(r))) })
    const doc: ProfileDoc = {
      schema: 'wotd.profile/v1',
      user: `sim-${String(u).padStart(6, '0')}`,
      liked,
      disliked: [],
      vector: vectorToBase64(vector),
      id: [...id],
      runId: model.runId,
      version: 1,
      updatedAt: at,
    }
    await target.putProfile(doc)
    if ((u + 1) % 1000 === 0) log(`  ${u + 1}/${users} profiles`)
  }
}

async function measure(name: string, target: Store, source: Store, runId: string, meter: RssMeter): Promise<Row> {
  const row: Row = { store: name, users: USERS }
  log(`${name}: copying run ${runId}`)
  await copyRun(source, target, runId)
  const model = await WOTDModel.open({ store: target, runId })
  try {
    const t0 = performance.now()
    await seedProfiles(model, target, USERS)
    row.setupSeconds = (performance.now() - t0) / 1000
    log(`${name}: ${USERS} profiles in ${row.setupSeconds.toFixed(1)} s; making the words of ${args.date}`)
    global.gc?.()
    const heap0 = process.memoryUsage().heapUsed
    let heapPeak = heap0
    const end = meter.phase()
    let lastLog = 0
    const first = await model.wordsOfTheDayForAll({
      date: args.date!,
      onProgress: (p) => {
        if (p.done % 100 === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)
        if (p.done - lastLog >= 1000) {
          lastLog = p.done
          log(`  ${p.done}/${p.total}`)
        }
      },
    })
    row.peakRssMb = end()
    row.heapGrowthMb = (heapPeak - heap0) / 2 ** 20
    row.firstPass = { seconds: first.seconds, usersPerSecond: first.usersPerSecond, made: first.made, existing: first.existing, failed: first.failedCount }
    const again = await model.wordsOfTheDayForAll({ date: args.date! })
    row.resumedPass = { seconds: again.seconds, usersPerSecond: again.usersPerSecond, made: again.made, existing: again.existing }
    log(`${name}: ${first.usersPerSecond.toFixed(1)} users/s (first pass), ${again.usersPerSecond.toFixed(1)} users/s (all stored)`)
  } finally {
    await model.close()
  }
  return row
}

async function mongoUri(): Promise<{ uri?: string; reason?: string; stop?: () => void }> {
  if (args.mongo) return { uri: args.mongo }
  if (process.env.WOTD_TEST_MONGODB_URI) return { uri: process.env.WOTD_TEST_MONGODB_URI }
  try {
    const { startLauncher, LAUNCHER } = await import('../__test__/helpers/mongo.ts')
    const { uri, child } = await startLauncher([], LAUNCHER)
    return { uri, stop: () => child.kill('SIGTERM') }
  } catch (err) {
    return { reason: `no MongoDB: pass --mongo URI, or build the FerretDB launcher (see .ci/run): ${err instanceof Error ? err.message : String(err)}` }
  }
}

const source = await openStore(args.store)
const meter = new RssMeter()
const rows: Row[] = []
let runId: string
try {
  const run = args.run ? await source.getRun(args.run) : await source.latestRun({ status: 'completed' })
  if (!run) throw new Error(`no completed run in ${source.location}; train one with \`npx wotd train\``)
  runId = run.id
  const dir = mkdtempSync(join(tmpdir(), 'wotd-bench-days-'))
  try {
    const file = new FileStore({ dir })
    rows.push(await measure('FileStore', file, source, runId, meter))
    await file.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const m = await mongoUri()
  if (!m.uri) rows.push({ store: 'MongoStore', users: USERS, skipped: m.reason })
  else {
    const dbName = `wotd_bench_days_${process.pid}`
    const { MongoStore } = await import('../src/store/mongo.ts')
    const mongo = await MongoStore.connect(m.uri, { dbName }).catch((err: Error) => {
      rows.push({ store: 'MongoStore', users: USERS, skipped: err.message })
      m.stop?.()
      return undefined
    })
    if (mongo) try {
      rows.push(await measure('MongoStore', mongo, source, runId, meter))
    } finally {
      await mongo.close()
      const { dropDatabase } = await import('../__test__/helpers/mongo.ts')
      await dropDatabase(m.uri, dbName).catch(() => undefined)
      m.stop?.()
    }
  }
} finally {
  meter.stop()
  await source.close()
}

const md = [
  `# wotd today --all: ${USERS.toLocaleString('en')} simulated profiles`,
  '',
  `Run ${runId!}; date ${args.date}; one process on this machine's 2 cores. First pass: every word chosen and stored; resumed pass: every day already stored (what a rerun after a crash costs).`,
  '',
  '| store | profiles | first pass users/s | first pass s | resumed users/s | peak RSS MB | JS heap growth MB | setup s |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) =>
    r.skipped
      ? `| ${r.store} | skipped: ${r.skipped} |||||||`
      : `| ${r.store} | ${r.users} | ${r.firstPass!.usersPerSecond.toFixed(1)} | ${r.firstPass!.seconds.toFixed(1)} | ${r.resumedPass!.usersPerSecond.toFixed(1)} | ${r.peakRssMb!.toFixed(0)} | ${r.heapGrowthMb!.toFixed(1)} | ${r.setupSeconds!.toFixed(1)} |`,
  ),
  '',
].join('\n')
const out = resolve(args.out ?? join(root, 'benchmark', 'results'))
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'days.json'), JSON.stringify({ date: new Date().toISOString(), command: redactText(`npm run bench:days -- ${process.argv.slice(2).join(' ')}`.trim()), runId: runId!, users: USERS, rows, markdown: md }, null, 2) + '\n')
writeFileSync(join(out, 'days.md'), md)
process.stdout.write(md + '\n')
