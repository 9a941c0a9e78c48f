/**
 * The nearest-neighbour retrieval baseline: decode an ID (or the centroid of a pattern's
 * region) to a vector and return the known words closest to it. Always available, and the
 * bar the LM must beat.
 */
import { cosine } from '../embed/index.js'
import type { SemanticEncoder, SemanticId } from '../semantic/index.js'

export interface KnownWord {
  word: string
  vector: Float32Array
  id: SemanticId
}

/** Words whose IDs match the pattern's fixed fields, nearest the pattern's decoded vector first. */
export function retrieveWords(
  encoder: SemanticEncoder,
  known: readonly KnownWord[],
  fields: readonly (number | null)[],
  count: number,
): string[] {
  const matches = known.filter((k) => fields.every((f, i) => f === null || k.id[i] === f))
  const pool = matches.length > 0 ? matches : known
  // A full ID decodes directly; a region is represented by the mean of its members' vectors.
  let target: Float32Array
  if (fields.every((f) => f !== null)) target = encoder.decode(fields as number[])
  else {
    const dim = pool[0].vector.length
    const acc = new Float32Array(dim)
    for (const k of pool) for (let i = 0; i < dim; i++) acc[i] += k.vector[i]
    target = acc
  }
  return [...pool]
    .map((k) => ({ word: k.word, score: cosine(k.vector, target) }))
    .sort((a, b) => b.score - a.score || (a.word < b.word ? -1 : 1))
    .slice(0, count)
    .map((x) => x.word)
}
