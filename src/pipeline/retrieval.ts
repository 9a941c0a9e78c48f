/** A training word of a run, with its vector and semantic ID (novelty, the report). */
import type { SemanticId } from '../semantic/index.js'

export interface KnownWord {
  word: string
  vector: Float32Array
  id: SemanticId
}
