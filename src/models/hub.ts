/** Downloads from the Hugging Face Hub through the native `hf-hub` client (into the HF cache). */
import { awaitNative, CancelledError } from '../errors.js'
import { native } from '../native.js'
import type { PullOptions } from './pull.js'

export async function downloadFromHub(id: string, opts: PullOptions): Promise<void> {
  if (opts.signal?.aborted) throw new CancelledError('pull cancelled')
  await awaitNative(
    native().downloadFromHub(id, null, (done: number, total: number) =>
      opts.onProgress?.({ model: id, phase: 'hub', done, total }),
    ),
  )
}
