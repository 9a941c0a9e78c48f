//! Decoding constrained to a vocabulary: a token trie of the allowed words as they appear in
//! a completion, walked in step with sampling.
//!
//! A completion is `w1, w2, ..., wn` then the end-of-turn token. The first word is tokenized
//! alone, later ones with the separator in front (`", serene"`), because that is how the
//! trained completion tokenizes (byte-level BPE splits at the comma and keeps the space on
//! the word). Two tries therefore: `first` for word one, `next` for separator + word. After a
//! complete word the model may continue a longer word, start `next`, or end the turn; nothing
//! else is ever allowed, so every finished completion is a list of vocabulary words.
//!
//! The walk keeps a set of live nodes rather than one, so a vocabulary where one word's tokens
//! are a prefix of another's (`sun` / `sunset`) or where the separator's tokens collide with a
//! word's stays exact.

use crate::error::{Result, WotdError};
use crate::io::TextTokenizer;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
struct Node {
    /// Ordered, so the allowed set (and with it sampling) never depends on hash order.
    children: BTreeMap<u32, usize>,
    terminal: bool,
}

/// The allowed continuations of a completion, as token sequences.
#[derive(Clone, Debug)]
pub struct VocabTrie {
    nodes: Vec<Node>,
    first: usize,
    next: usize,
    end_tokens: Vec<u32>,
    words: usize,
}

/// Where one row's completion stands in the trie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrieState {
    live: Vec<usize>,
    /// The end-of-turn token was taken: only stopping is left.
    ended: bool,
}

impl TrieState {
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

impl VocabTrie {
    /// Builds the trie of `words` (already normalised; duplicates and empties ignored).
    /// `separator` is what goes between words; `end_tokens` may follow any complete word.
    pub fn build(tok: &TextTokenizer, words: &[String], separator: &str, end_tokens: &[u32]) -> Result<Self> {
        if end_tokens.is_empty() {
            return Err(WotdError::InvalidInput("a vocabulary constraint needs at least one end token".into()));
        }
        let mut t = VocabTrie { nodes: vec![Node::default(), Node::default()], first: 0, next: 1, end_tokens: end_tokens.to_vec(), words: 0 };
        let mut unique: Vec<&String> = words.iter().filter(|w| !w.trim().is_empty()).collect();
        unique.sort();
        unique.dedup();
        for w in unique {
            let alone = tok.encode(w, false)?.ids;
            let after = tok.encode(&format!("{separator}{w}"), false)?.ids;
            if alone.is_empty() || after.is_empty() {
                continue;
            }
            t.insert(t.first, &alone);
            t.insert(t.next, &after);
            t.words += 1;
        }
        if t.words == 0 {
            return Err(WotdError::InvalidInput("the vocabulary constraint has no usable words".into()));
        }
        Ok(t)
    }

    fn insert(&mut self, root: usize, ids: &[u32]) {
        let mut at = root;
        for &id in ids {
            at = match self.nodes[at].children.get(&id) {
                Some(&n) => n,
                None => {
                    self.nodes.push(Node::default());
                    let n = self.nodes.len() - 1;
                    self.nodes[at].children.insert(id, n);
                    n
                }
            };
        }
        self.nodes[at].terminal = true;
    }

    /// Words in the trie.
    pub fn len(&self) -> usize {
        self.words
    }

    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// The state before the first generated token.
    pub fn start(&self) -> TrieState {
        TrieState { live: vec![self.first], ended: false }
    }

    fn after_word(&self, s: &TrieState) -> bool {
        s.live.iter().any(|&n| self.nodes[n].terminal)
    }

    /// Token ids allowed next, ascending. Empty once the turn has ended.
    pub fn allowed(&self, s: &TrieState) -> Vec<u32> {
        if s.ended {
            return Vec::new();
        }
        let mut out: Vec<u32> = s.live.iter().flat_map(|&n| self.nodes[n].children.keys().copied()).collect();
        if self.after_word(s) {
            out.extend(self.nodes[self.next].children.keys().copied());
            out.extend(&self.end_tokens);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Sets every logit the trie does not allow to `-inf`. Returns how many stay allowed.
    pub fn mask(&self, s: &TrieState, logits: &mut [f32]) -> usize {
        let allowed = self.allowed(s);
        let mut keep = vec![false; logits.len()];
        let mut n = 0;
        for &id in &allowed {
            if let Some(k) = keep.get_mut(id as usize) {
                *k = true;
                n += 1;
            }
        }
        for (v, k) in logits.iter_mut().zip(keep) {
            if !k {
                *v = f32::NEG_INFINITY;
            }
        }
        n
    }

    /// Moves along `token`. A token the trie does not allow is an error (the caller masked
    /// the logits, so it means a bug, not a model choice).
    pub fn advance(&self, s: &mut TrieState, token: u32) -> Result<()> {
        if s.ended {
            return Err(WotdError::InvalidInput(format!("token {token} after the end of a constrained completion")));
        }
        let after_word = self.after_word(s);
        if after_word && self.end_tokens.contains(&token) {
            s.live.clear();
            s.ended = true;
            return Ok(());
        }
        let mut live: Vec<usize> = s.live.iter().filter_map(|&n| self.nodes[n].children.get(&token).copied()).collect();
        if after_word {
            live.extend(self.nodes[self.next].children.get(&token).copied());
        }
        live.sort_unstable();
        live.dedup();
        if live.is_empty() {
            return Err(WotdError::InvalidInput(format!("token {token} is not allowed by the vocabulary constraint here")));
        }
        s.live = live;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tok() -> TextTokenizer {
        TextTokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures/llama")).unwrap()
    }

    fn walk(t: &VocabTrie, s: &mut TrieState, ids: &[u32]) -> Result<()> {
        ids.iter().try_for_each(|&id| t.advance(s, id))
    }

    #[test]
    fn accepts_exactly_lists_of_vocabulary_words() -> Result<()> {
        let tok = tok();
        let end = 2u32;
        let words: Vec<String> = ["sun", "sunset", "serene", "lucid"].iter().map(|s| s.to_string()).collect();
        let t = VocabTrie::build(&tok, &words, ", ", &[end])?;
        assert_eq!(t.len(), 4);
        // A trained-style completion walks through, prefix words included.
        let mut s = t.start();
        let ids = tok.encode("sun, sunset, lucid", false)?.ids;
        walk(&t, &mut s, &ids)?;
        assert!(t.allowed(&s).contains(&end));
        t.advance(&mut s, end)?;
        assert!(s.is_ended() && t.allowed(&s).is_empty());
        // Not a word of the vocabulary, or a word cut short before the end token.
        let mut s = t.start();
        assert!(walk(&t, &mut s, &tok.encode("sunrise", false)?.ids).is_err());
        let mut s = t.start();
        let luc = &tok.encode("lucid", false)?.ids;
        if luc.len() > 1 {
            walk(&t, &mut s, &luc[..1])?;
            assert!(!t.allowed(&s).contains(&end));
        }
        // Masking leaves exactly the allowed ids finite.
        let s = t.start();
        let mut logits = vec![0.5f32; tok.vocab_size()];
        let n = t.mask(&s, &mut logits);
        let finite: Vec<u32> = logits.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, _)| i as u32).collect();
        assert_eq!(finite, t.allowed(&s));
        assert_eq!(n, finite.len());
        Ok(())
    }

    #[test]
    fn empty_vocabulary_is_an_error() {
        let tok = tok();
        assert!(VocabTrie::build(&tok, &[" ".to_string()], ", ", &[2]).is_err());
        assert!(VocabTrie::build(&tok, &["sun".to_string()], ", ", &[]).is_err());
    }
}
