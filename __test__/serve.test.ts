/// <reference lib="dom" />
// `wotd serve`: the JSON API over HTTP (status codes, JSON errors without stack traces, the
// token, the Host check) and the page in Chromium (open, like the word, reload: the profile
// kept it). On a tiny trained run.
import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { InvalidInputError, serve, WOTDModel, WOTDTrainer } from '../src/index.js'
import { browserTest, CHROMIUM, CHROMIUM_ARGS, haveChromium, MISSING_IN_CI } from './helpers/chromium.js'
import { runCli } from './helpers/cli.js'
import { tinyConfig } from './helpers/tiny-pipeline.js'

const TOKEN = 'test-token-0123456789abcdef'

const trained = (async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wotd-serve-'))
  const store = join(dir, 'store')
  await new WOTDTrainer(tinyConfig, { store }).trainCompletePipeline()
  return { dir, store }
})()
test.after.always(async () => rmSync((await trained).dir, { recursive: true, force: true }))

/** A raw request, so the Host header and bodies are exactly what the test says. */
function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; json: any; text: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d) => (text += d))
      res.on('end', () => {
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers })
      })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  call(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })

test.serial('the API: words, likes, profile and days as JSON; mistakes are 4xx JSON errors without stack traces', async (t) => {
  const { store } = await trained
  const model = await WOTDModel.open({ store })
  const s = await serve(model, { port: 0, log: () => {} })
  try {
    const today = await call(`${s.url}api/today?user=ada&date=2026-12-01`)
    t.is(today.status, 200, today.text)
    t.is(today.json.user, 'ada')
    t.is(typeof today.json.word, 'string')
    t.is(typeof today.json.reason, 'string')
    t.is((await call(`${s.url}api/today?user=ada&date=2026-12-01`)).json.word, today.json.word, 'the same all day')

    const liked = await post(`${s.url}api/like`, { user: 'ada', words: [today.json.word] })
    t.is(liked.status, 200, liked.text)
    t.deepEqual(liked.json.liked.map((l: { word: string }) => l.word), [today.json.word])
    t.true(liked.json.hasTaste)
    t.false('vector' in liked.json)
    const days = await call(`${s.url}api/days?user=ada`)
    t.deepEqual(days.json.days.map((d: { date: string; word: string }) => [d.date, d.word]), [['2026-12-01', today.json.word]])
    t.is((await call(`${s.url}api/profile?user=ada`)).json.liked.length, 1)
    t.is((await call(`${s.url}api/health`)).json.runId, model.runId)

    const page = await call(s.url)
    t.is(page.status, 200)
    t.regex(String(page.headers['content-type']), /text\/html/)
    t.regex(String(page.headers['content-security-policy']), /script-src 'sha256-/)

    const cases: [string, Promise<{ status: number; json: any; text: string }>, number, RegExp][] = [
      ['no user', call(`${s.url}api/today`), 400, /\?user=/],
      ['empty user', call(`${s.url}api/today?user=`), 400, /1 to 200/],
      ['bad date', call(`${s.url}api/today?user=ada&date=2026-02-30`), 400, /bad date/],
      ['control characters', call(`${s.url}api/profile?user=a%07b`), 400, /control characters/],
      ['unknown path', call(`${s.url}api/nothing`), 404, /no such path/],
      ['wrong method', call(`${s.url}api/like`), 405, /answers POST/],
      ['not JSON', post(`${s.url}api/like`, '{"user": '), 400, /not valid JSON/],
      ['an array body', post(`${s.url}api/like`, '[1]'), 400, /JSON object/],
      ['words not strings', post(`${s.url}api/like`, { user: 'ada', words: [{ $gt: '' }] }), 400, /array of strings/],
      ['empty word', post(`${s.url}api/dislike`, { user: 'ada', words: [' '] }), 400, /empty word/],
      ['wrong type', call(`${s.url}api/like`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }), 415, /application\/json/],
      ['too large', post(`${s.url}api/like`, { user: 'ada', words: ['x'.repeat(20_000)] }), 413, /limited to/],
      ['another Host', call(`${s.url}api/health`, { headers: { host: 'evil.example:7070' } }), 403, /localhost/],
    ]
    for (const [what, p, status, message] of cases) {
      const r = await p
      t.is(r.status, status, `${what}: ${r.text}`)
      t.regex(r.json?.error?.message ?? '', message, what)
      t.is(typeof r.json?.error?.code, 'string', what)
      t.notRegex(r.text, /\n\s+at |\.ts:\d+/, `${what}: no stack trace`)
    }
    const forget = await post(`${s.url}api/forget`, { user: 'ada' })
    t.deepEqual(forget.json, { user: 'ada', profile: true, history: 1 })
  } finally {
    await s.close()
    await model.close()
  }
})

test.serial('a token: required off loopback, carried by every request, compared exactly', async (t) => {
  const { store } = await trained
  const model = await WOTDModel.open({ store })
  try {
    await t.throwsAsync(serve(model, { host: '0.0.0.0', port: 0 }), { instanceOf: InvalidInputError, message: /needs a token: pass --token/ })
    await t.throwsAsync(serve(model, { port: 0, token: 'short' }), { instanceOf: InvalidInputError, message: /at least 16 characters/ })
    const s = await serve(model, { host: '0.0.0.0', port: 0, token: TOKEN, log: () => {} })
    try {
      const port = new URL(s.url).port
      const base = `http://127.0.0.1:${port}/`
      for (const [what, headers, path] of [
        ['no token', {}, 'api/health'],
        ['wrong token', { authorization: `Bearer ${TOKEN}x` }, 'api/health'],
        ['the page without it', {}, ''],
      ] as const) {
        const r = await call(base + path, { headers })
        t.is(r.status, 401, what)
        t.regex(r.json.error.message, /token/, what)
        t.notRegex(r.text, new RegExp(TOKEN), 'the token is never echoed')
      }
      t.is((await post(`${base}api/like`, { user: 'ada', words: ['x'] })).status, 401, 'a write without the token is refused too')
      t.is((await call(`${base}api/profile?user=ada`)).status, 401)
      t.is((await call(`${base}api/health`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
      t.is((await call(`${base}api/health`, { headers: { 'x-wotd-token': TOKEN } })).status, 200)
      t.is((await call(`${base}?token=${TOKEN}`)).status, 200)
    } finally {
      await s.close()
    }
  } finally {
    await model.close()
  }
})

test.serial('the CLI refuses a non-loopback host without a token (exit 2), before loading anything', async (t) => {
  const { store } = await trained
  const r = await runCli(['serve', '--host', '0.0.0.0', '--port', '0', '--store', store], { env: { WOTD_TOKEN: '', MONGODB_URI: '' } })
  t.is(r.code, 2, r.stderr)
  t.regex(r.stderr, /needs a token/)
})

const browser = browserTest('serve')

browser('the page in Chromium: today\'s card, like it, reload: the profile kept it', async (t) => {
  if (!haveChromium) return t.fail(MISSING_IN_CI)
  const { store } = await trained
  const model = await WOTDModel.open({ store })
  const s = await serve(model, { port: 0, token: TOKEN, log: () => {} })
  const profileDir = await mkdtemp(join(tmpdir(), 'wotd-chromium-'))
  const context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
  try {
    const page = context.pages()[0] ?? (await context.newPage())
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
    await page.goto(`${s.url}?user=grace&date=2026-12-05&token=${TOKEN}`)
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 })
    const word = (await page.textContent('#word'))!.trim()
    t.truthy(word)
    t.truthy((await page.textContent('#why'))?.startsWith('Why: '))
    t.is(await page.getAttribute('#like', 'aria-pressed'), 'false')
    await page.click('#like')
    await page.waitForSelector('#like[aria-pressed="true"]', { timeout: 30_000 })
    t.is((await page.textContent('#verdict'))?.trim(), 'You liked this word.')

    await page.reload()
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 })
    t.is((await page.textContent('#word'))!.trim(), word, 'the same word after a reload')
    t.is(await page.getAttribute('#like', 'aria-pressed'), 'true', 'the like was kept')
    t.is(await page.locator('#days li[data-word] .mark.liked').count(), 1)
    t.deepEqual((await model.profile('grace')).liked.map((l) => l.word), [word], 'it is in the stored profile')
    await page.screenshot({ path: join(import.meta.dirname, '..', 'benchmark', 'results', 'serve-screenshot.png'), fullPage: true })

    // The page's own fetches carry the token; one without it is refused.
    const refused = await page.evaluate(async () => (await fetch('/api/profile?user=grace')).status)
    t.is(refused, 401)
    t.deepEqual(errors.filter((e) => !/401/.test(e)), [])
  } finally {
    await context.close()
    await rm(profileDir, { recursive: true, force: true })
    await s.close()
    await model.close()
  }
})
