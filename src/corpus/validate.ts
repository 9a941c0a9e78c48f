/** Validation and normalisation of candidate words, and the redaction of secrets. */

/** Shortest and longest accepted word, in characters after NFC normalisation. */
export const MIN_WORD_LENGTH = 2
export const MAX_WORD_LENGTH = 24
/** Longest accepted definition, in characters. */
export const MAX_DEFINITION_LENGTH = 300

/** Letters, with single hyphens or apostrophes allowed only between letters. */
const WORD_RE = /^\p{L}+(?:['-]\p{L}+)*$/u

/**
 * Normalises a candidate word: trims, NFC, lowercase, typographic apostrophes and hyphens
 * turned into ASCII. Returns null when the result is not a well-formed word.
 */
export function normalizeWord(raw: unknown): string | null {
  if (typeof raw !== 'string') return null
  const w = raw
    .normalize('NFC')
    .trim()
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/[\u2010\u2011]/g, '-')
    .toLowerCase()
    .normalize('NFC')
  return isWellFormedWord(w) ? w : null
}

/** Whether `w` is already a normalised, well-formed word. */
export function isWellFormedWord(w: string): boolean {
  if (w !== w.normalize('NFC') || w !== w.toLowerCase()) return false
  const len = [...w].length
  return len >= MIN_WORD_LENGTH && len <= MAX_WORD_LENGTH && WORD_RE.test(w)
}

/** Normalises a definition to one trimmed line; null when empty or absurdly long. */
export function normalizeDefinition(raw: unknown): string | null {
  if (typeof raw !== 'string') return null
  const d = raw.normalize('NFC').replace(/\s+/g, ' ').trim()
  if (d.length === 0 || d.length > MAX_DEFINITION_LENGTH) return null
  return d
}

import { secretForms } from '../store/redact.js'

const REDACTED = '[redacted]'

/**
 * Removes secrets from a text: the given values verbatim, bearer tokens and anything that
 * looks like an OpenAI key. Used on every message that leaves a provider.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text
  for (const s of secrets) {
    if (s && s.length >= 4) for (const form of secretForms(s)) out = out.split(form).join(REDACTED)
  }
  return out
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1')
    .replace(/(authorization["']?\s*[:=]\s*["']?)(bearer\s+)?[^\s"',}]+/gi, `$1${REDACTED}`)
    .replace(/\bbearer\s+[A-Za-z0-9._~+/=-]{8,}/gi, `Bearer ${REDACTED}`)
    .replace(/\bsk-[A-Za-z0-9_-]{8,}/g, REDACTED)
}

/** A URL without credentials, query or fragment (safe to store and print). */
export function safeUrl(url: string | undefined): string | undefined {
  if (!url) return undefined
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return '[unparseable url]'
  }
}
