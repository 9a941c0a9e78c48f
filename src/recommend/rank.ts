/**
 * Ranking catalogue words for a request: an ID pattern (`[2,*,17,*]`) or a taste (the
 * preference vector of liked words).
 *
 * A pattern ranks by region first. Per fixed field a word matches exactly (same code) or, in
 * hybrid and aligned runs, by value (same `code >> 3`, what the field names); words are tiered
 * by how many requested values they have, then by the longest run of exactly matched fixed
 * fields from the first one. The best tier that holds words is the request's region; when it
 * holds too few, the next tiers follow (the back-off: values, longest matching prefix, then
 * likeness), never the whole catalogue at once.
 * Within a tier words rank by cosine to the region's centre, plus, in the default scorer,
 * the calibrated log-probability of the requested values and a small word-quality prior.
 *
 * A taste ranks by cosine to the preference vector plus the log-probability of the taste's own
 * values (a soft region: measured better than a hard one on held-out tastes) and the prior.
 */
import { dotAll, meanOfRows, type Embeddings } from '../embed/matrix.js'
import { InvalidInputError } from '../errors.js'
import type { CatalogueIndex } from './catalogue-index.js'

export type Fields = readonly (number | null)[]

/** How a candidate list is scored. `region`: the plain ID-region baseline (tier, then cosine). */
export type Scorer = 'default' | 'region'

/**
 * Weights of the default scorer. Not tuned on held-out words: `taste` was set on a simulation
 * over the training corpus (a soft region beat both no region and a hard one), and a pattern
 * asks for attribute values outright, so there the probability of having them counts most.
 */
export const WEIGHTS = {
  /** Taste: per attribute, log P(the taste's value | word). */
  tasteValue: 0.03,
  /** Pattern: per fixed attribute, log P(requested value | word). */
  patternValue: 0.3,
  /** Word quality prior (`quality.ts`, -1..0). */
  quality: 0.02,
} as const

/** The `limit` best of `n` scored rows (a bounded heap: no sort of the whole catalogue). */
function topRows(n: number, key: (i: number) => number, limit: number): number[] {
  const heap: { i: number; k: number }[] = []
  const up = (j: number) => {
    while (j > 0) {
      const p = (j - 1) >> 1
      if (heap[p].k <= heap[j].k) break
      ;[heap[p], heap[j]] = [heap[j], heap[p]]
      j = p
    }
  }
  const down = (j: number) => {
    for (;;) {
      const l = 2 * j + 1
      const r = l + 1
      let m = j
      if (l < heap.length && heap[l].k < heap[m].k) m = l
      if (r < heap.length && heap[r].k < heap[m].k) m = r
      if (m === j) break
      ;[heap[m], heap[j]] = [heap[j], heap[m]]
      j = m
    }
  }
  for (let i = 0; i < n; i++) {
    const k = key(i)
    if (Number.isNaN(k)) continue
    if (heap.length < limit) {
      heap.push({ i, k })
      up(heap.length - 1)
    } else if (k > heap[0].k || (k === heap[0].k && i < heap[0].i)) {
      heap[0] = { i, k }
      down(0)
    }
  }
  return heap.sort((a, b) => b.k - a.k || a.i - b.i).map((x) => x.i)
}

export interface Ranked {
  row: number
  score: number
  /** Fixed fields matched exactly, from the first, before a mismatch. */
  exactPrefix: number
  /** Fixed attribute fields whose value matches (hybrid and aligned runs). */
  valueMatches: number
  /** Every fixed field matched exactly. */
  inRegion: boolean
}

export interface CandidateFilter {
  /** Only these rows may be returned (a vocabulary). */
  allow?: ReadonlySet<number>
  /** Rows never returned (training words are always left out). */
  exclude?: ReadonlySet<number>
  /** Words never returned, and whose close relatives (`gloomy` -> `gloominess`) are not either. */
  avoidRelativesOf?: readonly string[]
}

function eligible(index: CatalogueIndex, f: CandidateFilter): (row: number) => boolean {
  return (row) => index.training[row] === 0 && (!f.allow || f.allow.has(row)) && !f.exclude?.has(row)
}

/** Same word family: a shared beginning of 5+ letters covering most of the shorter word. */
export function related(a: string, b: string): boolean {
  if (a === b) return true
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n >= 5 && n >= 0.6 * Math.min(a.length, b.length)
}

/**
 * What region ranking needs: rows with a vector and a semantic ID. The catalogue is one; a
 * run's training words (the report's fallback when the run's model cannot open) are another.
 */
export interface RegionSpace {
  readonly size: number
  readonly vectors: Embeddings
  /** 4 codes per row. */
  readonly ids: Uint8Array
  /** Whether a code's `>> 3` names an attribute value (aligned and hybrid runs). */
  readonly named: boolean
}

type Tiered = { row: number; exactPrefix: number; valueMatches: number }

/** Tiers every eligible row against a pattern; returns rows with their match counts. */
function tiers(space: RegionSpace, fields: Fields, ok: (row: number) => boolean): Tiered[] {
  const fixed = fields.map((f, l) => ({ f, l })).filter((x): x is { f: number; l: number } => x.f !== null)
  const named = space.named
  const out: Tiered[] = []
  for (let row = 0; row < space.size; row++) {
    if (!ok(row)) continue
    let exactPrefix = 0
    let broken = false
    let valueMatches = 0
    for (const { f, l } of fixed) {
      const c = space.ids[4 * row + l]
      if (!broken && c === f) exactPrefix++
      else broken = true
      if (named && l < 3 && c >> 3 === f >> 3) valueMatches++
    }
    out.push({ row, exactPrefix, valueMatches })
  }
  return out
}

/** The centre of a pattern's region: the mean of its best-matching rows. */
function regionCentre(space: RegionSpace, t: Tiered[]): Float32Array | undefined {
  let best = -1
  for (const x of t) best = Math.max(best, x.valueMatches * 8 + x.exactPrefix)
  return meanOfRows(space.vectors, t.filter((x) => x.valueMatches * 8 + x.exactPrefix === best).map((x) => x.row))
}

/**
 * Tiers dominate (scores lie within (-10, 10)): the requested values first, since in named
 * runs they are what the fields mean, then the exact codes, then fit.
 */
function tierKey(x: Tiered, score: number): number {
  return x.valueMatches * 1000 + x.exactPrefix * 100 + score
}

/**
 * The plain ID-region baseline over any rows (the `region` scorer without the catalogue's
 * filters): tier, then cosine to the region's centre. Rows best first, at most `limit`.
 */
export function rankRegion(space: RegionSpace, fields: Fields, limit: number, ok: (row: number) => boolean = () => true): number[] {
  if (fields.length !== 4) throw new InvalidInputError(`a pattern has 4 fields, got ${fields.length}`)
  const t = tiers(space, fields, ok)
  const centre = t.length ? regionCentre(space, t) : undefined
  if (!centre) return []
  const cos = dotAll(space.vectors, centre)
  return topRows(t.length, (i) => tierKey(t[i], cos[t[i].row]), limit).map((i) => t[i].row)
}

/** Catalogue rows for an ID pattern, best first, at most `limit`. */
export function rankPattern(index: CatalogueIndex, fields: Fields, opts: CandidateFilter & { scorer?: Scorer; limit: number }): Ranked[] {
  if (fields.length !== 4) throw new InvalidInputError(`a pattern has 4 fields, got ${fields.length}`)
  const ok = eligible(index, opts)
  const t = tiers(index, fields, ok)
  if (t.length === 0) return []
  // Nothing at all to average (an empty vocabulary): the codewords of the fixed fields.
  const centre = regionCentre(index, t) ?? index.encoder.decode(fields.map((f) => f ?? 0))
  const cos = dotAll(index.vectors, centre)
  const fixedValues = fields.slice(0, 3).map((f, a) => (f === null ? null : { a, k: f >> 3 })).filter((x): x is { a: number; k: number } => x !== null)
  const scorer = opts.scorer ?? 'default'
  const nFixed = fields.filter((f) => f !== null).length
  const score = (row: number) => {
    let s = cos[row]
    if (scorer === 'default') {
      if (index.encoder.named) for (const { a, k } of fixedValues) s += WEIGHTS.patternValue * index.logProbability(row, a, k)
      s += WEIGHTS.quality * index.quality[row]
    }
    return s
  }
  const key = (i: number) => tierKey(t[i], score(t[i].row))
  return topDistinct(index, t.length, key, opts, scorer === 'default', (i) => ({
    row: t[i].row,
    score: score(t[i].row),
    exactPrefix: t[i].exactPrefix,
    valueMatches: t[i].valueMatches,
    inRegion: t[i].exactPrefix === nFixed,
  }))
}

/**
 * The best `limit` candidates that are not relatives of the avoided words (nor, with
 * `diverse`, of each other): a bounded heap over a margin of candidates, widened until enough
 * survive the filter or every candidate was seen.
 */
function topDistinct(index: CatalogueIndex, n: number, key: (i: number) => number, opts: CandidateFilter & { limit: number }, diverse: boolean, make: (i: number) => Ranked): Ranked[] {
  for (let margin = opts.limit * 3 + 20 + (opts.avoidRelativesOf?.length ?? 0) * 2; ; margin *= 4) {
    const ranked = topRows(n, key, margin).map(make)
    const picked = pickDistinct(index, ranked, opts.avoidRelativesOf ?? [], opts.limit, diverse)
    if (picked.length >= opts.limit || ranked.length < margin) return picked
  }
}

/** The attribute values a taste's ID names (its first three fields' `code >> 3`). */
export interface Taste {
  vector: Float32Array
  /** Values 0-3 of style, complexity, era (hybrid and aligned runs). */
  values?: readonly number[]
  /** `vector`'s dot product with every catalogue row, when already computed for many tastes at once. */
  cosines?: Float32Array
}

/** Catalogue rows for a taste, best first, at most `limit`. `scorer: 'nearest'` is plain cosine. */
export function rankTaste(index: CatalogueIndex, taste: Taste, opts: CandidateFilter & { scorer?: 'default' | 'nearest'; limit: number }): Ranked[] {
  const ok = eligible(index, opts)
  const cos = taste.cosines ?? dotAll(index.vectors, taste.vector)
  const values = (opts.scorer ?? 'default') === 'default' && index.encoder.named ? taste.values : undefined
  const matches = (row: number) => (values ? values.filter((k, a) => index.ids[4 * row + a] >> 3 === k).length : 0)
  const score = (row: number) => {
    let s = cos[row]
    if (values) {
      values.forEach((k, a) => (s += WEIGHTS.tasteValue * index.logProbability(row, a, k)))
      s += WEIGHTS.quality * index.quality[row]
    }
    return s
  }
  return topDistinct(index, index.size, (row) => (ok(row) ? score(row) : NaN), opts, opts.scorer !== 'nearest', (row) => ({
    row,
    score: score(row),
    exactPrefix: 0,
    valueMatches: matches(row),
    inRegion: matches(row) === 3,
  }))
}

/** The first `limit` rows that are not relatives of the avoided words (nor, with `diverse`, of each other). */
function pickDistinct(index: CatalogueIndex, ranked: Ranked[], avoid: readonly string[], limit: number, diverse: boolean): Ranked[] {
  const out: Ranked[] = []
  const taken: string[] = [...avoid]
  for (const r of ranked) {
    if (out.length >= limit) break
    const w = index.entry(r.row).word
    if (taken.some((t) => (diverse ? related(t, w) : t === w))) continue
    out.push(r)
    taken.push(w)
  }
  return out
}
