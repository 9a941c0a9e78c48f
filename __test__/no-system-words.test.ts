// A fresh machine has only Node and Rust: no test, and nothing the tests run, may read Debian's
// word lists (`/usr/share/dict`, from `wamerican-large`). Word checks use the npm catalogue
// (WordNet, word-list). Scans every tracked source that tests import or run.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const SELF = '__test__/no-system-words.test.ts'

test('no test or library code reads /usr/share/dict', (t) => {
  const files = execFileSync('git', ['ls-files', '__test__', 'src', 'benchmark', 'crate/src', 'crate/tests', 'scripts'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    .filter((f) => /\.(ts|mts|mjs|js|rs)$/.test(f) && f !== SELF)
  t.true(files.length > 50, `scanned ${files.length} files`)
  const hits = files.filter((f) => /\/usr\/share\/dict|share\/dict\//.test(readFileSync(join(root, f), 'utf8')))
  t.deepEqual(hits, [], 'these read Debian word lists; use the npm catalogue (src/catalogue) instead')
})
