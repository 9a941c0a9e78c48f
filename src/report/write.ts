/**
 * Writes the report where the user pointed: a new path or a regular file atomically (a
 * temporary file renamed over it, keeping the old file's mode); a symlink is followed and its
 * target written the same way; a FIFO, a character device (`/dev/stdout`, `/dev/null`) or `-`
 * (standard output) is written as a stream, never replaced; a folder is an error.
 */
import { constants } from 'node:fs'
import { chmod, lstat, open, readlink, realpath } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { InvalidInputError } from '../errors.js'
import { writeFileAtomic } from '../files/atomic.js'

/** Where the bytes went: a file path, or the stream it was. */
export interface WrittenTo {
  path: string
  kind: 'file' | 'stream'
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/** The path a chain of symlinks ends at (which may not exist yet: a dangling link is written through). */
async function followLinks(path: string): Promise<string> {
  try {
    return await realpath(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  let p = path
  for (let hops = 0; hops < 40; hops++) {
    const st = await lstatOrNull(p)
    if (!st || !st.isSymbolicLink()) return p
    p = resolve(dirname(p), await readlink(p))
  }
  throw new InvalidInputError(`${path}: too many levels of symbolic links`)
}

async function writeStream(path: string, data: string): Promise<void> {
  // No O_CREAT and no O_TRUNC: a FIFO or a device is opened as it is.
  const fh = await open(path, constants.O_WRONLY)
  try {
    await fh.writeFile(data)
  } finally {
    await fh.close()
  }
}

export async function writeReportFile(out: string, data: string): Promise<WrittenTo> {
  if (out === '-') {
    await new Promise<void>((res, rej) => process.stdout.write(data, (err) => (err ? rej(err) : res())))
    return { path: '-', kind: 'stream' }
  }
  const target = await followLinks(resolve(out))
  const st = await lstatOrNull(target)
  if (st?.isDirectory()) throw new InvalidInputError(`--out ${out} is a folder; give a file name, e.g. ${out.replace(/\/+$/, '')}/report.html`)
  if (st && (st.isFIFO() || st.isCharacterDevice())) {
    await writeStream(target, data)
    return { path: target, kind: 'stream' }
  }
  if (st && !st.isFile()) throw new InvalidInputError(`--out ${out} is neither a file, a FIFO nor a character device (a socket or block device); give a file name`)
  // A new file's missing folders are made (writeFileAtomic), as the default path's would be.
  await writeFileAtomic(target, data)
  if (st) await chmod(target, st.mode & 0o7777)
  return { path: target, kind: 'file' }
}
