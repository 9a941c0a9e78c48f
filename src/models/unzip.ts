/** Extracts chosen entries of a zip archive (a wheel is one), hashing each as it is written. */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import yauzl from 'yauzl'
import { CorruptFileError } from '../errors.js'

export interface Extracted {
  sha256: string
  size: number
}

/** Extracts `wanted` (archive path -> destination file) and returns each file's hash and size. */
export async function extractEntries(zipPath: string, wanted: Map<string, string>): Promise<Map<string, Extracted>> {
  const zip = await new Promise<yauzl.ZipFile>((ok, fail) =>
    yauzl.open(zipPath, { lazyEntries: true, autoClose: true }, (err, z) => (err ? fail(err) : ok(z))),
  ).catch((err) => {
    throw new CorruptFileError(`${zipPath} is not a readable zip archive`, { cause: err })
  })
  const out = new Map<string, Extracted>()
  await new Promise<void>((ok, fail) => {
    zip.on('error', fail)
    zip.on('end', ok)
    zip.on('entry', (entry: yauzl.Entry) => {
      const dest = wanted.get(entry.fileName)
      if (!dest) {
        zip.readEntry()
        return
      }
      zip.openReadStream(entry, (err, stream) => {
        if (err) return fail(err)
        const hash = createHash('sha256')
        let size = 0
        const meter = new Transform({
          transform(chunk: Buffer, _e, cb) {
            hash.update(chunk)
            size += chunk.length
            cb(null, chunk)
          },
        })
        mkdir(dirname(dest), { recursive: true })
          .then(() => pipeline(stream, meter, createWriteStream(dest)))
          .then(() => {
            out.set(entry.fileName, { sha256: hash.digest('hex'), size })
            zip.readEntry()
          }, fail)
      })
    })
    zip.readEntry()
  }).catch((err) => {
    if (err instanceof CorruptFileError) throw err
    throw new CorruptFileError(`could not extract from ${zipPath}`, { cause: err })
  })
  return out
}
