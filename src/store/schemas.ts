/**
 * Shapes of the documents a store reads back, checked on every read: a file or a MongoDB
 * document can be edited by hand, restored from an old backup or half-migrated, and a
 * checksum only says the bytes are the ones written, not that they have the right shape. A
 * malformed document is a `StoreError` naming it and the field, never a `TypeError` later
 * ("Cannot read properties of null") or `[object Object]` printed as a word.
 */
import { z } from 'zod'
import { StoreError } from '../errors.js'
import type { HistoryEntry, ProfileDoc, RunDoc } from './types.js'

const isoTime = z.string().min(1)
const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/)

const historySchema = z.looseObject({
  user: z.string().min(1),
  date,
  word: z.string().min(1),
  runId: z.string().optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
  createdAt: isoTime,
})

const feedback = z.looseObject({ word: z.string().min(1), at: isoTime })

const profileSchema = z.looseObject({
  schema: z.literal('wotd.profile/v1'),
  user: z.string().min(1),
  liked: z.array(feedback),
  disliked: z.array(feedback),
  vector: z.string().optional(),
  id: z.array(z.number().int()).optional(),
  runId: z.string().optional(),
  version: z.number(),
  updatedAt: z.string(),
})

const stageSchema = z.looseObject({
  status: z.string(),
  inputHash: z.string().optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
  timings: z.record(z.string(), z.number()).optional(),
  artifacts: z.record(z.string(), z.looseObject({ name: z.string().min(1), sha256: z.string(), size: z.number() })).optional(),
})

const runSchema = z.looseObject({
  id: z.string().min(1),
  configHash: z.string(),
  status: z.string(),
  stages: z.record(z.string(), stageSchema),
  createdAt: isoTime,
  updatedAt: isoTime,
})

function check<T>(schema: z.ZodType, what: string, value: unknown, where: string): T {
  const r = schema.safeParse(value)
  if (r.success) return value as T
  const issue = r.error.issues[0]
  const path = issue.path.length ? issue.path.join('.') : '(the document)'
  throw new StoreError(`${where}: the stored ${what} is malformed (${path}: ${issue.message}); restore it from a backup or delete it`)
}

export const storedHistory = (value: unknown, where: string) => check<HistoryEntry>(historySchema, 'history entry', value, where)
export const storedProfile = (value: unknown, where: string) => check<ProfileDoc>(profileSchema, 'profile', value, where)
export const storedRun = (value: unknown, where: string) => check<RunDoc>(runSchema, 'run', value, where)
