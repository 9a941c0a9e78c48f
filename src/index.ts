/**
 * wotd-ml: learns which words a person likes and writes new ones to match.
 *
 * Stage 1 corpus -> Stage 2 embeddings -> Stage 3 semantic IDs -> Stage 4 DSL model.
 */
export * from './errors.js'
export * from './models/index.js'

import { native } from './native.js'

/** Version of the loaded native core; loading it proves the addon for this platform works. */
export function nativeVersion(): string {
  return native().nativeVersion()
}
export * from './types.js'
export * from './corpus/index.js'
export * from './store/index.js'
