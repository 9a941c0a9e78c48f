/**
 * The text a word is embedded as: the word and its definition when one is known
 * (`gossamer: a fine, filmy cobweb ...`), else the bare word. A bare word gives the encoder
 * little more than its spelling (MiniLM put `brooklime` and `plumpie` next to `meadow`,
 * `brook`, `willow`); with the definition its neighbours are words of like meaning (woods,
 * copse, hedgerow). Measured on held-out lexicon words: attribute accuracy 0.49 -> 0.55 from
 * the vector alone, hit@10 of a simulated person's other words 0.01 -> 0.07.
 */
export function embeddingText(word: string, definition?: string | null): string {
  const d = definition?.trim()
  return d ? `${word}: ${d}` : word
}
