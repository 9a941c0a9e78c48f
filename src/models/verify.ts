/**
 * Checks a pulled model's files against the sha256 its marker (`.wotd-model.json`) records,
 * before they are loaded: a flipped byte must be a `CorruptFileError`, never different words
 * with exit 0. Hashing 100 MB takes a fraction of a second, so each file is hashed once per
 * (size, mtime) and the result kept in `$WOTD_MODELS/.verified.json`; a file that changes is
 * hashed again. Models without a marker (a user's own folder, the Hugging Face cache, whose
 * client checks downloads itself) are left alone.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { CorruptFileError } from '../errors.js'
import { writeFileAtomic } from '../files/atomic.js'
import { MODEL_MARKER, modelsDir } from './paths.js'
import type { ModelMarker } from './pull.js'

interface Verified {
  size: number
  mtimeMs: number
  sha256: string
}

const CACHE_FILE = '.verified.json'

async function readCache(): Promise<Record<string, Verified>> {
  try {
    const j = JSON.parse(await readFile(join(modelsDir(), CACHE_FILE), 'utf8')) as unknown
    return j && typeof j === 'object' && !Array.isArray(j) ? (j as Record<string, Verified>) : {}
  } catch {
    // missing or damaged: everything is simply hashed again
    return {}
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Verifies the files of the model in `dir` against its marker; resolves with how many files
 * were hashed now (0 when every file was already verified at its current size and mtime).
 */
export async function verifyModelDir(dir: string): Promise<number> {
  let marker: ModelMarker
  try {
    marker = JSON.parse(await readFile(join(dir, MODEL_MARKER), 'utf8')) as ModelMarker
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw new CorruptFileError(`${join(dir, MODEL_MARKER)} is damaged; fetch the model again with \`wotd models pull --force\``, { cause: err })
  }
  const fix = `fetch it again with \`wotd models pull --force --model ${marker.id}\``
  const cache = await readCache()
  let hashed = 0
  for (const f of marker.files ?? []) {
    const path = resolve(dir, f.path)
    const st = await stat(path).catch(() => null)
    if (!st) throw new CorruptFileError(`model file ${path} is missing; ${fix}`)
    if (st.size !== f.size) throw new CorruptFileError(`model file ${path} has ${st.size} bytes, ${f.size} were pulled; ${fix}`)
    const seen = cache[path]
    if (seen && seen.size === st.size && seen.mtimeMs === st.mtimeMs && seen.sha256 === f.sha256) continue
    const got = await sha256File(path)
    hashed++
    if (got !== f.sha256) throw new CorruptFileError(`model file ${path} is damaged (sha256 ${got.slice(0, 12)}..., ${f.sha256.slice(0, 12)}... was pulled); ${fix}`)
    cache[path] = { size: st.size, mtimeMs: st.mtimeMs, sha256: got }
  }
  // Concurrent verifiers may each write: the last complete file wins, and any of them is right.
  if (hashed > 0) await writeFileAtomic(join(modelsDir(), CACHE_FILE), JSON.stringify(cache)).catch(() => {})
  return hashed
}

/** `verifyModelDir` for the copy of a model id (or folder) this machine would load, if any. */
export async function verifyModel(id: string): Promise<void> {
  const { findModel } = await import('./locate.js')
  const found = await findModel(id)
  if (found) await verifyModelDir(found.dir)
}
