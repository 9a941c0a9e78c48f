/**
 * How good a catalogue word is to put in front of a person, whatever its meaning: a word with
 * a definition, used now and then in speech, beats an unexplained form, a brand name, or a
 * word so common it teaches nothing. A small penalty in [-1, 0] added to ranking scores; it
 * orders words of like fit, it never outweighs fit to the request.
 */
import type { CatalogueEntry } from '../catalogue/build.js'

const POOR_USAGE = new Set(['trade_name', 'trademark', 'plural', 'combining_form', 'abbreviation', 'acronym', 'blend', 'street_name'])

export function quality(e: CatalogueEntry): number {
  let q = 0
  if (!e.definition) q -= 0.5
  if (e.usage.some((u) => POOR_USAGE.has(u))) q -= 0.5
  // Zipf 0: never heard in 51M words of subtitles; above 5.5: "the", "have", "know".
  if (e.zipf === 0) q -= 0.2
  else if (e.zipf > 5.5) q -= 0.3
  if (e.word.length < 4) q -= 0.2
  return Math.max(-1, q)
}
