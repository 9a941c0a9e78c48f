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

export interface RvqOutput {
  encoder: SemanticEncoder
  ids: SemanticId[]
  hash: string
  metrics: Record<string, unknown>
}

export async function runRvqStage(
  ctx: RunContext,
  words: WOTDWord[],
  vectors: Embeddings,
  embedHash: string,
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
  const hash = hashOf('rvq', embedHash, ctx.config.rvq, ctx.config.seed)
  return { encoder, ids, hash, metrics }
}

/** Restores a run's codebooks from the store into its work folder (verified) and loads them. */
export async function loadRunEncoder(artifacts: RunArtifacts, workDir: string): Promise<SemanticEncoder> {
  const dir = join(workDir, 'rvq')
  await artifacts.restoreFolder('rvq', ['rvq'], dir)
  return SemanticEncoder.load(dir)
}
