/**
 * Parameter counts read from file headers (no weights loaded): GGUF tensor infos and
 * safetensors headers. Used for model-FLOP utilisation.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs'

function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const n = Math.min(bytes, statSync(path).size)
    const buf = Buffer.alloc(n)
    readSync(fd, buf, 0, n, 0)
    return buf
  } finally {
    closeSync(fd)
  }
}

/** Total elements of every tensor of a GGUF file (v2/v3), from its header. */
export function ggufParameterCount(path: string): { parameters: number; tensors: number; architecture?: string } {
  for (let size = 16 << 20; ; size *= 4) {
    const buf = readHead(path, size)
    try {
      return parseGguf(buf)
    } catch (err) {
      if (!(err instanceof RangeError) || buf.length < size) throw err
    }
  }
}

function parseGguf(b: Buffer): { parameters: number; tensors: number; architecture?: string } {
  let o = 0
  const u32 = () => ((o += 4), b.readUInt32LE(o - 4))
  const u64 = () => ((o += 8), Number(b.readBigUInt64LE(o - 8)))
  const str = () => {
    const n = u64()
    o += n
    if (o > b.length) throw new RangeError('header past buffer')
    return b.toString('utf8', o - n, o)
  }
  const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }
  const value = (t: number): unknown => {
    if (t === 8) return str()
    if (t === 9) {
      const et = u32()
      const n = u64()
      if (et === 8 || et === 9) {
        for (let i = 0; i < n; i++) value(et)
      } else {
        o += n * SIZES[et]
      }
      if (o > b.length) throw new RangeError('header past buffer')
      return undefined
    }
    const s = SIZES[t]
    if (!s) throw new Error(`GGUF: unknown value type ${t}`)
    o += s
    if (o > b.length) throw new RangeError('header past buffer')
    return t === 4 ? b.readUInt32LE(o - 4) : undefined
  }
  if (b.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file')
  o = 4
  u32()
  const tensors = u64()
  const kvs = u64()
  let architecture: string | undefined
  for (let i = 0; i < kvs; i++) {
    const key = str()
    const v = value(u32())
    if (key === 'general.architecture' && typeof v === 'string') architecture = v
  }
  let parameters = 0
  for (let i = 0; i < tensors; i++) {
    str()
    const nd = u32()
    let n = 1
    for (let d = 0; d < nd; d++) n *= u64()
    u32()
    u64()
    parameters += n
  }
  return { parameters, tensors, architecture }
}

/** Total elements of every tensor of a safetensors file, from its JSON header. */
export function safetensorsParameterCount(path: string): number {
  const head = readHead(path, 8)
  const len = Number(head.readBigUInt64LE(0))
  const json = JSON.parse(readHead(path, 8 + len).toString('utf8', 8)) as Record<string, { shape?: number[] }>
  let n = 0
  for (const [k, v] of Object.entries(json)) if (k !== '__metadata__' && v.shape) n += v.shape.reduce((a, b) => a * b, 1)
  return n
}
