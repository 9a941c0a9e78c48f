/**
 * People's profiles in a store: what they liked and disliked, kept one change at a time.
 *
 * Every change runs under a per-user store lock, so concurrent likes from two processes are
 * both kept (a read-modify-write without it could lose one). The preference vector is made by
 * `rule.ts`; the model (`WOTDModel.like` and friends) supplies the word vectors.
 */
import { createHash } from 'node:crypto'
import { InvalidInputError } from '../errors.js'
import { checkUser, PROFILE_SCHEMA, type FeedbackEntry, type ProfileDoc, type Store } from '../store/index.js'

export { preferenceVector, likeWeights, vectorToBase64, vectorFromBase64, HALF_LIFE_DAYS, DISLIKE_SHARE, type Rated } from './rule.js'

/** Longest word a person may like or dislike (the longest English dictionary words have 45 letters). */
export const MAX_WORD_LENGTH = 64
/** Most words one profile keeps per list; the oldest go first. */
export const MAX_FEEDBACK = 1000

/** A user name checked and left as given (names are data, never paths or operators). */
export function checkUserName(user: unknown): string {
  if (typeof user !== 'string') throw new InvalidInputError(`user name must be a string, got ${typeof user}`)
  checkUser(user)
  if (user.trim().length === 0) throw new InvalidInputError('user name must not be blank')
  return user
}

/** Feedback words: trimmed, lower case, NFC; at least one; each 1 to 64 characters of text. */
export function checkFeedbackWords(words: unknown, what: string): string[] {
  if (!Array.isArray(words) || words.some((w) => typeof w !== 'string')) throw new InvalidInputError(`${what} must be a list of words`)
  const out: string[] = []
  for (const raw of words as string[]) {
    const w = raw.normalize('NFC').trim().toLowerCase()
    if (w.length === 0) throw new InvalidInputError(`${what}: an empty word was given; pass words with at least one letter`)
    if (w.length > MAX_WORD_LENGTH) throw new InvalidInputError(`${what}: ${JSON.stringify(w.slice(0, 40))}... is ${w.length} characters long; a word has at most ${MAX_WORD_LENGTH}`)
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(w)) throw new InvalidInputError(`${what}: ${JSON.stringify(w)} holds control characters`)
    if (!out.includes(w)) out.push(w)
  }
  if (out.length === 0) throw new InvalidInputError(`${what}: no words given; pass at least one`)
  return out
}

export function emptyProfile(user: string): ProfileDoc {
  return { schema: PROFILE_SCHEMA, user, liked: [], disliked: [], version: 0, updatedAt: new Date(0).toISOString() }
}

/**
 * Adds words to one list (`liked` or `disliked`) and takes them off the other: a word is liked
 * or disliked, never both; feedback again on a word moves it to the front with the new time.
 */
export function withFeedback(doc: ProfileDoc, kind: 'liked' | 'disliked', words: readonly string[], at: string): ProfileDoc {
  const other = kind === 'liked' ? 'disliked' : 'liked'
  const set = new Set(words)
  const fresh: FeedbackEntry[] = words.map((word) => ({ word, at }))
  const kept = doc[kind].filter((f) => !set.has(f.word))
  return {
    ...doc,
    [kind]: [...kept, ...fresh].slice(-MAX_FEEDBACK),
    [other]: doc[other].filter((f) => !set.has(f.word)),
  }
}

function lockName(user: string): string {
  return `profile.${createHash('sha256').update(user).digest('hex').slice(0, 32)}`
}

/** Runs `fn` holding the user's profile lock (waits up to 30 s for another writer). */
export async function withUserLock<T>(store: Store, user: string, fn: () => Promise<T>): Promise<T> {
  const lock = await store.acquireLock(lockName(user), { wait: true, timeoutMs: 30_000, pollMs: 15, ttlMs: 30_000, purpose: 'profile update' })
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

/**
 * Changes a user's profile atomically with respect to other writers: reads it (or an empty
 * one), applies `change`, saves the result with its version bumped, and returns it.
 */
export async function updateProfile(store: Store, user: string, change: (current: ProfileDoc) => Promise<ProfileDoc> | ProfileDoc): Promise<ProfileDoc> {
  checkUserName(user)
  return withUserLock(store, user, async () => {
    const current = (await store.getProfile(user)) ?? emptyProfile(user)
    const next = await change(current)
    const saved: ProfileDoc = { ...next, schema: PROFILE_SCHEMA, user, version: current.version + 1, updatedAt: new Date().toISOString() }
    await store.putProfile(saved)
    return saved
  })
}

/** Deletes everything the store holds about a user: the profile and the history. */
export async function forgetUser(store: Store, user: string): Promise<{ profile: boolean; history: number }> {
  checkUserName(user)
  return withUserLock(store, user, async () => {
    const history = await store.deleteHistory(user)
    const profile = await store.deleteProfile(user)
    return { profile, history }
  })
}
