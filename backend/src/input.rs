//! Rules every text input shares, whatever its domain type.
//!
//! PostgreSQL refuses a NUL byte in `text` and its error would surface as a 500, which the
//! gateway counts toward ejecting the replica. Other control characters are no use in a
//! username, a password or a one-line title and only hide what a value really says in logs
//! and UIs. So every text field is checked here, at the edge, and refused with a 400 that
//! names the field.

use crate::error::ApiError;

/// `Err(400)` naming `field` when `value` holds a control character (`\0`, `\n`, `\t`,
/// DEL, C1 controls, ...).
pub fn reject_control_chars(field: &str, value: &str) -> Result<(), ApiError> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(ApiError::Validation(format!(
            "{field} must not contain control characters (found U+{:04X})",
            u32::from(c)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_named() {
        for bad in ["a\0b", "a\nb", "\t", "a\u{7f}", "a\u{85}b"] {
            let err = reject_control_chars("title", bad).unwrap_err();
            assert!(err
                .to_string()
                .contains("title must not contain control characters"));
        }
        for good in ["milk", "crème brûlée", "a b", "日本語", "emoji 🥛"] {
            assert!(reject_control_chars("title", good).is_ok(), "{good}");
        }
    }
}
