/**
 * A fake OpenAI-compatible server on 127.0.0.1 (node:http) for the corpus tests: chat
 * completions with scripted per-request behaviours, an in-flight counter, and the Batch API
 * endpoints (files upload, batches create/retrieve, file content).
 *
 * By default every chat request gets `Count` fresh, well-formed words for the `Cell` named in
 * the prompt (the words are made up from the cell's index and a per-cell counter, so they
 * never repeat and never collide across cells).
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { cellIndex, parseCellKey } from '../../src/types.js'

export interface FakeWord {
  word: unknown
  partOfSpeech?: unknown
  definition?: unknown
}

export interface ChatRequestInfo {
  /** Arrival order among chat requests (0-based), batch lines included. */
  index: number
  body: any
  /** `style/complexity/era` from the prompt's `Cell:` line. */
  cell?: string
  /** From the prompt's `Count:` line. */
  count: number
  prompt: string
  headers: IncomingHttpHeaders
  /** True for a line of a batch input file. */
  batch: boolean
}

export type Behaviour =
  /** A normal answer: `words` (or fresh words for the cell), optionally transformed. */
  | { type: 'words'; words?: FakeWord[]; extra?: (fresh: FakeWord[], req: ChatRequestInfo) => FakeWord[]; finishReason?: string; delayMs?: number }
  /** An answer whose message content (and refusal) is given verbatim. */
  | { type: 'content'; content: string | null; refusal?: string | null; finishReason?: string; delayMs?: number }
  /** An HTTP error status, with optional headers and JSON body. */
  | { type: 'status'; status: number; headers?: Record<string, string>; body?: unknown; delayMs?: number }
  /** Headers and half a body, then the socket is destroyed. */
  | { type: 'reset' }
  /** Never answers; the connection stays open until the client gives up. */
  | { type: 'hang' }

export type Script = (req: ChatRequestInfo) => Behaviour | undefined

export interface FakeOpenAI {
  /** `http://127.0.0.1:<port>/v1` */
  baseURL: string
  /** Every chat completion request (and batch line), in arrival order. */
  requests: ChatRequestInfo[]
  /** Every HTTP request: method and path. */
  log: { method: string; path: string }[]
  /** Chat requests in flight now, and the most ever at once. */
  readonly inFlight: number
  readonly maxInFlight: number
  /** One-shot behaviours, used by the next chat requests in arrival order (before `script`). */
  queue(...behaviours: Behaviour[]): void
  /** Decides the behaviour of requests the queue does not cover (undefined: fresh words). */
  script?: Script
  /** Delay of default answers, in ms (to make requests overlap). */
  delayMs: number
  /** Batch API: how many `retrieve` calls see `in_progress` before `completed` (default 1). */
  batchPolls: number
  /** Batch API: end every batch with this status instead of `completed`. */
  batchEndStatus?: 'failed' | 'expired' | 'cancelled'
  readonly batchesCreated: number
  /** Fresh words the default behaviour made for a cell so far. */
  issued(cell: string): number
  close(): Promise<void>
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'

function letters(n: number, width: number): string {
  let s = ''
  for (let i = 0; i < width; i++) {
    s = LETTERS[n % 26] + s
    n = Math.floor(n / 26)
  }
  return s
}

/** The `k`-th fresh word of a cell: unique per (cell, k), letters only. */
export function freshWord(cell: string, k: number): string {
  return `zo${letters(cellIndex(parseCellKey(cell)), 2)}${letters(k, 3)}`
}

export function fakeEntry(word: unknown): FakeWord {
  return { word, partOfSpeech: 'noun', definition: `A made-up test entry for ${String(word)}.` }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function multipartFile(body: Buffer, contentType: string | undefined): { filename: string; content: string; purpose?: string } {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? '')
  if (!boundary) throw new Error('no multipart boundary')
  const parts = body.toString('utf8').split(`--${boundary[1] ?? boundary[2]}`)
  let file: { filename: string; content: string } | undefined
  let purpose: string | undefined
  for (const part of parts) {
    const sep = part.indexOf('\r\n\r\n')
    if (sep < 0) continue
    const head = part.slice(0, sep)
    const content = part.slice(sep + 4).replace(/\r\n$/, '')
    const name = /name="([^"]+)"/.exec(head)?.[1]
    if (name === 'file') file = { filename: /filename="([^"]*)"/.exec(head)?.[1] ?? 'upload', content }
    if (name === 'purpose') purpose = content
  }
  if (!file) throw new Error('no file part')
  return { ...file, purpose }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

export async function startFakeOpenAI(init: { script?: Script; delayMs?: number } = {}): Promise<FakeOpenAI> {
  const requests: ChatRequestInfo[] = []
  const log: { method: string; path: string }[] = []
  const oneShots: Behaviour[] = []
  const counters = new Map<string, number>()
  const files = new Map<string, { content: string; filename: string; purpose?: string }>()
  const batches = new Map<string, { id: string; input_file_id: string; polls: number; output_file_id?: string; created_at: number; total: number }>()
  const sockets = new Set<Socket>()
  let inFlight = 0
  let maxInFlight = 0
  let nextId = 1

  const fake: FakeOpenAI = {
    baseURL: '',
    requests,
    log,
    get inFlight() {
      return inFlight
    },
    get maxInFlight() {
      return maxInFlight
    },
    queue: (...b) => void oneShots.push(...b),
    script: init.script,
    delayMs: init.delayMs ?? 0,
    batchPolls: 1,
    get batchesCreated() {
      return batches.size
    },
    issued: (cell) => counters.get(cell) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }

  const fresh = (cell: string | undefined, count: number): FakeWord[] => {
    if (!cell) return []
    const start = counters.get(cell) ?? 0
    counters.set(cell, start + count)
    return Array.from({ length: count }, (_, i) => fakeEntry(freshWord(cell, start + i)))
  }

  const describe = (body: any, headers: IncomingHttpHeaders, batch: boolean): ChatRequestInfo => {
    const prompt = String((body?.messages ?? []).filter((m: any) => m.role === 'user').at(-1)?.content ?? '')
    const info: ChatRequestInfo = {
      index: requests.length,
      body,
      cell: /^Cell: (\S+)$/m.exec(prompt)?.[1],
      count: Number(/^Count: (\d+)$/m.exec(prompt)?.[1] ?? 0),
      prompt,
      headers,
      batch,
    }
    requests.push(info)
    return info
  }

  const behaviourFor = (info: ChatRequestInfo): Behaviour => oneShots.shift() ?? fake.script?.(info) ?? { type: 'words', delayMs: fake.delayMs }

  /** The completion JSON of a 'words' or 'content' behaviour. */
  const completion = (info: ChatRequestInfo, b: Extract<Behaviour, { type: 'words' | 'content' }>) => {
    let content: string | null
    let refusal: string | null = null
    if (b.type === 'words') {
      const made = b.words ?? fresh(info.cell, info.count)
      const words = b.extra ? b.extra(made, info) : made
      content = JSON.stringify({ words })
    } else {
      content = b.content
      refusal = b.refusal ?? null
    }
    const completionTokens = Math.ceil((content ?? refusal ?? '').length / 4)
    return {
      id: `chatcmpl-fake-${nextId++}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: info.body?.model ?? 'fake',
      choices: [{ index: 0, message: { role: 'assistant', content, refusal }, finish_reason: b.finishReason ?? 'stop', logprobs: null }],
      usage: { prompt_tokens: 100, completion_tokens: completionTokens, total_tokens: 100 + completionTokens },
    }
  }

  const chat = async (req: IncomingMessage, res: ServerResponse, body: any) => {
    const info = describe(body, req.headers, false)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    let done = false
    const finish = () => {
      if (!done) {
        done = true
        inFlight--
      }
    }
    res.on('close', finish)
    const b = behaviourFor(info)
    if ('delayMs' in b && b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs))
    switch (b.type) {
      case 'hang':
        return
      case 'reset': {
        const text = JSON.stringify(completion(info, { type: 'words' }))
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.write(text.slice(0, Math.floor(text.length / 2)))
        setTimeout(() => res.socket?.destroy(), 5)
        return
      }
      case 'status':
        json(res, b.status, b.body ?? { error: { message: `fake status ${b.status}`, type: 'fake_error', code: null } }, b.headers)
        return
      default:
        json(res, 200, completion(info, b))
    }
  }

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const path = url.pathname.replace(/^\/v1/, '')
    log.push({ method: req.method ?? 'GET', path })
    const raw = await readBody(req)
    if (req.method === 'POST' && path === '/chat/completions') return chat(req, res, JSON.parse(raw.toString('utf8')))
    if (req.method === 'POST' && path === '/files') {
      const f = multipartFile(raw, req.headers['content-type'])
      const id = `file-${nextId++}`
      files.set(id, f)
      return json(res, 200, { id, object: 'file', bytes: Buffer.byteLength(f.content), created_at: Math.floor(Date.now() / 1000), filename: f.filename, purpose: f.purpose ?? 'batch', status: 'processed' })
    }
    if (req.method === 'POST' && path === '/batches') {
      const body = JSON.parse(raw.toString('utf8'))
      const input = files.get(body.input_file_id)
      if (!input) return json(res, 404, { error: { message: 'no such file', type: 'invalid_request_error' } })
      // Answer every line now; the output is revealed once the batch "completes".
      const out: string[] = []
      const lines = input.content.split('\n').filter((l) => l.trim() !== '')
      for (const line of lines) {
        const l = JSON.parse(line)
        const info = describe(l.body, req.headers, true)
        const b = behaviourFor(info)
        if (b.type === 'words' || b.type === 'content') {
          out.push(JSON.stringify({ id: `batch_req_${nextId++}`, custom_id: l.custom_id, response: { status_code: 200, request_id: 'req_fake', body: completion(info, b) }, error: null }))
        } else {
          const status = b.type === 'status' ? b.status : 500
          out.push(JSON.stringify({ id: `batch_req_${nextId++}`, custom_id: l.custom_id, response: { status_code: status, request_id: 'req_fake', body: { error: { message: 'fake failure' } } }, error: null }))
        }
      }
      const outId = `file-${nextId++}`
      files.set(outId, { content: out.join('\n') + '\n', filename: 'output.jsonl', purpose: 'batch_output' })
      const id = `batch_${nextId++}`
      batches.set(id, { id, input_file_id: body.input_file_id, polls: 0, output_file_id: outId, created_at: Math.floor(Date.now() / 1000), total: lines.length })
      return json(res, 200, batchObject(batches.get(id)!, 'validating'))
    }
    const bm = /^\/batches\/([^/]+)$/.exec(path)
    if (req.method === 'GET' && bm) {
      const b = batches.get(bm[1])
      if (!b) return json(res, 404, { error: { message: 'no such batch', type: 'invalid_request_error' } })
      b.polls++
      if (b.polls <= fake.batchPolls) return json(res, 200, batchObject(b, 'in_progress'))
      return json(res, 200, batchObject(b, fake.batchEndStatus ?? 'completed'))
    }
    const fm = /^\/files\/([^/]+)\/content$/.exec(path)
    if (req.method === 'GET' && fm) {
      const f = files.get(fm[1])
      if (!f) return json(res, 404, { error: { message: 'no such file', type: 'invalid_request_error' } })
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      return res.end(f.content)
    }
    json(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } })
  }

  const batchObject = (b: { id: string; input_file_id: string; output_file_id?: string; created_at: number; total: number }, status: string) => ({
    id: b.id,
    object: 'batch',
    endpoint: '/v1/chat/completions',
    input_file_id: b.input_file_id,
    completion_window: '24h',
    status,
    output_file_id: status === 'completed' || status === 'expired' ? b.output_file_id : null,
    error_file_id: null,
    created_at: b.created_at,
    errors: status === 'failed' ? { object: 'list', data: [{ code: 'fake', message: 'the fake batch failed' }] } : null,
    request_counts: { total: b.total, completed: status === 'completed' ? b.total : 0, failed: 0 },
    metadata: null,
  })

  const server = createServer((req, res) => {
    route(req, res).catch((err) => {
      if (!res.headersSent) json(res, 500, { error: { message: `fake server error: ${(err as Error).message}`, type: 'server_error' } })
      else res.destroy()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return fake
}
