/** `wotd runs [list|show <id>]`. */
import type { Command } from 'commander'
import { InvalidInputError } from '../../errors.js'
import { openStore } from '../../store/index.js'
import { printJson, table } from '../output.js'

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('training runs in the store')
  const storeOpt = ['--store <spec>', 'a folder or mongodb:// URI (default $MONGODB_URI, else $WOTD_HOME or ./.wotd)'] as const

  runs
    .command('list', { isDefault: true })
    .description('runs, newest first')
    .option(...storeOpt)
    .option('--json', 'print JSON')
    .action(async (o: { store?: string; json?: boolean }) => {
      const store = await openStore(o.store)
      try {
        const list = await store.listRuns()
        if (o.json) return printJson(list.map((r) => ({ id: r.id, status: r.status, createdAt: r.createdAt, updatedAt: r.updatedAt, stages: Object.fromEntries(Object.entries(r.stages).map(([k, v]) => [k, v.status])) })))
        process.stdout.write(
          table(
            ['run', 'status', 'created', 'stages'],
            list.map((r) => [r.id, r.status, r.createdAt, Object.entries(r.stages).map(([k, v]) => `${k}:${v.status}`).join(' ')]),
          ) + '\n',
        )
      } finally {
        await store.close()
      }
    })

  runs
    .command('show <id>')
    .description('one run: config, per-stage metrics, timings and artifacts')
    .option(...storeOpt)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { store?: string; json?: boolean }) => {
      const store = await openStore(o.store)
      try {
        const run = await store.getRun(id)
        if (!run) throw new InvalidInputError(`unknown run id ${JSON.stringify(id)}; list runs with \`wotd runs list\``)
        if (o.json) return printJson(run)
        process.stdout.write(`${run.id}  ${run.status}  created ${run.createdAt}\n`)
        for (const [name, s] of Object.entries(run.stages)) {
          const metrics = Object.entries(s.metrics ?? {})
            .filter(([, v]) => typeof v !== 'object' || v === null)
            .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : v}`)
            .join(' ')
          process.stdout.write(`  ${name.padEnd(6)} ${s.status.padEnd(9)} ${s.timings?.total !== undefined ? (s.timings.total / 1000).toFixed(1) + 's' : '-'}  ${metrics}\n`)
        }
      } finally {
        await store.close()
      }
    })
}
