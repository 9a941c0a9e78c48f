/**
 * Generation quality figures of DESIGN.md "Metrics": validity (dictionary words), novelty (not
 * in the training corpora), round-trip consistency (embed, encode, compare with the requested
 * style/complexity/era), distinct-1, and fidelity (cosine to the pattern's region).
 */
import { locateSources, readWordList } from '../../src/catalogue/sources.ts'

/**
 * Lower-cased words of the npm `word-list` package (274k English words, the catalogue's widest
 * source): the same on every OS, no system dictionary read.
 */
export function loadDictionary(): { words: Set<string>; files: string[] } {
  const { wordList } = locateSources()
  return { words: readWordList(wordList.file), files: [`word-list@${wordList.version}`] }
}

export interface PatternOutput {
  pattern: string
  fields: (number | null)[]
  words: string[]
}

export interface QualityScores {
  words: number
  validity?: number
  novelty: number
  /** Share of words whose re-encoded ID agrees with every fixed attribute of the pattern. */
  roundTrip?: number
  /** Per attribute (style, complexity, era): share agreeing where the pattern fixes it. */
  roundTripByAttribute?: (number | null)[]
  distinct1: number
  /** Mean cosine between a word's vector and its pattern's region centroid. */
  fidelity?: number
  /** Share of requests that returned fewer words than asked. */
  shortRequests: number
}

export interface ScoreInputs {
  outputs: PatternOutput[]
  requested: number
  dictionary?: Set<string>
  training: Set<string>
  /** Vector and ID of every scored word (embedded fresh and encoded without labels). */
  vectors?: Map<string, Float32Array>
  ids?: Map<string, number[]>
  /** Pattern text -> unit centroid of the known words in its region. */
  targets?: Map<string, Float32Array>
  aligned: boolean
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

export function scoreOutputs(x: ScoreInputs): QualityScores {
  const all = x.outputs.flatMap((o) => o.words)
  const n = all.length
  const share = (k: number, of: number) => (of ? k / of : 0)
  let rtAll = 0
  let rtN = 0
  const attrHit = [0, 0, 0]
  const attrN = [0, 0, 0]
  let fid = 0
  let fidN = 0
  for (const o of x.outputs) {
    const target = x.targets?.get(o.pattern)
    for (const w of o.words) {
      const id = x.ids?.get(w)
      if (id) {
        let ok = true
        for (let l = 0; l < 3; l++) {
          const f = o.fields[l]
          if (f === null) continue
          const hit = x.aligned ? id[l] >> 3 === f >> 3 : id[l] === f
          attrN[l]++
          if (hit) attrHit[l]++
          else ok = false
        }
        rtN++
        if (ok) rtAll++
      }
      const v = x.vectors?.get(w)
      if (v && target) {
        fid += dot(v, target)
        fidN++
      }
    }
  }
  return {
    words: n,
    validity: x.dictionary ? share(all.filter((w) => x.dictionary!.has(w.toLowerCase())).length, n) : undefined,
    novelty: share(all.filter((w) => !x.training.has(w.toLowerCase())).length, n),
    roundTrip: rtN ? rtAll / rtN : undefined,
    roundTripByAttribute: x.ids ? attrN.map((k, l) => (k ? attrHit[l] / k : null)) : undefined,
    distinct1: share(new Set(all).size, n),
    fidelity: fidN ? fid / fidN : undefined,
    shortRequests: share(x.outputs.filter((o) => o.words.length < x.requested).length, x.outputs.length),
  }
}
