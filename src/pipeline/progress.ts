/** Progress events of a pipeline run, one shape for every stage. */
export type StageName = 'corpus' | 'embed' | 'rvq' | 'catalogue' | 'dsl'

export const STAGES: readonly StageName[] = ['corpus', 'embed', 'rvq', 'catalogue', 'dsl']

export interface PipelineProgress {
  stage: StageName
  /** `start`, `progress`, `skip` (finished earlier with the same inputs), `done`. */
  phase: 'start' | 'progress' | 'skip' | 'done'
  done?: number
  total?: number
  /** Training loss and friends, for the DSL stage. */
  loss?: number
  valLoss?: number
  tokensPerSecond?: number
  etaSeconds?: number
  message?: string
}
