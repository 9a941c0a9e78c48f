/**
 * Copies a trained run between stores (a folder and MongoDB, say): its artifacts, each checked
 * against the sha256 its run records, then its semantic IDs, then the run document last, so
 * the target never shows a completed run whose parts are missing (the store's write order).
 */
import { InvalidInputError } from '../errors.js'
import type { RunDoc, Store } from './types.js'

export async function copyRun(from: Store, to: Store, runId: string): Promise<RunDoc> {
  const run = await from.getRun(runId)
  if (!run) throw new InvalidInputError(`unknown run id ${JSON.stringify(runId)} in ${from.location}; list runs with \`wotd runs list\``)
  for (const stage of Object.values(run.stages)) {
    for (const ref of Object.values(stage.artifacts ?? {})) {
      const bytes = await from.getArtifact(ref.name, { sha256: ref.sha256 })
      if (!bytes) throw new InvalidInputError(`run ${run.id}: artifact ${ref.name} is missing from ${from.location}`)
      const info = await from.statArtifact(ref.name)
      await to.putArtifact(ref.name, bytes, { contentType: info?.contentType, meta: info?.meta })
    }
  }
  await to.putSemanticIds(run.id, await from.getSemanticIds(run.id))
  await to.putRun(run)
  return run
}
