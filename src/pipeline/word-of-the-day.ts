/**
 * Choosing a word of the day from the catalogue. With a taste: a seeded draw from the words
 * nearest it (better-ranked words more likely), and about one day in ten a word from further
 * down the ranking, so a profile does not collapse onto one corner. Without one: a seeded
 * draw from well-defined, moderately common words, different for every user and day.
 */
import { createRng } from '../corpus/random.js'
import { rankTaste, related, type CatalogueIndex, type Taste } from '../recommend/index.js'

/** Share of days that explore beyond the nearest words. */
export const EXPLORE_SHARE = 0.1
/** Words near the taste drawn from on ordinary days. */
const NEAR = 30
/** How far down the ranking an exploring day may reach. */
const FAR = 150

export interface DayPick {
  row: number
  source: 'taste' | 'explore' | 'default'
}

export function chooseWordOfTheDay(index: CatalogueIndex, opts: { taste?: Taste & { words: string[] }; recent: readonly string[]; seed: number }): DayPick | undefined {
  const rng = createRng(opts.seed, 'word-of-the-day')
  const recent = new Set(opts.recent)
  if (opts.taste) {
    const liked = opts.taste.words
    const exclude = new Set<number>()
    for (const w of [...liked, ...recent]) {
      const r = index.catalogue.indexOf(w)
      if (r !== undefined) exclude.add(r)
    }
    const ranked = rankTaste(index, opts.taste, { exclude, avoidRelativesOf: [...liked, ...recent], limit: FAR }).filter((r) => index.quality[r.row] > -0.45)
    if (ranked.length === 0) return undefined
    const explore = ranked.length > NEAR && rng.next() < EXPLORE_SHARE
    if (explore) return { row: ranked[NEAR + Math.floor(rng.next() * (ranked.length - NEAR))].row, source: 'explore' }
    const near = ranked.slice(0, NEAR)
    // Weights fall by e for every 0.02 of score below the best.
    const weights = near.map((r) => Math.exp((r.score - near[0].score) / 0.02))
    let u = rng.next() * weights.reduce((a, b) => a + b, 0)
    for (let i = 0; i < near.length; i++) {
      u -= weights[i]
      if (u <= 0) return { row: near[i].row, source: 'taste' }
    }
    return { row: near[near.length - 1].row, source: 'taste' }
  }
  // No taste: interesting, explained words (a definition, no poor usage, heard now and then).
  const pool: number[] = []
  for (let row = 0; row < index.size; row++) {
    const e = index.entry(row)
    if (index.training[row] || index.quality[row] < 0 || e.zipf < 1.5 || e.zipf > 4 || recent.has(e.word)) continue
    if ([...recent].some((w) => related(w, e.word))) continue
    pool.push(row)
  }
  if (pool.length === 0) return undefined
  return { row: pool[Math.floor(rng.next() * pool.length)], source: 'default' }
}
