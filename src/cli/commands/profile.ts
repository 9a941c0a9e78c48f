/** `wotd like | dislike | profile | forget`: a person's profile from the shell. */
import type { Command } from 'commander'
import pc from 'picocolors'
import type { UserProfile } from '../../pipeline/index.js'
import { printJson } from '../output.js'
import { runOpt, storeOpt, withModel, type Common } from './inference.js'

type WithUser = Common & { user: string }

/** A profile for JSON output: the vector is left out (384 numbers nobody reads in a shell). */
function plain(p: UserProfile) {
  const { vector, ...rest } = p
  return { ...rest, hasTaste: vector !== null }
}

function show(p: UserProfile): void {
  const words = (list: { word: string }[]) => (list.length ? list.map((f) => f.word).join(', ') : pc.dim('none'))
  process.stdout.write(`${pc.bold(p.user)}\n`)
  process.stdout.write(`  liked     ${words(p.liked)}\n`)
  process.stdout.write(`  disliked  ${words(p.disliked)}\n`)
  process.stdout.write(`  taste     ${p.id ? `[${p.id.join(',')}] ${p.meaning}` : pc.dim('none yet (like a few words)')}\n`)
  process.stdout.write(`  shown     ${p.shown.length ? p.shown.map((s) => `${s.word} ${pc.dim(s.date)}`).join(', ') : pc.dim('none')}\n`)
}

export function registerProfile(program: Command): void {
  for (const kind of ['like', 'dislike'] as const) {
    program
      .command(`${kind} <words...>`)
      .description(kind === 'like' ? "add words a person likes (their word of the day moves toward them)" : "add words a person dislikes (never shown; the taste moves away)")
      .requiredOption('--user <name>', 'whose profile')
      .option(...storeOpt)
      .option(...runOpt)
      .option('--json', 'print JSON')
      .action(async (words: string[], o: WithUser) => {
        const p = await withModel(o, (m) => (kind === 'like' ? m.like(o.user, words) : m.dislike(o.user, words)))
        if (o.json) return printJson(plain(p))
        show(p)
      })
  }

  program
    .command('profile')
    .description('what is kept about a person: liked and disliked words, taste, words shown')
    .requiredOption('--user <name>', 'whose profile')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (o: WithUser) => {
      const p = await withModel(o, (m) => m.profile(o.user))
      if (o.json) return printJson(plain(p))
      show(p)
    })

  program
    .command('forget')
    .description("delete everything kept about a person (profile and word-of-the-day history)")
    .requiredOption('--user <name>', 'whose data')
    .option(...storeOpt)
    .option(...runOpt)
    .option('--json', 'print JSON')
    .action(async (o: WithUser) => {
      const r = await withModel(o, (m) => m.forget(o.user))
      if (o.json) return printJson(r)
      process.stdout.write(`forgot ${r.user}: ${r.profile ? 'profile' : 'no profile'}, ${r.history} word${r.history === 1 ? '' : 's'} of the day\n`)
    })
}
