/**
 * Chromium for the browser tests: Debian's `/usr/bin/chromium` (or `$WOTD_CHROMIUM`), driven by
 * playwright-core. Without it a browser test is skipped with a one-line reason, except in CI
 * (`CI=true`), where it fails: CI installs Chromium, so a skip there would hide a broken page.
 */
import test from 'ava'
import { existsSync } from 'node:fs'
import { inCI } from './cli.js'

export const CHROMIUM = process.env.WOTD_CHROMIUM?.trim() || '/usr/bin/chromium'
export const INSTALL = 'apt-get install -y --no-install-recommends chromium fonts-liberation'
export const haveChromium = existsSync(CHROMIUM)

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** `test.serial` when Chromium can run (or in CI, where its absence must fail); else a skip with the reason printed once. */
export function browserTest(file: string): typeof test.serial {
  if (!haveChromium && !inCI) {
    console.warn(`[${file}] SKIPPED browser tests: ${CHROMIUM} is missing; install it with \`${INSTALL}\``)
    return test.serial.skip as unknown as typeof test.serial
  }
  return test.serial
}

/** The failure a browser test reports in CI when Chromium is missing. */
export const MISSING_IN_CI = `${CHROMIUM} is missing; CI must install it: ${INSTALL}`
