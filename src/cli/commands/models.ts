/** `wotd models pull|list`. */
import type { Command } from 'commander'
import pc from 'picocolors'
import { onInterrupt } from '../signals.js'
import { InvalidInputError } from '../../errors.js'
import { isProfileName, listModels, pullModel, pullProfile, type PullProgress } from '../../models/index.js'
import { formatBytes, printJson, progressBar, table } from '../output.js'

export function progressPrinter(json: boolean) {
  const bars = new Map<string, ReturnType<typeof progressBar>>()
  return {
    onProgress(p: PullProgress) {
      if (p.phase !== 'download' && p.phase !== 'hub') return
      const key = `${p.model}:${p.phase}`
      if (!bars.has(key)) bars.set(key, progressBar(`${p.model} (${p.phase === 'hub' ? 'Hub' : 'registry'})`, { quiet: json, bytes: true }))
      bars.get(key)!.update(p.done, p.total)
    },
    stop() {
      for (const b of bars.values()) b.stop()
    },
  }
}

export function registerModels(program: Command): void {
  const models = program.command('models').description('fetch and inspect the models wotd uses')

  models
    .command('pull')
    .description('download the models of a profile (or one model) into the local cache, verifying sha256')
    .option('--profile <name>', 'compact | full', 'compact')
    .option('--model <id>', 'pull one model by id instead of a profile')
    .option('--offline', 'do not try the Hugging Face Hub')
    .option('--force', 'download again even if present')
    .option('--json', 'print JSON')
    .action(async (opts: { profile: string; model?: string; offline?: boolean; force?: boolean; json?: boolean }) => {
      const json = !!opts.json
      const progress = progressPrinter(json)
      const ac = onInterrupt()
      try {
        const common = { onProgress: progress.onProgress, offline: opts.offline, force: opts.force, signal: ac.signal }
        if (opts.model) {
          const r = await pullModel(opts.model, common)
          progress.stop()
          if (json) printJson(r)
          else process.stdout.write(`${pc.green('✓')} ${r.id} ${r.status} (${r.location.source}, ${formatBytes(r.location.sizeBytes)}) ${pc.dim(r.location.dir)}\n`)
          return
        }
        if (!isProfileName(opts.profile)) {
          throw new InvalidInputError(`unknown profile "${opts.profile}"; use compact or full`)
        }
        const r = await pullProfile(opts.profile, common)
        progress.stop()
        if (json) printJson(r)
        else
          for (const m of r.models) {
            const note = m.fallbackFrom.length ? pc.yellow(` (fallback: ${m.fallbackFrom.join(', ')} could not be had)`) : ''
            process.stdout.write(
              `${pc.green('✓')} ${m.role.padEnd(8)} ${m.id} ${m.status} (${m.location.source}, ${formatBytes(m.location.sizeBytes)})${note}\n`,
            )
          }
      } finally {
        progress.stop()
        ac.dispose()
      }
    })

  models
    .command('list')
    .description('show each model of every profile: id, source, files, size, status')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listModels()
      if (opts.json) {
        printJson(rows)
        return
      }
      process.stdout.write(
        table(
          ['model', 'role', 'profiles', 'status', 'source', 'size', 'files'],
          rows.map((m) => [
            m.id,
            m.role,
            m.profiles.join(','),
            m.status === 'present' ? pc.green('present') : pc.yellow('missing'),
            m.source ?? (m.registryPackage ? `pypi ${m.registryPackage}` : '-'),
            m.sizeBytes ? formatBytes(m.sizeBytes) : '-',
            m.files.length || '-',
          ]),
        ) + '\n',
      )
    })
}
