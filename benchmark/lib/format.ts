/** How the bench writes numbers into its markdown tables. */

const MB = 1024 * 1024

/** A number with `d` decimals and thousands separators; `n/a` when absent. */
export const fmt = (x: number | undefined | null, d = 1): string =>
  x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })

export const pct = (x: number | undefined | null, d = 1): string => (x === undefined || x === null ? 'n/a' : `${(100 * x).toFixed(d)}%`)

/** Bytes as MB (or KB below one MB). */
export const mb = (b: number | undefined): string => (b === undefined ? 'n/a' : b >= MB ? `${fmt(b / MB, 1)} MB` : `${fmt(b / 1024, 0)} KB`)

/** Ours over theirs as a speed ratio (`1.60x`: ours faster). */
export const ratio = (ours: number | undefined, theirs: number | undefined, higherIsBetter = true): string =>
  ours && theirs ? `${fmt(higherIsBetter ? ours / theirs : theirs / ours, 2)}x` : 'n/a'

export const verdict = (ok: boolean | undefined): string => (ok === undefined ? '' : ok ? 'meets' : 'misses')

export const na = (s: string): string => `not available: ${s}`

/** A markdown table, numbers right-aligned (every column but the first). */
export const table = (headers: string[], rows: string[][]): string =>
  [`| ${headers.join(' | ')} |`, `|${headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
