/**
 * Stage 3: semantic IDs. Codebooks are trained on the corpus embeddings (aligned to the
 * words' style / complexity / era by default), saved as artifacts, and every word's ID is
 * written to the store's `semantic_ids`.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { SemanticEncoder, type SemanticId } from '../../semantic/index.js'
import { Catalogue } from '../../catalogue/catalogue.js'
import type { WOTDWord } from '../../types.js'
import { hashOf } from '../config.js'
import type { Embeddings } from '../../embed/index.js'
import type { RunArtifacts } from '../artifacts.js'
import type { RunContext } from '../run-context.js'
import type { Stage } from '../stage.js'

export interface RvqOutput {
  encoder: SemanticEncoder
  ids: SemanticId[]
  metrics: Record<string, unknown>
}

/** The training words' IDs, and the run's codebooks (loaded from the store on first use when restored). */
export interface RvqResult {
  ids: SemanticId[]
  encoder(): Promise<SemanticEncoder>
}

export async function runRvqStage(
  ctx: RunContext,
  words: WOTDWord[],
  vectors: Embeddings,
  embedderModelId: string,
): Promise<RvqOutput> {
  const labels = words.map((w) => ({ style: w.style, complexity: w.complexity, era: w.era }))
  const mode = ctx.config.rvq.mode
  const catalogue = mode === 'hybrid' ? await Catalogue.load() : undefined
  const encoder = await SemanticEncoder.train(vectors, {
    labels: mode === 'unsupervised' ? undefined : labels,
    facts: catalogue ? words.map((w) => catalogue.get(w.word) ?? { word: w.word }) : undefined,
    mode,
    seed: ctx.config.seed,
    iterations: ctx.config.rvq.iterations,
    embedderModelId,
    signal: ctx.signal,
    onProgress: (p) => ctx.emit({ stage: 'rvq', phase: 'progress', done: p.level + 1, total: 4, message: `level ${p.level} iteration ${p.iteration}` }),
  })
  // Training words keep their known values (as training assigned them); unseen words get
  // predicted ones.
  const ids = encoder.encodeMany(vectors, mode === 'unsupervised' ? {} : { labels })
  const m = await encoder.evaluate(vectors, labels)
  const metrics = {
    utilisation: m.utilisation,
    perplexity: m.perplexity,
    reconstruction: m.reconstruction,
    collisionRate3: m.collisionRate3,
    collisionRate4: m.collisionRate4,
    locality: m.locality,
    labelAccuracy: m.labelAccuracy ?? null,
    predictor: encoder.predictor
      ? { cvAccuracy: encoder.predictor.info.attributes.map((a) => a.cvAccuracy ?? null), temperature: encoder.predictor.info.attributes.map((a) => a.temperature) }
      : null,
    // One object per level: FerretDB (and so the store contract) has no nested arrays.
    nmi: m.nmi?.map((lv) => ({ style: lv[0], complexity: lv[1], era: lv[2] })) ?? null,
  }
  // Artifacts and semantic IDs first; the run document that points at them is saved after.
  const dir = join(ctx.workDir, 'rvq')
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  encoder.save(dir)
  const artifacts = await ctx.artifacts.putFolder('rvq', dir)
  await ctx.store.putSemanticIds(
    ctx.run.id,
    words.map((w, i) => [w.word, ids[i]] as const),
  )
  ctx.run.stages.rvq.artifacts = artifacts
  return { encoder, ids, metrics }
}

/** Restores a run's codebooks from the store into its work folder (verified) and loads them. */
export async function loadRunEncoder(artifacts: RunArtifacts, workDir: string): Promise<SemanticEncoder> {
  const dir = join(workDir, 'rvq')
  await artifacts.restoreFolder('rvq', ['rvq'], dir)
  return SemanticEncoder.load(dir)
}

/** Keyed by the embeddings' input, the RVQ settings and the seed. */
export function rvqStage(ctx: RunContext, words: WOTDWord[], vectors: Embeddings, embedInputHash: string, embedderModelId: string): Stage<RvqResult> {
  return {
    name: 'rvq',
    inputHash: hashOf('rvq', embedInputHash, ctx.config.rvq, ctx.config.seed),
    async run() {
      const out = await runRvqStage(ctx, words, vectors, embedderModelId)
      return { value: { ids: out.ids, encoder: async () => out.encoder }, metrics: out.metrics }
    },
    async restore() {
      const m = await ctx.store.getSemanticIds(ctx.run.id, words.map((w) => w.word))
      let encoder: Promise<SemanticEncoder> | undefined
      return { ids: words.map((w) => m.get(w.word) as SemanticId), encoder: () => (encoder ??= loadRunEncoder(ctx.artifacts, ctx.workDir)) }
    },
  }
}
