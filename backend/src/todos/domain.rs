//! Todo values as the API speaks them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::input::reject_control_chars;

/// A title of 1-255 characters after trimming, on one line (no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoTitle(String);

impl TodoTitle {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        reject_control_chars("title", raw)?;
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if (1..=255).contains(&chars) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(ApiError::Validation(format!(
                "title must be 1-255 characters after trimming, got {chars}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, JsonSchema)]
pub struct Todo {
    pub id: Uuid,
    /// 1-255 characters, trimmed, on one line.
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of a user's todos, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    pub items: Vec<Todo>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The instants a cursor may name: from the Unix epoch to the end of year 9999. Every
/// `created_at` this API hands out lies in between, and PostgreSQL could not even compare
/// against an instant before 4713 BC (its error would be a 500).
const CURSOR_MICROS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999_999;

/// Where the next page starts: the last item's `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}.{}", self.created_at.timestamp_micros(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Result<Self, ApiError> {
        use base64::Engine as _;
        let bad = || ApiError::Validation("cursor is not one this API returned".to_owned());
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        if !CURSOR_MICROS.contains(&micros) {
            return Err(bad());
        }
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        Ok(Self {
            created_at,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(TodoTitle::parse("  milk ").unwrap().as_str(), "milk");
        assert!(TodoTitle::parse("   ").is_err());
        assert!(
            TodoTitle::parse(&"é".repeat(255)).is_ok(),
            "255 characters, not bytes"
        );
        assert!(TodoTitle::parse(&"x".repeat(256)).is_err());
        assert!(TodoTitle::parse("mi\0lk").is_err());
        assert!(TodoTitle::parse("milk\nand eggs").is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not-a-cursor").is_err());
        let before_4713_bc = Cursor {
            created_at: DateTime::from_timestamp_micros(-300_000_000_000_000_000).unwrap(),
            id: Uuid::now_v7(),
        };
        assert!(Cursor::decode(&before_4713_bc.encode()).is_err());
    }
}
