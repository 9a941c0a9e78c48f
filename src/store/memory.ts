/** An in-memory `CorpusStore` (tests, or callers that keep nothing). */
import { cellIndex, type Cell } from '../types.js'
import { cellSlug, type CorpusStore, type StoredCorpus } from './types.js'

export class MemoryStore implements CorpusStore {
  readonly kind = 'memory'
  readonly location = 'memory'
  private corpora = new Map<string, string>()
  private state = new Map<string, string>()

  async getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null> {
    const s = this.corpora.get(`${setId}/${cellSlug(cell)}`)
    return s === undefined ? null : (JSON.parse(s) as StoredCorpus)
  }

  async putCorpus(doc: StoredCorpus): Promise<void> {
    this.corpora.set(`${doc.setId}/${cellSlug(doc.cell)}`, JSON.stringify(doc))
  }

  async listCorpora(setId?: string): Promise<StoredCorpus[]> {
    return [...this.corpora.values()]
      .map((s) => JSON.parse(s) as StoredCorpus)
      .filter((d) => setId === undefined || d.setId === setId)
      .sort((a, b) => (a.setId === b.setId ? cellIndex(a.cell) - cellIndex(b.cell) : a.setId < b.setId ? -1 : 1))
  }

  async deleteCorpus(setId: string, cell: Cell): Promise<boolean> {
    return this.corpora.delete(`${setId}/${cellSlug(cell)}`)
  }

  async getState<T = unknown>(key: string): Promise<T | null> {
    const s = this.state.get(key)
    return s === undefined ? null : (JSON.parse(s) as T)
  }

  async putState(key: string, value: unknown): Promise<void> {
    if (value === null || value === undefined) this.state.delete(key)
    else this.state.set(key, JSON.stringify(value))
  }

  async close(): Promise<void> {}
}
