/**
 * Typed errors of wotd-ml. Every error carries a stable `code`; native (Rust) errors are
 * mapped to the same classes, with the Rust cause chain preserved as `cause`.
 */

export type WotdErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'INVALID_PATTERN'
  | 'INVALID_INPUT'
  | 'INVALID_CONFIG'
  | 'CORRUPT_FILE'
  | 'UNSUPPORTED'
  | 'IO'
  | 'TENSOR'
  | 'TOKENIZER'
  | 'CANCELLED'
  | 'PANIC'
  | 'STORE'
  | 'PROVIDER'
  | 'INTERNAL'

export class WotdError extends Error {
  readonly code: WotdErrorCode
  constructor(code: WotdErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A model's weights or tokenizer could not be found or fetched. */
export class ModelNotFoundError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_NOT_FOUND', message, options)
  }
}

/** An ID pattern such as `[2,*,17,*]` did not parse; the message names the field and why. */
export class InvalidPatternError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_PATTERN', message, options)
  }
}

/** Arguments that are well-typed but unusable: an empty word list, a bad date, an unknown run. */
export class InvalidInputError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_INPUT', message, options)
  }
}

/** A configuration that failed validation; the message names the field. */
export class ConfigError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_CONFIG', message, options)
  }
}

/** A file (model, cache entry, artifact) whose bytes are not what they should be. */
export class CorruptFileError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CORRUPT_FILE', message, options)
  }
}

/** The persistent store (files or MongoDB) failed or could not be reached. */
export class StoreError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORE', message, options)
  }
}

/** A corpus provider (OpenAI or compatible server) failed after its retries and re-asks. */
export class ProviderError extends WotdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROVIDER', message, options)
  }
}

/** Work stopped because its AbortSignal fired. */
export class CancelledError extends WotdError {
  constructor(message = 'operation cancelled', options?: { cause?: unknown }) {
    super('CANCELLED', message, options)
  }
}

const byCode: Partial<Record<WotdErrorCode, new (message: string, options?: { cause?: unknown }) => WotdError>> = {
  MODEL_NOT_FOUND: ModelNotFoundError,
  INVALID_PATTERN: InvalidPatternError,
  INVALID_INPUT: InvalidInputError,
  INVALID_CONFIG: ConfigError,
  CORRUPT_FILE: CorruptFileError,
  STORE: StoreError,
  PROVIDER: ProviderError,
  CANCELLED: CancelledError,
}

const NATIVE_PREFIX = /^\[([A-Z_]+)\] ([\s\S]*)$/

/**
 * Turns an error thrown by the native binding into the matching typed error. Native errors
 * arrive as `[CODE] message` with a `cause` chain built in Rust; anything else is returned
 * unchanged.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof WotdError) return err
  const m = NATIVE_PREFIX.exec(err.message)
  if (!m) return err
  const code = m[1] as WotdErrorCode
  const Cls = byCode[code]
  const opts = err.cause === undefined ? undefined : { cause: err.cause }
  const message = withoutBacktrace(m[2])
  const mapped = Cls ? new Cls(message, opts) : new WotdError(code, message, opts)
  if (err.stack) mapped.stack = `${mapped.name}: ${message}\n${err.stack.split('\n').slice(1).join('\n')}`
  return mapped
}

/**
 * A message without the Rust backtrace that `RUST_BACKTRACE=1` makes candle append to its
 * errors (`\n   0: candle_core::...`, or a `Stack backtrace:` header): it belongs in a debugger,
 * not in a one-line error.
 */
export function withoutBacktrace(message: string): string {
  const at = message.search(/\n\s*(stack backtrace:|0: )/i)
  return at < 0 ? message : message.slice(0, at).trimEnd()
}

/** Calls a native function, rethrowing its failure as a typed error. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

/** Awaits a native promise (an AsyncTask), rethrowing its failure as a typed error. */
export async function awaitNative<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    throw fromNative(err)
  }
}

/** Messages of an error and all its causes, outermost first (for `--verbose` output). */
export function causeChain(err: unknown): string[] {
  const out: string[] = []
  let cur: unknown = err
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    out.push(withoutBacktrace(cur instanceof Error ? cur.message : String(cur)))
    cur = cur instanceof Error ? cur.cause : undefined
  }
  return out
}
