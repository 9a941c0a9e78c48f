/**
 * Model profiles (DESIGN.md "Models and profiles"). Each role lists candidates in order of
 * preference: the first one that can be had is used. In `compact`, bge-small-en-v1.5 is
 * preferred, but no reachable registry package carries it (scripts/models/README.md), so
 * without the Hub the embedder falls back to all-MiniLM-L6-v2.
 */
export type ProfileName = 'compact' | 'full'

export interface Profile {
  name: ProfileName
  embedder: string[]
  decoder: string[]
}

export const PROFILES: Record<ProfileName, Profile> = {
  compact: {
    name: 'compact',
    embedder: ['BAAI/bge-small-en-v1.5', 'sentence-transformers/all-MiniLM-L6-v2'],
    decoder: ['HuggingFaceTB/SmolLM2-135M-Instruct'],
  },
  full: {
    name: 'full',
    embedder: ['BAAI/bge-m3'],
    decoder: ['microsoft/Phi-3.5-mini-instruct'],
  },
}

export function isProfileName(s: string): s is ProfileName {
  return s === 'compact' || s === 'full'
}
