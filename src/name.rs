//! Human names: what a contact is called in your address book, and the display name in a card.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;

/// A validated name: 1 to 64 bytes of UTF-8, no control characters, no leading or trailing white
/// space, and not starting with `-` (it would read as a CLI flag).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or only white space.
    #[error("a name cannot be empty")]
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("a name can be at most {MAX_NAME_BYTES} bytes long (this one has {0})")]
    TooLong(usize),
    /// Contains a control character (newline, escape, ...).
    #[error("a name cannot contain control characters (found {0:?})")]
    ControlCharacter(char),
    /// Starts or ends with white space.
    #[error("a name cannot start or end with white space")]
    Padded,
    /// Starts with `-`.
    #[error("a name cannot start with '-'")]
    LeadingDash,
}

impl Name {
    /// Checks `text` against the rules above.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong(text.len()));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(NameError::ControlCharacter(c));
        }
        if text.trim() != text {
            return Err(NameError::Padded);
        }
        if text.starts_with('-') {
            return Err(NameError::LeadingDash);
        }
        Ok(Name(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::parse(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(Name::parse("bob").is_ok());
        assert!(Name::parse("Zoë Ångström 🦊").is_ok());
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("   "), Err(NameError::Empty));
        assert_eq!(Name::parse(" bob"), Err(NameError::Padded));
        assert_eq!(Name::parse("bo\nb"), Err(NameError::ControlCharacter('\n')));
        assert_eq!(Name::parse("bob\u{1b}[31m"), Err(NameError::ControlCharacter('\u{1b}')));
        assert_eq!(Name::parse("-rf"), Err(NameError::LeadingDash));
        assert_eq!(Name::parse(&"x".repeat(65)), Err(NameError::TooLong(65)));
        assert!(Name::parse(&"x".repeat(64)).is_ok());
    }
}
