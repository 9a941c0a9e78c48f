/** `wotd generate | encode | describe | today`: the inference API from the shell. */
import type { Command } from 'commander'
import pc from 'picocolors'
import { InvalidInputError } from '../../errors.js'
import { parseDate, WOTDModel } from '../../pipeline/index.js'
import { describePattern, parsePattern } from '../../semantic/index.js'
import { printJson, progressBar, table } from '../output.js'
import { onInterrupt } from '../signals.js'
import { progressPrinter } from './models.js'

export interface Common {
  store?: string
  run?: string
  json?: boolean
}

/**
 * Opens the run, calls `f`, closes. With `cancellable`, Ctrl-C/SIGTERM abort the signal `f`
 * gets (it must honour it); otherwise they keep their default (the process ends at once).
 */
export async function withModel<T>(o: Common, f: (m: WOTDModel, signal: AbortSignal) => Promise<T>, opts: { cancellable?: boolean } = {}): Promise<T> {
  // A machine that has not embedded the word catalogue yet does it once (minutes): show it.
  const bar = progressBar('embedding the word catalogue (once per embedder)', { quiet: o.json })
  // A machine without the run's models pulls them first, with a bar per file.
  const pulling = progressPrinter(!!o.json)
  const interrupt = opts.cancellable ? onInterrupt() : { signal: new AbortController().signal, dispose() {} }
  let m: WOTDModel | undefined
  try {
    m = await WOTDModel.open({
      store: o.store,
      runId: o.run,
      // Only real embedding work shows a bar; reading the cached catalogue is quick and silent.
      onProgress: (p) => p.done > p.cached && bar.update(p.done, p.total),
      pullMissing: { onProgress: pulling.onProgress, signal: interrupt.signal },
    })
    return await f(m, interrupt.signal)
  } finally {
    pulling.stop()
    bar.stop()
    interrupt.dispose()
    await m?.close()
  }
}

function num(name: string, v: string | undefined, float = false): number | undefined {
  if (v === undefined) return undefined
  const ok = float ? /^\d+(\.\d+)?$/.test(v.trim()) : /^\d+$/.test(v.trim())
  if (!ok) throw new InvalidInputError(`--${name} must be a ${float ? 'number' : 'whole number'}, got "${v}"`)
  return Number(v)
}

export const storeOpt = ['--store <spec>', 'a folder or mongodb:// URI (default $MONGODB_URI, else $WOTD_HOME or ./.wotd)'] as const
export const runOpt = ['--run <id>', 'a run id (default: the newest completed run)'] as const

export function registerInference(program: Command): void {
  program
    .command('generate <pattern>')
    .description('real, novel words for an ID pattern such as "[2,*,17,*]", with definitions (and the retrieval baseline)')
    .option('-n, --count <n>', 'how many words', '10')
    .option('--novel', 'kept for compatibility: words are always new to the training corpora')
    .option('--coined', 'let the language model coin new, non-dictionary words (labelled)')
    .option('--method <m>', "'catalogue' (default) or 'lm' (the LM picks among the region's words)")
    .option('--exclude <words>', 'comma-separated words not to give (already seen or liked)')
    .option('--temperature <t>', 'sampling temperature (0: the best-ranked words)')
    .option('--top-p <p>', 'nucleus sampling threshold')
    .option('--seed <n>', 'sampling seed')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (pattern: string, o: Common & { count: string; novel?: boolean; coined?: boolean; method?: string; exclude?: string; temperature?: string; topP?: string; seed?: string }) => {
      // Parsed once, before the model loads (a typo costs nothing), and handed down as is.
      const parsed = parsePattern(pattern)
      const r = await withModel(o, (m) =>
        m.generateWordsFromId(parsed, {
          count: num('count', o.count),
          coined: !!o.coined,
          method: o.method as 'catalogue' | 'lm' | undefined,
          exclude: o.exclude?.split(',').map((w) => w.trim()).filter(Boolean),
          temperature: num('temperature', o.temperature, true),
          topP: num('top-p', o.topP, true),
          seed: num('seed', o.seed),
        }),
      )
      if (o.json) return printJson(r)
      for (const e of r.entries) {
        const tag = e.coined ? pc.yellow(' (coined)') : e.inRegion ? '' : pc.dim(' (nearby)')
        const meaning = e.definition ? pc.dim(`  ${e.partOfSpeech ?? ''}${e.partOfSpeech ? ': ' : ''}${e.definition}`) : ''
        process.stdout.write(`${e.word}${tag}${meaning}\n`)
      }
      for (const w of r.warnings) process.stderr.write(pc.yellow(`warning: ${w}\n`))
      process.stderr.write(pc.dim(`pattern ${r.pattern}; retrieval baseline: ${r.baseline.join(', ')}; ${r.msPerWord.toFixed(1)} ms/word\n`))
    })

  program
    .command('encode <words...>')
    .description('the semantic ID of each word, and of all of them together (their preference ID)')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (words: string[], o: Common) => {
      const r = await withModel(o, async (m) => {
        const each = await m.encode(words)
        const preference = await m.preferenceToId(words)
        const described = await Promise.all(each.map((e) => m.describe(e.id)))
        return { words: each.map((e, i) => ({ ...e, description: described[i] })), preference, description: await m.describe(preference) }
      })
      if (o.json) return printJson(r)
      process.stdout.write(
        table(
          ['word', 'id', 'known', 'meaning'],
          r.words.map((w) => [w.word, `[${w.id.join(',')}]`, w.known ? 'yes' : 'no', w.description]),
        ) + `\n${pc.bold('together')} [${r.preference.join(',')}] ${r.description}\n`,
      )
    })

  program
    .command('describe <pattern>')
    .description('what a pattern means, e.g. "modern / beautiful / shakespearean / variation 5"')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (pattern: string, o: Common) => {
      const p = parsePattern(pattern)
      let description: string
      try {
        description = await withModel(o, (m) => m.describe(p))
      } catch (err) {
        // Without a trained run, read the pattern with the aligned layout of DESIGN.md.
        if (o.run || !(err instanceof InvalidInputError)) throw err
        description = describePattern(p)
      }
      if (o.json) return printJson({ pattern: p.text, fields: p.fields, specificity: p.specificity, description })
      process.stdout.write(`${p.text}  ${description}\n`)
    })

  program
    .command('today')
    .description('the word of the day for a user, or with --all for every profile (the same all day; no repeat within the window)')
    .option('--user <name>', 'whose word', 'default')
    .option('--all', "every profile in the store: stored as each person's history (a rerun fills only the missing ones)")
    .option('--date <yyyy-mm-dd>', 'which day (default: today, UTC)')
    .option('--window <days>', 'no repeat within this many days', '30')
    .option('--like <words>', 'comma-separated liked words for this call only (default: the stored profile; see `wotd like`)')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (o: Common & { user: string; all?: boolean; date?: string; window: string; like?: string }) => {
      const date = parseDate(o.date ?? new Date().toISOString().slice(0, 10))
      const windowDays = num('window', o.window)
      if (o.all) {
        if (o.like) throw new InvalidInputError('--like is for one user; --all uses each stored profile')
        const bar = progressBar(`words of ${date}`, { quiet: o.json })
        const r = await withModel(o, (m, signal) =>
          m.wordsOfTheDayForAll({ date, windowDays, signal, onProgress: (p) => bar.update(p.done, p.total, `${p.made} new, ${p.existing} kept${p.failed ? `, ${p.failed} failed` : ''}`) }),
          { cancellable: true },
        ).finally(() => bar.stop())
        if (o.json) return printJson(r)
        process.stdout.write(`${date}: ${r.users} profiles, ${r.made} new words, ${r.existing} already chosen, ${r.failedCount} without a word (${r.usersPerSecond.toFixed(1)} users/s)\n`)
        for (const f of r.failed) process.stderr.write(pc.dim(`  ${f.user}: ${f.error}\n`))
        return
      }
      const liked = o.like?.split(',').map((w) => w.trim()).filter(Boolean)
      const r = await withModel(o, (m) => m.wordOfTheDay({ user: o.user, date, windowDays, likedWords: liked }))
      if (o.json) return printJson(r)
      process.stdout.write(`${pc.bold(r.word)}${r.partOfSpeech ? pc.dim(` (${r.partOfSpeech})`) : ''}\n`)
      if (r.definition) process.stdout.write(`  ${r.definition}\n`)
      if (r.example) process.stdout.write(pc.italic(`  "${r.example}"\n`))
      process.stderr.write(pc.dim(`${r.user}, ${r.date}; ${r.meaning ?? ''}${r.id ? ` [${r.id.join(',')}]` : ''}; ${r.reason}\n`))
    })
}
