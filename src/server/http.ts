/**
 * HTTP plumbing of `wotd serve` on `node:http`: JSON bodies with a size limit, JSON errors
 * with a status per error kind (never a stack trace), and the access rules (a token when
 * asked for one, compared in constant time; only loopback Host names on a loopback server).
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { WotdError } from '../errors.js'
import { redactText } from '../store/index.js'

/** An error with the HTTP status it answers with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

/** The largest request body read (likes and dislikes are a few words). */
export const MAX_BODY_BYTES = 16 * 1024

const STATUS_BY_CODE: Record<string, number> = {
  INVALID_PATTERN: 400,
  INVALID_INPUT: 400,
  INVALID_CONFIG: 400,
  MODEL_NOT_FOUND: 503,
  STORE: 503,
  PROVIDER: 502,
  CORRUPT_FILE: 500,
  CANCELLED: 503,
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  res.end(text)
}

/** Answers an error as `{ error: { code, message } }`; unknown errors say only that they happened. */
export function sendError(res: ServerResponse, err: unknown, secrets: readonly string[]): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  if (err instanceof HttpError) return sendJson(res, err.status, { error: { code: err.code, message: err.message } })
  if (err instanceof WotdError) {
    return sendJson(res, STATUS_BY_CODE[err.code] ?? 500, { error: { code: err.code, message: redactText(err.message, secrets) } })
  }
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error; the server log has the details' } })
}

/** The request body as JSON (an object), at most `MAX_BODY_BYTES`. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '')
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json')
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `the body is limited to ${MAX_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `the body is limited to ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'INVALID_JSON', 'the body is not valid JSON')
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'INVALID_JSON', 'the body must be a JSON object')
  return body as Record<string, unknown>
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

/** Whether a host to listen on is the loopback interface. */
export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** The token a request carries: `Authorization: Bearer T`, `X-Wotd-Token: T` or `?token=T`. */
function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const auth = String(req.headers.authorization ?? '')
  const m = /^Bearer\s+(.+)$/i.exec(auth)
  if (m) return m[1].trim()
  const header = req.headers['x-wotd-token']
  if (typeof header === 'string') return header.trim()
  return url.searchParams.get('token') ?? undefined
}

function sameSecret(a: string, b: string): boolean {
  // Hashing first gives equal lengths, so the comparison time says nothing about the token.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

/**
 * Refuses a request that lacks the server's token (401) or, on a loopback server, names a
 * Host other than a loopback one (403: a web page elsewhere reaching in by DNS rebinding).
 */
export function checkAccess(req: IncomingMessage, url: URL, opts: { token?: string; loopback: boolean }): void {
  if (opts.loopback) {
    const host = String(req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
    if (!LOOPBACK_NAMES.has(host) && !/^127\.\d+\.\d+\.\d+$/.test(host)) {
      throw new HttpError(403, 'FORBIDDEN_HOST', 'this server only answers requests addressed to localhost')
    }
  }
  if (opts.token === undefined) return
  const given = tokenOf(req, url)
  if (given === undefined || given === '') throw new HttpError(401, 'UNAUTHORIZED', 'this server needs its token: send `Authorization: Bearer <token>` or open the page with ?token=<token>')
  if (!sameSecret(given, opts.token)) throw new HttpError(401, 'UNAUTHORIZED', 'wrong token')
}
