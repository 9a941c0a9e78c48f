/**
 * The evaluation of a trained run on words nobody tuned to: the lexicon words outside the
 * run's training corpora (about 1,000, each with a gold style, complexity and era).
 *
 * - E1 attribute precision: for each of the 64 cells, ask each system for `k` words restricted
 *   to the held-out words; precision per attribute and jointly.
 * - E2 taste: simulated people, each liking `likes` held-out words of one cell; each system
 *   recommends 10 catalogue words, and the default path draws `days` words of the day. Scored
 *   by the share in the person's own cell (the gold label where the word has one, else the
 *   nearest cell centroid), the same over gold-labelled words only, and hit@10 of the person's
 *   other held-out words.
 * - E3 validity (catalogue membership), novelty (not training, not liked), distinct-1, ms/word.
 * - The semantic ID's attribute accuracy on held-out words, hybrid vs aligned vs unsupervised,
 *   and E1 through each mode's IDs.
 *
 * Systems side by side: random; nearest neighbours of the taste (no ID); ID-region retrieval
 * (the plain baseline); the LM (sampling among the held-out words for E1, free for E2); the
 * LM choosing among the default path's candidates; the default path.
 */
import { loadLexicon, type LexiconEntry } from '../corpus/lexicon.js'
import { createRng, shuffled } from '../corpus/random.js'
import { embeddingText } from '../embed/text.js'
import { selectRows } from '../embed/matrix.js'
import { encodeCatalogue } from '../pipeline/stages/catalogue.js'
import type { WOTDModel } from '../pipeline/inference.js'
import { chooseWordOfTheDay } from '../pipeline/word-of-the-day.js'
import { seedOf } from '../pipeline/inference.js'
import { CatalogueIndex, rankPattern, rankTaste } from '../recommend/index.js'
import { SemanticEncoder, type SemanticId } from '../semantic/index.js'
import { COMPLEXITIES, ERAS, STYLES, type Cell } from '../types.js'
import { CURVE_DISLIKES, learningCurve, type CurvePoint } from './learning-curve.js'
import { attributePrecision, distinct1, hitAtK, nearestCentroid, percentiles, shareOf, wilson, type Share, type Values } from './metrics.js'

export interface EvalOptions {
  seed?: number
  /** Words asked per cell in E1 (default 10). */
  k?: number
  /** Simulated people per cell in E2 (default 3). */
  peoplePerCell?: number
  /** Liked words per person (default 10). */
  likes?: number
  /** Words of the day drawn per person (default 30). */
  days?: number
  /** Include the LM systems (slow on a CPU; default true). */
  lm?: boolean
  /** People the free LM is asked for (default 48; each is one LM call). */
  lmPeople?: number
  /** People on the learning curve (default 32; 0 leaves it out). Each costs 10 x `days` words of the day. */
  curvePeople?: number
  onProgress?: (message: string) => void
}

export interface SystemScores {
  system: string
  precision?: { style: Share; complexity: Share; era: Share; mean: number; joint: Share }
  /** Own cell by the gold label, else the nearest cell centroid (the person's liked words left out of it). */
  ownCell?: Share
  /** The same with the liked words kept in their cell's centroid (a laxer judge). */
  ownCellWithLiked?: Share
  ownCellGold?: Share
  hitAt10?: Share
  wotdOwnCell?: Share
  wotdOwnCellWithLiked?: Share
  validity?: Share
  novelty?: Share
  distinct1?: number
  msPerWord?: { p50: number; p95: number }
  note?: string
}

export interface EvalReport {
  runId: string
  heldOut: number
  trainingWords: number
  catalogueWords: number
  cells: number
  people: number
  e1: SystemScores[]
  e2: SystemScores[]
  /**
   * The centroid judge on words whose cell is known: the share of each person's other held-out
   * words of their cell that the nearest-centroid rule puts in that cell, gold label ignored and
   * the word left out of its cell's centroid: about the most a recommender of unlabelled words
   * can expect from this judge.
   */
  judgeCeiling?: { strict: Share; lax: Share }
  /** The word of the day's own-cell share by number of likes, with and without wrong-cell dislikes. */
  learningCurve?: CurvePoint[]
  idAccuracy: { mode: string; style: Share; complexity: Share; era: Share; mean: number; e1Mean?: number; e1Joint?: Share }[]
  options: Required<Omit<EvalOptions, 'onProgress'>>
  elapsedMs: number
}

const valuesOf = (e: LexiconEntry): Values => [STYLES.indexOf(e.style), COMPLEXITIES.indexOf(e.complexity), ERAS.indexOf(e.era)]
const cellKey = (v: Values) => `${v[0]}${v[1]}${v[2]}`

/** The code of each value at each attribute level that most catalogue rows carry (a cell's pattern). */
function commonCodes(ids: Uint8Array, rows: number): number[][] {
  const counts = Array.from({ length: 3 }, () => new Array<number>(32).fill(0))
  for (let r = 0; r < rows; r++) for (let l = 0; l < 3; l++) counts[l][ids[4 * r + l]]++
  return counts.map((c) => [0, 1, 2, 3].map((v) => {
    let best = 8 * v
    for (let j = 8 * v; j < 8 * v + 8; j++) if (c[j] > c[best]) best = j
    return best
  }))
}

/** Per attribute level and code, the value its training words most often have (unsupervised codes name nothing). */
function valueOfCodes(ids: readonly SemanticId[], values: readonly Values[]): number[][] {
  return [0, 1, 2].map((l) => Array.from({ length: 32 }, (_, code) => {
    const counts = [0, 0, 0, 0]
    ids.forEach((id, i) => id[l] === code && counts[values[i][l]]++)
    return counts.indexOf(Math.max(...counts))
  }))
}

/** Per attribute level, the code whose training words most often have each value (unsupervised codes name nothing). */
function majorityCodes(ids: readonly SemanticId[], values: readonly Values[]): number[][] {
  return [0, 1, 2].map((l) => [0, 1, 2, 3].map((v) => {
    let best = 0
    let bestShare = -1
    for (let code = 0; code < 32; code++) {
      let n = 0
      let hit = 0
      ids.forEach((id, i) => {
        if (id[l] !== code) return
        n++
        if (values[i][l] === v) hit++
      })
      const share = n >= 3 ? hit / n : -1
      if (share > bestShare) {
        bestShare = share
        best = code
      }
    }
    return best
  }))
}

export async function evaluate(model: WOTDModel, options: EvalOptions = {}): Promise<EvalReport> {
  const started = Date.now()
  const o = { seed: 42, k: 10, peoplePerCell: 3, likes: 10, days: 30, lm: true, lmPeople: 48, curvePeople: 32, ...options }
  const say = (m: string) => options.onProgress?.(m)
  const [index, known, encoder] = await Promise.all([model.catalogueIndex(), model.known(), model.encoder()])
  const training = new Set(known.map((k) => k.word))
  const lexicon = loadLexicon()
  const gold = new Map(lexicon.map((e) => [e.word, valuesOf(e)] as const))
  const held = lexicon.filter((e) => !training.has(e.word) && index.catalogue.has(e.word))
  const heldWords = held.map((e) => e.word)
  const heldRows = new Set(heldWords.map((w) => index.catalogue.indexOf(w)!))
  const rng = createRng(o.seed, 'eval')

  // ---- E1: attribute precision, restricted to held-out words.
  const cells: Values[] = []
  for (let s = 0; s < 4; s++) for (let c = 0; c < 4; c++) for (let e = 0; e < 4; e++) cells.push([s, c, e])
  const codes = commonCodes(index.ids, index.size)
  const patternOf = (v: Values, table = codes) => [table[0][v[0]], table[1][v[1]], table[2][v[2]], null] as (number | null)[]
  const e1Answers: Record<string, { requested: Values; words: string[] }[]> = {}
  const e1Times: Record<string, number[]> = {}
  const record = (system: string, requested: Values, words: string[], ms?: number) => {
    ;(e1Answers[system] ??= []).push({ requested, words })
    if (ms !== undefined && words.length) (e1Times[system] ??= []).push(ms / words.length)
  }
  say(`E1: ${cells.length} cells x ${o.k} words over ${held.length} held-out words`)
  for (const [ci, v] of cells.entries()) {
    if (ci % 16 === 15) say(`E1: ${ci + 1}/${cells.length} cells`)
    const fields = patternOf(v)
    record('random', v, shuffled(heldWords, rng).slice(0, o.k))
    record('region', v, rankPattern(index, fields, { allow: heldRows, scorer: 'region', limit: o.k }).map((r) => index.entry(r.row).word))
    let t = performance.now()
    const d = await model.generateWordsFromId(fields, { vocabulary: heldWords, count: o.k })
    record('default', v, d.words, performance.now() - t)
    if (o.lm) {
      t = performance.now()
      const gen = await model.generator()
      const lm = await gen.generate(fields, { count: o.k, vocabulary: heldWords, seed: o.seed, seeds: await model.seedWords(fields) })
      record('lm', v, lm.words, performance.now() - t)
      t = performance.now()
      const rr = await model.generateWordsFromId(fields, { vocabulary: heldWords, count: o.k, method: 'lm', seed: o.seed })
      record('lm-rerank', v, rr.words, performance.now() - t)
    }
  }
  const precision = (answers: { requested: Values; words: string[] }[]) => {
    const p = attributePrecision(answers, gold)
    const [style, complexity, era] = p.perAttribute
    return { style, complexity, era, mean: (style.value + complexity.value + era.value) / 3, joint: p.joint }
  }
  const e1: SystemScores[] = Object.entries(e1Answers).map(([system, answers]) => ({
    system,
    precision: precision(answers),
    msPerWord: e1Times[system] ? percentiles(e1Times[system]) : undefined,
  }))
  e1.push({ system: 'nearest', note: 'needs a taste vector; E1 requests are IDs (see E2)' })

  // ---- ID attribute accuracy on held-out words, per mode; E1 through each mode's IDs.
  say('semantic ID accuracy per mode')
  const heldIdx = held.map((e) => index.catalogue.indexOf(e.word)!)
  const heldVec = selectRows(index.vectors, heldIdx)
  const heldGold = held.map(valuesOf)
  const accuracyOf = (ids: SemanticId[], valueOf?: number[][]) => {
    const per = [0, 1, 2].map((l) => shareOf(ids.map((id, i) => (valueOf ? valueOf[l][id[l]] : id[l] >> 3) === heldGold[i][l])))
    return { style: per[0], complexity: per[1], era: per[2], mean: (per[0].value + per[1].value + per[2].value) / 3 }
  }
  const idAccuracy: EvalReport['idAccuracy'] = []
  const e1ForIndex = (ix: CatalogueIndex, table: number[][]) => {
    const answers = cells.map((v) => ({ requested: v, words: rankPattern(ix, patternOf(v, table), { allow: heldRows, limit: o.k }).map((r) => ix.entry(r.row).word) }))
    return precision(answers)
  }
  const trainVectors = known.map((k) => k.vector)
  const trainValues = known.map((k) => gold.get(k.word) ?? ([0, 0, 0] as Values))
  const modes: { mode: string; enc: SemanticEncoder; majority?: boolean }[] = []
  if (encoder.mode === 'hybrid') modes.push({ mode: 'hybrid', enc: encoder }, { mode: 'aligned', enc: encoder.withoutPredictor() })
  else modes.push({ mode: encoder.mode, enc: encoder, majority: encoder.mode === 'unsupervised' })
  if (encoder.mode !== 'unsupervised') {
    modes.push({ mode: 'unsupervised', enc: await SemanticEncoder.train(trainVectors, { mode: 'unsupervised', seed: o.seed }), majority: true })
  }
  for (const m of modes) {
    const ids = m.enc.encodeMany(heldVec, { facts: held.map((e) => index.entry(index.catalogue.indexOf(e.word)!)) })
    const trainIds = m.majority ? m.enc.encodeMany(trainVectors) : []
    const mapping = m.majority ? majorityCodes(trainIds, trainValues) : undefined
    const ix = m.enc === encoder ? index : CatalogueIndex.build(index.catalogue, index.vectors, encodeCatalogue(index.catalogue, index.vectors, m.enc), m.enc, training)
    const e1m = e1ForIndex(ix, mapping ?? commonCodes(ix.ids, ix.size))
    idAccuracy.push({ mode: m.mode, ...accuracyOf(ids, m.majority ? valueOfCodes(trainIds, trainValues) : undefined), e1Mean: e1m.mean, e1Joint: e1m.joint })
  }

  // ---- E2: simulated people.
  const byCell = new Map<string, LexiconEntry[]>()
  for (const e of held) {
    const k = cellKey(valuesOf(e))
    byCell.set(k, [...(byCell.get(k) ?? []), e])
  }
  const cellSums = new Map<string, Float64Array>()
  for (const e of lexicon) {
    const r = index.catalogue.indexOf(e.word)
    if (r === undefined) continue
    const k = cellKey(valuesOf(e))
    const acc = cellSums.get(k) ?? new Float64Array(index.vectors.dim)
    const v = index.vector(r)
    for (let i = 0; i < acc.length; i++) acc[i] += v[i]
    cellSums.set(k, acc)
  }
  const cellKeys = [...cellSums.keys()]
  const unit = (a: Float64Array) => {
    const n = Math.sqrt(a.reduce((s, x) => s + x * x, 0)) || 1
    return Float32Array.from(a, (x) => x / n)
  }
  interface Person { cell: string; liked: string[]; rest: string[] }
  const people: Person[] = []
  for (const [cell, entries] of [...byCell.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (entries.length < o.likes + 3) continue
    for (let p = 0; p < o.peoplePerCell; p++) {
      const order = shuffled(entries.map((e) => e.word), createRng(o.seed, `person:${cell}:${p}`))
      people.push({ cell, liked: order.slice(0, o.likes), rest: order.slice(o.likes) })
    }
  }
  say(`E2: ${people.length} simulated people in ${new Set(people.map((p) => p.cell)).size} cells`)
  const judgeFactory = (person: Person) => {
    // Centroids from every gold word, the person's own liked words left out of their cell.
    const own = Float64Array.from(cellSums.get(person.cell)!)
    for (const w of person.liked) {
      const v = index.vector(index.catalogue.indexOf(w)!)
      for (let i = 0; i < own.length; i++) own[i] -= v[i]
    }
    const centroids = cellKeys.map((k) => unit(k === person.cell ? own : cellSums.get(k)!))
    const withLiked = cellKeys.map((k) => unit(cellSums.get(k)!))
    return (word: string, vector: Float32Array | undefined, leaveOut = false): { own: boolean; ownWithLiked: boolean; gold: boolean | undefined } => {
      if (leaveOut && vector) {
        // The judge's ceiling: a gold word of the person's cell judged as if unlabelled, and
        // left out of its own cell's centroid, as a recommended word would be.
        const minus = (a: Float64Array) => unit(Float64Array.from(a, (x, i) => x - vector[i]))
        const at = cellKeys.indexOf(person.cell)
        const strict = centroids.map((c, i) => (i === at ? minus(own) : c))
        const lax = withLiked.map((c, i) => (i === at ? minus(cellSums.get(person.cell)!) : c))
        return { own: cellKeys[nearestCentroid(vector, strict)] === person.cell, ownWithLiked: cellKeys[nearestCentroid(vector, lax)] === person.cell, gold: undefined }
      }
      const g = gold.get(word)
      if (g) return { own: cellKey(g) === person.cell, ownWithLiked: cellKey(g) === person.cell, gold: cellKey(g) === person.cell }
      if (!vector) return { own: false, ownWithLiked: false, gold: undefined }
      return { own: cellKeys[nearestCentroid(vector, centroids)] === person.cell, ownWithLiked: cellKeys[nearestCentroid(vector, withLiked)] === person.cell, gold: undefined }
    }
  }
  type Acc = { own: boolean[]; ownWithLiked: boolean[]; gold: boolean[]; hits: number; possible: number; valid: boolean[]; novel: boolean[]; words: string[]; ms: number[]; wotd: boolean[]; wotdLax: boolean[] }
  const acc: Record<string, Acc> = {}
  const add = (system: string) => (acc[system] ??= { own: [], ownWithLiked: [], gold: [], hits: 0, possible: 0, valid: [], novel: [], words: [], ms: [], wotd: [], wotdLax: [] })
  const score = async (system: string, person: Person, words: string[], judge: ReturnType<typeof judgeFactory>, ms?: number) => {
    const a = add(system)
    const outside = words.filter((w) => !index.catalogue.has(w))
    const outsideVec = new Map<string, Float32Array>()
    if (outside.length) {
      const vecs = await (await model.embedder()).embed(outside.map((w) => embeddingText(w)))
      vecs.forEach((v, i) => outsideVec.set(outside[i], v))
    }
    const liked = new Set(person.liked)
    for (const w of words) {
      const r = index.catalogue.indexOf(w)
      const j = judge(w, r !== undefined ? index.vector(r) : outsideVec.get(w))
      a.own.push(j.own)
      a.ownWithLiked.push(j.ownWithLiked)
      if (j.gold !== undefined) a.gold.push(j.gold)
      a.valid.push(r !== undefined)
      a.novel.push(!training.has(w) && !liked.has(w))
      a.words.push(w)
    }
    const h = hitAtK(words, person.rest, 10)
    a.hits += h.hits
    a.possible += h.possible
    if (ms !== undefined && words.length) a.ms.push(ms / words.length)
  }
  let done = 0
  const ceiling = { strict: [] as boolean[], lax: [] as boolean[] }
  for (const person of people) {
    const judge = judgeFactory(person)
    for (const w of person.rest) {
      const j = judge(w, index.vector(index.catalogue.indexOf(w)!), true)
      ceiling.strict.push(j.own)
      ceiling.lax.push(j.ownWithLiked)
    }
    const likedRows = new Set(person.liked.map((w) => index.catalogue.indexOf(w)!))
    const taste = await model.taste(person.liked)
    const prng = createRng(o.seed, `random:${done}`)
    const randomWords: string[] = []
    while (randomWords.length < 10) {
      const r = Math.floor(prng.next() * index.size)
      if (!index.training[r] && !likedRows.has(r)) randomWords.push(index.entry(r).word)
    }
    await score('random', person, randomWords, judge)
    let t = performance.now()
    const nearest = rankTaste(index, taste, { exclude: likedRows, scorer: 'nearest', limit: 10 }).map((r) => index.entry(r.row).word)
    await score('nearest', person, nearest, judge, performance.now() - t)
    t = performance.now()
    const region = rankPattern(index, [taste.id[0], taste.id[1], taste.id[2], null], { exclude: likedRows, scorer: 'region', limit: 10 }).map((r) => index.entry(r.row).word)
    await score('region', person, region, judge, performance.now() - t)
    t = performance.now()
    const rec = await model.recommend(person.liked, { count: 10 })
    await score('default', person, rec.words, judge, performance.now() - t)
    if (o.lm && done < o.lmPeople) {
      const gen = await model.generator()
      t = performance.now()
      const fields = [taste.id[0], taste.id[1], taste.id[2], null]
      const lm = await gen.generate(fields, { count: 10, seed: o.seed + done, seeds: await model.seedWords(fields) })
      await score('lm', person, lm.words, judge, performance.now() - t)
    }
    // 30 days of words of the day, each day seeing the days before (no repeats).
    const shown: string[] = []
    const user = `eval-person-${done}`
    for (let d = 0; d < o.days; d++) {
      const pick = chooseWordOfTheDay(index, { taste: { ...taste, words: person.liked }, recent: shown, seed: seedOf(user, `day-${d}`) })
      if (!pick) break
      const w = index.entry(pick.row).word
      shown.push(w)
      const j = judge(w, index.vector(pick.row))
      add('default').wotd.push(j.own)
      add('default').wotdLax.push(j.ownWithLiked)
    }
    // The no-ID baseline's words of the day: its next unseen nearest word each day.
    const far = rankTaste(index, taste, { exclude: likedRows, scorer: 'nearest', limit: o.days }).map((r) => index.entry(r.row).word)
    for (const w of far) {
      const j = judge(w, index.vector(index.catalogue.indexOf(w)!))
      add('nearest').wotd.push(j.own)
      add('nearest').wotdLax.push(j.ownWithLiked)
    }
    done++
    if (done % 20 === 0) say(`E2: ${done}/${people.length} people`)
  }
  const e2: SystemScores[] = Object.entries(acc).map(([system, a]) => ({
    system,
    ownCell: shareOf(a.own),
    ownCellWithLiked: shareOf(a.ownWithLiked),
    ownCellGold: shareOf(a.gold),
    hitAt10: wilson(a.hits, a.possible),
    wotdOwnCell: a.wotd.length ? shareOf(a.wotd) : undefined,
    wotdOwnCellWithLiked: a.wotdLax.length ? shareOf(a.wotdLax) : undefined,
    validity: shareOf(a.valid),
    novelty: shareOf(a.novel),
    distinct1: distinct1(a.words),
    msPerWord: a.ms.length ? percentiles(a.ms) : undefined,
    note: system === 'lm' ? `first ${Math.min(o.lmPeople, people.length)} people` : undefined,
  }))

  // ---- The learning curve: the real profile API, people spread over the cells.
  let curve: CurvePoint[] | undefined
  if (o.curvePeople > 0) {
    const firsts = people.filter((p, i) => i === 0 || people[i - 1].cell !== p.cell)
    const chosen = shuffled(firsts, createRng(o.seed, 'curve')).slice(0, o.curvePeople)
    say(`learning curve: ${chosen.length} people x ${2 * 5} profiles x ${o.days} days`)
    const curvePeople = chosen.map((person, i) => {
      const judge = judgeFactory(person)
      const wrong = shuffled(
        held.filter((e) => cellKey(valuesOf(e)) !== person.cell).map((e) => e.word),
        createRng(o.seed, `curve-wrong:${i}`),
      ).slice(0, CURVE_DISLIKES * 4)
      return {
        liked: person.liked,
        wrong,
        judge: (w: string) => {
          const r = index.catalogue.indexOf(w)
          return judge(w, r === undefined ? undefined : index.vector(r))
        },
      }
    })
    curve = await learningCurve(model, curvePeople, { days: o.days, seed: o.seed, onPerson: (n) => n % 8 === 0 && say(`learning curve: ${n}/${curvePeople.length} people`) })
  }

  return {
    runId: model.runId,
    heldOut: held.length,
    trainingWords: training.size,
    catalogueWords: index.size,
    cells: cells.length,
    people: people.length,
    e1,
    e2,
    judgeCeiling: ceiling.strict.length ? { strict: shareOf(ceiling.strict), lax: shareOf(ceiling.lax) } : undefined,
    learningCurve: curve,
    idAccuracy,
    options: { seed: o.seed, k: o.k, peoplePerCell: o.peoplePerCell, likes: o.likes, days: o.days, lm: o.lm, lmPeople: o.lmPeople, curvePeople: o.curvePeople },
    elapsedMs: Date.now() - started,
  }
}

export type { Cell }
