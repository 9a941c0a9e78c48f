/**
 * Stage 2: one L2-normalised vector per corpus word, embedded with its definition
 * (`embeddingText`). The unified cache makes a re-run cheap;
 * the vectors are also kept as an artifact (little-endian f32, row per word) for the
 * retrieval baseline and the report.
 */
import { BGEEmbedder, embeddingText, type Embeddings } from '../../embed/index.js'
import type { WOTDWord } from '../../types.js'
import { hashOf } from '../config.js'
import type { RunContext } from '../run-context.js'
import type { Stage } from '../stage.js'
import type { CorpusWords } from './corpus.js'

/** Bumped when the text a word is embedded as changes (it keys the stages after this one). */
export const EMBED_TEXT_SCHEMA = 'word: definition/1'

export interface EmbedOutput {
  embedder: BGEEmbedder
  /** Row i is the vector of word i. */
  vectors: Embeddings
  cache: { hits: number; misses: number }
}

export async function loadEmbedder(ctx: RunContext): Promise<BGEEmbedder> {
  return BGEEmbedder.load(ctx.config.embedderModel ?? ctx.config.profile)
}

export async function runEmbedStage(ctx: RunContext, words: WOTDWord[], embedder: BGEEmbedder): Promise<EmbedOutput> {
  const r = await embedder.embedDetailed(
    words.map((w) => embeddingText(w.word, w.definition)),
    {
      batchSize: ctx.config.embed.batchSize,
      signal: ctx.signal,
      onProgress: (p) => ctx.emit({ stage: 'embed', phase: 'progress', done: p.done, total: p.total }),
    },
  )
  ctx.run.stages.embed.artifacts = await ctx.artifacts.putEmbeddings({ words: words.map((w) => w.word), embeddings: r.embeddings }, embedder.modelId)
  return { embedder, vectors: r.embeddings, cache: r.cache }
}

/** Keyed by the corpus and the embedding space (model, revision, pooling, width, text form). */
export function embedStage(ctx: RunContext, corpus: CorpusWords, embedder: BGEEmbedder): Stage<Embeddings> {
  const { words } = corpus
  return {
    name: 'embed',
    inputHash: hashOf('embed', corpus.hash, embedder.modelId, embedder.revision, embedder.pooling, embedder.dimension, EMBED_TEXT_SCHEMA),
    async run() {
      const out = await runEmbedStage(ctx, words, embedder)
      return { value: out.vectors, metrics: { words: words.length, model: embedder.modelId, dimension: embedder.dimension, pooling: embedder.pooling, cacheHits: out.cache.hits, cacheMisses: out.cache.misses } }
    },
    restore: async () => (await ctx.artifacts.embeddings()).embeddings,
  }
}
