/** A small FIFO concurrency limiter with AbortSignal support. */
import { CancelledError } from '../errors.js'

export interface Limiter {
  /** Runs `fn` once a slot is free; waiting ends early with `CancelledError` if `signal` fires. */
  run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T>
  readonly active: number
  readonly pending: number
}

export function createLimiter(max: number): Limiter {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`concurrency must be a positive integer, got ${max}`)
  let active = 0
  const queue: { grant: () => void }[] = []

  const release = () => {
    active--
    const next = queue.shift()
    if (next) {
      active++
      next.grant()
    }
  }

  const acquire = (signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) return Promise.reject(new CancelledError())
    if (active < max) {
      active++
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const onAbort = () => {
        const i = queue.indexOf(waiter)
        if (i >= 0) queue.splice(i, 1)
        reject(new CancelledError())
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      queue.push(waiter)
    })
  }

  return {
    async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      await acquire(signal)
      try {
        return await fn()
      } finally {
        release()
      }
    },
    get active() {
      return active
    },
    get pending() {
      return queue.length
    },
  }
}

/** Resolves after `ms`, or rejects with `CancelledError` when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new CancelledError())
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t)
      reject(new CancelledError())
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
