/** Evaluation of a trained run on held-out words (`npm run eval`). */
export { evaluate, type EvalOptions, type EvalReport, type SystemScores } from './harness.js'
export { evalMarkdown, SYSTEM_NAMES } from './markdown.js'
export { attributePrecision, distinct1, hitAtK, membership, nearestCentroid, percentiles, shareOf, wilson, type Share, type Values } from './metrics.js'
