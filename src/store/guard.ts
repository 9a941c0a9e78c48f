/**
 * A view of a store whose every write first confirms a lock is still held (`StoreLock.check`):
 * a trainer paused past the lock's ttl, whose lock another trainer broke, stops with a
 * `StoreError` naming the new holder instead of overwriting that trainer's work.
 */
import type { Store, StoreLock } from './types.js'

/** The store methods that change what it holds. */
const WRITES = new Set<string>([
  'putCorpus',
  'deleteCorpus',
  'putState',
  'putRun',
  'deleteRun',
  'putSemanticIds',
  'deleteSemanticIds',
  'putArtifact',
  'deleteArtifact',
  'putHistory',
  'putHistoryIfAbsent',
  'deleteHistory',
  'putProfile',
  'deleteProfile',
])

export function guardWrites(store: Store, lock: StoreLock): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (typeof prop === 'string' && WRITES.has(prop)) {
        return async (...args: unknown[]) => {
          await lock.check()
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
      }
      return (value as (...a: unknown[]) => unknown).bind(target)
    },
  })
}
