//! The parsed form of a pattern and what it can tell about IDs.

use crate::error::{Result, WotdError};
use crate::rvq::{SemanticId, CODES, LEVELS};
use std::fmt;

/// One field per level: `Some(code)` fixes it, `None` (written `*`) matches any code.
/// Codes are always 0-31: `parse` and `new` refuse anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pattern([Option<u8>; LEVELS]);

impl Pattern {
    /// A pattern from fields, checking every fixed code is 0-31.
    pub fn new(fields: [Option<u8>; LEVELS]) -> Result<Self> {
        if let Some(i) = fields.iter().position(|f| f.is_some_and(|c| c as usize >= CODES)) {
            return Err(WotdError::InvalidPattern {
                input: format!("{fields:?}"),
                field: i + 1,
                reason: format!("{} is out of range 0-{}", fields[i].unwrap_or_default(), CODES - 1),
            });
        }
        Ok(Pattern(fields))
    }

    /// The pattern that matches exactly one ID.
    pub fn exact(id: &SemanticId) -> Result<Self> {
        Pattern::new(id.map(Some))
    }

    pub fn fields(&self) -> [Option<u8>; LEVELS] {
        self.0
    }

    /// Whether `id` lies in the region this pattern names.
    pub fn matches(&self, id: &SemanticId) -> bool {
        self.0.iter().zip(id).all(|(f, c)| f.is_none_or(|f| f == *c))
    }

    /// How many fields are fixed: 4 names one ID, 0 matches every ID.
    pub fn specificity(&self) -> usize {
        self.0.iter().filter(|f| f.is_some()).count()
    }

    /// The ID this pattern names, when every field is fixed.
    pub fn id(&self) -> Option<SemanticId> {
        let mut id = [0u8; LEVELS];
        for (slot, f) in id.iter_mut().zip(self.0) {
            *slot = f?;
        }
        Some(id)
    }
}

/// The canonical form, `[2,*,17,*]`: square brackets, no spaces. `parse` reads it back.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, field) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match field {
                Some(c) => write!(f, "{c}")?,
                None => f.write_str("*")?,
            }
        }
        f.write_str("]")
    }
}

impl std::str::FromStr for Pattern {
    type Err = WotdError;

    fn from_str(s: &str) -> Result<Self> {
        super::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_fixed_fields_only() {
        let p = Pattern::new([Some(2), None, Some(17), None]).unwrap();
        assert!(p.matches(&[2, 0, 17, 31]));
        assert!(p.matches(&[2, 9, 17, 5]));
        assert!(!p.matches(&[2, 9, 16, 5]));
        assert!(!p.matches(&[3, 9, 17, 5]));
        assert!(Pattern::new([None; 4]).unwrap().matches(&[31, 31, 31, 31]));
    }

    #[test]
    fn specificity_counts_fixed_fields() {
        assert_eq!(Pattern::new([None; 4]).unwrap().specificity(), 0);
        assert_eq!(Pattern::new([Some(2), None, Some(17), None]).unwrap().specificity(), 2);
        assert_eq!(Pattern::exact(&[2, 9, 17, 5]).unwrap().specificity(), 4);
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(Pattern::new([Some(2), None, Some(17), None]).unwrap().to_string(), "[2,*,17,*]");
        assert_eq!(Pattern::exact(&[0, 31, 7, 5]).unwrap().to_string(), "[0,31,7,5]");
        assert_eq!(Pattern::exact(&[0, 31, 7, 5]).unwrap().id(), Some([0, 31, 7, 5]));
        assert_eq!(Pattern::new([Some(1), None, None, None]).unwrap().id(), None);
    }

    #[test]
    fn new_refuses_codes_above_31() {
        let e = Pattern::new([Some(1), Some(40), None, None]).unwrap_err();
        assert!(e.to_string().ends_with("field 2: 40 is out of range 0-31"), "{e}");
    }
}
