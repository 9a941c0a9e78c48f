/**
 * Ctrl-C and SIGTERM as one cancellation: the first of either aborts the command's signal so
 * it stops at its next safe point (a checkpoint, a page, a saved file) and exits 130; the
 * handlers come off when the command ends, so a second signal after that kills as usual.
 */
export interface Interrupt {
  signal: AbortSignal
  dispose(): void
}

export function onInterrupt(): Interrupt {
  const ac = new AbortController()
  const abort = () => ac.abort()
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  return {
    signal: ac.signal,
    dispose() {
      process.off('SIGINT', abort)
      process.off('SIGTERM', abort)
    },
  }
}
