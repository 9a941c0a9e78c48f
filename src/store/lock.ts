/**
 * Named inter-process locks over a store, so two trainers never write one store at once.
 *
 * A lock is a record `{pid, hostname, acquiredAt, purpose, token, ttlMs}` created only if none
 * exists (an exclusive file create, or an insert into a unique `_id`). The holder refreshes it
 * every `ttlMs / 4`. Another process may break it when it is stale: its pid is dead on this
 * host, or it has not been refreshed for its `ttlMs`. Breaking is compare-and-delete on the
 * holder's `token`, so two breakers never remove a fresh lock.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreError } from '../errors.js'
import { checkId, type LockHolder, type LockOptions, type StoreLock } from './types.js'

export const DEFAULT_LOCK_TTL_MS = 120_000
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000

/** What a store provides to lock. */
export interface LockBackend {
  /** One attempt: null when the lock is now ours, else the live holder (stale ones are broken first). */
  tryAcquire(name: string, holder: LockHolder, ttlMs: number): Promise<LockHolder | null>
  /** Marks the lock fresh; false when it is no longer ours. */
  refresh(name: string, holder: LockHolder): Promise<boolean>
  /** Removes the lock if it is still ours. */
  release(name: string, holder: LockHolder): Promise<void>
  /** Who holds the lock now (null: nobody). */
  holder(name: string): Promise<LockHolder | null>
}

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function newHolder(purpose?: string): LockHolder {
  return {
    pid: process.pid,
    hostname: hostname(),
    acquiredAt: new Date().toISOString(),
    ...(purpose ? { purpose } : {}),
    token: randomBytes(12).toString('hex'),
  }
}

/** A lock record is stale when its pid is dead on this host or it was not refreshed for its ttl. */
export function isStale(h: Partial<LockHolder>, refreshedAtMs: number, ttlMs: number, now = Date.now()): boolean {
  if (h.hostname === hostname() && typeof h.pid === 'number' && !pidAlive(h.pid)) return true
  return now - refreshedAtMs > ttlMs
}

export function describeHolder(h: LockHolder): string {
  const who = h.pid > 0 ? `pid ${h.pid} on host ${h.hostname}` : `an unknown process on host ${h.hostname || '?'}`
  return `${who} (since ${h.acquiredAt}${h.purpose ? `, ${h.purpose}` : ''})`
}

class HeldLock implements StoreLock {
  private timer: NodeJS.Timeout | undefined
  private released = false
  private _lost = false

  constructor(
    readonly name: string,
    readonly holder: LockHolder,
    private readonly backend: LockBackend,
    private readonly ttlMs: number,
    private readonly location: string,
  ) {
    const every = Math.max(50, Math.floor(ttlMs / 4))
    this.timer = setInterval(() => void this.beat(), every)
    this.timer.unref()
  }

  get lost(): boolean {
    return this._lost
  }

  private async beat(): Promise<void> {
    if (this.released || this._lost) return
    try {
      if (!(await this.backend.refresh(this.name, this.holder))) {
        this._lost = true
        clearInterval(this.timer)
      }
    } catch {
      // a transient failure (server briefly away): the next beat tries again
    }
  }

  async check(): Promise<void> {
    if (this.released) throw new StoreError(`the lock "${this.name}" of ${this.location} was already released; nothing more may be written under it`)
    if (!this._lost) {
      let ours: boolean
      try {
        ours = await this.backend.refresh(this.name, this.holder)
      } catch (err) {
        throw new StoreError(`cannot confirm the lock "${this.name}" of ${this.location} is still held`, { cause: err })
      }
      if (ours) return
      this._lost = true
      clearInterval(this.timer)
    }
    const now = await this.backend.holder(this.name).catch(() => null)
    throw new StoreError(
      `lost the lock "${this.name}" of ${this.location}: ${now ? `it is now held by ${describeHolder(now)}` : 'another process broke it'} ` +
        `(this process went ${this.ttlMs / 1000} s without refreshing it, e.g. paused); stopped without writing more`,
    )
  }

  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    clearInterval(this.timer)
    if (!this._lost) await this.backend.release(this.name, this.holder)
  }
}

/** The waiting loop shared by every store. */
export async function acquireLockWith(location: string, name: string, options: LockOptions, backend: LockBackend): Promise<StoreLock> {
  checkId('lock name', name)
  const ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS
  const pollMs = options.pollMs ?? 250
  if (!(ttlMs > 0) || !(timeoutMs >= 0) || !(pollMs > 0)) throw new StoreError(`lock "${name}": ttlMs, timeoutMs and pollMs must be positive`)
  const holder = newHolder(options.purpose)
  const start = Date.now()
  for (;;) {
    const held = await backend.tryAcquire(name, holder, ttlMs)
    if (!held) return new HeldLock(name, holder, backend, ttlMs, location)
    if (!options.wait) {
      throw new StoreError(`the store at ${location} is locked ("${name}") by ${describeHolder(held)}; wait for it to finish, or retry with waiting`)
    }
    const left = start + timeoutMs - Date.now()
    if (left <= 0) {
      throw new StoreError(`the store at ${location} is still locked ("${name}") by ${describeHolder(held)} after waiting ${(timeoutMs / 1000).toFixed(1)} s`)
    }
    await sleep(Math.min(left, pollMs * (0.75 + Math.random() * 0.5)))
  }
}
