/**
 * Files that appear whole or not at all. Every file the package writes outside a database goes
 * through here: the bytes go to a temporary sibling, are flushed to disk, and are renamed over
 * the target, and the folder entry is flushed too, so a crash or a kill leaves the old file or
 * the new one, never half of one.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, unlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'

/** The default temporary sibling of `path`: unique per process and call. */
export function tempSibling(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
}

/** Makes a rename inside `dir` durable where the platform allows it. */
export async function syncDir(dir: string): Promise<void> {
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

export interface AtomicWriteOptions {
  /** Where the bytes are staged (default `tempSibling(path)`); must be in the same folder. */
  tmp?: string
  /** File mode of a new file (default 0o600: stores and caches may hold personal data). */
  mode?: number
}

/** Writes `data` to `path` atomically, creating missing folders. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(resolve(path))
  await mkdir(dir, { recursive: true })
  const tmp = options.tmp ?? tempSibling(path)
  try {
    const fh = await open(tmp, 'wx', options.mode ?? 0o600)
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await syncDir(dir)
}
