/**
 * wotd-ml: learns which words a person likes and writes new ones to match.
 *
 * Stage 1 corpus -> Stage 2 embeddings -> Stage 3 semantic IDs -> Stage 4 DSL model.
 */
import { native } from './native.js'

export * from './errors.js'
export * from './types.js'
export * from './models/index.js'
export * from './corpus/index.js'
export * from './store/index.js'
export * from './cache/index.js'
export * from './embed/index.js'
export * from './semantic/index.js'
export * from './pipeline/index.js'
export * from './catalogue/index.js'
export * from './recommend/index.js'
export * from './eval/index.js'
export * from './report/index.js'
export { serve, MIN_TOKEN_LENGTH, type ServeOptions, type RunningServer } from './server/index.js'
// Stage 4 on its own (any adapter). The package-level `generateWordsFromId` is the pipeline's
// (it loads a trained run); the adapter-level one is exported as `generateWordsWithAdapter`.
export {
  DSLTrainer,
  WordGenerator,
  mergeAdapter,
  generateWordsFromId as generateWordsWithAdapter,
  DEFAULT_DSL_BASE_MODEL,
  type DSLWord,
  type DSLExample,
  type DSLTrainData,
  type DSLLoraOptions,
  type DSLTrainOptions,
  type DSLTrainResult,
  type DSLTrainProgress,
  type WordGeneratorLoadOptions,
  type GenerateWordsOptions,
  type GenerateWordsResult,
  type MergeAdapterOptions,
  type Quantize,
  checkSampling,
  MAX_WORDS,
  type SamplingOptions,
} from './dsl/index.js'

/** Version of the loaded native core; loading it proves the addon for this platform works. */
export function nativeVersion(): string {
  return native().nativeVersion()
}
