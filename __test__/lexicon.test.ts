// The bundled lexicon (data/lexicon/*.jsonl): well-formed, unique, enough words per cell, every
// word in a real English dictionary shipped through npm, and deterministic sampling.
import test from 'ava'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { lexiconOrder, lexiconStats, loadLexicon, sampleLexicon } from '../src/corpus/lexicon.js'
import { locateSources, readWordList } from '../src/catalogue/sources.js'
import { readWordNet } from '../src/catalogue/wordnet.js'
import { ALL_CELLS, cellKey, DEFAULT_CELLS, isComplexity, isEra, isPartOfSpeech, STYLES } from '../src/types.js'

const dir = join(import.meta.dirname, '..', 'data', 'lexicon')
/**
 * Recent words the npm dictionaries predate (word-list 4.1, WordNet 3.1). Each is in Debian's
 * wamerican-large / wbritish-large (`python3 scripts/lexicon/check.py` checks every lexicon word
 * there), which a fresh machine does not have, so the test does not read them.
 */
const NEWER_THAN_THE_DICTIONARIES = new Set([
  'geoengineering', 'selfie', 'cryptocurrency', 'blockchain', 'virtualization', 'crowdfunding', 'ransomware', 'microfinance',
  'hacktivist', 'smartwatch', 'sitemap', 'emoji', 'hoverboard', 'popup', 'plugin', 'vape', 'phish', 'ballgown',
])
const FIELDS = ['complexity', 'definition', 'era', 'partOfSpeech', 'style', 'word']

interface Line {
  file: string
  line: number
  raw: Record<string, unknown>
}

function readLines(): Line[] {
  const out: Line[] = []
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .forEach((text, i) => {
        if (text.trim() === '') return
        let raw: Record<string, unknown>
        try {
          raw = JSON.parse(text)
        } catch {
          raw = { __unparseable: text }
        }
        out.push({ file: f, line: i + 1, raw })
      })
  }
  return out
}

test('one file per style, and only those', (t) => {
  t.deepEqual(
    readdirSync(dir)
      .filter((f) => f.endsWith('.jsonl'))
      .sort(),
    STYLES.map((s) => `${s}.jsonl`).sort(),
  )
})

test('every entry is well-formed: fields, lowercase ASCII word of 3-16 letters, one-line definition', (t) => {
  const problems: string[] = []
  for (const { file, line, raw } of readLines()) {
    const where = `${file}:${line}`
    const keys = Object.keys(raw).sort()
    if (keys.join() !== FIELDS.join()) problems.push(`${where}: fields ${keys.join(',')}`)
    if (typeof raw.word !== 'string' || !/^[a-z]{3,16}$/.test(raw.word)) problems.push(`${where}: word ${JSON.stringify(raw.word)}`)
    if (!isPartOfSpeech(raw.partOfSpeech)) problems.push(`${where}: partOfSpeech ${JSON.stringify(raw.partOfSpeech)}`)
    if (raw.style !== file.replace(/\.jsonl$/, '')) problems.push(`${where}: style ${JSON.stringify(raw.style)} in ${file}`)
    if (!isComplexity(raw.complexity)) problems.push(`${where}: complexity ${JSON.stringify(raw.complexity)}`)
    if (!isEra(raw.era)) problems.push(`${where}: era ${JSON.stringify(raw.era)}`)
    const d = raw.definition
    if (typeof d !== 'string' || d !== d.trim() || /\s{2,}|\n/.test(d) || d.length < 10 || d.length > 200) {
      problems.push(`${where}: definition ${JSON.stringify(d)}`)
    }
  }
  t.deepEqual(problems.slice(0, 50), [], `${problems.length} malformed entries`)
  // The loader accepts every line.
  t.is(loadLexicon(dir).length, readLines().length)
})

test('every word appears once in the whole lexicon', (t) => {
  const seen = new Map<string, string>()
  const dups: string[] = []
  for (const { file, line, raw } of readLines()) {
    const w = String(raw.word)
    if (seen.has(w)) dups.push(`${w}: ${seen.get(w)} and ${file}:${line}`)
    else seen.set(w, `${file}:${line}`)
  }
  t.deepEqual(dups, [])
})

test('cell counts: >= 1,720 entries, >= 100 in each of the 12 default cells, >= 10 in each of the 64', (t) => {
  const stats = lexiconStats(loadLexicon(dir))
  t.log(`${stats.total} entries; per part of speech ${JSON.stringify(stats.perPartOfSpeech)}`)
  t.true(stats.total >= 1720, `${stats.total} entries`)
  const shortDefault = DEFAULT_CELLS.map(cellKey).filter((k) => (stats.perCell[k] ?? 0) < 100)
  t.deepEqual(
    shortDefault.map((k) => `${k}: ${stats.perCell[k] ?? 0}`),
    [],
  )
  const short = ALL_CELLS.map(cellKey).filter((k) => (stats.perCell[k] ?? 0) < 10)
  t.deepEqual(
    short.map((k) => `${k}: ${stats.perCell[k] ?? 0}`),
    [],
  )
})

test('every word is in word-list or WordNet (npm packages), but for a few named recent words', (t) => {
  const sources = locateSources()
  const dict = readWordList(sources.wordList.file)
  for (const l of readWordNet(sources.wordnet.dict)) dict.add(l.lemma)
  const missing = readLines()
    .filter(({ raw }) => !dict.has(String(raw.word)) && !NEWER_THAN_THE_DICTIONARIES.has(String(raw.word)))
    .map(({ file, line, raw }) => `${raw.word} (${file}:${line})`)
  t.deepEqual(missing, [], `${missing.length} words are in neither dictionary`)
  // The exceptions stay few, and each is still a lexicon word.
  const words = new Set(readLines().map(({ raw }) => String(raw.word)))
  t.true(NEWER_THAN_THE_DICTIONARIES.size <= 20 && [...NEWER_THAN_THE_DICTIONARIES].every((w) => words.has(w) && !dict.has(w)))
})

test('sampling is deterministic for a seed and a permutation of the cell', (t) => {
  const entries = loadLexicon(dir)
  for (const cell of DEFAULT_CELLS) {
    const a = lexiconOrder(entries, cell, 42).map((e) => e.word)
    t.deepEqual(
      lexiconOrder(entries, cell, 42).map((e) => e.word),
      a,
    )
    const inCell = entries.filter((e) => cellKey(e) === cellKey(cell)).map((e) => e.word)
    t.deepEqual([...a].sort(), [...inCell].sort())
    t.notDeepEqual(
      lexiconOrder(entries, cell, 43).map((e) => e.word),
      a,
    )
  }
  t.deepEqual(
    sampleLexicon(DEFAULT_CELLS[3], 20, 5, dir).map((e) => e.word),
    sampleLexicon(DEFAULT_CELLS[3], 100, 5, dir)
      .slice(0, 20)
      .map((e) => e.word),
  )
})
