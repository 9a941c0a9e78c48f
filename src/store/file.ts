/**
 * `FileStore`: the embedded default store, plain JSON files under `$WOTD_HOME` or `./.wotd`.
 *
 *     <root>/corpora/<setId>/<style>-<complexity>-<era>.json
 *     <root>/state/<key>.json
 *
 * Every file is an envelope `{format, sha256, data}` whose checksum covers `data`; writes go
 * to a temporary file in the same folder, are flushed, then renamed over the target, so a
 * crash at any moment leaves either the old or the new file.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { InvalidInputError, StoreError } from '../errors.js'
import { cellIndex, parseCellKey, type Cell } from '../types.js'
import { cellSlug, SAFE_ID, type CorpusStore, type StoredCorpus } from './types.js'

const FORMAT = 'wotd-store/1'

interface Envelope {
  format: string
  sha256: string
  data: unknown
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The default store folder: `$WOTD_HOME`, else `./.wotd`. */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.WOTD_HOME && env.WOTD_HOME.trim() !== '' ? env.WOTD_HOME : '.wotd')
}

/** Writes `text` to `path` atomically (temporary file in the same folder, fsync, rename). */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = resolve(path, '..')
  await mkdir(dir, { recursive: true })
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(text, 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  // Make the rename itself durable where the platform allows it.
  try {
    const dh = await open(dir, 'r')
    try {
      await dh.sync()
    } finally {
      await dh.close()
    }
  } catch {
    // not supported here (e.g. Windows); the rename is still atomic
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function checkId(kind: string, id: string): void {
  if (!SAFE_ID.test(id)) {
    throw new InvalidInputError(`${kind} "${id}" may hold only letters, digits, ".", "_" and "-" (at most 128, not starting with a symbol)`)
  }
}

export interface FileStoreOptions {
  /** The store folder; defaults to `$WOTD_HOME` or `./.wotd`. */
  dir?: string
}

export class FileStore implements CorpusStore {
  readonly kind = 'file'
  readonly location: string
  readonly root: string

  constructor(options: FileStoreOptions = {}) {
    this.root = resolve(options.dir ?? defaultStoreDir())
    this.location = this.root
  }

  private corpusPath(setId: string, cell: Cell): string {
    checkId('corpus set id', setId)
    return join(this.root, 'corpora', setId, `${cellSlug(cell)}.json`)
  }

  private statePath(key: string): string {
    checkId('state key', key)
    return join(this.root, 'state', `${key}.json`)
  }

  private async readEnvelope(path: string): Promise<unknown | null> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new StoreError(`cannot read ${path}`, { cause: err })
    }
    let env: Envelope
    try {
      env = JSON.parse(text) as Envelope
    } catch (err) {
      throw new StoreError(`${path} is corrupt (not JSON); delete it to rebuild what it held`, { cause: err })
    }
    if (!env || env.format !== FORMAT || typeof env.sha256 !== 'string' || !('data' in env)) {
      throw new StoreError(`${path} is not a wotd store file (format ${JSON.stringify(env?.format)}); delete it to rebuild what it held`)
    }
    if (sha256Hex(JSON.stringify(env.data)) !== env.sha256) {
      throw new StoreError(`${path} is corrupt (checksum mismatch); delete it to rebuild what it held`)
    }
    return env.data
  }

  private async writeEnvelope(path: string, data: unknown): Promise<void> {
    const body = JSON.stringify(data)
    const env = `{"format":${JSON.stringify(FORMAT)},"sha256":"${sha256Hex(body)}","data":${body}}\n`
    try {
      await writeFileAtomic(path, env)
    } catch (err) {
      throw new StoreError(`cannot write ${path}`, { cause: err })
    }
  }

  async getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null> {
    const path = this.corpusPath(setId, cell)
    const doc = (await this.readEnvelope(path)) as StoredCorpus | null
    if (doc && (doc.setId !== setId || cellSlug(doc.cell) !== cellSlug(cell))) {
      throw new StoreError(`${path} holds ${doc.setId}/${cellSlug(doc.cell)}, not ${setId}/${cellSlug(cell)}`)
    }
    return doc
  }

  async putCorpus(doc: StoredCorpus): Promise<void> {
    await this.writeEnvelope(this.corpusPath(doc.setId, doc.cell), doc)
  }

  /**
   * Removes temporary files left by writers that died mid-write (a SIGKILL between the
   * temporary file and the rename): their pid is in the name and no longer runs.
   */
  private async sweep(dir: string, files: string[]): Promise<void> {
    for (const f of files) {
      const m = /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(f)
      if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue
      await unlink(join(dir, f)).catch(() => {})
    }
  }

  async listCorpora(setId?: string): Promise<StoredCorpus[]> {
    const base = join(this.root, 'corpora')
    let sets: string[]
    if (setId !== undefined) {
      checkId('corpus set id', setId)
      sets = [setId]
    } else {
      sets = (await readdir(base).catch(() => [] as string[])).filter((s) => SAFE_ID.test(s)).sort()
    }
    const out: StoredCorpus[] = []
    for (const s of sets) {
      const all = await readdir(join(base, s)).catch(() => [] as string[])
      await this.sweep(join(base, s), all)
      const files = all.filter((f) => f.endsWith('.json'))
      const docs: StoredCorpus[] = []
      for (const f of files) {
        let cell: Cell
        try {
          cell = parseCellKey(f.slice(0, -'.json'.length))
        } catch {
          continue // not a cell file
        }
        const doc = await this.getCorpus(s, cell)
        if (doc) docs.push(doc)
      }
      docs.sort((a, b) => cellIndex(a.cell) - cellIndex(b.cell))
      out.push(...docs)
    }
    return out
  }

  async deleteCorpus(setId: string, cell: Cell): Promise<boolean> {
    try {
      await unlink(this.corpusPath(setId, cell))
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw new StoreError(`cannot delete ${this.corpusPath(setId, cell)}`, { cause: err })
    }
  }

  async getState<T = unknown>(key: string): Promise<T | null> {
    return (await this.readEnvelope(this.statePath(key))) as T | null
  }

  async putState(key: string, value: unknown): Promise<void> {
    const path = this.statePath(key)
    if (value === null || value === undefined) {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw new StoreError(`cannot delete ${path}`, { cause: err })
      })
      return
    }
    await this.writeEnvelope(path, value)
  }

  async close(): Promise<void> {}
}
