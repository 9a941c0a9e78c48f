/** `models list`: every model the profiles name, and whether and where it is on this machine. */
import { findModel } from './locate.js'
import { PROFILES, type ProfileName } from './profiles.js'
import { registryEntry } from './registry.js'

export interface ModelStatus {
  id: string
  role: 'embedder' | 'decoder'
  profiles: ProfileName[]
  status: 'present' | 'missing'
  source: string | null
  dir: string | null
  files: { path: string; size: number }[]
  sizeBytes: number
  /** The registry package that carries it, if any (`package==version`). */
  registryPackage: string | null
}

export async function listModels(): Promise<ModelStatus[]> {
  const byId = new Map<string, ModelStatus>()
  for (const p of Object.values(PROFILES)) {
    for (const role of ['embedder', 'decoder'] as const) {
      for (const id of p[role]) {
        const seen = byId.get(id)
        if (seen) {
          if (!seen.profiles.includes(p.name)) seen.profiles.push(p.name)
          continue
        }
        const loc = await findModel(id)
        const reg = registryEntry(id)
        byId.set(id, {
          id,
          role,
          profiles: [p.name],
          status: loc ? 'present' : 'missing',
          source: loc?.source ?? null,
          dir: loc?.dir ?? null,
          files: loc?.files ?? [],
          sizeBytes: loc?.sizeBytes ?? 0,
          registryPackage: reg ? `${reg.source.package}==${reg.source.version}` : null,
        })
      }
    }
  }
  return [...byId.values()]
}
