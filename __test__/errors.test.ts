import test from 'ava'
import {
  awaitNative,
  CancelledError,
  CorruptFileError,
  fromNative,
  InvalidPatternError,
  ModelNotFoundError,
  WotdError,
  callNative,
  causeChain,
} from '../src/errors.js'
import { native } from '../src/native.js'
import { runCli } from './helpers/cli.js'

test('a Rust panic surfaces as a PANIC error and the process survives', (t) => {
  const err = t.throws(() => callNative(() => native().__panicForTest('deliberate test panic')))
  t.true(err instanceof WotdError)
  t.is((err as WotdError).code, 'PANIC')
  t.regex(err!.message, /deliberate test panic/)
  // The binding still works after the panic.
  t.regex(native().nativeVersion(), /^\d+\.\d+\.\d+$/)
})

test('native errors map to typed classes with their Rust cause chain', (t) => {
  const cases: [string, new (...a: never[]) => WotdError][] = [
    ['MODEL_NOT_FOUND', ModelNotFoundError],
    ['INVALID_PATTERN', InvalidPatternError],
    ['CORRUPT_FILE', CorruptFileError],
  ]
  for (const [code, Cls] of cases) {
    const err = t.throws(() => callNative(() => native().__errorForTest(code)))
    t.true(err instanceof Cls, `${code} -> ${Cls.name}, got ${err?.constructor.name}`)
    t.is((err as WotdError).code, code)
    t.is(err!.message, 'while testing the error bridge')
    const chain = causeChain(err)
    t.is(chain.length, 2)
    t.true(chain[1].length > 0)
  }
  const corrupt = t.throws(() => callNative(() => native().__errorForTest('CORRUPT_FILE')))
  t.deepEqual(causeChain(corrupt), ['while testing the error bridge', 'corrupt file /tmp/x.safetensors: truncated'])
})

test('fromNative leaves foreign errors alone', (t) => {
  const e = new TypeError('x')
  t.is(fromNative(e), e)
  t.is(fromNative('str'), 'str')
})

test('error lines escape control and bidi characters, and carry no Rust backtrace', async (t) => {
  const { escapeForTerminal } = await import('../src/cli/output.js')
  const { withoutBacktrace, fromNative } = await import('../src/errors.js')
  t.is(escapeForTerminal('bad "[1,\u202e2]"\nnext\u0007'), 'bad "[1,\\u{202e}2]"\\u{a}next\\u{7}')
  t.is(escapeForTerminal('Zoë — fine'), 'Zoë — fine')
  const rust = '[CORRUPT_FILE] tensor file is damaged\n   0: candle_core::error::Error::bt\n             at src/error.rs:1\n   1: main'
  const e = fromNative(new Error(rust)) as Error
  t.is(e.message, 'tensor file is damaged')
  t.is(withoutBacktrace('x failed\nStack backtrace:\n  0: a'), 'x failed')
  t.is(withoutBacktrace('plain'), 'plain')
  const bad = await runCli(['describe', '[1,\u202e2,*,*]'])
  t.is(bad.code, 2)
  t.true(bad.stderr.includes('\\u{202e}'))
  t.false(bad.stderr.includes('\u202e'), 'the override character itself is never printed')
})

test('a secret is redacted verbatim, percent-encoded and base64-encoded at any alignment', async (t) => {
  const { redactText } = await import('../src/store/index.js')
  const { redact } = await import('../src/corpus/validate.js')
  const key = 'sk-test-SECRETKEY-0123456789abcdefXYZ'
  for (const prefix of ['', 'u:', 'ab:']) {
    const b64 = Buffer.from(prefix + key).toString('base64')
    t.false(redactText(`Basic ${b64}`, [key]).includes(b64.slice(4, 30)), `base64 after ${JSON.stringify(prefix)}`)
    t.false(redact(`Basic ${b64}`, [key]).includes(b64.slice(4, 30)))
  }
  const url = Buffer.from(key).toString('base64url')
  t.false(redactText(url, [key]).includes(url.slice(0, 30)))
  t.is(redactText(`key=${encodeURIComponent('p@ss/word!')}`, ['p@ss/word!']), 'key=***')
})

test('RVQ training takes the cancel token every long task takes: a cancelled token rejects with CancelledError', async (t) => {
  const rows = 256
  const dim = 8
  const data = new Float32Array(rows * dim)
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dim; i++) data[r * dim + i] = Math.sin(r * 7 + i * 3)
    const n = Math.hypot(...data.subarray(r * dim, (r + 1) * dim))
    for (let i = 0; i < dim; i++) data[r * dim + i] /= n
  }
  const token = new (native().CancelToken)()
  token.cancel()
  await t.throwsAsync(awaitNative(native().RvqCodebook.train(data, dim, { seed: 1 }, null, token)), { instanceOf: CancelledError })
  const book = await awaitNative(native().RvqCodebook.train(data, dim, { seed: 1 }, null, new (native().CancelToken)()))
  t.is(book.dimension, dim)
})
