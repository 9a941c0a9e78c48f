/**
 * Whole-file entries of the unified cache (the word catalogue, its embedding matrix): one file
 * per key, written whole (temp + rename) and checked on every read.
 *
 *     magic "WOTDBLB1" (8) | sha256(payload) (32) | payload
 *
 * A file whose checksum fails is removed and reported as a miss, so the caller recomputes it.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, unlink } from 'node:fs/promises'
import { dirname, basename } from 'node:path'
import { atomicWrite } from './store.js'

const MAGIC = Buffer.from('WOTDBLB1', 'ascii')
const HEADER = MAGIC.length + 32

export interface BlobRead {
  payload?: Buffer
  /** The file was there but damaged (and has been removed). */
  corrupt: boolean
}

export async function readBlob(path: string): Promise<BlobRead> {
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { corrupt: false }
    throw err
  }
  const payload = buf.subarray(HEADER)
  const ok = buf.length >= HEADER && buf.subarray(0, MAGIC.length).equals(MAGIC) && createHash('sha256').update(payload).digest().equals(buf.subarray(MAGIC.length, HEADER))
  if (ok) return { payload, corrupt: false }
  await unlink(path).catch(() => {})
  return { corrupt: true }
}

export async function writeBlob(path: string, payload: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const sum = createHash('sha256').update(payload).digest()
  await atomicWrite(dirname(path), basename(path), Buffer.concat([MAGIC, sum, payload]))
}
