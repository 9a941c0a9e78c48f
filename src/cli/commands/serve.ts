/** `wotd serve`: the page for people and its JSON API (see `src/server/`). */
import type { Command } from 'commander'
import pc from 'picocolors'
import { InvalidInputError } from '../../errors.js'
import { WOTDModel } from '../../pipeline/index.js'
import { checkServeOptions, serve } from '../../server/index.js'
import { progressBar } from '../output.js'
import { onInterrupt } from '../signals.js'
import { runOpt, storeOpt } from './inference.js'
import { progressPrinter } from './models.js'

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description("a page with each person's word of the day (meaning, why, like/dislike, the last 30 days) and its JSON API")
    .option('--port <n>', 'port to listen on (0: any free one)', '7070')
    .option('--host <addr>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--token <secret>', 'a secret every request must carry (default $WOTD_TOKEN); required off loopback')
    .option(...storeOpt)
    .option(...runOpt)
    .addHelpText(
      'after',
      '\nAPI: GET /api/today?user=U[&date=D], GET /api/profile?user=U, GET /api/days?user=U,\n' +
        '     POST /api/like {user, words}, POST /api/dislike {user, words}, POST /api/forget {user}.\n' +
        'With a token: send `Authorization: Bearer <token>`, or open the page as /?token=<token>.',
    )
    .action(async (o: { port: string; host: string; token?: string; store?: string; run?: string }) => {
      if (!/^\d+$/.test(o.port)) throw new InvalidInputError(`--port must be a whole number, got "${o.port}"`)
      const token = o.token ?? process.env.WOTD_TOKEN
      checkServeOptions({ host: o.host, port: Number(o.port), token: token || undefined })
      const interrupt = onInterrupt()
      const bar = progressBar('embedding the word catalogue (once per embedder)')
      const pulling = progressPrinter(false)
      const model = await WOTDModel.open({ store: o.store, runId: o.run, // Only real embedding work shows a bar; reading the cached catalogue is quick and silent.
      onProgress: (p) => p.done > p.cached && bar.update(p.done, p.total), pullMissing: { onProgress: pulling.onProgress, signal: interrupt.signal } })
      try {
        // Load the catalogue before listening, so the first visitor does not wait for it.
        await model.catalogueIndex()
        pulling.stop()
        bar.stop()
        const running = await serve(model, { host: o.host, port: Number(o.port), token: token || undefined })
        process.stdout.write(`serving run ${model.runId} at ${running.url}${token ? ' (every request needs the token)' : ''}\n`)
        process.stderr.write(pc.dim('Ctrl-C stops it\n'))
        if (!interrupt.signal.aborted) await new Promise<void>((resolve) => interrupt.signal.addEventListener('abort', () => resolve(), { once: true }))
        await running.close()
      } finally {
        interrupt.dispose()
        await model.close()
      }
    })
}
