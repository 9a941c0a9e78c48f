/** Downloads from the Hugging Face Hub through the native `hf-hub` client (into the HF cache). */
import { awaitNative, CancelledError } from '../errors.js'
import { native } from '../native.js'
import type { PullOptions } from './pull.js'

export async function downloadFromHub(id: string, opts: PullOptions): Promise<void> {
  if (opts.signal?.aborted) throw new CancelledError('pull cancelled')
  await awaitNative(
    native().downloadFromHub(id, null, (p) =>
      opts.onProgress?.({ model: id, phase: 'hub', done: p.bytesDone, total: p.bytesTotal }),
    ),
  )
}
