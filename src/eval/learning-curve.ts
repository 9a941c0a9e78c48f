/**
 * The learning curve of the word of the day: simulated people who like 0, 1, 3, 5 or 10 of
 * their cell's held-out words (and, in a second arm, also dislike 5 held-out words of other
 * cells) through the real API (`like`, `dislike`, `wordOfTheDay`, then `forget`), scored by the
 * share of their next `days` words of the day in their own cell. Zero likes is the no-profile
 * baseline.
 */
import { createRng, shuffled } from '../corpus/random.js'
import type { WOTDModel } from '../pipeline/inference.js'
import { shareOf, type Share } from './metrics.js'

export const CURVE_LIKES = [0, 1, 3, 5, 10] as const
export const CURVE_DISLIKES = 5

export interface CurvePoint {
  likes: number
  dislikes: number
  ownCell: Share
  ownCellLax: Share
}

export interface CurvePerson {
  /** Their cell's held-out words, in the order they like them. */
  liked: string[]
  /** Held-out words of other cells, to dislike. */
  wrong: string[]
  judge: (word: string) => { own: boolean; ownWithLiked: boolean }
}

export async function learningCurve(model: WOTDModel, people: readonly CurvePerson[], opts: { days: number; seed: number; onPerson?: (done: number) => void }): Promise<CurvePoint[]> {
  const points: CurvePoint[] = []
  const tally = new Map<string, { own: boolean[]; lax: boolean[] }>()
  for (const [i, person] of people.entries()) {
    for (const likes of CURVE_LIKES) {
      for (const dislikes of [0, CURVE_DISLIKES]) {
        const user = `wotd-eval-curve-${opts.seed}-${i}-${likes}-${dislikes}`
        // Whatever an earlier, interrupted evaluation left is cleared first.
        await model.forget(user)
        try {
          if (likes) await model.like(user, person.liked.slice(0, likes))
          if (dislikes) await model.dislike(user, shuffled(person.wrong, createRng(opts.seed, `wrong:${i}`)).slice(0, dislikes))
          const t = tally.get(`${likes}/${dislikes}`) ?? { own: [], lax: [] }
          for (let d = 0; d < opts.days; d++) {
            const date = new Date(Date.UTC(2027, 0, 1 + d)).toISOString().slice(0, 10)
            const day = await model.wordOfTheDay({ user, date })
            const j = person.judge(day.word)
            t.own.push(j.own)
            t.lax.push(j.ownWithLiked)
          }
          tally.set(`${likes}/${dislikes}`, t)
        } finally {
          await model.forget(user)
        }
      }
    }
    opts.onPerson?.(i + 1)
  }
  for (const likes of CURVE_LIKES) {
    for (const dislikes of [0, CURVE_DISLIKES]) {
      const t = tally.get(`${likes}/${dislikes}`)
      if (t) points.push({ likes, dislikes, ownCell: shareOf(t.own), ownCellLax: shareOf(t.lax) })
    }
  }
  return points
}
