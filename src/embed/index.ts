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
export { asEmbeddings, dotAll, dotMany, embeddingsFromBytes, embeddingsToBytes, meanOfRows, row, rows, selectRows, toMatrix, type Embeddings, type Vectors } from './matrix.js'
export { embeddingText } from './text.js'
