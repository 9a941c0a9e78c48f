/**
 * One namespace of the cache: a directory of segment files (see `segment.ts`) with an
 * in-memory index over them. Safe with any number of concurrent writers, in this process or
 * others: files are never modified in place, only created whole (temp + rename) or deleted
 * after their records live on in a newer file.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../files/atomic.js'
import { decodeSegment, encodeSegment, type CacheRecord } from './segment.js'

const SEGMENT_EXT = '.wseg'
const TEMP_PREFIX = '.tmp-'
/** More segment files than this in one namespace are merged into one. */
const COMPACT_AT = 16
/** A temp file older than this was left by a crashed writer. */
const STALE_TEMP_MS = 60 * 60 * 1000

export interface StoreEntry {
  aux: number
  value: Buffer
}

export interface StoreCounters {
  /** Records dropped because their bytes were damaged (each is recomputed by the caller). */
  corruptRecords: number
  /** Segment files that were damaged and rewritten or removed. */
  repairedFiles: number
}

function uniqueName(prefix: string, ext: string): string {
  return `${prefix}${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString('hex')}${ext}`
}

/** Writes `data` to `dir/name` so that readers see all of it or nothing (staged under a name the sweep of dead writers recognises). */
export async function atomicWrite(dir: string, name: string, data: Buffer | string): Promise<void> {
  await writeFileAtomic(join(dir, name), data, { tmp: join(dir, uniqueName(TEMP_PREFIX, '.part')), mode: 0o644 })
}

export class SegmentStore {
  private readonly index = new Map<string, StoreEntry>()
  /** Segment files whose records are in the index. */
  private readonly loaded = new Set<string>()
  readonly counters: StoreCounters = { corruptRecords: 0, repairedFiles: 0 }
  private ensured = false

  constructor(
    readonly dir: string,
    readonly valueBytes: number,
  ) {}

  get size(): number {
    return this.index.size
  }

  get(key: string): StoreEntry | undefined {
    return this.index.get(key)
  }

  /** Loads segment files written since the last refresh (by this or any other process). */
  async refresh(): Promise<void> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    for (const name of names) {
      if (name.startsWith(TEMP_PREFIX)) {
        await this.removeIfStale(name)
        continue
      }
      if (!name.endsWith(SEGMENT_EXT) || this.loaded.has(name)) continue
      let buf: Buffer
      try {
        buf = await readFile(join(this.dir, name))
      } catch (err) {
        // Merged into a newer segment and removed by another writer since readdir.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw err
      }
      const seg = decodeSegment(buf, this.valueBytes)
      for (const r of seg.records) this.index.set(r.key.toString('hex'), { aux: r.aux, value: r.value })
      if (seg.damaged === 0 && !seg.fatal) {
        this.loaded.add(name)
        continue
      }
      this.counters.corruptRecords += seg.damaged
      this.counters.repairedFiles++
      // Keep what survived in a fresh file, then drop the damaged one; the lost records are
      // misses from now on and get recomputed.
      if (seg.records.length > 0) await this.writeSegment(seg.records)
      await unlink(join(this.dir, name)).catch(() => {})
    }
  }

  /** Adds records as one new segment file, then merges files if there are many. */
  async put(records: CacheRecord[]): Promise<void> {
    if (records.length === 0) return
    await this.writeSegment(records)
    for (const r of records) this.index.set(r.key.toString('hex'), { aux: r.aux, value: r.value })
    if (this.loaded.size > COMPACT_AT) await this.compact()
  }

  /** Rewrites every loaded segment as one file. Files loaded by nobody else are untouched. */
  async compact(): Promise<void> {
    const merged = [...this.loaded]
    if (merged.length < 2) return
    const records: CacheRecord[] = []
    for (const [hex, e] of this.index) records.push({ key: Buffer.from(hex, 'hex'), aux: e.aux, value: e.value })
    await this.writeSegment(records)
    for (const name of merged) {
      this.loaded.delete(name)
      await unlink(join(this.dir, name)).catch(() => {})
    }
  }

  private async writeSegment(records: CacheRecord[]): Promise<void> {
    if (!this.ensured) {
      await mkdir(this.dir, { recursive: true })
      this.ensured = true
    }
    const name = uniqueName('seg-', SEGMENT_EXT)
    await atomicWrite(this.dir, name, encodeSegment(this.valueBytes, records))
    this.loaded.add(name)
  }

  private async removeIfStale(name: string): Promise<void> {
    try {
      const s = await stat(join(this.dir, name))
      if (Date.now() - s.mtimeMs > STALE_TEMP_MS) await unlink(join(this.dir, name))
    } catch {
      // Already gone, or renamed into place by its writer.
    }
  }

  /** Bytes on disk of the segment files. */
  async diskBytes(): Promise<number> {
    let total = 0
    try {
      for (const name of await readdir(this.dir)) {
        if (!name.endsWith(SEGMENT_EXT)) continue
        total += (await stat(join(this.dir, name)).catch(() => ({ size: 0 }))).size
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    return total
  }
}
