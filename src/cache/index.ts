/** The unified local cache (DESIGN.md "Storage"): content-addressed, checksummed, atomic. */
export { EmbeddingCache, cacheDir, embeddingKey, type CacheStats, type CachedEmbedding, type EmbeddingSpace } from './embeddings.js'
export { SegmentStore, atomicWrite } from './store.js'
