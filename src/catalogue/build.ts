/**
 * Joins the sources into one list of real English words, each with what a word-of-the-day
 * card needs (part of speech, definition, an example) and what ranking needs (frequency,
 * number of senses, usage labels).
 *
 * Which words get in:
 * - WordNet lemmas of 3-24 lower-case letters that a second source also knows (`word-list`
 *   or SUBTLEX), so that neither list's oddities pass alone;
 * - `word-list` words WordNet lacks that are not an inflection of a known word (`cats`,
 *   `gapped`), when film subtitles use them in lower case at least twice (prithee, whilst,
 *   ere) or they are closed compounds of two common WordNet words (smartphone, hashtag);
 * - every word of the bundled lexicon, with its own definition and part of speech.
 * Profanity (the `naughty-words` list) and words WordNet labels disparaging, obscene or a
 * slur are left out.
 */
import { loadLexicon, type LexiconEntry } from '../corpus/lexicon.js'
import type { PartOfSpeech } from '../types.js'
import { readProfanity, readSubtlex, readWordList, zipf, type CatalogueSources } from './sources.js'
import { readWordNet, type WordNetLemma } from './wordnet.js'

export type CatalogueSource = 'lexicon' | 'wordnet' | 'word-list'

export interface CatalogueEntry {
  word: string
  partOfSpeech: PartOfSpeech | null
  /** The lexicon's own definition, else WordNet's first sense of the main part of speech. */
  definition: string | null
  /** A WordNet example sentence that uses the word, when there is one. */
  example: string | null
  /** SUBTLEX-US Zipf frequency (log10 per billion words); 0 when subtitles never use it. */
  zipf: number
  /** WordNet senses over all parts of speech (0 outside WordNet). */
  senses: number
  /** WordNet usage labels of the main part of speech's senses (`archaism`, `slang`, ...). */
  usage: string[]
  source: CatalogueSource
}

const WORD = /^[a-z]{3,24}$/
const OFFENSIVE_USAGE = new Set(['disparagement', 'obscenity', 'ethnic_slur', 'vulgarism'])
/** Bound prefixes: `outgallop`, `semibald` are not the compounds we want. */
const PREFIXES = ['out', 'over', 'under', 'non', 'semi', 'anti', 'counter', 'super', 'inter', 'fore', 'self', 'pre', 'post', 'sub', 'un', 're', 'mis', 'dis', 'multi', 'micro', 'pseudo', 'mid']
/** Derivational endings: `gumlike`, `toyless` are formed, not listed, words. */
const SUFFIXES = ['like', 'less', 'able', 'ible', 'ship', 'wise', 'ward', 'wards', 'some', 'ness', 'ish', 'ism', 'ist', 'ful', 'hood', 'dom']
/** A SUBTLEX count that makes a word common enough to form a compound. */
const COMPOUND_PART_MIN_COUNT = 50
/** Lower-case uses in subtitles that admit a word WordNet lacks. */
const EXTRA_MIN_COUNT = 2

const INFLECTIONS: [string, string][] = [
  ['s', ''],
  ['es', ''],
  ['es', 'e'],
  ['ies', 'y'],
  ['men', 'man'],
  ['ed', ''],
  ['ed', 'e'],
  ['ied', 'y'],
  ['ing', ''],
  ['ing', 'e'],
  ['er', ''],
  ['er', 'e'],
  ['ier', 'y'],
  ['est', ''],
  ['est', 'e'],
  ['iest', 'y'],
]

/** The known word `w` inflects (`cats` -> cat, `gapped` -> gap), if any. */
export function inflectionBase(w: string, known: (s: string) => boolean): string | undefined {
  for (const [end, repl] of INFLECTIONS) {
    if (!w.endsWith(end) || w.length - end.length < 2) continue
    const stem = w.slice(0, -end.length)
    const base = stem + repl
    if (base !== w && known(base)) return base
    // Doubled final consonant: gapped, running, bigger.
    if ((end === 'ed' || end === 'ing' || end === 'er' || end === 'est') && stem.length > 2 && stem.at(-1) === stem.at(-2) && known(stem.slice(0, -1))) {
      return stem.slice(0, -1)
    }
  }
  return undefined
}

const POS_ORDER: PartOfSpeech[] = ['noun', 'verb', 'adjective', 'adverb']

/** The part of speech a lemma is mostly used as: most tagged, then most senses, then noun first. */
function mainPart(parts: WordNetLemma[]): WordNetLemma {
  return [...parts].sort(
    (a, b) => b.taggedCount - a.taggedCount || b.senses.length - a.senses.length || POS_ORDER.indexOf(a.pos) - POS_ORDER.indexOf(b.pos),
  )[0]
}

/** The first example of the main part's senses (then of any part) that uses the word. */
function exampleFor(word: string, main: WordNetLemma, parts: WordNetLemma[]): string | null {
  const uses = new RegExp(`\\b${word}`, 'i')
  for (const p of [main, ...parts.filter((x) => x !== main)]) {
    for (const s of p.senses) {
      const e = s.examples.find((x) => uses.test(x))
      if (e) return e
    }
  }
  return null
}

export interface BuildInput {
  sources: CatalogueSources
  lexicon?: readonly LexiconEntry[]
}

export function buildCatalogue({ sources, lexicon = loadLexicon() }: BuildInput): CatalogueEntry[] {
  const wordList = readWordList(sources.wordList.file)
  const subtlex = readSubtlex(sources.subtlex.file)
  const profane = readProfanity(sources.profanity.file)
  const byLemma = new Map<string, WordNetLemma[]>()
  for (const l of readWordNet(sources.wordnet.dict)) {
    const list = byLemma.get(l.lemma) ?? []
    list.push(l)
    byLemma.set(l.lemma, list)
  }
  const offensive = (w: string, parts: WordNetLemma[] = []): boolean =>
    profane.has(w) || parts.some((p) => p.senses.some((s) => s.usage.some((u) => OFFENSIVE_USAGE.has(u))))

  const out = new Map<string, CatalogueEntry>()
  for (const [word, parts] of byLemma) {
    if (!WORD.test(word) || !(wordList.has(word) || subtlex.count.has(word)) || offensive(word, parts)) continue
    const main = mainPart(parts)
    out.set(word, {
      word,
      partOfSpeech: main.pos,
      definition: main.senses[0].definition || null,
      example: exampleFor(word, main, parts),
      zipf: zipf(subtlex.count.get(word) ?? 0),
      senses: parts.reduce((n, p) => n + p.senses.length, 0),
      usage: [...new Set(main.senses.flatMap((s) => s.usage))].sort(),
      source: 'wordnet',
    })
  }

  const known = (s: string) => byLemma.has(s) || wordList.has(s)
  const common = (s: string) => s.length >= 3 && byLemma.has(s) && subtlex.lowerCase.has(s) && (subtlex.count.get(s) ?? 0) >= COMPOUND_PART_MIN_COUNT
  const compound = (w: string) =>
    !PREFIXES.some((p) => w.startsWith(p)) &&
    !SUFFIXES.some((s) => w.endsWith(s)) &&
    Array.from({ length: w.length - 5 }, (_, i) => i + 3).some((i) => common(w.slice(0, i)) && common(w.slice(i)))
  for (const word of wordList) {
    if (out.has(word) || byLemma.has(word) || !WORD.test(word) || offensive(word)) continue
    if (inflectionBase(word, known)) continue
    const count = subtlex.count.get(word) ?? 0
    const attested = subtlex.lowerCase.has(word) && count >= EXTRA_MIN_COUNT
    if (!attested && !compound(word)) continue
    out.set(word, { word, partOfSpeech: null, definition: null, example: null, zipf: zipf(count), senses: 0, usage: [], source: 'word-list' })
  }

  for (const e of lexicon) {
    const prev = out.get(e.word)
    out.set(e.word, {
      word: e.word,
      partOfSpeech: e.partOfSpeech,
      definition: e.definition,
      example: prev?.example ?? null,
      zipf: prev?.zipf ?? zipf(subtlex.count.get(e.word) ?? 0),
      senses: prev?.senses ?? 0,
      usage: prev?.usage ?? [],
      source: 'lexicon',
    })
  }
  return [...out.values()].sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : 0))
}
