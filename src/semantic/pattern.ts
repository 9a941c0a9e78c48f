/**
 * ID patterns (`[2,9,17,5]`, `[2,*,17,*]`, `(2, 9, 17, 5)`). The grammar lives in one place,
 * the Rust `dsl` module; these functions only call it, so the API, the CLI and training-data
 * rendering can never disagree about what a pattern means.
 */
import { callNative } from '../errors.js'
import { native } from '../native.js'

/** A semantic ID: `[style, complexity, era, variation]`, each 0-31. */
export type SemanticId = [number, number, number, number]

export interface Pattern {
  /** One entry per level: a code 0-31, or `null` for `*`. */
  fields: (number | null)[]
  /** Canonical text, e.g. `[2,*,17,*]`. */
  text: string
  /** Number of fixed fields (4: one ID). */
  specificity: number
}

/** Parses a pattern; throws `InvalidPatternError` naming the field and the reason. */
export function parsePattern(text: string): Pattern {
  return callNative(() => native().parsePattern(text))
}

/** Canonical text of a pattern or ID. */
export function formatPattern(fields: readonly (number | null)[]): string {
  return callNative(() => native().formatPattern([...fields]))
}

/** Whether an ID matches a pattern. */
export function patternMatches(pattern: string, id: readonly number[]): boolean {
  return callNative(() => native().patternMatches(pattern, [...id]))
}

/** A pattern as callers may give it: text, fields (`null` for `*`), or already parsed. */
export type PatternInput = string | readonly (number | null)[] | Pattern

function isParsed(p: PatternInput): p is Pattern {
  return typeof p === 'object' && !Array.isArray(p)
}

/**
 * A pattern parsed once (validated), to hand down as is: text is parsed, fields are validated
 * and given their canonical text, and a parsed pattern passes through unchanged.
 */
export function toPattern(p: PatternInput): Pattern {
  if (typeof p === 'string') return parsePattern(p)
  if (isParsed(p)) return p
  const fields = [...(p as readonly (number | null)[])]
  const text = formatPattern(fields)
  return { fields, text, specificity: fields.filter((f) => f !== null).length }
}

/** Canonical text of a pattern given in any form (validating it). */
export function toPatternText(p: PatternInput): string {
  return toPattern(p).text
}
