/**
 * The catalogue stage: every word of the word catalogue gets this run's semantic ID. The
 * catalogue's vectors are embedded once per embedder and kept in the unified cache; only the
 * encoding (seconds) is per run. The IDs go to the store as an artifact, 4 bytes a word, with
 * the catalogue's content hash so a reader never pairs them with another word list.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { readBlob, writeBlob } from '../../cache/blob.js'
import { cacheDir } from '../../cache/embeddings.js'
import { Catalogue } from '../../catalogue/catalogue.js'
import { catalogueVectors } from '../../catalogue/vectors.js'
import type { BGEEmbedder, Embeddings } from '../../embed/index.js'
import { CatalogueIndex } from '../../recommend/index.js'
import type { AttributeProbabilities, SemanticEncoder } from '../../semantic/index.js'
import type { RunDoc } from '../../store/index.js'
import type { RunArtifacts } from '../artifacts.js'
import { hashOf } from '../config.js'
import type { RunContext } from '../run-context.js'
import type { Stage } from '../stage.js'

/** Bumped when what this stage writes changes. */
export const CATALOGUE_STAGE_SCHEMA = 1

export interface CatalogueStageOutput {
  metrics: Record<string, unknown>
}

export async function runCatalogueStage(ctx: RunContext, encoder: SemanticEncoder, embedder: BGEEmbedder): Promise<CatalogueStageOutput> {
  const t0 = Date.now()
  const catalogue = await Catalogue.load()
  ctx.emit({ stage: 'catalogue', phase: 'progress', done: 0, total: catalogue.size, message: `${catalogue.size} words` })
  const t1 = Date.now()
  const vectors = await catalogueVectors(catalogue, embedder, {
    signal: ctx.signal,
    onProgress: (p) => ctx.emit({ stage: 'catalogue', phase: 'progress', done: p.done, total: p.total }),
  })
  const t2 = Date.now()
  const ids = encodeCatalogue(catalogue, vectors, encoder)
  const t3 = Date.now()
  ctx.run.stages.catalogue.artifacts = await ctx.artifacts.putCatalogueIds(ids, { rows: catalogue.size, catalogueHash: catalogue.hash })
  const regions = new Set<number>()
  for (let i = 0; i < catalogue.size; i++) regions.add((ids[4 * i] << 10) | (ids[4 * i + 1] << 5) | ids[4 * i + 2])
  return {
    metrics: {
      words: catalogue.size,
      catalogueHash: catalogue.hash,
      withDefinition: catalogue.entries.filter((e) => e.definition).length,
      sources: catalogue.sources.map((s) => `${s.name}@${s.version}`),
      cachedRows: vectors.cachedRows,
      vectorBytes: vectors.diskBytes,
      regions3: regions.size,
      loadMs: t1 - t0,
      embedMs: t2 - t1,
      encodeMs: t3 - t2,
    },
  }
}

/** Keyed by the codebooks' input: the catalogue IDs change exactly when the codebooks do. */
export function catalogueStage(ctx: RunContext, rvqInputHash: string, encoder: () => Promise<SemanticEncoder>, embedder: BGEEmbedder): Stage<void> {
  return {
    name: 'catalogue',
    inputHash: hashOf('catalogue', rvqInputHash, CATALOGUE_STAGE_SCHEMA),
    async run() {
      const out = await runCatalogueStage(ctx, await encoder(), embedder)
      return { value: undefined, metrics: out.metrics }
    },
    // Readers open the IDs when they need them (`openCatalogueIndex`).
    restore: async () => undefined,
  }
}

/** IDs of every catalogue row (4 codes a row), with each word's frequency and senses. */
export function encodeCatalogue(catalogue: Catalogue, vectors: Embeddings, encoder: SemanticEncoder): Uint8Array {
  const ids = encoder.encodeMany(vectors, { facts: catalogue.entries })
  const out = new Uint8Array(ids.length * 4)
  ids.forEach((id, i) => out.set(id, 4 * i))
  return out
}

/**
 * A run's catalogue, ready to rank: vectors from the unified cache (embedded first when this
 * machine has none, with progress), IDs from the run's catalogue stage, or encoded now for a
 * run made before that stage existed or when the installed catalogue is not the run's.
 */
export async function openCatalogueIndex(opts: {
  artifacts: RunArtifacts
  encoder: SemanticEncoder
  embedder: BGEEmbedder
  trainingWords: Iterable<string>
  onProgress?: (p: { done: number; total: number; cached: number }) => void
  signal?: AbortSignal
}): Promise<CatalogueIndex> {
  const catalogue = await Catalogue.load()
  const vectors = await catalogueVectors(catalogue, opts.embedder, { onProgress: opts.onProgress, signal: opts.signal })
  const { run } = opts.artifacts
  const sameList = (run.stages.catalogue?.metrics as { catalogueHash?: string } | undefined)?.catalogueHash === catalogue.hash
  const saved = sameList ? await opts.artifacts.catalogueIds(catalogue.size) : null
  const ids = saved ?? encodeCatalogue(catalogue, vectors, opts.encoder)
  const probs = opts.encoder.predictor ? await cachedProbabilities(run, catalogue, opts.embedder, () => opts.encoder.probabilities(vectors, catalogue.entries)) : undefined
  return CatalogueIndex.build(catalogue, vectors, ids, opts.encoder, opts.trainingWords, probs)
}

/**
 * The run's attribute probabilities of every catalogue word, kept in the unified cache: they
 * cost a third of a second at every start otherwise. Keyed by everything they depend on (the
 * run's RVQ artifacts, the catalogue, the embedding space); a damaged file is recomputed.
 */
async function cachedProbabilities(run: Pick<RunDoc, 'id' | 'stages'>, catalogue: Catalogue, embedder: BGEEmbedder, compute: () => AttributeProbabilities): Promise<AttributeProbabilities> {
  const rvq = Object.values(run.stages.rvq?.artifacts ?? {}).map((a) => a.sha256).sort()
  const key = createHash('sha256').update(JSON.stringify(['wotd-catalogue-probs/1', run.id, rvq, catalogue.hash, catalogue.size, embedder.space])).digest('hex').slice(0, 32)
  const file = join(cacheDir(), 'catalogue', `probs-${key}.bin`)
  const hit = await readBlob(file).catch(() => ({ payload: undefined }))
  if (hit.payload && hit.payload.length === catalogue.size * 12 * 4) {
    const data = new Float32Array(hit.payload.buffer.slice(hit.payload.byteOffset, hit.payload.byteOffset + hit.payload.length))
    return { data, rows: catalogue.size }
  }
  const probs = compute()
  // A cache that cannot be written (read-only home) only costs the time again next start.
  await writeBlob(file, Buffer.from(probs.data.buffer, probs.data.byteOffset, probs.data.byteLength)).catch(() => {})
  return probs
}
