/** A pipeline config on the tiny fixture models: the whole run takes seconds. */
import { join } from 'node:path'
import type { TrainingConfigInput } from '../../src/pipeline/index.js'

const fixtures = join(import.meta.dirname, '..', '..', 'data', 'fixtures')

export const tinyConfig: TrainingConfigInput = {
  embedderModel: join(fixtures, 'bert'),
  decoderModel: join(fixtures, 'llama'),
  corpus: { provider: 'lexicon', wordsPerCorpus: 10 },
  // The fixture LM has 128 positions and a letter-level tokenizer: no system message or seed
  // words fit beside a request.
  dsl: { steps: 6, batchSize: 4, evalEvery: 3, checkpointEvery: 2, warmupSteps: 1, maxPatternsPerKind: 8, wordsPerExample: 4, systemPrompt: '', seedWords: 0 },
}
