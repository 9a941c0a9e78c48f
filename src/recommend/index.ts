/**
 * Words for a request, from the word catalogue of a run: real words with their meanings, novel
 * (never training words, never the caller's liked or already-shown words), in the requested
 * region with a back-off by distance. See `rank.ts` for how candidates are ordered.
 */
import { createRng } from '../corpus/random.js'
import type { SemanticId } from '../semantic/index.js'
import type { PartOfSpeech } from '../types.js'
import type { CatalogueIndex } from './catalogue-index.js'
import { rankPattern, rankTaste, type CandidateFilter, type Fields, type Ranked, type Scorer, type Taste } from './rank.js'

export { CatalogueIndex } from './catalogue-index.js'
export { quality } from './quality.js'
export { rankPattern, rankRegion, rankTaste, related, type RegionSpace, WEIGHTS, type CandidateFilter, type Fields, type Ranked, type Scorer, type Taste } from './rank.js'

/** One word of a result, with what a reader needs to judge it. */
export interface WordEntry {
  word: string
  /** Its semantic ID under the run's codebooks. */
  id: SemanticId
  partOfSpeech: PartOfSpeech | null
  definition: string | null
  example: string | null
  /** Made up by the language model, not a dictionary word (only with `coined: true`). */
  coined: boolean
  /** Its ID matches every fixed field of the request exactly (false: a back-off word). */
  inRegion: boolean
  score: number
}

export interface SampleOptions {
  /** Same seed, same words. */
  seed?: number
  /**
   * 0 (default) returns the best-ranked words. Above 0 draws without replacement from the
   * top of the ranking, each word weighted by exp(score / (0.05 * temperature)): at 1 a
   * word 0.05 of cosine better is e times as likely.
   */
  temperature?: number
}

/** `count` of `ranked` (already best first), the best or a seeded draw from the top. */
export function sampleRanked(ranked: readonly Ranked[], count: number, opts: SampleOptions = {}): Ranked[] {
  const t = opts.temperature ?? 0
  if (!(t > 0) || ranked.length <= count) return ranked.slice(0, count)
  // Gumbel top-k: adding Gumbel noise to logits and keeping the top k is a draw without
  // replacement in proportion to exp(logit).
  const rng = createRng(opts.seed ?? 0, 'sample')
  const pool = ranked.slice(0, Math.max(count * 5, 50))
  return pool
    .map((r) => ({ r, key: r.score / (0.05 * t) - Math.log(-Math.log(Math.max(rng.next(), 1e-12))) }))
    .sort((a, b) => b.key - a.key)
    .slice(0, count)
    .sort((a, b) => ranked.indexOf(a.r) - ranked.indexOf(b.r))
    .map((x) => x.r)
}

export function entryOf(index: CatalogueIndex, r: Ranked): WordEntry {
  const e = index.entry(r.row)
  return {
    word: e.word,
    id: index.id(r.row),
    partOfSpeech: e.partOfSpeech,
    definition: e.definition,
    example: e.example,
    coined: false,
    inRegion: r.inRegion,
    score: r.score,
  }
}

/** Words for an ID pattern (fields 0-31 or null for `*`). */
export function wordsForPattern(index: CatalogueIndex, fields: Fields, opts: CandidateFilter & SampleOptions & { count: number; scorer?: Scorer }): WordEntry[] {
  const ranked = rankPattern(index, fields, { ...opts, limit: poolSize(opts) })
  return sampleRanked(ranked, opts.count, opts).map((r) => entryOf(index, r))
}

/** Words for a taste (a preference vector and the values its ID names). */
export function wordsForTaste(index: CatalogueIndex, taste: Taste, opts: CandidateFilter & SampleOptions & { count: number; scorer?: 'default' | 'nearest' }): WordEntry[] {
  const ranked = rankTaste(index, taste, { ...opts, limit: poolSize(opts) })
  return sampleRanked(ranked, opts.count, opts).map((r) => entryOf(index, r))
}

function poolSize(opts: { count: number; temperature?: number }): number {
  return (opts.temperature ?? 0) > 0 ? Math.max(opts.count * 5, 50) : opts.count
}
