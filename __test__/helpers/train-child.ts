// Runs the tiny pipeline into a store; with `--kill-at <stage>` it SIGKILLs itself once that
// stage is under way, as a crash or an OOM kill would.
import { WOTDTrainer } from '../../src/pipeline/index.js'
import { tinyConfig } from './tiny-pipeline.js'

const store = process.argv[2]
const killAt = process.argv.indexOf('--kill-at') > 0 ? process.argv[process.argv.indexOf('--kill-at') + 1] : undefined
let dslSteps = 0
const r = await new WOTDTrainer(tinyConfig, { store }).trainCompletePipeline({
  onProgress: (p) => {
    if (p.stage !== killAt) return
    // The dsl stage dies after its first checkpointed step; the others as soon as they start.
    if (p.stage === 'dsl' ? p.phase === 'progress' && ++dslSteps >= 3 : p.phase === 'progress' || p.phase === 'start') {
      process.kill(process.pid, 'SIGKILL')
    }
  },
})
process.stdout.write(JSON.stringify({ runId: r.runId }) + '\n')
