/** The prompt and response schema for model providers. */
import { z } from 'zod'
import { cellKey, PARTS_OF_SPEECH, type Complexity, type Era, type Style } from '../types.js'
import type { ProposeRequest } from './provider.js'
import { MAX_WORD_LENGTH, MIN_WORD_LENGTH } from './validate.js'

/** What each attribute value means (the same wording as `data/lexicon/README.md`). */
export const ATTRIBUTE_MEANINGS: {
  style: Record<Style, string>
  complexity: Record<Complexity, string>
  era: Record<Era, string>
} = {
  style: {
    classical: 'Latinate or Greek-rooted, formal, learned',
    modern: 'current, brisk, technical or urban register',
    romantic: 'emotional, lyrical, evocative of feeling and nature',
    neutral: 'everyday, unmarked register',
  },
  complexity: {
    simple: 'short, common, easy to say and know',
    beautiful: 'euphonious, lovely in sound or image',
    complex: 'long, rare, polysyllabic, precise',
    plain: 'functional, unadorned, workaday',
  },
  era: {
    shakespearean: 'Elizabethan / Early Modern English feel, archaic',
    victorian: '19th-century feel',
    modernist: 'early-to-mid 20th century feel',
    contemporary: 'late 20th / 21st century feel',
  },
}

/** The structured answer: a list of words with part of speech and a one-line definition. */
export const WordListSchema = z.object({
  words: z.array(
    z.object({
      word: z.string(),
      partOfSpeech: z.enum(PARTS_OF_SPEECH),
      definition: z.string(),
    }),
  ),
})
export type WordList = z.infer<typeof WordListSchema>

/** The most words of the cell's own list repeated in a prompt (to steer away from them). */
export const MAX_AVOID_IN_PROMPT = 200

const SYSTEM = [
  'You are a lexicographer compiling word lists for a word-of-the-day application.',
  'You answer with real English words only: no proper nouns, no phrases, no made-up words, no',
  'plain inflections of another word in the list. Every word gets its part of speech (noun, verb,',
  'adjective or adverb) and a one-line definition in your own words.',
].join(' ')

const LETTER_RANGES = ['a-d', 'e-h', 'i-l', 'm-p', 'q-s', 't-z']

export type ChatMessage = { role: 'system' | 'user'; content: string }

/** The messages for one request; `note` explains why an earlier answer was not usable. */
export function buildMessages(req: ProposeRequest, count: number, note?: string): ChatMessage[] {
  const { style, complexity, era } = req.cell
  const lines = [
    `Cell: ${cellKey(req.cell)}`,
    `Count: ${count}`,
    '',
    `Give ${count} distinct English words that fit all three attributes:`,
    `- style "${style}": ${ATTRIBUTE_MEANINGS.style[style]}`,
    `- complexity "${complexity}": ${ATTRIBUTE_MEANINGS.complexity[complexity]}`,
    `- era "${era}": ${ATTRIBUTE_MEANINGS.era[era]}`,
    '',
    `Each word is a single lowercase word of ${MIN_WORD_LENGTH}-${MAX_WORD_LENGTH} letters (an inner hyphen or apostrophe is allowed).`,
  ]
  if (req.chunks > 1) {
    const range = LETTER_RANGES[(req.chunk + req.round - 1) % LETTER_RANGES.length]
    lines.push(`This is list ${req.chunk + 1} of ${req.chunks} for the same attributes: to differ from the others, prefer words starting with ${range}.`)
  }
  const avoid = req.have.slice(-MAX_AVOID_IN_PROMPT)
  if (avoid.length > 0) lines.push(`Do not use any of these words: ${avoid.join(', ')}.`)
  if (note) lines.push('', `Your previous answer could not be used: ${note}. Answer again, following the schema exactly.`)
  return [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: lines.join('\n') },
  ]
}
