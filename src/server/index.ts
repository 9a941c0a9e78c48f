/**
 * `wotd serve`: one page for people and the small JSON API behind it, over a `WOTDModel`.
 *
 *   GET  /                          the page
 *   GET  /api/today?user=U[&date=D] today's (or that day's) word, with meaning and why
 *   GET  /api/profile?user=U        liked and disliked words, the taste's ID and meaning
 *   GET  /api/days?user=U           the last 30 words of the day, newest first
 *   POST /api/like    {user, words} records likes; answers with the profile
 *   POST /api/dislike {user, words} records dislikes; answers with the profile
 *   POST /api/forget  {user}        deletes the profile and the history
 *   GET  /api/health                the run served
 *
 * Loopback by default; any other host needs a token that every request carries. Errors are
 * JSON `{ error: { code, message } }` with a 4xx status for the caller's mistakes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InvalidInputError } from '../errors.js'
import type { UserProfile, WOTDModel } from '../pipeline/index.js'
import { checkAccess, HttpError, isLoopback, readJsonBody, sendError, sendJson } from './http.js'
import { PAGE } from './page.js'

export { isLoopback } from './http.js'

export interface ServeOptions {
  /** Default 127.0.0.1. */
  host?: string
  /** Default 7070; 0 picks a free port. */
  port?: number
  /** Required unless `host` is loopback; at least 16 characters. */
  token?: string
  /** Where request failures that are not the caller's fault are logged (default: stderr). */
  log?: (line: string) => void
}

export interface RunningServer {
  server: Server
  /** `http://host:port/` (without the token). */
  url: string
  close(): Promise<void>
}

/** The shortest token accepted: guessing one must be hopeless. */
export const MIN_TOKEN_LENGTH = 16

/** Checks the options (a non-loopback host needs a token); `serve` does too, the CLI before loading a run. */
export function checkServeOptions(o: ServeOptions): { host: string; port: number; token?: string } {
  const host = o.host ?? '127.0.0.1'
  const port = o.port ?? 7070
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidInputError(`port must be an integer 0-65535, got ${port}`)
  const token = o.token === undefined || o.token === '' ? undefined : o.token
  if (token !== undefined && (token.length < MIN_TOKEN_LENGTH || /[\s\u0000-\u001f]/.test(token))) {
    throw new InvalidInputError(`the token must be at least ${MIN_TOKEN_LENGTH} characters without spaces or control characters (e.g. \`openssl rand -hex 16\`)`)
  }
  if (!isLoopback(host) && token === undefined) {
    throw new InvalidInputError(`serving on ${host} (not loopback) needs a token: pass --token <secret> or set WOTD_TOKEN; every request must then carry it`)
  }
  return { host, port, token }
}

/** The profile as the page needs it (no vector). */
function profileJson(p: UserProfile) {
  return { user: p.user, liked: p.liked, disliked: p.disliked, hasTaste: p.vector !== null, id: p.id, meaning: p.meaning, updatedAt: p.updatedAt }
}

function userParam(url: URL): string {
  const user = url.searchParams.get('user')
  if (user === null) throw new HttpError(400, 'INVALID_INPUT', 'say whose: ?user=<name>')
  return user
}

function wordsField(body: Record<string, unknown>): string[] {
  const w = body.words
  if (!Array.isArray(w) || w.some((x) => typeof x !== 'string')) throw new HttpError(400, 'INVALID_INPUT', '`words` must be an array of strings')
  return w as string[]
}

function userField(body: Record<string, unknown>): string {
  if (typeof body.user !== 'string') throw new HttpError(400, 'INVALID_INPUT', '`user` must be a string')
  return body.user
}

type Handler = (req: IncomingMessage, url: URL) => Promise<unknown>

function routes(model: WOTDModel): Record<string, Partial<Record<'GET' | 'POST', Handler>>> {
  const today = () => new Date().toISOString().slice(0, 10)
  return {
    '/api/health': { GET: async () => ({ ok: true, runId: model.runId }) },
    '/api/today': { GET: async (_req, url) => model.wordOfTheDay({ user: userParam(url), date: url.searchParams.get('date') ?? today() }) },
    '/api/profile': { GET: async (_req, url) => profileJson(await model.profile(userParam(url))) },
    '/api/days': { GET: async (_req, url) => ({ days: await model.recentDays(userParam(url), 30) }) },
    '/api/like': {
      POST: async (req) => {
        const body = await readJsonBody(req)
        return profileJson(await model.like(userField(body), wordsField(body)))
      },
    },
    '/api/dislike': {
      POST: async (req) => {
        const body = await readJsonBody(req)
        return profileJson(await model.dislike(userField(body), wordsField(body)))
      },
    },
    '/api/forget': { POST: async (req) => model.forget(userField(await readJsonBody(req))) },
  }
}

/** Starts the server on an opened model; resolves once it listens. */
export async function serve(model: WOTDModel, options: ServeOptions = {}): Promise<RunningServer> {
  const { host, port, token } = checkServeOptions(options)
  const loopback = isLoopback(host)
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'))
  const table = routes(model)
  const secrets = token ? [token] : []
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      return sendError(res, new HttpError(400, 'BAD_REQUEST', 'malformed request URL'), secrets)
    }
    try {
      checkAccess(req, url, { token, loopback })
      if (url.pathname === '/' || url.pathname === '/index.html') {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'the page answers GET only')
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': PAGE.csp,
          'cache-control': 'no-store',
          'referrer-policy': 'no-referrer',
          'x-content-type-options': 'nosniff',
        })
        res.end(req.method === 'HEAD' ? undefined : PAGE.html)
        return
      }
      const route = table[url.pathname]
      if (!route) throw new HttpError(404, 'NOT_FOUND', `no such path ${url.pathname}; the API is under /api/ (see \`wotd serve --help\`)`)
      const fn = route[req.method as 'GET' | 'POST']
      if (!fn) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${url.pathname} answers ${Object.keys(route).join(', ')}`)
      sendJson(res, 200, await fn(req, url))
    } catch (err) {
      if (!(err instanceof HttpError) && !(err instanceof InvalidInputError)) log(`wotd serve: ${req.method} ${url.pathname}: ${err instanceof Error ? err.message : String(err)}`)
      sendError(res, err, secrets)
    }
  }
  const server = createServer((req, res) => void handle(req, res))
  // A client that stops mid-request must not take the server down.
  server.on('clientError', (_err, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new InvalidInputError(`port ${port} on ${host} is in use; pick another with --port`, { cause: err }))
      else if (err.code === 'EACCES') reject(new InvalidInputError(`not allowed to listen on ${host}:${port} (ports below 1024 need privileges); pick another with --port`, { cause: err }))
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new InvalidInputError(`${host} is not an address of this machine; use 127.0.0.1 or one of its interfaces`, { cause: err }))
      else reject(err)
    })
    server.listen(port, host, () => {
      server.removeAllListeners('error')
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return {
    server,
    url: `http://${shownHost}:${addr.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
