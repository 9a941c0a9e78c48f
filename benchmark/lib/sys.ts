/**
 * Machine-side helpers of the benchmark: peak RSS (whole process and per phase), load average,
 * bytes on disk, the reference Python interpreters, and JSON-speaking child processes.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

const KB = 1024

function statusKb(field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/**
 * Peak resident set size of this process, overall and per phase. A phase starts by resetting
 * the kernel's high-water mark (`echo 5 > /proc/self/clear_refs`, Linux); where that is not
 * possible, phases report the process peak so far. A 100 ms sampler of VmRSS backs both up.
 */
export class RssMeter {
  private overallKb = 0
  private sampledKb = 0
  private timer: NodeJS.Timeout
  readonly perPhase = true

  constructor() {
    this.timer = setInterval(() => this.sample(), 100)
    this.timer.unref()
    this.sample()
  }

  private sample(): void {
    const rss = statusKb('VmRSS') ?? 0
    this.sampledKb = Math.max(this.sampledKb, rss)
    this.overallKb = Math.max(this.overallKb, rss)
  }

  private hwmKb(): number {
    const hwm = statusKb('VmHWM') ?? process.resourceUsage().maxRSS
    this.overallKb = Math.max(this.overallKb, hwm)
    return hwm
  }

  /** Starts a phase: returns a function that ends it and gives the phase's peak in MB. */
  phase(): () => number {
    this.hwmKb()
    let reset = false
    try {
      writeFileSync('/proc/self/clear_refs', '5')
      reset = true
    } catch {
      /* not Linux, or not allowed: the phase reports the peak so far */
    }
    this.sampledKb = statusKb('VmRSS') ?? 0
    return () => {
      this.sample()
      const hwm = this.hwmKb()
      return (reset ? Math.max(hwm, this.sampledKb) : this.overallKb) / KB
    }
  }

  /** Peak of the whole process so far, MB (the largest of VmHWM, the samples and getrusage). */
  peakMb(): number {
    this.sample()
    this.hwmKb()
    return Math.max(this.overallKb, process.resourceUsage().maxRSS) / KB
  }

  stop(): void {
    clearInterval(this.timer)
  }
}

/** Bytes of a file or of every file under a folder (0 when missing). */
export function bytesOnDisk(path: string): number {
  if (!existsSync(path)) return 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.size
  let sum = 0
  for (const e of readdirSync(path)) sum += bytesOnDisk(join(path, e))
  return sum
}

/** The first interpreter that can import `modules`: $env, the in-repo venv, ~/.venvs/<name>, python3. */
export function findPython(modules: string[], candidates: (string | undefined)[]): { python?: string; tried: string[] } {
  const tried: string[] = []
  for (const py of candidates) {
    if (!py) continue
    if (py.includes('/') && !existsSync(py)) {
      tried.push(`${py} (missing)`)
      continue
    }
    const r = spawnSync(py, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 120_000 })
    if (r.status === 0) return { python: py, tried }
    tried.push(`${py} (cannot import ${modules.join(', ')})`)
  }
  return { tried }
}

export function referencePythons(root: string): { torch: ReturnType<typeof findPython>; lcpp: ReturnType<typeof findPython> } {
  const venv = join(root, 'benchmark', 'reference', '.venv', 'bin', 'python')
  return {
    torch: findPython(['torch', 'transformers', 'peft', 'sentence_transformers', 'gguf'], [
      process.env.WOTD_REF_PYTHON,
      venv,
      join(homedir(), '.venvs', 'wotd-fixtures', 'bin', 'python'),
      'python3',
    ]),
    lcpp: findPython(['llama_cpp'], [process.env.WOTD_LCPP_PYTHON, process.env.WOTD_REF_PYTHON, venv, join(homedir(), '.venvs', 'lcpp', 'bin', 'python'), 'python3']),
  }
}

/** Runs `python script job.json` and parses the last stdout line as JSON. */
export function runPythonJson<T>(python: string, script: string, job: unknown, jobPath: string, env: Record<string, string> = {}, timeoutMs = 600_000): T {
  writeFileSync(jobPath, JSON.stringify(job))
  const r = spawnSync(python, [script, jobPath], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: timeoutMs, env: { ...process.env, PYTHONWARNINGS: 'ignore', ...env } })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr.slice(-1500)}`)
  const line = r.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(line) as T
}

export function percentile(xs: readonly number[], p: number): number | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))
  return s[i]
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0)
