/** Where wotd keeps things on disk. Every path honours its environment variable. */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** `$WOTD_MODELS`, else `~/.cache/wotd/models`: models pulled from registry packages. */
export function modelsDir(): string {
  return process.env.WOTD_MODELS ? resolve(process.env.WOTD_MODELS) : join(homedir(), '.cache', 'wotd', 'models')
}

/** The folder of one model in the models directory: `<dir>/<org>/<name>`. */
export function modelDir(id: string, root = modelsDir()): string {
  return join(root, ...id.split('/'))
}

/** The standard Hugging Face cache (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
export function hfCacheDir(): string {
  if (process.env.HF_HUB_CACHE) return resolve(process.env.HF_HUB_CACHE)
  const home = process.env.HF_HOME ? resolve(process.env.HF_HOME) : join(homedir(), '.cache', 'huggingface')
  return join(home, 'hub')
}

/** Root of the installed package (works from `src/` under the TS loader and from `dist/`). */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url))

/** The completion marker written last when a model folder is complete. */
export const MODEL_MARKER = '.wotd-model.json'
