/**
 * The RVQ scorecard of the bench: unsupervised vs aligned codebooks trained on a seeded 80% of
 * a run's training words, structure metrics on all of them, label accuracy and NMI on the
 * held-out 20%, and the encoding rate.
 */
import { performance } from 'node:perf_hooks'
import { createRng, shuffled } from '../../src/corpus/random.ts'
import { selectRows, type Embeddings } from '../../src/embed/matrix.ts'
import type { AttributeLabels } from '../../src/semantic/index.ts'

type Metrics = Awaited<ReturnType<import('../../src/semantic/index.ts').SemanticEncoder['evaluate']>>

export interface ModeScore {
  trainS: number
  encodePerS: number
  all: Metrics
  heldOut: Pick<Metrics, 'points' | 'labelAccuracy' | 'nmi'>
}

export interface RvqScorecard {
  trainIdx: number[]
  heldIdx: number[]
  scores: Record<'unsupervised' | 'aligned', ModeScore>
}

export async function rvqScorecard(embeddings: Embeddings, labels: readonly AttributeLabels[], opts: { seed: number; iterations?: number }): Promise<RvqScorecard> {
  const { SemanticEncoder } = await import('../../src/semantic/index.ts')
  const now = () => performance.now() / 1000
  const order = shuffled(
    Array.from({ length: embeddings.rows }, (_, i) => i),
    createRng(opts.seed, 'bench-rvq-split'),
  )
  const cut = Math.round(order.length * 0.8)
  const trainIdx = order.slice(0, cut)
  const heldIdx = order.slice(cut)
  const scores = {} as RvqScorecard['scores']
  for (const mode of ['unsupervised', 'aligned'] as const) {
    const t = now()
    const enc = await SemanticEncoder.train(selectRows(embeddings, trainIdx), {
      mode,
      labels: mode === 'aligned' ? trainIdx.map((i) => labels[i]) : undefined,
      seed: opts.seed,
      iterations: opts.iterations,
    })
    const trainS = now() - t
    const all = await enc.evaluate(embeddings, [...labels])
    const held = await enc.evaluate(
      selectRows(embeddings, heldIdx),
      heldIdx.map((i) => labels[i]),
    )
    const te = now()
    let reps = 0
    while (now() - te < 0.5 || reps < 3) {
      enc.encodeMany(embeddings)
      reps++
    }
    scores[mode] = { trainS, encodePerS: (reps * embeddings.rows) / (now() - te), all, heldOut: { points: held.points, labelAccuracy: held.labelAccuracy, nmi: held.nmi } }
  }
  return { trainIdx, heldIdx, scores }
}
