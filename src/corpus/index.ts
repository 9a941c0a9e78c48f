/** Stage 1: word corpora from a provider (OpenAI-compatible server or the bundled lexicon). */
export * from './generator.js'
export * from './provider.js'
export { OpenAIProvider, DEFAULT_PRICES, DEFAULT_OPENAI_MODEL, priceFor, type ModelPrice, type OpenAIProviderOptions, type OpenAIBatchOptions } from './openai.js'
export {
  LexiconProvider,
  loadLexicon,
  lexiconByCell,
  lexiconOrder,
  lexiconStats,
  sampleLexicon,
  defaultLexiconDir,
  type LexiconEntry,
  type LexiconProviderOptions,
} from './lexicon.js'
export { createRng, hash32, shuffled, type Rng } from './random.js'
export { normalizeWord, normalizeDefinition, isWellFormedWord, redact, MIN_WORD_LENGTH, MAX_WORD_LENGTH } from './validate.js'
export { ATTRIBUTE_MEANINGS, WordListSchema } from './prompt.js'
