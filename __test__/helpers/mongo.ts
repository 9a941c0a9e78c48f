// A MongoDB-wire server for the MongoStore tests.
//
// 1. `WOTD_TEST_MONGODB_URI` (CI sets it to the FerretDB launcher it started; or any real MongoDB);
// 2. else the launcher binary at ~/.cache/wotd-ferretdb/ferretdb-launcher, started here;
// 3. else, when Go is installed, that binary built from scripts/ferretdb (bounded time), then 2.
// When none works: `CI=true` makes the suite fail; elsewhere it is skipped with a loud message.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MongoClient } from 'mongodb'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const LAUNCHER = join(homedir(), '.cache', 'wotd-ferretdb', process.platform === 'win32' ? 'ferretdb-launcher.exe' : 'ferretdb-launcher')
const GO_BUILD_TIMEOUT_MS = 240_000
const START_TIMEOUT_MS = 30_000

export type MongoTestServer = { uri: string; source: string } | { uri: null; reason: string }

/** Starts the launcher binary; resolves with its URI and the child (killed when this process exits). */
export function startLauncher(args: string[] = [], bin = LAUNCHER, timeoutMs = START_TIMEOUT_MS): Promise<{ uri: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const stop = () => {
      if (child.exitCode === null) child.kill('SIGTERM')
    }
    process.once('exit', stop)
    const timer = setTimeout(() => {
      stop()
      reject(new Error(`the FerretDB launcher printed no MONGODB_URI within ${timeoutMs / 1000} s: ${err.trim().slice(-500)}`))
    }, timeoutMs)
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const m = /^MONGODB_URI=(\S+)/m.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ uri: m[1], child })
      }
    })
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d
    })
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      process.removeListener('exit', stop)
      reject(new Error(`the FerretDB launcher exited with ${code}: ${err.trim().slice(-500)}`))
    })
    child.unref()
    ;(child.stdout as unknown as { unref?: () => void }).unref?.()
    ;(child.stderr as unknown as { unref?: () => void }).unref?.()
  })
}

function goBuild(): string | null {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' })
  if (go.status !== 0) return 'Go is not installed'
  mkdirSync(dirname(LAUNCHER), { recursive: true })
  const tmp = `${LAUNCHER}.${process.pid}.tmp`
  const r = spawnSync('go', ['build', '-o', tmp, '.'], { cwd: join(root, 'scripts', 'ferretdb'), encoding: 'utf8', timeout: GO_BUILD_TIMEOUT_MS })
  if (r.status !== 0) return `go build of scripts/ferretdb failed${r.error ? ` (${r.error.message})` : ''}: ${(r.stderr ?? '').trim().slice(-500)}`
  renameSync(tmp, LAUNCHER)
  return null
}

let server: Promise<MongoTestServer> | undefined

/** True when the server is FerretDB (it answers buildInfo with `ferretdbVersion`). */
export async function isFerretDB(uri: string): Promise<boolean> {
  const c = new MongoClient(uri, { serverSelectionTimeoutMS: 3000 })
  try {
    await c.connect()
    const info = await c.db('admin').command({ buildInfo: 1 })
    return typeof info.ferretdbVersion === 'string'
  } finally {
    await c.close().catch(() => {})
  }
}

/** The server for this test process (started once). */
export function testMongoServer(): Promise<MongoTestServer> {
  server ??= (async (): Promise<MongoTestServer> => {
    const env = process.env.WOTD_TEST_MONGODB_URI?.trim()
    if (env) return { uri: env, source: 'WOTD_TEST_MONGODB_URI' }
    const why: string[] = []
    if (!existsSync(LAUNCHER)) {
      const failed = goBuild()
      if (failed) why.push(failed)
    }
    if (existsSync(LAUNCHER)) {
      try {
        const { uri } = await startLauncher()
        return { uri, source: LAUNCHER }
      } catch (err) {
        why.push((err as Error).message)
      }
    } else why.push(`no launcher at ${LAUNCHER}`)
    return { uri: null, reason: `no MongoDB-wire server: WOTD_TEST_MONGODB_URI is unset; ${why.join('; ')}` }
  })()
  return server
}

/** Prints the loud notice of a skipped MongoDB suite. */
export function warnSkipped(file: string, reason: string): void {
  const line = '!'.repeat(78)
  console.warn(`\n${line}\n!! ${file}: SKIPPING the MongoStore tests\n!! ${reason}\n!! Set WOTD_TEST_MONGODB_URI, or build the launcher:\n!!   cd scripts/ferretdb && go build -o ${LAUNCHER} .\n${line}\n`)
}

let n = 0
/** A database name of its own for each test. */
export function uniqueDbName(prefix = 'wotd_test'): string {
  n += 1
  return `${prefix}_${process.pid}_${n}_${Math.random().toString(36).slice(2, 8)}`
}

/** Drops a test database (best effort). */
export async function dropDatabase(uri: string, dbName: string): Promise<void> {
  const c = new MongoClient(uri, { serverSelectionTimeoutMS: 3000 })
  try {
    await c.connect()
    await c.db(dbName).dropDatabase()
  } catch {
    // the server may be gone already
  } finally {
    await c.close().catch(() => {})
  }
}

/** A raw driver handle on a test database, for tampering with it. */
export async function rawDb(uri: string, dbName: string): Promise<{ db: import('mongodb').Db; close: () => Promise<void> }> {
  const c = new MongoClient(uri, { serverSelectionTimeoutMS: 3000 })
  await c.connect()
  return { db: c.db(dbName), close: () => c.close() }
}
