/** Stage 1: the word corpora (OpenAI or the bundled lexicon), saved per cell in the store. */
import { generateCorpus, type CorpusResult } from '../../corpus/index.js'
import type { WOTDWord } from '../../types.js'
import { hashOf } from '../config.js'
import type { RunContext } from '../run-context.js'

export interface CorpusOutput {
  words: WOTDWord[]
  setId: string
  provider: string
  /** Hash of the word list and labels: the input of the stages after this one. */
  hash: string
  result: CorpusResult
}

export async function runCorpusStage(ctx: RunContext): Promise<CorpusOutput> {
  const c = ctx.config.corpus
  const result = await generateCorpus({
    provider: c.provider,
    cells: c.cells as never,
    wordsPerCorpus: c.wordsPerCorpus,
    seed: ctx.config.seed,
    store: ctx.store,
    batch: c.batch,
    openai: { model: c.model, baseURL: c.baseURL },
    signal: ctx.signal,
    onEvent: (e) => {
      if (e.type === 'notice') ctx.emit({ stage: 'corpus', phase: 'progress', message: e.message })
      if (e.type === 'progress') ctx.emit({ stage: 'corpus', phase: 'progress', done: e.wordsDone, total: e.wordsTotal })
    },
  })
  const words = result.corpora.flatMap((k) => k.words)
  const hash = hashOf(
    'corpus',
    words.map((w) => [w.word, w.style, w.complexity, w.era, w.definition]),
  )
  return { words, setId: result.setId, provider: result.provider, hash, result }
}
