/**
 * The word attributes of wotd-ml and the (style, complexity, era) cells they span.
 *
 * The order of each enum is the index used by semantic IDs (`aligned` mode ties code
 * `8k..8k+7` of level l to value k of that attribute), so it must never change.
 */
import { InvalidInputError } from './errors.js'

export const STYLES = ['classical', 'modern', 'romantic', 'neutral'] as const
export const COMPLEXITIES = ['simple', 'beautiful', 'complex', 'plain'] as const
export const ERAS = ['shakespearean', 'victorian', 'modernist', 'contemporary'] as const
export const PARTS_OF_SPEECH = ['noun', 'verb', 'adjective', 'adverb'] as const

/**
 * The attribute vocabulary of aligned codebooks: levels 0-2 are named by these attributes,
 * value k of one owning codes 8k..8k+7 of its level. The only copy in TypeScript; the native
 * `defaultAttributeVocab()` holds the same lists (a test keeps them equal).
 */
export function attributeVocab(): { names: string[]; values: string[][] } {
  return { names: ['style', 'complexity', 'era'], values: [[...STYLES], [...COMPLEXITIES], [...ERAS]] }
}

export type Style = (typeof STYLES)[number]
export type Complexity = (typeof COMPLEXITIES)[number]
export type Era = (typeof ERAS)[number]
export type PartOfSpeech = (typeof PARTS_OF_SPEECH)[number]

/** Where a word came from: a corpus provider (`lexicon`, `openai`) or another origin. */
export type WordSource = 'lexicon' | 'openai' | (string & {})

export interface WOTDWord {
  /** Normalised: NFC, lowercase, letters with optional inner hyphens or apostrophes. */
  word: string
  definition: string
  partOfSpeech: PartOfSpeech
  style: Style
  complexity: Complexity
  era: Era
  source: WordSource
}

/** One (style, complexity, era) combination. */
export interface Cell {
  style: Style
  complexity: Complexity
  era: Era
}

/** A cell written as `style/complexity/era`, e.g. `classical/simple/shakespearean`. */
export type CellKey = `${Style}/${Complexity}/${Era}`

export interface WOTDCorpus {
  /** Stable id: `<corpus set id>/<style>-<complexity>-<era>`. */
  id: string
  cell: Cell
  words: WOTDWord[]
}

/** Which cells to build: the 12 default cells, all 64, or an explicit list. */
export type CellSelection = 'default' | 'all' | readonly (Cell | CellKey)[]

function cell(key: CellKey): Cell {
  const [style, complexity, era] = key.split('/') as [Style, Complexity, Era]
  return Object.freeze({ style, complexity, era })
}

/**
 * The 12 default cells of the seed: every value of every attribute appears exactly 3 times
 * (the same list as `data/lexicon/README.md`).
 */
export const DEFAULT_CELLS: readonly Cell[] = Object.freeze(
  (
    [
      'classical/simple/shakespearean',
      'classical/beautiful/modernist',
      'classical/complex/shakespearean',
      'modern/beautiful/victorian',
      'modern/complex/contemporary',
      'modern/plain/victorian',
      'romantic/complex/modernist',
      'romantic/plain/shakespearean',
      'romantic/simple/modernist',
      'neutral/plain/contemporary',
      'neutral/simple/victorian',
      'neutral/beautiful/contemporary',
    ] as const
  ).map(cell),
)

/** All 64 cells in index order (style-major, then complexity, then era). */
export const ALL_CELLS: readonly Cell[] = Object.freeze(
  STYLES.flatMap((style) => COMPLEXITIES.flatMap((complexity) => ERAS.map((era) => Object.freeze({ style, complexity, era })))),
)

export function isStyle(v: unknown): v is Style {
  return typeof v === 'string' && (STYLES as readonly string[]).includes(v)
}
export function isComplexity(v: unknown): v is Complexity {
  return typeof v === 'string' && (COMPLEXITIES as readonly string[]).includes(v)
}
export function isEra(v: unknown): v is Era {
  return typeof v === 'string' && (ERAS as readonly string[]).includes(v)
}
export function isPartOfSpeech(v: unknown): v is PartOfSpeech {
  return typeof v === 'string' && (PARTS_OF_SPEECH as readonly string[]).includes(v)
}

/** `style/complexity/era`. */
export function cellKey(c: Cell): CellKey {
  return `${c.style}/${c.complexity}/${c.era}`
}

/** Parses `style/complexity/era` (also accepts `-` or `:` as separators). */
export function parseCellKey(key: string): Cell {
  const parts = key.trim().toLowerCase().split(/[/:-]/)
  if (parts.length !== 3) {
    throw new InvalidInputError(`cell "${key}" must be written style/complexity/era, e.g. classical/simple/shakespearean`)
  }
  const [style, complexity, era] = parts
  if (!isStyle(style)) throw new InvalidInputError(`cell "${key}": unknown style "${style}" (expected one of ${STYLES.join(', ')})`)
  if (!isComplexity(complexity)) {
    throw new InvalidInputError(`cell "${key}": unknown complexity "${complexity}" (expected one of ${COMPLEXITIES.join(', ')})`)
  }
  if (!isEra(era)) throw new InvalidInputError(`cell "${key}": unknown era "${era}" (expected one of ${ERAS.join(', ')})`)
  return { style, complexity, era }
}

/** Index of a cell in 0..63: style * 16 + complexity * 4 + era. */
export function cellIndex(c: Cell): number {
  return STYLES.indexOf(c.style) * 16 + COMPLEXITIES.indexOf(c.complexity) * 4 + ERAS.indexOf(c.era)
}

/** The attribute indices `[style, complexity, era]` (each 0-3) of a cell. */
export function cellAttributeIndices(c: Cell): [number, number, number] {
  return [STYLES.indexOf(c.style), COMPLEXITIES.indexOf(c.complexity), ERAS.indexOf(c.era)]
}

export function sameCell(a: Cell, b: Cell): boolean {
  return a.style === b.style && a.complexity === b.complexity && a.era === b.era
}

/** Whether a cell is one of the 12 defaults. */
export function isDefaultCell(c: Cell): boolean {
  return DEFAULT_CELLS.some((d) => sameCell(d, c))
}

/** Resolves a selection to a list of distinct cells (in the given order; duplicates dropped). */
export function resolveCells(selection: CellSelection = 'default'): Cell[] {
  if (selection === 'default') return DEFAULT_CELLS.map((c) => ({ ...c }))
  if (selection === 'all') return ALL_CELLS.map((c) => ({ ...c }))
  if (!Array.isArray(selection)) {
    throw new InvalidInputError(`cells must be "default", "all" or a list of cells, got ${JSON.stringify(selection)}`)
  }
  const out: Cell[] = []
  const seen = new Set<string>()
  for (const item of selection as readonly (Cell | CellKey)[]) {
    const c = typeof item === 'string' ? parseCellKey(item) : parseCellKey(cellKey(item))
    const k = cellKey(c)
    if (!seen.has(k)) {
      seen.add(k)
      out.push(c)
    }
  }
  if (out.length === 0) throw new InvalidInputError('cells: the list is empty')
  return out
}

/** Tokens and money a corpus cost (stored with it). `costUSD` is null when a model without a known price was used. */
export interface CorpusUsage {
  /** HTTP requests that returned a completion (re-asks included, SDK retries not). */
  requests: number
  promptTokens: number
  completionTokens: number
  totalTokens: number
  costUSD: number | null
}
