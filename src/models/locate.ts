/** Finds models already on this machine, through the native resolver (one resolution order for all). */
import { readdir, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fromNative, ModelNotFoundError } from '../errors.js'
import { native } from '../native.js'

export interface ModelLocation {
  dir: string
  /** 'local' | 'hf-cache' | 'hub' | 'wotd-cache' */
  source: string
  files: { path: string; size: number }[]
  sizeBytes: number
}

async function listFiles(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() && !e.isSymbolicLink()) continue
    const full = join(e.parentPath, e.name)
    // stat follows the HF cache's symlinks into blobs/, so sizes are the real ones.
    const s = await stat(full)
    if (s.isFile()) out.push({ path: relative(dir, full), size: s.size })
  }
  return out.sort((a, b) => a.path.localeCompare(b.path))
}

/** Where a model is on this machine without any download, or undefined. */
export async function findModel(id: string): Promise<ModelLocation | undefined> {
  let r: { dir: string; source: string }
  try {
    r = await native().resolveModel(id, { offline: true })
  } catch (err) {
    const e = fromNative(err)
    if (e instanceof ModelNotFoundError) return undefined
    throw e
  }
  const files = await listFiles(r.dir)
  return { dir: r.dir, source: r.source, files, sizeBytes: files.reduce((a, f) => a + f.size, 0) }
}
