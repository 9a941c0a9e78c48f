/**
 * Stage 2: one L2-normalised vector per corpus word, embedded with its definition
 * (`embeddingText`). The unified cache makes a re-run cheap;
 * the vectors are also kept as an artifact (little-endian f32, row per word) for the
 * retrieval baseline and the report.
 */
import { BGEEmbedder, embeddingText } from '../../embed/index.js'
import type { WOTDWord } from '../../types.js'
import { hashOf } from '../config.js'
import { artifactName, type RunContext } from '../run-context.js'

/** Bumped when the text a word is embedded as changes (it keys the stages after this one). */
export const EMBED_TEXT_SCHEMA = 'word: definition/1'

export interface EmbedOutput {
  embedder: BGEEmbedder
  vectors: Float32Array[]
  hash: string
  cache: { hits: number; misses: number }
}

export function embeddingSpaceHash(e: BGEEmbedder): unknown {
  return { model: e.modelId, revision: e.revision, pooling: e.pooling, dim: e.dimension, maxLength: e.maxLength }
}

export async function loadEmbedder(ctx: RunContext): Promise<BGEEmbedder> {
  return BGEEmbedder.load(ctx.config.embedderModel ?? ctx.config.profile)
}

export function packVectors(vectors: readonly Float32Array[]): Buffer {
  const dim = vectors[0]?.length ?? 0
  const out = new Float32Array(vectors.length * dim)
  vectors.forEach((v, i) => out.set(v, i * dim))
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
}

export function unpackVectors(buf: Buffer, dim: number): Float32Array[] {
  const copy = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
  const out: Float32Array[] = []
  for (let i = 0; i < copy.length; i += dim) out.push(copy.subarray(i, i + dim))
  return out
}

export async function runEmbedStage(ctx: RunContext, words: WOTDWord[], corpusHash: string, embedder: BGEEmbedder): Promise<EmbedOutput> {
  const r = await embedder.embedDetailed(
    words.map((w) => embeddingText(w.word, w.definition)),
    {
      batchSize: ctx.config.embed.batchSize,
      signal: ctx.signal,
      onProgress: (p) => ctx.emit({ stage: 'embed', phase: 'progress', done: p.done, total: p.total }),
    },
  )
  const hash = hashOf('embed', corpusHash, embeddingSpaceHash(embedder))
  const info = await ctx.store.putArtifact(artifactName(ctx.run.id, 'embeddings.f32'), packVectors(r.vectors), {
    contentType: 'application/octet-stream',
    meta: { dim: embedder.dimension, rows: r.vectors.length, model: embedder.modelId },
  })
  // The row order of the matrix, so readers never depend on any store's iteration order.
  const order = await ctx.store.putArtifact(artifactName(ctx.run.id, 'embeddings.words.json'), Buffer.from(JSON.stringify(words.map((w) => w.word))), {
    contentType: 'application/json',
  })
  ctx.run.stages.embed.artifacts = {
    embeddings: { name: info.name, sha256: info.sha256, size: info.size },
    words: { name: order.name, sha256: order.sha256, size: order.size },
  }
  return { embedder, vectors: r.vectors, hash, cache: r.cache }
}
