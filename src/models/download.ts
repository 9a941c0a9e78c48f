/** Streams a URL to a file, hashing as it goes, with progress and cancellation. */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { CancelledError, CorruptFileError, ModelNotFoundError } from '../errors.js'

export interface DownloadProgress {
  done: number
  total: number
}

export async function downloadVerified(
  url: string,
  dest: string,
  expect: { sha256: string; size: number },
  opts: { onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal } = {},
): Promise<void> {
  let res: Response
  try {
    res = await fetch(url, { signal: opts.signal })
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError('download cancelled', { cause: err })
    throw new ModelNotFoundError(`could not reach ${new URL(url).host} to download ${url}`, { cause: err })
  }
  if (!res.ok || !res.body) {
    throw new ModelNotFoundError(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`)
  }
  const total = Number(res.headers.get('content-length')) || expect.size
  const hash = createHash('sha256')
  let done = 0
  let lastReport = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk)
      done += chunk.length
      // Throttle: a progress event per chunk would flood the terminal on fast links.
      if (done - lastReport > 1 << 20 || done === total) {
        lastReport = done
        opts.onProgress?.({ done, total })
      }
      cb(null, chunk)
    },
  })
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), meter, createWriteStream(dest), {
      signal: opts.signal,
    })
  } catch (err) {
    await rm(dest, { force: true })
    if (opts.signal?.aborted) throw new CancelledError('download cancelled', { cause: err })
    throw new ModelNotFoundError(`download of ${url} broke off after ${done} bytes`, { cause: err })
  }
  opts.onProgress?.({ done, total })
  const digest = hash.digest('hex')
  if (digest !== expect.sha256 || done !== expect.size) {
    await rm(dest, { force: true })
    throw new CorruptFileError(
      `downloaded ${url} does not match the registry manifest: sha256 ${digest} (${done} bytes), expected ${expect.sha256} (${expect.size} bytes)`,
    )
  }
}
