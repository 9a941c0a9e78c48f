/**
 * Credentials never leave the MongoDB store: not in messages, error causes, `location` or
 * logs. `parseMongoUri` finds the secrets of a connection string (the password, raw and
 * decoded, and the values of sensitive options); `redactText` removes them, and any
 * `user:password@` of a MongoDB URI, from a text; `sanitizeError` rebuilds an error chain
 * from redacted messages only (the driver's own error objects, which may hold the topology
 * or options, are not kept).
 */

/** Options whose values are secrets. */
const SENSITIVE_OPTIONS = ['authmechanismproperties', 'tlscertificatekeyfilepassword', 'sslpemkeypassword', 'proxypassword', 'password']

export interface ParsedMongoUri {
  scheme: 'mongodb' | 'mongodb+srv'
  username?: string
  /** `host:port,...` as written. */
  hosts: string
  /** The database in the path, if any. */
  database?: string
  /** Option names present in the query (lowercase). */
  options: Set<string>
  /** The URI without its password or secret option values. */
  redacted: string
  /** Strings that must never be shown. */
  secrets: string[]
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Splits a `mongodb://` or `mongodb+srv://` URI; null when it is not one. */
export function parseMongoUri(uri: string): ParsedMongoUri | null {
  if (typeof uri !== 'string') return null
  const m = /^(mongodb(?:\+srv)?):\/\/(.*)$/is.exec(uri.trim())
  if (!m) return null
  const scheme = m[1].toLowerCase() as ParsedMongoUri['scheme']
  let rest = m[2]
  const secrets: string[] = []
  let username: string | undefined
  let userPart = ''
  // The user info ends at the last `@` (a password may hold an unescaped `/`, `?` or `@`).
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    const info = rest.slice(0, at)
    rest = rest.slice(at + 1)
    const colon = info.indexOf(':')
    username = colon >= 0 ? info.slice(0, colon) : info
    if (colon >= 0) {
      const pw = info.slice(colon + 1)
      secrets.push(pw, safeDecode(pw))
      userPart = `${username}:***@`
    } else userPart = `${username}@`
  }
  const q = rest.indexOf('?')
  const beforeQuery = q >= 0 ? rest.slice(0, q) : rest
  const query = q >= 0 ? rest.slice(q + 1) : ''
  const slash = beforeQuery.indexOf('/')
  const hosts = slash >= 0 ? beforeQuery.slice(0, slash) : beforeQuery
  const path = slash >= 0 ? beforeQuery.slice(slash + 1) : ''
  const database = path ? safeDecode(path) : undefined
  const options = new Set<string>()
  const parts: string[] = []
  for (const kv of query.split('&').filter(Boolean)) {
    const eq = kv.indexOf('=')
    const key = eq >= 0 ? kv.slice(0, eq) : kv
    const value = eq >= 0 ? kv.slice(eq + 1) : ''
    options.add(safeDecode(key).toLowerCase())
    if (SENSITIVE_OPTIONS.includes(safeDecode(key).toLowerCase()) && value) {
      secrets.push(value, safeDecode(value))
      parts.push(`${key}=***`)
    } else parts.push(kv)
  }
  const redacted = `${scheme}://${userPart}${hosts}${slash >= 0 ? `/${path}` : ''}${parts.length ? `?${parts.join('&')}` : ''}`
  return {
    scheme,
    ...(username !== undefined ? { username: safeDecode(username) } : {}),
    hosts,
    ...(database ? { database } : {}),
    options,
    redacted,
    secrets: [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length),
  }
}

const URI_IN_TEXT = /(mongodb(?:\+srv)?:\/\/)([^\s@/]*:)[^\s@]*@/gi

/** Removes the secrets, and any `user:password@` of a MongoDB URI, from a text. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = String(text).replace(URI_IN_TEXT, '$1$2***@')
  for (const s of secrets) {
    if (s.length < 3) continue
    for (const form of secretForms(s)) out = out.split(form).join('***')
  }
  return out
}

/**
 * A secret as it may appear in text: verbatim, percent-encoded, and base64 / base64url encoded
 * at each of the three byte alignments (the characters that do not depend on neighbouring
 * bytes), so `Basic base64(user:key)` or a base64 dump holding the key is caught too.
 */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret, encodeURIComponent(secret)])
  const bytes = Buffer.from(secret, 'utf8')
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64')
    const start = Math.ceil((8 * k) / 6)
    const end = Math.floor((8 * (k + bytes.length)) / 6)
    const stable = b64.slice(start, end)
    if (stable.length >= 8) {
      forms.add(stable)
      forms.add(stable.replace(/\+/g, '-').replace(/\//g, '_'))
    }
  }
  // Longest first, so a shorter form never splits a longer one.
  return [...forms].sort((a, b) => b.length - a.length)
}

/**
 * A copy of an error chain made only of redacted messages, plus the harmless fields that help
 * (name, code, codeName). Depth-limited.
 */
export function sanitizeError(err: unknown, secrets: readonly string[], depth = 0): Error {
  const src = err instanceof Error ? err : new Error(String(err))
  const cause = depth < 8 && src.cause !== undefined ? sanitizeError(src.cause, secrets, depth + 1) : undefined
  const out = new Error(redactText(src.message, secrets), cause ? { cause } : undefined)
  out.name = src.name
  const e = src as Error & { code?: unknown; codeName?: unknown }
  if (typeof e.code === 'string' || typeof e.code === 'number') (out as Error & { code?: unknown }).code = e.code
  if (typeof e.codeName === 'string') (out as Error & { codeName?: unknown }).codeName = e.codeName
  out.stack = redactText(src.stack ?? `${out.name}: ${out.message}`, secrets)
  return out
}
