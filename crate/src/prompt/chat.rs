//! The base model's own chat template, rendered with minijinja the way transformers'
//! `apply_chat_template` renders it (Jinja with `trim_blocks` and `lstrip_blocks`, messages as
//! `{role, content}` maps, `bos_token`/`eos_token` in scope, `raise_exception` available).
//!
//! Training and generation must put the same tokens before the model's reply, so both go
//! through [`ChatFormat::prompt`]: a one-user-message conversation ending where the assistant's
//! turn begins (`add_generation_prompt`).

use crate::error::{Result, WotdError};
use crate::io::TextTokenizer;
use minijinja::{context, Environment, ErrorKind};
use std::collections::BTreeMap;

const TEMPLATE: &str = "chat_template";
/// Stands in for a reply while reading off what the template puts after one.
const SENTINEL: &str = "\u{1}WOTD_REPLY\u{1}";

/// How one user message becomes a prompt, and which token ends the assistant's turn. Cloning
/// is cheap next to building one (the template is parsed once and its end of turn found by
/// rendering and tokenizing).
#[derive(Clone)]
pub struct ChatFormat {
    env: Option<Environment<'static>>,
    bos: String,
    eos: String,
    end_of_turn: u32,
}

impl std::fmt::Debug for ChatFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatFormat").field("templated", &self.env.is_some()).field("end_of_turn", &self.end_of_turn).finish()
    }
}

impl ChatFormat {
    /// The tokenizer's own template (from `tokenizer_config.json` or GGUF metadata).
    pub fn from_tokenizer(tok: &TextTokenizer) -> Result<Self> {
        Self::new(tok.chat_template(), tok)
    }

    /// A given template, or none: without one the prompt is the message and a newline, and the
    /// turn ends with the tokenizer's EOS (a base model has no turns to imitate).
    pub fn new(template: Option<&str>, tok: &TextTokenizer) -> Result<Self> {
        let token_text = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
        let bos = token_text(tok.specials().bos);
        let eos = token_text(tok.specials().eos);
        let env = template.map(build_env).transpose()?;
        let mut format = ChatFormat { env, bos, eos, end_of_turn: 0 };
        format.end_of_turn = format.find_end_of_turn(tok)?;
        Ok(format)
    }

    /// The text before the model's reply to `user`, generation prompt included. Tokenize it
    /// without adding special tokens: the template already placed every one it wants.
    pub fn prompt(&self, user: &str) -> Result<String> {
        self.prompt_with_system(None, user)
    }

    /// As [`ChatFormat::prompt`], after a system message (`None`: the template's default).
    /// Without a template the system text is a first line.
    pub fn prompt_with_system(&self, system: Option<&str>, user: &str) -> Result<String> {
        match (&self.env, system) {
            (Some(_), Some(sys)) => self.render(&[("system", sys), ("user", user)], true),
            (Some(_), None) => self.render(&[("user", user)], true),
            (None, Some(sys)) => Ok(format!("{sys}\n{user}\n")),
            (None, None) => Ok(format!("{user}\n")),
        }
    }

    /// The token that closes the assistant's turn (`<|im_end|>` for SmolLM2, `<|end|>` for Phi-3).
    pub fn end_of_turn(&self) -> u32 {
        self.end_of_turn
    }

    fn render(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> Result<String> {
        let env = self.env.as_ref().expect("render is only called with a template");
        let messages: Vec<BTreeMap<&str, String>> =
            messages.iter().map(|(r, c)| BTreeMap::from([("role", r.to_string()), ("content", c.to_string())])).collect();
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
        };
        env.get_template(TEMPLATE)
            .and_then(|t| t.render(ctx))
            .map_err(|e| WotdError::Tokenizer(format!("chat template failed to render: {e:#}")))
    }

    /// Reads the end-of-turn token off the template itself: render a reply, take the first
    /// token after it. Templates disagree on which special token that is (and some append EOS
    /// after it), so neither `eos_token` nor a fixed list can be trusted.
    fn find_end_of_turn(&self, tok: &TextTokenizer) -> Result<u32> {
        let eos = tok.specials().eos;
        if self.env.is_none() {
            return eos.ok_or_else(|| WotdError::Tokenizer("the tokenizer has neither a chat template nor an EOS token".into()));
        }
        let prompt = self.prompt("x")?;
        let full = self.render(&[("user", "x"), ("assistant", SENTINEL)], false)?;
        if !full.starts_with(&prompt) {
            return Err(WotdError::Unsupported(
                "chat template: the generation prompt is not a prefix of the rendered conversation, so a reply cannot be appended to it".into(),
            ));
        }
        let after = full
            .rfind(SENTINEL)
            .map(|at| &full[at + SENTINEL.len()..])
            .ok_or_else(|| WotdError::Unsupported("chat template drops the assistant's message".into()))?;
        let first = tok.encode(after, false)?.ids.first().copied();
        match first {
            Some(id) if tok.decode(&[id], true)?.is_empty() => Ok(id),
            _ => eos.ok_or_else(|| {
                WotdError::Tokenizer(format!("chat template ends a reply with {after:?}, which starts with no special token, and there is no EOS"))
            }),
        }
    }
}

fn build_env(template: &str) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| WotdError::Tokenizer(format!("chat template syntax: {e}")))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned(TEMPLATE, template.to_string())
        .map_err(|e| WotdError::Tokenizer(format!("chat template does not parse: {e:#}")))?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture_tokenizer() -> TextTokenizer {
        TextTokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures/llama")).unwrap()
    }

    #[test]
    fn renders_the_fixture_chatml_template_like_transformers() -> Result<()> {
        let tok = fixture_tokenizer();
        let chat = ChatFormat::from_tokenizer(&tok)?;
        assert_eq!(
            chat.prompt("hi")?,
            "<|im_start|>system\nYou are a helpful word-of-the-day assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(Some(chat.end_of_turn()), tok.token_to_id("<|im_end|>"));
        Ok(())
    }

    #[test]
    fn phi3_style_template_ends_turns_with_its_own_token_not_eos() -> Result<()> {
        // Phi-3.5's template, which appends EOS after `<|end|>` outside generation prompts.
        let phi = "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";
        let mut inner = fixture_tokenizer().inner().clone();
        inner.add_special_tokens([
            tokenizers::AddedToken::from("<|user|>", true),
            tokenizers::AddedToken::from("<|assistant|>", true),
            tokenizers::AddedToken::from("<|end|>", true),
        ])?;
        let tok = TextTokenizer::from_tokenizer(inner)?;
        let chat = ChatFormat::new(Some(phi), &tok)?;
        assert_eq!(chat.prompt("hi")?, "<|user|>\nhi<|end|>\n<|assistant|>\n");
        assert_eq!(Some(chat.end_of_turn()), tok.token_to_id("<|end|>"));
        Ok(())
    }

    #[test]
    fn template_errors_are_reported_not_panicked() {
        let tok = fixture_tokenizer();
        let raising = "{{ raise_exception('roles must alternate') }}";
        let e = ChatFormat::new(Some(raising), &tok).unwrap_err();
        assert!(e.to_string().contains("roles must alternate"), "{e}");
        assert!(ChatFormat::new(Some("{% for %}"), &tok).is_err());
    }
}
