#!/usr/bin/env node
/** Entry point of the `wotd` command (bin/wotd.js loads the compiled copy of this file). */
import { main } from './main.js'

process.exitCode = await main(process.argv)
