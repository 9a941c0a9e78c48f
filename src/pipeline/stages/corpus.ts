/** Stage 1: the word corpora (OpenAI or the bundled lexicon), saved per cell in the store. */
import { generateCorpus, type CorpusResult } from '../../corpus/index.js'
import type { WOTDWord } from '../../types.js'
import { hashOf } from '../config.js'
import type { RunContext } from '../run-context.js'
import type { Stage } from '../stage.js'

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

/** The corpus words and their hash (the input of the stages after this one). */
export interface CorpusWords {
  words: WOTDWord[]
  hash: string
}

/**
 * The corpus is saved per cell by the generator itself, so running it again is cheap and
 * idempotent: restoring a finished stage is running it again (no model call is repeated).
 */
export function corpusStage(ctx: RunContext): Stage<CorpusWords> {
  const words = async () => {
    const out = await runCorpusStage(ctx)
    return { out, value: { words: out.words, hash: out.hash } }
  }
  return {
    name: 'corpus',
    inputHash: hashOf('corpus-config', ctx.config.corpus, ctx.config.seed),
    async run() {
      const { out, value } = await words()
      return { value, metrics: { words: out.words.length, cells: out.result.corpora.length, setId: out.setId, provider: out.provider, wordsHash: out.hash, usage: out.result.usage } }
    },
    restore: async () => (await words()).value,
  }
}
