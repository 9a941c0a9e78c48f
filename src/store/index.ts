/** Stores: where corpora (and later runs, semantic IDs and artifacts) are kept. */
import { ConfigError } from '../errors.js'
import { defaultStoreDir, FileStore } from './file.js'
import type { CorpusStore } from './types.js'

export * from './types.js'
export { FileStore, defaultStoreDir, writeFileAtomic, sha256Hex, type FileStoreOptions } from './file.js'
export { MemoryStore } from './memory.js'

/**
 * Opens the store named by `spec`: a folder path (a `FileStore`), or nothing for the default
 * folder (`$WOTD_HOME` or `./.wotd`).
 */
export async function openStore(spec?: string, env: NodeJS.ProcessEnv = process.env): Promise<CorpusStore> {
  if (spec && /^mongodb(\+srv)?:\/\//i.test(spec)) {
    throw new ConfigError('--store: MongoDB stores are not available in this version; give a folder path')
  }
  return new FileStore({ dir: spec && spec.trim() !== '' ? spec : defaultStoreDir(env) })
}
