#!/usr/bin/env node
// `npm test`: the Rust tests (cargo test), then the ava tests. Both always run; the exit
// code is non-zero if either failed. Extra arguments go to ava (e.g. a file to run).
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const shell = process.platform === 'win32'
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell }).status ?? 1

// `--no-default-features` leaves out the N-API binding, whose symbols only exist inside Node.
const rust = run('cargo', ['test', '--release', '--no-default-features', '--manifest-path', 'crate/Cargo.toml'])
const ava = run('npx', ['ava', ...process.argv.slice(2)])
if (rust !== 0) console.error('npm test: the Rust tests failed')
if (ava !== 0) console.error('npm test: the ava tests failed')
process.exit(rust !== 0 || ava !== 0 ? 1 : 0)
