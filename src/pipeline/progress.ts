/** Progress events of a pipeline run, one shape for every stage. */
export type StageName = 'corpus' | 'embed' | 'rvq' | 'catalogue' | 'dsl'

export const STAGES: readonly StageName[] = ['corpus', 'embed', 'rvq', 'catalogue', 'dsl']

export interface PipelineProgress {
  stage: StageName
  /**
   * `start`, `progress`, `skip` (finished earlier with the same inputs), `redo` (finished
   * earlier, but an artifact of it is missing or damaged: `message` says which; it runs again),
   * `done`.
   */
  phase: 'start' | 'progress' | 'skip' | 'redo' | 'done'
  done?: number
  total?: number
  /** Training loss and friends, for the DSL stage. */
  loss?: number
  valLoss?: number
  tokensPerSecond?: number
  etaSeconds?: number
  message?: string
}
