/** Terminal output shared by every command: JSON mode, one-line errors, progress bars. */
import cliProgress from 'cli-progress'
import pc from 'picocolors'
import { causeChain, WotdError, type WotdErrorCode } from '../errors.js'

/** Exit codes by error code, so scripts can branch without parsing text. */
const EXIT_CODES: Partial<Record<WotdErrorCode, number>> = {
  INVALID_PATTERN: 2,
  INVALID_INPUT: 2,
  INVALID_CONFIG: 2,
  MODEL_NOT_FOUND: 3,
  STORE: 4,
  PROVIDER: 5,
  CORRUPT_FILE: 6,
  CANCELLED: 130,
}

export function exitCodeFor(err: unknown): number {
  return err instanceof WotdError ? (EXIT_CODES[err.code] ?? 1) : 1
}

/**
 * Control characters (newlines included: an error is one line) and bidirectional overrides
 * written as `\u{...}`, so text from the input (a pattern, a name) cannot redraw or reorder
 * what the terminal shows.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
}

/** Prints an error as one line (the full cause chain with --verbose) and returns its exit code. */
export function reportError(err: unknown, opts: { verbose?: boolean; json?: boolean } = {}): number {
  const chain = causeChain(err).map(escapeForTerminal)
  const code = err instanceof WotdError ? err.code : 'INTERNAL'
  if (opts.json) {
    process.stderr.write(JSON.stringify({ error: { code, message: chain[0], causes: chain.slice(1) } }) + '\n')
  } else {
    process.stderr.write(`${pc.red('error')} ${pc.dim(`[${code}]`)} ${chain[0]}\n`)
    if (opts.verbose) for (const c of chain.slice(1)) process.stderr.write(`  ${pc.dim('caused by:')} ${c}\n`)
    else if (chain.length > 1) process.stderr.write(pc.dim('  (run with --verbose for the cause)\n'))
  }
  return exitCodeFor(err)
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** Formats rows as an aligned plain-text table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [pc.bold(line(cells[0])), ...cells.slice(1).map(line)].join('\n')
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

/** A progress bar on stderr, silent when stderr is not a terminal or JSON output is wanted. */
export interface Progress {
  update(done: number, total: number, label?: string): void
  stop(): void
}

/**
 * Progress as plain lines for logs and pipes (no terminal to redraw a bar on): one line per
 * tenth of the work, or every 15 s while it is slow, and one at the end.
 */
function plainProgress(title: string, opts: { bytes?: boolean }): Progress {
  const fmt = (v: number) => (opts.bytes ? formatBytes(v) : String(v))
  let lastTenth = -1
  let lastAt = 0
  let last: { done: number; total: number; label: string } | undefined
  let printed = ''
  const print = (done: number, total: number, label: string) => {
    const pctText = total > 0 ? ` (${Math.floor((100 * done) / total)}%)` : ''
    const line = `${title.trim()} ${fmt(done)}/${fmt(total)}${pctText}${label ? ` ${label}` : ''}`
    if (line === printed) return
    process.stderr.write(line + '\n')
    printed = line
    lastAt = Date.now()
  }
  return {
    update(done, total, label = '') {
      last = { done, total, label }
      const tenth = total > 0 ? Math.floor((10 * done) / total) : 0
      if (tenth > lastTenth || Date.now() - lastAt > 15_000) {
        lastTenth = Math.max(lastTenth, tenth)
        print(done, total, label)
      }
    },
    stop() {
      if (last) print(last.done, last.total, last.label)
    },
  }
}

export function progressBar(title: string, opts: { quiet?: boolean; bytes?: boolean } = {}): Progress {
  if (opts.quiet) return { update() {}, stop() {} }
  if (!process.stderr.isTTY) return plainProgress(title, opts)
  const bar = new cliProgress.SingleBar(
    {
      format: `${title} {bar} {percentage}% | {value_fmt}/{total_fmt} | {label}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      formatValue: (v, _o, type) => (opts.bytes && (type === 'value' || type === 'total') ? formatBytes(v) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    update(done, total, label = '') {
      const payload = { label, value_fmt: opts.bytes ? formatBytes(done) : String(done), total_fmt: opts.bytes ? formatBytes(total) : String(total) }
      if (!started) {
        bar.start(total, done, payload)
        started = true
      } else {
        bar.setTotal(total)
        bar.update(done, payload)
      }
    },
    stop() {
      if (started) bar.stop()
    },
  }
}
