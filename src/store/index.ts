/** Stores: where corpora, runs, semantic IDs, artifacts and word-of-the-day history are kept. */
import { ConfigError } from '../errors.js'
import { defaultStoreDir, FileStore } from './file.js'
import type { MongoStore, MongoStoreOptions } from './mongo.js'
import type { Store } from './types.js'

export * from './types.js'
export { FileStore, defaultStoreDir, writeFileAtomic, sha256Hex, type FileStoreOptions } from './file.js'
export { MemoryStore } from './memory.js'
export { copyRun } from './copy.js'
export { guardWrites } from './guard.js'
// The MongoDB driver (~0.1 s to load) is imported only when a MongoDB store is opened.
export type { MongoStore, MongoStoreOptions } from './mongo.js'
export { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_LOCK_TTL_MS } from './lock.js'
export { parseMongoUri, redactText } from './redact.js'

const MONGO_URI = /^mongodb(\+srv)?:\/\//i

/** True when `spec` names a MongoDB server rather than a folder. */
export function isMongoSpec(spec: string | undefined): boolean {
  return !!spec && MONGO_URI.test(spec.trim())
}

export type OpenStoreOptions = MongoStoreOptions

/** Connects to MongoDB (a `StoreError` within a few seconds when unreachable; credentials never shown). */
export async function connectMongoStore(uri: string, options: MongoStoreOptions = {}): Promise<MongoStore> {
  const { MongoStore } = await import('./mongo.js')
  return MongoStore.connect(uri, options)
}

/**
 * Opens the store named by `spec`:
 * - a `mongodb://` or `mongodb+srv://` URI: a `MongoStore` (a `StoreError` within a few seconds
 *   when the server cannot be reached; credentials are never shown);
 * - a folder path: a `FileStore` there;
 * - nothing: `$MONGODB_URI` when it is set, else a `FileStore` in `$WOTD_HOME` or `./.wotd`.
 * Opening a `FileStore` creates nothing; its folders appear on the first write.
 */
export async function openStore(spec?: string, env: NodeJS.ProcessEnv = process.env, options: OpenStoreOptions = {}): Promise<Store> {
  const s = spec?.trim()
  if (s && isMongoSpec(s)) return connectMongoStore(s, options)
  if (s && /^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    throw new ConfigError(`--store: ${s.split('://')[0]}:// stores are not supported; give a folder path or a mongodb:// URI`)
  }
  if (s) return new FileStore({ dir: s })
  const envUri = env.MONGODB_URI?.trim()
  if (envUri) {
    if (!isMongoSpec(envUri)) throw new ConfigError('MONGODB_URI must start with mongodb:// or mongodb+srv://')
    return connectMongoStore(envUri, options)
  }
  return new FileStore({ dir: defaultStoreDir(env) })
}
