// The evaluation's metrics on tiny hand-made cases whose answers are known.
import test from 'ava'
import { attributePrecision, distinct1, hitAtK, membership, nearestCentroid, percentiles, wilson, type Values } from '../src/eval/index.js'

test('Wilson 95% intervals match the textbook values', (t) => {
  const a = wilson(5, 10)
  t.is(a.value, 0.5)
  t.true(Math.abs(a.low - 0.2366) < 1e-4 && Math.abs(a.high - 0.7634) < 1e-4, `${a.low} ${a.high}`)
  const b = wilson(0, 20)
  t.is(b.low, 0)
  t.true(Math.abs(b.high - 0.1611) < 1e-4, `${b.high}`)
  const c = wilson(20, 20)
  t.is(c.high, 1)
  t.true(Math.abs(c.low - 0.8389) < 1e-4, `${c.low}`)
  t.deepEqual(wilson(0, 0), { k: 0, n: 0, value: 0, low: 0, high: 0 })
})

test('attribute precision counts each requested attribute, and all three jointly', (t) => {
  const gold = new Map<string, Values>([
    ['a', [0, 1, 2]],
    ['b', [0, 2, 2]],
    ['c', [1, 1, 2]],
    ['d', [0, 1, 2]],
  ])
  const r = attributePrecision(
    [
      { requested: [0, 1, 2], words: ['a', 'b', 'c', 'unknown'] },
      // Style left free: only complexity and era count for this answer.
      { requested: [null, 1, 2], words: ['d'] },
    ],
    gold,
  )
  t.deepEqual(r.perAttribute.map((s) => [s.k, s.n]), [
    [2, 3],
    [3, 4],
    [4, 4],
  ])
  t.deepEqual([r.joint.k, r.joint.n], [2, 4])
  t.is(r.unlabeled, 1)
})

test('hit@k, distinct-1, membership, nearest centroid and percentiles', (t) => {
  t.deepEqual(hitAtK(['x', 'y', 'z'], ['y', 'q'], 10), { hits: 1, possible: 2 })
  t.deepEqual(hitAtK(['x', 'y', 'z'], ['z'], 2), { hits: 0, possible: 1 }, 'only the first k count')
  t.is(distinct1(['a', 'b', 'a', 'c']), 0.75)
  t.is(distinct1([]), 0)
  const m = membership(['a', 'b', 'c', 'd'], new Set(['a', 'c', 'd']))
  t.deepEqual([m.k, m.n], [3, 4])
  const centroids = [Float32Array.from([1, 0]), Float32Array.from([0, 1]), Float32Array.from([-1, 0])]
  t.is(nearestCentroid(Float32Array.from([0.2, 0.9]), centroids), 1)
  t.is(nearestCentroid(Float32Array.from([-0.9, 0.1]), centroids), 2)
  t.deepEqual(percentiles([5, 1, 4, 2, 3]), { p50: 3, p95: 5 })
})
