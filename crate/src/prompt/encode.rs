//! Text examples to token ids and a loss mask.
//!
//! `input_ids = prompt ++ completion ++ [end_of_turn]`, where the prompt is the chat template's
//! rendering of the DSL request (generation prompt included) and the completion is the word list.
//! The mask is true exactly on the completion and the end-of-turn token: the model is taught to
//! answer and to stop, never to predict the prompt.

use super::chat::ChatFormat;
use super::text::{completion, user_message, TextExample};
use crate::error::{Result, WotdError};
use crate::io::TextTokenizer;
use crate::rvq::AttributeVocab;

/// One tokenized example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedExample {
    pub input_ids: Vec<u32>,
    /// `true` where the token belongs to the answer (loss is taken there).
    pub loss_mask: Vec<bool>,
    /// How many words of the text example fit within the length limit.
    pub words_kept: usize,
}

impl TokenizedExample {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    pub fn completion_len(&self) -> usize {
        self.loss_mask.iter().filter(|m| **m).count()
    }
}

/// Tokenizes examples for one base model.
pub struct ExampleEncoder<'a> {
    tokenizer: &'a TextTokenizer,
    chat: ChatFormat,
    vocab: Option<AttributeVocab>,
    system: Option<String>,
    max_len: usize,
}

impl<'a> ExampleEncoder<'a> {
    /// `vocab` names attributes in prompts (aligned codebooks); `max_len` caps prompt + answer.
    pub fn new(tokenizer: &'a TextTokenizer, chat: ChatFormat, vocab: Option<AttributeVocab>, max_len: usize) -> Self {
        ExampleEncoder { tokenizer, chat, vocab, system: None, max_len }
    }

    /// Puts `system` before every request (`None`: the chat template's default).
    pub fn with_system(mut self, system: Option<String>) -> Self {
        self.system = system;
        self
    }

    pub fn chat(&self) -> &ChatFormat {
        &self.chat
    }

    /// The prompt's token ids for a pattern (and seed words of its region): exactly what
    /// generation should feed the model.
    pub fn prompt_ids(&self, pattern: &crate::dsl::Pattern, seeds: &[String]) -> Result<Vec<u32>> {
        let text = self.chat.prompt_with_system(self.system.as_deref(), &user_message(pattern, self.vocab.as_ref(), seeds))?;
        Ok(self.tokenizer.encode(&text, false)?.ids)
    }

    /// Drops trailing words until the example fits `max_len`; an example whose prompt and first
    /// word cannot fit is an error, not a silently empty answer.
    pub fn encode(&self, ex: &TextExample) -> Result<TokenizedExample> {
        let prompt = self.prompt_ids(&ex.pattern, &ex.seeds)?;
        for keep in (1..=ex.words.len()).rev() {
            let mut answer = self.tokenizer.encode(&completion(&ex.words[..keep]), false)?.ids;
            answer.push(self.chat.end_of_turn());
            if prompt.len() + answer.len() <= self.max_len {
                let mut loss_mask = vec![false; prompt.len()];
                loss_mask.resize(prompt.len() + answer.len(), true);
                let mut input_ids = prompt;
                input_ids.extend(answer);
                return Ok(TokenizedExample { input_ids, loss_mask, words_kept: keep });
            }
        }
        Err(WotdError::InvalidInput(format!(
            "example for {} does not fit {} tokens even with one word (prompt alone is {})",
            ex.pattern,
            self.max_len,
            prompt.len()
        )))
    }

    pub fn encode_all(&self, examples: &[TextExample]) -> Result<Vec<TokenizedExample>> {
        examples.iter().map(|e| self.encode(e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::parse;
    use std::path::Path;

    fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures/llama")).unwrap()
    }

    #[test]
    fn loss_mask_covers_exactly_the_answer_and_end_of_turn() -> Result<()> {
        let tok = tokenizer();
        let chat = ChatFormat::from_tokenizer(&tok)?;
        let eot = chat.end_of_turn();
        let enc = ExampleEncoder::new(&tok, chat, Some(AttributeVocab::default()), 512);
        let ex = TextExample { pattern: parse("[9,10,3,*]")?, words: vec!["lucid".into(), "serene".into(), "umbra".into()], seeds: vec![] };
        let t = enc.encode(&ex)?;
        assert_eq!(t.input_ids.len(), t.loss_mask.len());
        let first = t.loss_mask.iter().position(|m| *m).unwrap();
        assert!(t.loss_mask[first..].iter().all(|m| *m), "the answer is one contiguous tail");
        assert_eq!(*t.input_ids.last().unwrap(), eot);
        let answer: Vec<u32> = t.input_ids[first..t.len() - 1].to_vec();
        assert_eq!(tok.decode(&answer, false)?, "lucid, serene, umbra");
        let prompt = tok.decode(&t.input_ids[..first], false)?;
        assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");
        assert!(prompt.contains("Words for semantic ID [9,10,3,*] (modern / beautiful / shakespearean / any variation):"));
        assert_eq!(t.completion_len(), answer.len() + 1);
        assert_eq!(enc.prompt_ids(&ex.pattern, &ex.seeds)?, t.input_ids[..first].to_vec());
        Ok(())
    }

    #[test]
    fn long_answers_lose_trailing_words_to_fit() -> Result<()> {
        let tok = tokenizer();
        let chat = ChatFormat::from_tokenizer(&tok)?;
        let ex = TextExample { pattern: parse("[1,*,*,*]")?, words: (0..30).map(|i| format!("word{i}")).collect(), seeds: vec![] };
        let full = ExampleEncoder::new(&tok, ChatFormat::from_tokenizer(&tok)?, None, 4096).encode(&ex)?;
        assert_eq!(full.words_kept, 30);
        let limit = full.len() - 10;
        let cut = ExampleEncoder::new(&tok, chat, None, limit).encode(&ex)?;
        assert!(cut.len() <= limit && cut.words_kept < 30 && cut.words_kept > 0);
        let tiny = ExampleEncoder::new(&tok, ChatFormat::from_tokenizer(&tok)?, None, 10);
        assert_eq!(tiny.encode(&ex).unwrap_err().code(), "INVALID_INPUT");
        Ok(())
    }
}
