//! Names of the attributes that levels 0-2 stand for in aligned mode, and of their values.

use super::{ATTRIBUTES, CODES_PER_VALUE, VALUES};
use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};

/// Attribute names (one per aligned level) and their values, in enum order: value `k` of
/// attribute `l` owns codes `8k..8k+7` of level `l`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeVocab {
    pub names: [String; ATTRIBUTES],
    pub values: [Vec<String>; ATTRIBUTES],
}

impl Default for AttributeVocab {
    /// The attributes of DESIGN.md: style, complexity, era.
    fn default() -> Self {
        let v = |xs: [&str; VALUES]| xs.iter().map(|s| s.to_string()).collect();
        AttributeVocab {
            names: ["style".into(), "complexity".into(), "era".into()],
            values: [
                v(["classical", "modern", "romantic", "neutral"]),
                v(["simple", "beautiful", "complex", "plain"]),
                v(["shakespearean", "victorian", "modernist", "contemporary"]),
            ],
        }
    }
}

impl AttributeVocab {
    /// Checks the shape: every attribute has exactly 4 distinct, non-empty value names.
    pub fn new(names: [String; ATTRIBUTES], values: [Vec<String>; ATTRIBUTES]) -> Result<Self> {
        let vocab = AttributeVocab { names, values };
        vocab.validate()?;
        Ok(vocab)
    }

    /// [`AttributeVocab::new`] from lists of any length, as callers outside Rust hold them; a
    /// wrong count of names or value lists is refused with the count found.
    pub fn from_lists(names: &[String], values: &[Vec<String>]) -> Result<Self> {
        let names: [String; ATTRIBUTES] = names
            .to_vec()
            .try_into()
            .map_err(|n: Vec<String>| WotdError::InvalidInput(format!("{ATTRIBUTES} attribute names needed, got {}", n.len())))?;
        let values: [Vec<String>; ATTRIBUTES] = values.to_vec().try_into().map_err(|v: Vec<Vec<String>>| {
            WotdError::InvalidInput(format!("{ATTRIBUTES} attribute value lists needed, got {}", v.len()))
        })?;
        Self::new(names, values)
    }

    pub fn validate(&self) -> Result<()> {
        for (name, values) in self.names.iter().zip(&self.values) {
            if name.trim().is_empty() {
                return Err(WotdError::InvalidInput("attribute names must not be empty".into()));
            }
            if values.len() != VALUES {
                return Err(WotdError::InvalidInput(format!(
                    "attribute {name:?} has {} values; aligned codebooks need exactly {VALUES}",
                    values.len()
                )));
            }
            if let Some(v) = values.iter().find(|v| v.trim().is_empty()) {
                return Err(WotdError::InvalidInput(format!("attribute {name:?} has an empty value name {v:?}")));
            }
            for (i, v) in values.iter().enumerate() {
                if values[..i].contains(v) {
                    return Err(WotdError::InvalidInput(format!("attribute {name:?} lists {v:?} twice")));
                }
            }
        }
        Ok(())
    }

    /// The value a code of an aligned level stands for.
    pub fn value_of(&self, level: usize, code: u8) -> &str {
        &self.values[level][code as usize / CODES_PER_VALUE]
    }
}
