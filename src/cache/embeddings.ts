/**
 * The unified cache (DESIGN.md "Storage"), embeddings part: vectors content-addressed by
 * sha256(model id, revision, pooling, normalisation, text), kept in checksummed segment
 * files under `$WOTD_CACHE` (default `~/.cache/wotd/cache`).
 */
import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { atomicWrite, SegmentStore } from './store.js'

/** `$WOTD_CACHE`, else `~/.cache/wotd/cache`. */
export function cacheDir(): string {
  return process.env.WOTD_CACHE ? resolve(process.env.WOTD_CACHE) : join(homedir(), '.cache', 'wotd', 'cache')
}

/** Everything that decides which vector a text gets. */
export interface EmbeddingSpace {
  modelId: string
  revision: string
  pooling: string
  normalize: boolean
  dim: number
}

export interface CachedEmbedding {
  vector: Float32Array
  tokenCount: number
  truncated: boolean
}

export interface CacheStats {
  hits: number
  misses: number
  /** Entries written. */
  writes: number
  /** Entries found damaged on disk, dropped (and so recomputed by the caller). */
  corrupt: number
}

const KEY_SCHEMA = 'wotd-embedding/1'
const TRUNCATED_BIT = 0x8000_0000

function spaceId(space: EmbeddingSpace): string {
  const h = createHash('sha256')
  h.update(JSON.stringify([KEY_SCHEMA, space.modelId, space.revision, space.pooling, space.normalize, space.dim]))
  return h.digest('hex').slice(0, 24)
}

/** The content address of one text's vector: sha256 over the space and the exact text. */
export function embeddingKey(space: EmbeddingSpace, text: string): Buffer {
  const h = createHash('sha256')
  // JSON keeps fields unambiguous (no separator can be forged by a text).
  h.update(JSON.stringify([KEY_SCHEMA, space.modelId, space.revision, space.pooling, space.normalize, text]))
  return h.digest()
}

function toBuffer(v: Float32Array): Buffer {
  // Copy: the caller keeps ownership of its array. Byte order is the platform's (little-endian
  // on every target the addon is built for).
  return Buffer.from(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength))
}

function toVector(b: Buffer): Float32Array {
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
}

export class EmbeddingCache {
  readonly dir: string
  private readonly stores = new Map<string, SegmentStore>()
  private counts = { hits: 0, misses: 0, writes: 0 }

  constructor(opts: { dir?: string } = {}) {
    this.dir = opts.dir ? resolve(opts.dir) : cacheDir()
  }

  private store(space: EmbeddingSpace): SegmentStore {
    const id = spaceId(space)
    let s = this.stores.get(id)
    if (!s) {
      s = new SegmentStore(join(this.dir, 'embeddings', id), space.dim * 4)
      this.stores.set(id, s)
    }
    return s
  }

  /** Cached vectors for `texts` (undefined where missing), counting hits and misses. */
  async lookup(space: EmbeddingSpace, texts: readonly string[]): Promise<(CachedEmbedding | undefined)[]> {
    const store = this.store(space)
    await store.refresh()
    return texts.map((t) => {
      const e = store.get(embeddingKey(space, t).toString('hex'))
      if (!e) {
        this.counts.misses++
        return undefined
      }
      this.counts.hits++
      return { vector: toVector(e.value), tokenCount: e.aux & ~TRUNCATED_BIT, truncated: (e.aux & TRUNCATED_BIT) !== 0 }
    })
  }

  /** Stores vectors (one new segment file per call). */
  async save(space: EmbeddingSpace, entries: readonly ({ text: string } & CachedEmbedding)[]): Promise<void> {
    if (entries.length === 0) return
    const store = this.store(space)
    const records = entries.map((e) => {
      if (e.vector.length !== space.dim) throw new Error(`vector of length ${e.vector.length} in a ${space.dim}-d cache space`)
      return {
        key: embeddingKey(space, e.text),
        aux: ((e.truncated ? TRUNCATED_BIT : 0) | (e.tokenCount & ~TRUNCATED_BIT)) >>> 0,
        value: toBuffer(e.vector),
      }
    })
    await this.describe(space, store.dir)
    await store.put(records)
    this.counts.writes += records.length
  }

  /** Counters since construction (or the last `resetStats`). */
  stats(): CacheStats {
    let corrupt = 0
    for (const s of this.stores.values()) corrupt += s.counters.corruptRecords
    return { ...this.counts, corrupt }
  }

  resetStats(): void {
    this.counts = { hits: 0, misses: 0, writes: 0 }
    for (const s of this.stores.values()) s.counters.corruptRecords = 0
  }

  /** Bytes of cached vectors on disk for one space. */
  async diskBytes(space: EmbeddingSpace): Promise<number> {
    return this.store(space).diskBytes()
  }

  /** The directory holding one space's segment files. */
  spaceDir(space: EmbeddingSpace): string {
    return this.store(space).dir
  }

  private readonly described = new Set<string>()

  /** A human-readable note of what a space directory holds (not used for lookups). */
  private async describe(space: EmbeddingSpace, dir: string): Promise<void> {
    if (this.described.has(dir)) return
    this.described.add(dir)
    await mkdir(dir, { recursive: true })
    await atomicWrite(dir, 'space.json', JSON.stringify({ schema: KEY_SCHEMA, ...space }, null, 2) + '\n')
  }
}
