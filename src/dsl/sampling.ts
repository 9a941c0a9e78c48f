/**
 * The request settings every way of asking for words shares (`WordGenerator.generate`,
 * `WOTDModel.generateWordsFromId` / `recommend`, the CLI and the server): how many words, and
 * how they are drawn. One type, one check, one set of limits; the native generator checks the
 * same limits again for callers of the addon itself.
 */
import { InvalidInputError } from '../errors.js'

/** Words one request may ask for at most (the native generator's limit too). */
export const MAX_WORDS = 10_000

export interface SamplingOptions {
  /** Distinct words wanted, 1-10000 (default 10). */
  count?: number
  /**
   * Default 0.8 for the LM, where 0 decodes greedily (one sample). For ranked catalogue words,
   * 0 (their default) gives the best-ranked words and above 0 draws from the top of the ranking.
   */
  temperature?: number
  /** Nucleus mass in (0, 1]; default 0.95. */
  topP?: number
  /** Default 50; 0 disables. */
  topK?: number
  /** Same seed, same words. Default 0. */
  seed?: number
}

function integerIn(name: string, v: number | undefined, min: number, max: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min || v > max)) throw new InvalidInputError(`${name} must be an integer from ${min} to ${max}, got ${v}`)
}

/** Throws `InvalidInputError` naming the first bad setting; returns the options unchanged. */
export function checkSampling<T extends SamplingOptions>(o: T): T {
  integerIn('count', o.count, 1, MAX_WORDS)
  if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature >= 0)) {
    throw new InvalidInputError(`temperature must be a finite number >= 0, got ${o.temperature}`)
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new InvalidInputError(`topP must be in (0, 1], got ${o.topP}`)
  integerIn('topK', o.topK, 0, 1_000_000)
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) throw new InvalidInputError(`seed must be a non-negative safe integer, got ${o.seed}`)
  return o
}
