#!/usr/bin/env node
// Builds the native addon (release) and compiles the TypeScript layer. Runs from
// `npm install` (the `prepare` lifecycle), `npm run build` and `npm pack`.
// Cargo honours CARGO_TARGET_DIR, so CI can reuse a target directory outside the clone.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const nativeOnly = process.argv.includes('--native-only')
const tsOnly = process.argv.includes('--ts-only')

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.error) {
    console.error(`wotd-ml build: could not run ${cmd}: ${r.error.message}`)
    process.exit(1)
  }
  if (r.status !== 0) process.exit(r.status ?? 1)
}

if (!tsOnly && existsSync(join(root, 'crate', 'Cargo.toml'))) {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' })
  if (cargo.status !== 0) {
    console.error(
      'wotd-ml build: the Rust toolchain (cargo) was not found. Install it from https://rustup.rs, ' +
        'or install the published package, which ships prebuilt binaries.',
    )
    process.exit(1)
  }
  run('npx', [
    'napi', 'build', '--platform', '--release', '--esm',
    '--manifest-path', 'crate/Cargo.toml',
    '--package-json-path', 'package.json',
    '--output-dir', '.',
    '--js', 'index.js',
    '--dts', 'index.d.ts',
  ])
}
if (!nativeOnly) run('npx', ['tsc', '-p', 'tsconfig.json'])
