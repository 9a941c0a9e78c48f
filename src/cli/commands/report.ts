/** `wotd report`: one self-contained HTML report of a training run. */
import type { Command } from 'commander'
import pc from 'picocolors'
import { InvalidInputError } from '../../errors.js'
import { formatBytes, printJson } from '../output.js'

interface ReportOptions {
  run?: string
  store?: string
  out?: string
  lm: boolean
  samples?: string
  json?: boolean
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write an HTML report of a run: timings, loss curves, codebooks, an embedding map, samples and benchmarks')
    .option('--run <id>', 'a run id (default: the newest completed run)')
    .option('--store <spec>', 'a folder or mongodb:// URI (default $MONGODB_URI, else $WOTD_HOME or ./.wotd)')
    .option('--out <file>', "the HTML file to write (default: wotd-report-<run id>.html here); '-' for stdout; symlinks are followed, FIFOs and devices streamed")
    .option('--samples <n>', 'ID patterns in the sample grid', '12')
    .option('--no-lm', 'leave out the LM generations (the retrieval baseline only)')
    .option('--json', 'print JSON')
    .action(async (o: ReportOptions) => {
      const samples = o.samples === undefined ? undefined : /^\d+$/.test(o.samples.trim()) ? Number(o.samples) : NaN
      if (samples !== undefined && (!Number.isInteger(samples) || samples < 1 || samples > 64)) {
        throw new InvalidInputError(`--samples must be a whole number 1-64, got "${o.samples}"`)
      }
      // Loaded on use: the report's renderer (vega) would slow every other command's start.
      const { buildReport } = await import('../../report/index.js')
      const r = await buildReport({ store: o.store, runId: o.run, out: o.out, samples, model: o.lm ? undefined : false })
      if (o.json && o.out !== '-') return printJson(r)
      // With `--out -` the HTML is on stdout: the summary goes to stderr.
      const say = (line: string) => (o.out === '-' ? process.stderr : process.stdout).write(line)
      if (o.json) {
        say(JSON.stringify(r) + '\n')
        return
      }
      say(`wrote ${r.path} (${formatBytes(r.bytes)}) for run ${r.runId}: ${r.plots.length} plots\n`)
      for (const u of r.unavailable) say(`  ${pc.yellow('not available')} ${u.section}: ${u.why}\n`)
    })
}
