/**
 * The local working folder of runs (checkpoints, unpacked artifacts). It is always on this
 * machine, whatever the store: `$WOTD_HOME/work` or `./.wotd/work`, or `$WOTD_WORK`.
 */
import { mkdir, access, constants } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { defaultStoreDir } from '../store/index.js'

export function workDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WOTD_WORK ? resolve(env.WOTD_WORK) : join(defaultStoreDir(env), 'work')
}

export function runWorkDir(runId: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(workDir(env), 'runs', runId)
}

/**
 * A run's working folder for reading a run (inference): the usual one when it can be written,
 * else (a read-only store folder, a read-only home) one under the system's temporary folder,
 * so a read-only store still serves `describe`, `encode` and `generate`.
 */
export async function writableRunWorkDir(runId: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const usual = runWorkDir(runId, env)
  try {
    await mkdir(usual, { recursive: true })
    await access(usual, constants.W_OK)
    return usual
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM' && code !== 'ENOTDIR' && code !== 'EEXIST') throw err
  }
  let user = 'user'
  try {
    user = String(userInfo().uid >= 0 ? userInfo().uid : userInfo().username)
  } catch {
    // no passwd entry: one shared folder name
  }
  const fallback = join(tmpdir(), `wotd-work-${user}`, 'runs', runId)
  await mkdir(fallback, { recursive: true, mode: 0o700 })
  return fallback
}
