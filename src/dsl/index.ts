export {
  DSLTrainer,
  type DSLWord,
  type DSLExample,
  type DSLTrainData,
  type DSLLoraOptions,
  type DSLRunOptions,
  type DSLSessionOptions,
  type DSLTrainOptions,
  type DSLResumeOptions,
  type DSLTrainResult,
  type DSLTrainProgress,
} from './trainer.js'
export {
  WordGenerator,
  generateWordsFromId,
  mergeAdapter,
  DEFAULT_DSL_BASE_MODEL,
  DSL_MANIFEST,
  PROMPT_NOTE,
  attributeOptions,
  type WordGeneratorLoadOptions,
  type GenerateWordsOptions,
  type GenerateWordsResult,
  type MergeAdapterOptions,
  type PatternInput,
  type Quantize,
} from './generator.js'
export { checkSampling, MAX_WORDS, type SamplingOptions } from './sampling.js'
