/**
 * The on-disk record format of the unified cache.
 *
 * A namespace directory holds immutable segment files, each written whole to a temporary
 * name and renamed into place, so a reader sees either the complete file or nothing.
 * Several processes may write at once: each writes its own segment under a unique name.
 *
 *     header  : magic "WOTDSEG1" (8) | version u32 | valueBytes u32 | count u32 | headerCrc u32
 *     record  : key (32, sha256) | aux u32 | value (valueBytes) | crc32(key, aux, value) u32
 *
 * All integers little-endian. `aux` is a small per-entry field the caller owns (embeddings:
 * token count and a truncation bit). A record whose CRC fails, or a file cut short, loses only
 * the affected records; the caller drops them and recomputes.
 */
import { crc32 } from 'node:zlib'

export const MAGIC = Buffer.from('WOTDSEG1', 'ascii')
export const VERSION = 1
export const HEADER_BYTES = 24
export const KEY_BYTES = 32

export interface CacheRecord {
  key: Buffer
  aux: number
  value: Buffer
}

export function recordBytes(valueBytes: number): number {
  return KEY_BYTES + 4 + valueBytes + 4
}

export function encodeSegment(valueBytes: number, records: CacheRecord[]): Buffer {
  const rb = recordBytes(valueBytes)
  const buf = Buffer.alloc(HEADER_BYTES + rb * records.length)
  MAGIC.copy(buf, 0)
  buf.writeUInt32LE(VERSION, 8)
  buf.writeUInt32LE(valueBytes, 12)
  buf.writeUInt32LE(records.length, 16)
  buf.writeUInt32LE(crc32(buf.subarray(0, 20)), 20)
  let off = HEADER_BYTES
  for (const r of records) {
    if (r.key.length !== KEY_BYTES) throw new Error(`cache key must be ${KEY_BYTES} bytes`)
    if (r.value.length !== valueBytes) throw new Error(`cache value must be ${valueBytes} bytes, got ${r.value.length}`)
    r.key.copy(buf, off)
    buf.writeUInt32LE(r.aux >>> 0, off + KEY_BYTES)
    r.value.copy(buf, off + KEY_BYTES + 4)
    const body = buf.subarray(off, off + rb - 4)
    buf.writeUInt32LE(crc32(body), off + rb - 4)
    off += rb
  }
  return buf
}

export interface DecodedSegment {
  valueBytes: number
  records: CacheRecord[]
  /** Records lost to a bad CRC or a short file; > 0 means the file needs repair. */
  damaged: number
  /** Why the whole file is unusable (bad magic, header CRC, unknown version). */
  fatal?: string
}

/** Parses a segment; never throws on bad bytes, reports them instead. */
export function decodeSegment(buf: Buffer, expectedValueBytes: number): DecodedSegment {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, 8).equals(MAGIC)) {
    return { valueBytes: expectedValueBytes, records: [], damaged: 1, fatal: 'not a wotd cache segment (bad magic or too short)' }
  }
  if (buf.readUInt32LE(20) !== crc32(buf.subarray(0, 20))) {
    return { valueBytes: expectedValueBytes, records: [], damaged: 1, fatal: 'header checksum mismatch' }
  }
  const version = buf.readUInt32LE(8)
  const valueBytes = buf.readUInt32LE(12)
  const count = buf.readUInt32LE(16)
  if (version !== VERSION) return { valueBytes, records: [], damaged: 0, fatal: `unknown segment version ${version}` }
  if (valueBytes !== expectedValueBytes) {
    return { valueBytes, records: [], damaged: 1, fatal: `value size ${valueBytes} where ${expectedValueBytes} was expected` }
  }
  const rb = recordBytes(valueBytes)
  const records: CacheRecord[] = []
  let damaged = 0
  for (let i = 0; i < count; i++) {
    const off = HEADER_BYTES + i * rb
    if (off + rb > buf.length) {
      damaged += count - i
      break
    }
    const body = buf.subarray(off, off + rb - 4)
    if (buf.readUInt32LE(off + rb - 4) !== crc32(body)) {
      damaged++
      continue
    }
    records.push({
      key: Buffer.from(buf.subarray(off, off + KEY_BYTES)),
      aux: buf.readUInt32LE(off + KEY_BYTES),
      value: Buffer.from(buf.subarray(off + KEY_BYTES + 4, off + rb - 4)),
    })
  }
  if (buf.length > HEADER_BYTES + count * rb) damaged++ // trailing bytes: written by something else
  return { valueBytes, records, damaged }
}
