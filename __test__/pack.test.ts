// The published package works outside this checkout: pack it, install the tarball into an
// empty project, and run its `wotd --help`.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')

test('npm pack -> install into an empty project -> wotd --help', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'wotd-pack-'))
  try {
    // --ignore-scripts: `prepare` would rebuild the addon in place while other tests use it.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: root, stdio: 'pipe' })
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'))
    t.truthy(tgz, 'npm pack wrote a tarball')
    const proj = join(work, 'proj')
    execFileSync('mkdir', ['-p', proj])
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'pack-probe', version: '1.0.0', private: true }))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', join(work, tgz!)], { cwd: proj, stdio: 'pipe' })
    const help = execFileSync(join(proj, 'node_modules', '.bin', 'wotd'), ['--help'], { cwd: proj, encoding: 'utf8' })
    t.regex(help, /Usage: wotd/)
    t.regex(help, /models/)
    // The native addon travels in the tarball and loads from the installed package.
    const version = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('wotd-ml'); console.log(m.nativeVersion())"],
      { cwd: proj, encoding: 'utf8' },
    )
    t.regex(version, /^\d+\.\d+\.\d+/)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
})
