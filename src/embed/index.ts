/** Stage 2: text -> L2-normalised vectors (native BERT / XLM-RoBERTa encoders + the unified cache). */
export {
  BGEEmbedder,
  cosine,
  meanVector,
  type EmbedOptions,
  type EmbedProgress,
  type EmbedResult,
  type EmbedderLoadOptions,
  type PoolingMode,
} from './embedder.js'
export { dotAll, dotMany, meanOfRows, row, toMatrix, type Embeddings } from './matrix.js'
export { embeddingText } from './text.js'
