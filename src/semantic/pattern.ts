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

/** Coerces a pattern given as text or fields into its canonical text (validating it). */
export function toPatternText(p: string | readonly (number | null)[]): string {
  return typeof p === 'string' ? parsePattern(p).text : formatPattern(p)
}
