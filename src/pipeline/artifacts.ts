/**
 * `RunArtifacts`: the one place that knows what a run keeps in the store, under which names
 * (`runs/<id>/<file>`) and roles (the keys of a stage's `artifacts` map), and how to read each
 * back. Stages write through it, and inference, the report and the benchmark read through it,
 * so a name or a layout is changed here or nowhere.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { embeddingsFromBytes, embeddingsToBytes, type Embeddings } from '../embed/matrix.js'
import { CorruptFileError, StoreError } from '../errors.js'
import type { SemanticId } from '../semantic/index.js'
import type { ArtifactRef, RunDoc, Store } from '../store/index.js'

/** Groups of files a stage copies from a folder: codebooks, the LoRA adapter, the prompt note. */
export type ArtifactGroup = 'rvq' | 'adapter' | 'dsl'

/** Artifact names of a run: `runs/<id>/<name>`. */
export function artifactName(runId: string, name: string): string {
  return `runs/${runId}/${name}`
}

/**
 * The key of an artifact in a stage's `artifacts` map: stores refuse `.` in document keys
 * (FerretDB does), so `adapter_model.safetensors` of group `adapter` becomes
 * `adapter_adapter_model_safetensors`; the file name itself stays in the artifact's name.
 */
export function artifactRole(group: string, file: string): string {
  return `${group}_${file.replace(/[^A-Za-z0-9_-]/g, '_')}`
}

const EMBEDDINGS_FILE = 'embeddings.f32'
const EMBEDDING_WORDS_FILE = 'embeddings.words.json'
const CATALOGUE_IDS_FILE = 'catalogue/ids.u8'

function refOf(info: ArtifactRef): ArtifactRef {
  return { name: info.name, sha256: info.sha256, size: info.size }
}

/** A training word of a run, with its vector and semantic ID (novelty, the report). */
export interface KnownWord {
  word: string
  vector: Float32Array
  id: SemanticId
}

/** The training words of a run and their vectors: row i of `embeddings` is `words[i]`. */
export interface RunEmbeddings {
  words: string[]
  embeddings: Embeddings
}

export class RunArtifacts {
  constructor(
    readonly store: Store,
    readonly run: Pick<RunDoc, 'id' | 'stages'>,
  ) {}

  private refs(stage: string): Record<string, ArtifactRef> {
    return this.run.stages[stage]?.artifacts ?? {}
  }

  /** The bytes of one artifact, verified against its recorded sha256; null when absent. */
  private async read(stage: string, role: string, legacyFile?: string): Promise<Buffer | null> {
    const ref = this.refs(stage)[role]
    if (ref) return this.store.getArtifact(ref.name, { sha256: ref.sha256 })
    // Runs from before roles were recorded: the name alone, unverified.
    return legacyFile ? this.store.getArtifact(artifactName(this.run.id, legacyFile)) : null
  }

  private async require(stage: string, role: string, legacyFile?: string): Promise<Buffer> {
    const buf = await this.read(stage, role, legacyFile)
    if (!buf) throw new StoreError(`run ${this.run.id}: its ${stage} ${role} artifact is missing from ${this.store.location}`)
    return buf
  }

  // -- embed --------------------------------------------------------------------------------

  /** Saves the training words' matrix and its row order; returns the stage's artifact map. */
  async putEmbeddings(value: RunEmbeddings, model: string): Promise<Record<string, ArtifactRef>> {
    const { words, embeddings } = value
    const info = await this.store.putArtifact(artifactName(this.run.id, EMBEDDINGS_FILE), embeddingsToBytes(embeddings), {
      contentType: 'application/octet-stream',
      meta: { dim: embeddings.dim, rows: embeddings.rows, model },
    })
    // The row order of the matrix, so readers never depend on any store's iteration order.
    const order = await this.store.putArtifact(artifactName(this.run.id, EMBEDDING_WORDS_FILE), Buffer.from(JSON.stringify(words)), {
      contentType: 'application/json',
    })
    return { embeddings: refOf(info), words: refOf(order) }
  }

  /**
   * The training words' matrix. Its width comes from the embed stage's metrics (else from the
   * byte count and the word list); a size that does not fit is a `CorruptFileError`.
   */
  async embeddings(): Promise<RunEmbeddings> {
    const [bytes, order] = await Promise.all([this.require('embed', 'embeddings', EMBEDDINGS_FILE), this.require('embed', 'words', EMBEDDING_WORDS_FILE)])
    const words = JSON.parse(order.toString('utf8')) as unknown
    if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) {
      throw new CorruptFileError(`run ${this.run.id}: its embeddings word list is not a JSON list of words`)
    }
    const metricDim = Number((this.run.stages.embed?.metrics as { dimension?: unknown } | undefined)?.dimension)
    const dim = Number.isInteger(metricDim) && metricDim > 0 ? metricDim : words.length ? bytes.byteLength / 4 / words.length : 0
    try {
      return { words, embeddings: embeddingsFromBytes(bytes, dim, words.length) }
    } catch (err) {
      throw new CorruptFileError(`run ${this.run.id}: its embeddings artifact has ${bytes.byteLength} bytes, which is not ${words.length} words x ${dim} float32`, { cause: err })
    }
  }

  // -- catalogue ----------------------------------------------------------------------------

  async putCatalogueIds(ids: Uint8Array, meta: Record<string, unknown>): Promise<Record<string, ArtifactRef>> {
    const info = await this.store.putArtifact(artifactName(this.run.id, CATALOGUE_IDS_FILE), Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength), {
      contentType: 'application/octet-stream',
      meta,
    })
    return { ids: refOf(info) }
  }

  /** Four codes per catalogue row, or null when the run has none (or of another size). */
  async catalogueIds(rows: number): Promise<Uint8Array | null> {
    const buf = await this.read('catalogue', 'ids')
    return buf && buf.length === rows * 4 ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : null
  }

  // -- folders: codebooks, adapter, prompt note ---------------------------------------------

  /** Copies files of a folder into the store as one group; returns their roles and refs. */
  async putFolder(group: ArtifactGroup, dir: string, files?: readonly string[]): Promise<Record<string, ArtifactRef>> {
    const out: Record<string, ArtifactRef> = {}
    for (const f of files ?? (await readdir(dir))) {
      const info = await this.store.putArtifact(artifactName(this.run.id, `${group}/${f}`), await readFile(join(dir, f)))
      out[artifactRole(group, f)] = refOf(info)
    }
    return out
  }

  /** Restores the files of some groups of a stage into a folder, each verified by its sha256. */
  async restoreFolder(stage: string, groups: readonly ArtifactGroup[], dir: string): Promise<void> {
    await mkdir(dir, { recursive: true })
    for (const [role, ref] of Object.entries(this.refs(stage))) {
      if (!groups.some((g) => role.startsWith(`${g}_`))) continue
      await this.store.getArtifactToFile(ref.name, join(dir, basename(ref.name)), { sha256: ref.sha256 })
    }
  }

  // -- whole run ----------------------------------------------------------------------------

  /** Bytes a stage keeps in the store, optionally of the roles starting with `prefix`. */
  bytes(stage: string, prefix = ''): number {
    return Object.entries(this.refs(stage))
      .filter(([role]) => role.startsWith(prefix))
      .reduce((sum, [, a]) => sum + (a.size ?? 0), 0)
  }

  /** What is wrong with a finished stage's artifacts: missing, or bytes unlike their sha256. */
  async damaged(stage: string): Promise<string[]> {
    const out: string[] = []
    for (const ref of Object.values(this.refs(stage))) {
      try {
        const bytes = await this.store.getArtifact(ref.name, { sha256: ref.sha256 })
        if (!bytes) out.push(`its artifact ${ref.name} is missing`)
      } catch (err) {
        if (!(err instanceof CorruptFileError)) throw err
        out.push(`its artifact ${ref.name} is damaged`)
      }
    }
    return out
  }
}
