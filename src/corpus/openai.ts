/**
 * The `openai` provider: any OpenAI-compatible chat completions server (OpenAI, Ollama, vLLM,
 * llama.cpp server) through the official SDK, with structured outputs
 * (`chat.completions.parse` + `zodResponseFormat`).
 *
 * Layers of robustness, from the wire up:
 * - the SDK retries 408/409/429/5xx and connection failures (`maxRetries`, honouring
 *   `retry-after-ms` / `retry-after`) and times out each attempt (`timeoutMs`);
 * - the response body is read inside the SDK's fetch, so a socket reset mid-body or a
 *   server that stalls mid-body is a connection failure the SDK retries;
 * - an answer that is malformed JSON, violates the schema, is a refusal, or was cut off
 *   (`finish_reason: "length"`, re-asked for half as many words) is re-asked, at most
 *   `maxReasks` times;
 * - requests in flight never exceed `concurrency`.
 * Every error that leaves this module is a `ProviderError` or `CancelledError` whose message
 * and causes have been scrubbed of the API key and bearer tokens.
 */
import { randomUUID } from 'node:crypto'
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  PermissionDeniedError,
  toFile,
} from 'openai'
import { ContentFilterFinishReasonError, LengthFinishReasonError } from 'openai/core/error'
import { zodResponseFormat } from 'openai/helpers/zod'
import { z } from 'zod'
import { CancelledError, ConfigError, ProviderError, WotdError } from '../errors.js'
import { cellKey } from '../types.js'
import { createLimiter, sleep, type Limiter } from './limiter.js'
import { buildMessages, WordListSchema } from './prompt.js'
import {
  addUsage,
  emptyUsage,
  roundUsd,
  type BatchCapability,
  type CorpusUsage,
  type Proposal,
  type ProposeRequest,
  type RawCandidate,
  type WordProvider,
} from './provider.js'
import { hash32 } from './random.js'
import { redact, safeUrl } from './validate.js'

export interface SdkLogger {
  error(message: string, ...rest: unknown[]): void
  warn(message: string, ...rest: unknown[]): void
  info(message: string, ...rest: unknown[]): void
  debug(message: string, ...rest: unknown[]): void
}

/** USD per million tokens. */
export interface ModelPrice {
  input: number
  output: number
}

/**
 * Standard-tier list prices (USD per 1M tokens) of common models when this was written; pass
 * `prices` to override or add. A model is matched exactly, else by the longest key that it
 * starts with followed by `-` (so dated snapshots match their family).
 */
export const DEFAULT_PRICES: Readonly<Record<string, ModelPrice>> = Object.freeze({
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4.1': { input: 2, output: 8 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4 },
  'gpt-5': { input: 1.25, output: 10 },
  'gpt-5-mini': { input: 0.25, output: 2 },
  'gpt-5-nano': { input: 0.05, output: 0.4 },
})

export const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini'

/** Looks up a model's price (exact, else longest `<key>-` prefix); undefined when unknown. */
export function priceFor(model: string, prices: Readonly<Record<string, ModelPrice>>): ModelPrice | undefined {
  if (prices[model]) return prices[model]
  let best: string | undefined
  for (const k of Object.keys(prices)) {
    if (model.startsWith(k + '-') && (best === undefined || k.length > best.length)) best = k
  }
  return best === undefined ? undefined : prices[best]
}

export interface OpenAIBatchOptions {
  /** How often to poll the batch (default 10 s). */
  pollIntervalMs?: number
  /** Give up waiting after this long (default 25 h); a rerun resumes the same batch. */
  maxWaitMs?: number
  /** Multiplier on the price of batch tokens (default 0.5: the Batch API's discount). */
  priceFactor?: number
}

export interface OpenAIProviderOptions {
  /** Defaults to `OPENAI_API_KEY`. May be omitted for a local server when a base URL is given. */
  apiKey?: string
  /** Defaults to `OPENAI_BASE_URL`, else the OpenAI API. */
  baseURL?: string
  /** Default `gpt-4o-mini`. */
  model?: string
  organization?: string
  project?: string
  /** SDK retries per request on 408/409/429/5xx and connection failures (default 2). */
  maxRetries?: number
  /** Per attempt, in ms (default 60 000). */
  timeoutMs?: number
  /**
   * The longest wait between retries, in ms (default 60 000): a `Retry-After` asking for more
   * is cut to this. Every wait ends at once when the request's signal fires.
   */
  maxRetryWaitMs?: number
  /** Requests in flight at most (default 4). */
  concurrency?: number
  /** Words asked for per request (default 25). */
  wordsPerRequest?: number
  /** Re-asks of one request after an unusable answer (default 2, so 3 attempts). */
  maxReasks?: number
  /** Sampling temperature; omitted (server default) unless set. */
  temperature?: number
  /** Send a per-request `seed` derived from the run's seed (default true). */
  sendSeed?: boolean
  /** Extra or overriding prices, USD per 1M tokens. */
  prices?: Record<string, ModelPrice>
  batch?: OpenAIBatchOptions
  /** Where the SDK logs (default `console`); every argument is scrubbed of the key first. */
  logger?: SdkLogger
  /** The SDK's log level (default: `OPENAI_LOG`, else `warn`). */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug'
  /** Environment to read `OPENAI_API_KEY` / `OPENAI_BASE_URL` from (default `process.env`). */
  env?: NodeJS.ProcessEnv
}

type ParseOptions = NonNullable<Parameters<OpenAI['chat']['completions']['parse']>[1]>

type Outcome = { ok: true; items: RawCandidate[] } | { ok: false; reason: string; kind: 'length' | 'refusal' | 'json' | 'schema' | 'empty' | 'filter' }

interface UsageBody {
  prompt_tokens?: number
  completion_tokens?: number
  total_tokens?: number
}

/** The message of the first 3 causes, redacted, as a plain Error chain (no headers, no bodies). */
function scrubbedCause(err: unknown, secrets: readonly (string | undefined)[], depth = 0): Error | undefined {
  if (err === undefined || err === null || depth > 3) return undefined
  const e = err instanceof Error ? err : new Error(String(err))
  const inner = scrubbedCause(e.cause, secrets, depth + 1)
  const out = new Error(redact(e.message, secrets), inner ? { cause: inner } : undefined)
  out.name = e.name
  return out
}

function isZodError(err: unknown): boolean {
  return err instanceof z.ZodError || (err instanceof Error && err.name === 'ZodError')
}

function clip(s: string, n = 160): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s
}

export class OpenAIProvider implements WordProvider {
  readonly name = 'openai'
  readonly model: string
  readonly baseURL: string | undefined
  readonly concurrency: number
  readonly wordsPerRequest: number
  readonly overAsk = 0.2
  readonly maxReasks: number
  readonly maxRetries: number
  readonly timeoutMs: number
  readonly maxRetryWaitMs: number
  readonly batch: BatchCapability
  /** The SDK client (requests go through a fetch that records token usage). */
  readonly client: OpenAI
  private readonly apiKey: string
  private readonly prices: Record<string, ModelPrice>
  private readonly limiter: Limiter
  private readonly temperature: number | undefined
  private readonly sendSeed: boolean
  private readonly batchOptions: Required<OpenAIBatchOptions>
  private readonly sinks = new Map<string, (u: UsageBody) => void>()
  private readonly format = zodResponseFormat(WordListSchema, 'word_list')

  constructor(options: OpenAIProviderOptions = {}) {
    const env = options.env ?? process.env
    const baseURL = options.baseURL ?? (env.OPENAI_BASE_URL?.trim() || undefined)
    const key = options.apiKey ?? (env.OPENAI_API_KEY?.trim() || undefined)
    if (!key && !baseURL) {
      throw new ConfigError('the openai provider needs OPENAI_API_KEY (or a base URL of a local OpenAI-compatible server)')
    }
    // Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the SDK wants one.
    this.apiKey = key ?? 'no-key'
    this.model = options.model ?? DEFAULT_OPENAI_MODEL
    this.baseURL = safeUrl(baseURL ?? 'https://api.openai.com/v1')
    this.concurrency = positiveInt('concurrency', options.concurrency ?? 4)
    this.wordsPerRequest = positiveInt('wordsPerRequest', options.wordsPerRequest ?? 25)
    this.maxReasks = nonNegativeInt('maxReasks', options.maxReasks ?? 2)
    this.maxRetries = nonNegativeInt('maxRetries', options.maxRetries ?? 2)
    this.timeoutMs = positiveInt('timeoutMs', options.timeoutMs ?? 60_000)
    this.maxRetryWaitMs = nonNegativeInt('maxRetryWaitMs', options.maxRetryWaitMs ?? 60_000)
    this.temperature = options.temperature
    this.sendSeed = options.sendSeed ?? true
    this.prices = { ...DEFAULT_PRICES, ...(options.prices ?? {}) }
    this.batchOptions = {
      pollIntervalMs: options.batch?.pollIntervalMs ?? 10_000,
      maxWaitMs: options.batch?.maxWaitMs ?? 25 * 3600_000,
      priceFactor: options.batch?.priceFactor ?? 0.5,
    }
    this.limiter = createLimiter(this.concurrency)
    this.client = new OpenAI({
      apiKey: this.apiKey,
      baseURL,
      organization: options.organization ?? null,
      project: options.project ?? null,
      // Retries are ours (`retrying`): the SDK's own wait honours any Retry-After, however
      // long, and cannot be cancelled.
      maxRetries: 0,
      timeout: this.timeoutMs,
      fetch: this.fetchWithUsage,
      logger: redactingLogger(options.logger ?? console, [this.apiKey]),
      ...(options.logLevel ? { logLevel: options.logLevel } : {}),
    })
    this.batch = {
      submit: (requests, signal) => this.submitBatch(requests, signal),
      collect: (batchId, opts) => this.collectBatch(batchId, opts),
    }
  }

  /** Requests in flight right now (the concurrency bound applies to this). */
  get inFlight(): number {
    return this.limiter.active
  }

  /**
   * The fetch the SDK uses: it reads the whole body before handing the response over (so a
   * broken body is a retried connection failure, inside the per-attempt timeout) and records
   * token usage of every successful completion, including answers that later fail to parse.
   */
  private fetchWithUsage = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const { wotdCall, ...rest } = (init ?? {}) as RequestInit & { wotdCall?: string }
    const res = await fetch(input, rest)
    if (!wotdCall || !res.ok) return res
    const text = await res.text()
    try {
      const usage = (JSON.parse(text) as { usage?: UsageBody }).usage
      this.sinks.get(wotdCall)?.(usage ?? {})
    } catch {
      // not JSON: the SDK reports it
    }
    return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers })
  }

  private usageOf(u: UsageBody | undefined, factor = 1): CorpusUsage {
    const promptTokens = u?.prompt_tokens ?? 0
    const completionTokens = u?.completion_tokens ?? 0
    const price = priceFor(this.model, this.prices)
    return {
      requests: 1,
      promptTokens,
      completionTokens,
      totalTokens: u?.total_tokens ?? promptTokens + completionTokens,
      costUSD: price ? roundUsd(((promptTokens * price.input + completionTokens * price.output) / 1e6) * factor) : null,
    }
  }

  /** The body of one chat completion request (also a Batch API line's `body`). */
  requestBody(req: ProposeRequest, count: number, note?: string) {
    return {
      model: this.model,
      messages: buildMessages(req, count, note),
      response_format: this.format,
      ...(this.temperature !== undefined ? { temperature: this.temperature } : {}),
      ...(this.sendSeed ? { seed: hash32(`${req.seed}:${req.id}:${note ?? ''}`) & 0x7fffffff } : {}),
    }
  }

  async propose(req: ProposeRequest): Promise<Proposal> {
    const usage = emptyUsage()
    const problems: string[] = []
    let count = req.count
    const attempts = this.maxReasks + 1
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (req.signal?.aborted) throw new CancelledError()
      const note = problems.at(-1)
      const outcome = await this.limiter.run(() => this.callOnce(req, count, note, usage), req.signal)
      if (outcome.ok) return { candidates: outcome.items, usage, attempts: attempt, problems }
      problems.push(outcome.reason)
      if (outcome.kind === 'length') count = Math.max(1, Math.floor(count / 2))
    }
    throw new ProviderError(
      `openai (${this.model}) gave no usable answer for cell ${cellKey(req.cell)} after ${attempts} attempts; ` +
        `last: ${problems.at(-1)}`,
    )
  }

  private async callOnce(req: ProposeRequest, count: number, note: string | undefined, usage: CorpusUsage): Promise<Outcome> {
    const wotdCall = randomUUID()
    this.sinks.set(wotdCall, (u) => addUsage(usage, this.usageOf(u)))
    try {
      const completion = await this.retrying(req.signal, () =>
        this.client.chat.completions.parse(this.requestBody(req, count, note), {
          signal: req.signal,
          fetchOptions: { wotdCall } as unknown as ParseOptions['fetchOptions'],
        }),
      )
      const choice = completion.choices[0]
      if (!choice) return { ok: false, reason: 'the answer had no choices', kind: 'empty' }
      if (choice.message.refusal) return { ok: false, reason: `the model refused ("${clip(redact(choice.message.refusal, [this.apiKey]))}")`, kind: 'refusal' }
      if (!choice.message.parsed) return { ok: false, reason: 'the answer had no content', kind: 'empty' }
      return { ok: true, items: choice.message.parsed.words }
    } catch (err) {
      if (err instanceof LengthFinishReasonError) {
        return { ok: false, reason: 'the answer was cut off (finish_reason "length"); ask for fewer words', kind: 'length' }
      }
      if (err instanceof ContentFilterFinishReasonError) return { ok: false, reason: 'the answer was stopped by the content filter', kind: 'filter' }
      if (err instanceof SyntaxError) return { ok: false, reason: 'the answer was not valid JSON', kind: 'json' }
      if (isZodError(err)) return { ok: false, reason: `the answer did not match the schema (${clip(schemaIssues(err))})`, kind: 'schema' }
      throw this.toError(err, `request for cell ${cellKey(req.cell)}`, req.signal)
    } finally {
      this.sinks.delete(wotdCall)
    }
  }

  /**
   * Runs one API call with up to `maxRetries` retries of 408/409/429/5xx answers and failed or
   * timed-out connections (as the SDK would, `x-should-retry` included), waiting what the
   * server asks (`retry-after-ms`, `retry-after`) up to `maxRetryWaitMs`, else an exponential
   * backoff with jitter (0.5 s doubling, at most 8 s). A signal ends the wait with `CancelledError`.
   */
  private async retrying<T>(signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call()
      } catch (err) {
        if (signal?.aborted) throw new CancelledError()
        if (attempt >= this.maxRetries || !retriable(err)) throw err
        const asked = retryAfterMs(err)
        const backoff = Math.min(500 * 2 ** attempt, 8000) * (1 - Math.random() * 0.25)
        await sleep(Math.min(asked ?? backoff, this.maxRetryWaitMs), signal)
      }
    }
  }

  /** Turns any SDK failure into a typed error whose message and causes hold no secret. */
  toError(err: unknown, what: string, signal?: AbortSignal): WotdError {
    if (err instanceof WotdError) return err
    if (err instanceof APIUserAbortError || signal?.aborted) return new CancelledError()
    const secrets = [this.apiKey]
    const tries = this.maxRetries + 1
    let msg: string
    if (err instanceof APIConnectionTimeoutError) {
      msg = `timed out after ${this.timeoutMs} ms per attempt (${tries} attempts)`
    } else if (err instanceof APIConnectionError) {
      msg = `the connection to ${this.baseURL} failed (${tries} attempts): ${err.message}`
    } else if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) {
      msg = `the server refused the credentials (${err.status}); check OPENAI_API_KEY: ${err.message}`
    } else if (err instanceof APIError) {
      const retried = err.status === 408 || err.status === 409 || err.status === 429 || (err.status ?? 0) >= 500
      msg = `the server answered ${err.message}${retried ? ` (${tries} attempts)` : ''}`
    } else {
      msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    }
    return new ProviderError(redact(`openai (${this.model}) ${what}: ${msg}`, secrets), { cause: scrubbedCause(err, secrets) })
  }

  /** Interprets a raw chat completion (from a batch output file) like `parse()` does. */
  interpret(body: unknown): Outcome {
    const choice = (body as { choices?: { finish_reason?: string; message?: { content?: string | null; refusal?: string | null } }[] })?.choices?.[0]
    if (!choice) return { ok: false, reason: 'the answer had no choices', kind: 'empty' }
    if (choice.finish_reason === 'length') return { ok: false, reason: 'the answer was cut off (finish_reason "length")', kind: 'length' }
    if (choice.finish_reason === 'content_filter') return { ok: false, reason: 'the answer was stopped by the content filter', kind: 'filter' }
    if (choice.message?.refusal) return { ok: false, reason: `the model refused ("${clip(redact(choice.message.refusal, [this.apiKey]))}")`, kind: 'refusal' }
    const content = choice.message?.content
    if (!content) return { ok: false, reason: 'the answer had no content', kind: 'empty' }
    let json: unknown
    try {
      json = JSON.parse(content)
    } catch {
      return { ok: false, reason: 'the answer was not valid JSON', kind: 'json' }
    }
    const parsed = WordListSchema.safeParse(json)
    if (!parsed.success) return { ok: false, reason: `the answer did not match the schema (${clip(schemaIssues(parsed.error))})`, kind: 'schema' }
    return { ok: true, items: parsed.data.words }
  }

  private async submitBatch(requests: readonly ProposeRequest[], signal?: AbortSignal): Promise<string> {
    const lines = requests.map((r) =>
      JSON.stringify({ custom_id: r.id, method: 'POST', url: '/v1/chat/completions', body: this.requestBody(r, r.count) }),
    )
    try {
      const upload = await toFile(Buffer.from(lines.join('\n') + '\n', 'utf8'), 'wotd-corpus-batch.jsonl', { type: 'application/jsonl' })
      const file = await this.retrying(signal, () => this.client.files.create({ file: upload, purpose: 'batch' }, { signal }))
      const batch = await this.retrying(signal, () =>
        this.client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { app: 'wotd-ml' } }, { signal }),
      )
      return batch.id
    } catch (err) {
      throw this.toError(err, 'batch submission', signal)
    }
  }

  private async collectBatch(
    batchId: string,
    opts: { signal?: AbortSignal; onStatus?: (status: string, done: number, total: number) => void } = {},
  ): Promise<Map<string, Proposal>> {
    const { signal, onStatus } = opts
    const started = Date.now()
    let batch: OpenAI.Batches.Batch
    for (;;) {
      try {
        batch = await this.retrying(signal, () => this.client.batches.retrieve(batchId, { signal }))
      } catch (err) {
        throw this.toError(err, `batch ${batchId}`, signal)
      }
      const counts = batch.request_counts
      onStatus?.(batch.status, (counts?.completed ?? 0) + (counts?.failed ?? 0), counts?.total ?? 0)
      if (batch.status === 'completed' || batch.status === 'expired' || batch.status === 'cancelled') break
      if (batch.status === 'failed') {
        const why = (batch.errors?.data ?? []).map((e) => e.message).filter(Boolean).slice(0, 3).join('; ')
        throw new ProviderError(redact(`openai batch ${batchId} failed${why ? `: ${why}` : ''}`, [this.apiKey]))
      }
      if (Date.now() - started > this.batchOptions.maxWaitMs) {
        throw new ProviderError(`openai batch ${batchId} is still ${batch.status} after ${Math.round((Date.now() - started) / 1000)} s; rerun to keep waiting for it`)
      }
      await sleep(this.batchOptions.pollIntervalMs, signal)
    }
    const out = new Map<string, Proposal>()
    if (!batch.output_file_id) {
      if (batch.status === 'completed' && (batch.request_counts?.failed ?? 0) > 0) {
        throw new ProviderError(`openai batch ${batchId}: all ${batch.request_counts?.failed} requests failed`)
      }
      if (batch.status !== 'completed') throw new ProviderError(`openai batch ${batchId} ended ${batch.status} without output`)
      return out
    }
    let text: string
    try {
      const outputId = batch.output_file_id
      const res = await this.retrying(signal, () => this.client.files.content(outputId, { signal }))
      text = await res.text()
    } catch (err) {
      throw this.toError(err, `batch ${batchId} output`, signal)
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      let row: { custom_id?: string; response?: { status_code?: number; body?: unknown } | null; error?: { message?: string } | null }
      try {
        row = JSON.parse(line)
      } catch {
        continue
      }
      if (!row.custom_id) continue
      const usage = emptyUsage()
      const status = row.response?.status_code ?? 0
      if (row.error || status !== 200) {
        const why = row.error?.message ?? `status ${status}`
        out.set(row.custom_id, { candidates: [], usage, attempts: 1, problems: [redact(`the batch request failed: ${why}`, [this.apiKey])] })
        continue
      }
      addUsage(usage, this.usageOf((row.response?.body as { usage?: UsageBody })?.usage, this.batchOptions.priceFactor))
      const outcome = this.interpret(row.response?.body)
      out.set(row.custom_id, outcome.ok ? { candidates: outcome.items, usage, attempts: 1, problems: [] } : { candidates: [], usage, attempts: 1, problems: [outcome.reason] })
    }
    return out
  }
}

/** The SDK's logger (active with `OPENAI_LOG=...`), with every argument scrubbed of secrets. */
function redactingLogger(base: SdkLogger, secrets: string[]): SdkLogger {
  const scrub = (v: unknown): unknown => {
    if (typeof v === 'string') return redact(v, secrets)
    if (v instanceof Error) return scrubbedCause(v, secrets)
    try {
      return JSON.parse(redact(JSON.stringify(v) ?? 'null', secrets))
    } catch {
      return '[unprintable]'
    }
  }
  const wrap =
    (fn: (message: string, ...rest: unknown[]) => void) =>
    (message: string, ...rest: unknown[]) =>
      fn.call(base, String(scrub(message)), ...rest.map(scrub))
  return { error: wrap(base.error), warn: wrap(base.warn), info: wrap(base.info), debug: wrap(base.debug) }
}

function schemaIssues(err: unknown): string {
  const issues = (err as { issues?: { path?: PropertyKey[]; message?: string }[] }).issues
  if (!Array.isArray(issues) || issues.length === 0) return err instanceof Error ? err.message : String(err)
  return issues
    .slice(0, 3)
    .map((i) => `${(i.path ?? []).map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ')
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`openai.${name} must be a positive integer, got ${v}`)
  return v
}

function nonNegativeInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new ConfigError(`openai.${name} must be a non-negative integer, got ${v}`)
  return v
}

/** Whether the SDK would retry this failure: a failed or timed-out connection, or 408/409/429/5xx (or what `x-should-retry` says). */
function retriable(err: unknown): boolean {
  if (err instanceof APIConnectionError) return true
  if (!(err instanceof APIError)) return false
  const should = err.headers?.get?.('x-should-retry')
  if (should === 'true') return true
  if (should === 'false') return false
  const s = err.status ?? 0
  return s === 408 || s === 409 || s === 429 || s >= 500
}

/** The wait a failed answer asks for, in ms (`retry-after-ms`, else `retry-after` in seconds or as a date). */
function retryAfterMs(err: unknown): number | undefined {
  const h = err instanceof APIError ? err.headers : undefined
  if (!h?.get) return undefined
  const ms = Number.parseFloat(h.get('retry-after-ms') ?? '')
  if (Number.isFinite(ms) && ms >= 0) return ms
  const after = h.get('retry-after')
  if (!after) return undefined
  const secs = Number.parseFloat(after)
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000
  const at = Date.parse(after)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}
