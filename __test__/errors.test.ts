import test from 'ava'
import {
  CorruptFileError,
  fromNative,
  InvalidPatternError,
  ModelNotFoundError,
  WotdError,
  callNative,
  causeChain,
} from '../src/errors.js'
import { native } from '../src/native.js'

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
