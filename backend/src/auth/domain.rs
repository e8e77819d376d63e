//! Credentials as types: once parsed, a `Username` or `Password` is known to be acceptable.

use crate::error::ApiError;
use crate::input::reject_control_chars;

/// 3-32 characters of `[a-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: String) -> Result<Self, ApiError> {
        reject_control_chars("username", &raw)?;
        let ok_len = (3..=32).contains(&raw.len());
        let ok_chars = raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
        if ok_len && ok_chars {
            Ok(Self(raw))
        } else {
            Err(ApiError::Validation(
                "username must be 3-32 characters of a-z, 0-9, '_', '.' or '-'".to_owned(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8-256 bytes without control characters. Never logged: `Debug` hides it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    pub fn parse(raw: String) -> Result<Self, ApiError> {
        reject_control_chars("password", &raw)?;
        if (8..=256).contains(&raw.len()) {
            Ok(Self(raw))
        } else {
            Err(ApiError::Validation(
                "password must be 8-256 bytes".to_owned(),
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_alphabet_and_length() {
        for good in ["abc", "a.b-c_d", "x".repeat(32).as_str()] {
            assert!(Username::parse(good.to_owned()).is_ok(), "{good}");
        }
        for bad in ["ab", "Alice", "a b", "ünï", &"x".repeat(33), "a/b"] {
            assert!(Username::parse(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_8_to_256_bytes_and_never_printed() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("x".repeat(257)).is_err());
        let p = Password::parse("correct horse".into()).unwrap();
        assert_eq!(format!("{p:?}"), "Password(..)");
        assert!(Password::parse("correct\0horse".into()).is_err());
    }
}
