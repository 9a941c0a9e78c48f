#!/usr/bin/env node
/** Entry point of the `wotd` command (bin/wotd.js loads the compiled copy of this file). */
import { main } from './main.js'

// `wotd encode ... | head -1`: the reader went away, which ends the output, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
}

process.exitCode = await main(process.argv)
