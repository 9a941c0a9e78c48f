/**
 * The `wotd` command line: a thin shell over the library API. Each command lives in
 * `commands/` and only parses arguments, calls the API and prints.
 */
import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { reportError } from './output.js'
import { registerModels } from './commands/models.js'
import { registerReport } from './commands/report.js'
import { registerCorpus } from './commands/corpus.js'
import { registerInference } from './commands/inference.js'
import { registerProfile } from './commands/profile.js'
import { registerRuns } from './commands/runs.js'
import { registerServe } from './commands/serve.js'
import { registerTrain } from './commands/train.js'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

export function buildProgram(): Command {
  const program = new Command('wotd')
    .description('Learn which words a person likes and write new ones to match.')
    .version(pkg.version)
    .option('--verbose', 'print the full cause of errors')
    .showHelpAfterError()
    // Set before the subcommands are added: they copy it, so usage errors anywhere exit 2.
    .exitOverride()
  registerTrain(program)
  registerCorpus(program)
  registerInference(program)
  registerProfile(program)
  registerServe(program)
  registerRuns(program)
  registerModels(program)
  registerReport(program)
  return program
}

/** Runs the CLI and resolves to the process exit code. */
export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return 0
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    const verbose = argv.includes('--verbose')
    return reportError(err, { verbose, json: argv.includes('--json') })
  }
}
