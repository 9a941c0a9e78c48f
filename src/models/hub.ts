/** Downloads from the Hugging Face Hub through the native `hf-hub` client (into the HF cache). */
import { awaitNative, CancelledError } from '../errors.js'
import { native } from '../native.js'
/** What a Hub download reports and listens to (a subset of the pull options). */
export interface HubDownloadOptions {
  signal?: AbortSignal
  onProgress?: (p: { model: string; phase: 'hub'; done: number; total: number }) => void
}

export async function downloadFromHub(id: string, opts: HubDownloadOptions): Promise<void> {
  if (opts.signal?.aborted) throw new CancelledError('pull cancelled')
  await awaitNative(
    native().downloadFromHub(id, null, (p) =>
      opts.onProgress?.({ model: id, phase: 'hub', done: p.bytesDone, total: p.bytesTotal }),
    ),
  )
}
