/**
 * The benchmark results the report shows: `benchmark/results/*.json`, newest first.
 *
 * A results file may carry its own table as `table: { headers: string[], rows: unknown[][] }`
 * or as Markdown in `markdown` (or a sibling `<name>.md`); otherwise its scalar fields are
 * listed as `field | value` rows.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'

export interface BenchmarkTable {
  headers: string[]
  rows: string[][]
  /** Set when rows were left out. */
  note?: string
}

export interface BenchmarkFile {
  file: string
  path: string
  /** ISO time of the run (its `date` field, else the file's mtime). */
  date: string
  command?: string
  machine?: string
  tables: BenchmarkTable[]
}

export interface BenchmarkResults {
  dir: string
  files: BenchmarkFile[]
  /** Files that could not be read, with why. */
  skipped: { file: string; why: string }[]
}

const MAX_FLAT_ROWS = 80

function cellText(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(4))
  if (typeof v === 'string') return v
  return JSON.stringify(v)
}

/** Every scalar leaf of a JSON value as `path | value` rows (arrays of scalars joined). */
export function flattenScalars(value: unknown, prefix = '', out: string[][] = []): string[][] {
  if (value === null || typeof value !== 'object') {
    out.push([prefix || '(value)', cellText(value)])
  } else if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) out.push([prefix || '(value)', value.map(cellText).join(', ')])
    else value.forEach((v, i) => flattenScalars(v, `${prefix}[${i}]`, out))
  } else {
    for (const [k, v] of Object.entries(value)) flattenScalars(v, prefix ? `${prefix}.${k}` : k, out)
  }
  return out
}

/** The pipe tables of a Markdown text (header, `---` separator, body rows). */
export function parseMarkdownTables(md: string): BenchmarkTable[] {
  const split = (line: string) =>
    line
      .trim()
      .replace(/^\|/, '')
      .replace(/\|$/, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|').replace(/^`(.*)`$/, '$1').replace(/^\*\*(.*)\*\*$/, '$1'))
  const lines = md.split(/\r?\n/)
  const tables: BenchmarkTable[] = []
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i].trim().startsWith('|') || !/^\s*\|?\s*:?-{3,}/.test(lines[i + 1])) continue
    const headers = split(lines[i])
    const rows: string[][] = []
    let j = i + 2
    for (; j < lines.length && lines[j].trim().startsWith('|'); j++) rows.push(split(lines[j]))
    tables.push({ headers, rows })
    i = j - 1
  }
  return tables
}

function tablesOf(doc: Record<string, unknown>, siblingMd: string | null): BenchmarkTable[] {
  const t = doc.table as { headers?: unknown; rows?: unknown } | undefined
  if (t && Array.isArray(t.headers) && Array.isArray(t.rows)) {
    return [{ headers: t.headers.map(cellText), rows: t.rows.filter(Array.isArray).map((r) => (r as unknown[]).map(cellText)) }]
  }
  const md = typeof doc.markdown === 'string' ? doc.markdown : siblingMd
  if (md) {
    const tables = parseMarkdownTables(md)
    if (tables.length) return tables
  }
  const rows = flattenScalars(Object.fromEntries(Object.entries(doc).filter(([k]) => !['date', 'command', 'machine', 'markdown'].includes(k))))
  return [
    {
      headers: ['field', 'value'],
      rows: rows.slice(0, MAX_FLAT_ROWS),
      note: rows.length > MAX_FLAT_ROWS ? `${rows.length - MAX_FLAT_ROWS} more fields in the file` : undefined,
    },
  ]
}

function machineText(m: unknown): string | undefined {
  if (!m || typeof m !== 'object') return typeof m === 'string' ? m : undefined
  return Object.entries(m as Record<string, unknown>)
    .filter(([, v]) => v !== null && typeof v !== 'object')
    .map(([k, v]) => `${k} ${cellText(v)}`)
    .join(', ')
}

/** Reads every `*.json` of a results folder, newest first; null when the folder has none. */
export async function readBenchmarks(dir: string): Promise<BenchmarkResults | null> {
  const abs = resolve(dir)
  if (!existsSync(abs)) return null
  const names = (await readdir(abs)).filter((f) => f.endsWith('.json')).sort()
  if (names.length === 0) return null
  const files: BenchmarkFile[] = []
  const skipped: { file: string; why: string }[] = []
  for (const file of names) {
    const path = join(abs, file)
    try {
      const doc = JSON.parse(await readFile(path, 'utf8')) as unknown
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a JSON object')
      const d = doc as Record<string, unknown>
      const mdPath = path.replace(/\.json$/, '.md')
      const md = existsSync(mdPath) ? await readFile(mdPath, 'utf8') : null
      const date = typeof d.date === 'string' && !Number.isNaN(Date.parse(d.date)) ? new Date(d.date).toISOString() : (await stat(path)).mtime.toISOString()
      files.push({ file, path, date, command: typeof d.command === 'string' ? d.command : undefined, machine: machineText(d.machine), tables: tablesOf(d, md) })
    } catch (err) {
      skipped.push({ file, why: err instanceof Error ? err.message : String(err) })
    }
  }
  files.sort((a, b) => (a.date < b.date ? 1 : a.date > b.date ? -1 : a.file < b.file ? -1 : 1))
  return { dir: abs, files, skipped }
}
