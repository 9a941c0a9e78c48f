/**
 * The TS half of the one async protocol of the native tasks (embedding, RVQ training, DSL
 * training, generation): an `AbortSignal` becomes a native `CancelToken` that the task polls
 * between units of work; progress arrives through each task's callback.
 */
import { native } from './native.js'

type CancelToken = import('../index.js').CancelToken

/**
 * A native `CancelToken` that `signal` cancels (at once when it has already fired, since an
 * abort that happened fires no event), and `release` to stop listening once the call is over.
 */
export function cancelTokenFor(signal: AbortSignal | undefined): { token: CancelToken; release: () => void } {
  const token = new (native().CancelToken)()
  const onAbort = (): void => token.cancel()
  if (signal?.aborted) onAbort()
  signal?.addEventListener('abort', onAbort, { once: true })
  return { token, release: () => signal?.removeEventListener('abort', onAbort) }
}
