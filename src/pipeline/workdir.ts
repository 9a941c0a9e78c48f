/**
 * The local working folder of runs (checkpoints, unpacked artifacts). It is always on this
 * machine, whatever the store: `$WOTD_HOME/work` or `./.wotd/work`, or `$WOTD_WORK`.
 */
import { join, resolve } from 'node:path'
import { defaultStoreDir } from '../store/index.js'

export function workDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WOTD_WORK ? resolve(env.WOTD_WORK) : join(defaultStoreDir(env), 'work')
}

export function runWorkDir(runId: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(workDir(env), 'runs', runId)
}
