/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The report in a real browser: Debian's `chromium`, driven by `playwright-core`, opens the
 * HTML file from disk (`file://`) and checks that nothing is fetched, nothing logs an error,
 * and every plot is present and drawn; a full-page screenshot is written to
 * `benchmark/results/report-screenshot.png` (a CI artifact).
 *
 * The report is of a synthetic run (see `report-fixture.ts`); with `WOTD_REPORT_STORE` set
 * (a store holding a finished `wotd train` run), that store's report is checked as well and
 * becomes the screenshot.
 *
 * Needs `/usr/bin/chromium` (or `$WOTD_CHROMIUM`): in CI (`CI=true`) its absence fails the test; elsewhere the test
 * is skipped with a notice. Install it with
 *   apt-get install -y --no-install-recommends chromium fonts-liberation
 */
import test, { type ExecutionContext } from 'ava'
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type BrowserContext } from 'playwright-core'
import { buildReport } from '../src/report/index.js'
import { browserTest as makeBrowserTest, CHROMIUM, CHROMIUM_ARGS, haveChromium, MISSING_IN_CI } from './helpers/chromium.js'
import { fakeModel, makeSyntheticRun, removeTempDirs, tempDir } from './report-fixture.js'

const root = join(import.meta.dirname, '..')
const RESULTS = join(root, 'benchmark', 'results')
const realStore = process.env.WOTD_REPORT_STORE?.trim() || undefined


interface PlotCheck {
  id: string
  width: number
  height: number
  marks: number
  markElements: number
  drawnMarks: number
}

/** Opens a report file in a fresh browser profile and checks it; returns what it saw. */
async function checkInBrowser(t: ExecutionContext, file: string, screenshot: string): Promise<PlotCheck[]> {
  const profile = await mkdtemp(join(tmpdir(), 'wotd-chromium-'))
  let context: BrowserContext | undefined
  try {
    // A fresh profile per run is `--user-data-dir`, which Playwright takes as this argument.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      offline: true,
    })
    const page = context.pages()[0] ?? (await context.newPage())
    const errors: string[] = []
    const requests: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`)
    })
    page.on('pageerror', (err) => errors.push(`page: ${err.message}`))
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
    page.on('request', (r) => {
      if (!r.url().startsWith('file://')) requests.push(r.url())
    })
    const url = pathToFileURL(file).href
    const resp = await page.goto(url, { waitUntil: 'load' })
    t.truthy(resp, 'the page loaded')
    t.regex(await page.title(), /^wotd-ml report: /)

    const expected = ((await page.locator('meta[name="wotd-plots"]').getAttribute('content')) ?? '').split(' ').filter(Boolean)
    const plots = await page.evaluate(() =>
      [...document.querySelectorAll('figure.plot')].map((fig) => {
        const svg = fig.querySelector('svg')
        const box = svg?.getBoundingClientRect()
        // Data marks only: vega puts axes, legends and titles in other roles.
        const marks = svg ? [...svg.querySelectorAll('g.role-mark')] : []
        const items = marks.flatMap((g) => [...g.querySelectorAll('path, rect, line, circle, text')])
        const drawn = items.filter((el) => {
          const b = (el as SVGGraphicsElement).getBBox()
          return b.width > 0 || b.height > 0
        })
        return {
          id: (fig as HTMLElement).dataset.plot ?? '',
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          marks: marks.length,
          markElements: items.length,
          drawnMarks: drawn.length,
        }
      }),
    )
    t.deepEqual(
      plots.map((p) => p.id),
      expected,
      'every plot the report drew is in the page',
    )
    for (const p of plots) {
      t.true(p.width > 50 && p.height > 50, `${p.id}: the SVG has a size (${p.width}x${p.height})`)
      t.true(p.marks > 0 && p.drawnMarks > 0, `${p.id}: the plot has drawn marks (${p.drawnMarks} of ${p.markElements})`)
    }
    const sections = await page.evaluate(() => [...document.querySelectorAll('main > section')].map((s) => s.id))
    t.deepEqual(sections, ['summary', 'timings', 'training', 'codebooks', 'projection', 'samples', 'benchmarks'])

    await mkdir(RESULTS, { recursive: true })
    await page.screenshot({ path: screenshot, fullPage: true })
    t.true((await stat(screenshot)).size > 10_000, 'the screenshot has content')
    t.deepEqual(errors, [], 'no console errors')
    t.deepEqual(requests, [], 'nothing fetched from outside the file')
    return plots
  } finally {
    await context?.close()
    await rm(profile, { recursive: true, force: true })
  }
}

const have = haveChromium
test.after.always(removeTempDirs)

const browserTest = makeBrowserTest('report-browser')

browserTest('the report of a synthetic run renders in chromium: every plot drawn, no errors, nothing fetched', async (t) => {
  if (!have) return t.fail(MISSING_IN_CI)
  const f = await makeSyntheticRun()
  const out = join(await tempDir('wotd-report-html-'), 'report.html')
  const r = await buildReport({ store: f.store, out, model: false })
  t.deepEqual(r.plots, ['timings', 'loss', 'codebooks', 'pca-style', 'pca-complexity', 'pca-era'])
  const shot = join(RESULTS, realStore ? 'report-synthetic-screenshot.png' : 'report-screenshot.png')
  const plots = await checkInBrowser(t, out, shot)
  const byId = Object.fromEntries(plots.map((p) => [p.id, p]))
  // A point per word in each projection; a cell per code and level in the heatmap.
  for (const id of ['pca-style', 'pca-complexity', 'pca-era']) t.true(byId[id].drawnMarks >= f.words.length, `${id}: ${byId[id].drawnMarks} points`)
  t.true(byId.codebooks.drawnMarks >= 128)
  t.log(plots.map((p) => `${p.id}: ${Math.round(p.width)}x${Math.round(p.height)} px, ${p.drawnMarks} marks`).join('; '))
  t.log(`screenshot: ${shot}`)
})

browserTest('with a model stand-in the sample grid renders too', async (t) => {
  if (!have) return t.fail(MISSING_IN_CI)
  const f = await makeSyntheticRun()
  const out = join(await tempDir('wotd-report-html-'), 'report.html')
  await buildReport({ store: f.store, out, model: fakeModel(f.words) })
  await checkInBrowser(t, out, join(await tempDir('wotd-shot-'), 'shot.png'))
})

const realTest = realStore ? browserTest : test.skip
realTest('the report of a trained run (WOTD_REPORT_STORE) renders in chromium', async (t) => {
  if (!have) return t.fail(MISSING_IN_CI)
  const out = join(await tempDir('wotd-report-html-'), 'report.html')
  const r = await buildReport({ store: realStore, out })
  t.log(`run ${r.runId}: ${r.plots.length} plots; not available: ${r.unavailable.map((u) => `${u.section} (${u.why})`).join('; ') || 'nothing'}`)
  const shot = join(RESULTS, 'report-screenshot.png')
  await checkInBrowser(t, out, shot)
  await copyFile(out, join(RESULTS, 'report.html'))
  t.log(`screenshot: ${shot}`)
})
