//! Entry points for the fuzz targets (`fuzz/`) and the property tests: thin wrappers that
//! let code outside the crate drive the parsers that see client input, checking each one's
//! contract on the way. Not an API: nothing else should call these.

use crate::auth::domain::{Password, Username};
use crate::error::ApiError;
use crate::todos::domain::{Cursor, TodoTitle};

/// Decode a pagination cursor. An accepted one encodes back to a cursor that decodes to
/// itself, and never names an instant PostgreSQL cannot store.
pub fn cursor(text: &str) -> Option<Cursor> {
    let cursor = Cursor::decode(text).ok()?;
    assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
    let year = chrono::Datelike::year(&cursor.created_at);
    assert!((1970..=9999).contains(&year), "{year}");
    Some(cursor)
}

/// Route-level path check: canonical paths have non-empty, non-dot, unescaped segments.
pub fn path_segments(path: &str) -> Option<usize> {
    let segments = crate::routes::canonical_segments(path)?;
    for s in &segments {
        assert!(!s.is_empty() && *s != "." && *s != ".." && !s.contains('%'));
    }
    Some(segments.len())
}

/// A client error must never be a 5xx.
fn client_error(e: &ApiError) {
    assert!(e.status().is_client_error(), "{e} is {}", e.status());
}

/// Parse `body` as each JSON request body the API takes and run the domain checks on it, as
/// the handlers do. Every refusal is a 4xx.
pub fn bodies(body: &[u8]) {
    if let Ok(c) = serde_json::from_slice::<crate::routes::auth::Credentials>(body) {
        match Username::parse(c.username.clone()) {
            Ok(name) => assert!(name.as_str().is_ascii()),
            Err(e) => client_error(&e),
        }
        match Password::parse(c.password.clone()) {
            Ok(p) => assert!(!p.expose().chars().any(char::is_control)),
            Err(e) => client_error(&e),
        }
        if let Err(e) = crate::input::reject_control_chars("username", &c.username) {
            client_error(&e);
        }
    }
    if let Ok(t) = serde_json::from_slice::<crate::routes::jobs::NewTodo>(body) {
        title(&t.title);
    }
    if let Ok(p) = serde_json::from_slice::<crate::routes::todos::Patch>(body) {
        if let Some(t) = &p.title {
            title(t);
        }
    }
}

fn title(raw: &str) {
    match TodoTitle::parse(raw) {
        Ok(t) => {
            let chars = t.as_str().chars().count();
            assert!((1..=255).contains(&chars));
            assert!(!t.as_str().chars().any(char::is_control));
            assert_eq!(t.as_str(), t.as_str().trim());
        }
        Err(e) => client_error(&e),
    }
}

/// Property tests: the fuzz targets' contracts on generated input, in every test run.
#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_cursor_text_is_decoded_or_refused(text in "[A-Za-z0-9_-]{0,60}|[ -~]{0,40}") {
            let _ = cursor(&text);
        }

        #[test]
        fn a_cursor_of_any_instant_is_accepted_only_inside_the_storable_range(
            micros in any::<i64>(),
            id in any::<u128>(),
        ) {
            let raw = format!("{micros}.{}", uuid::Uuid::from_u128(id));
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            let accepted = cursor(&text).is_some();
            prop_assert_eq!(accepted, (0..=253_402_300_799_999_999).contains(&micros));
        }

        #[test]
        fn any_path_is_canonical_or_not_without_panic(path in "(/|//|\\.|%[0-9a-f]{2}|[a-z0-9-]{1,6}){0,12}") {
            let _ = path_segments(&path);
        }

        #[test]
        fn request_bodies_with_any_strings_get_only_client_errors(
            username in "[\\x00-\\x7f]{0,40}|\\PC{0,10}",
            password in "[\\x00-\\x7f]{0,40}|\\PC{0,10}",
            title in "[\\x00-\\x7f]{0,300}|\\PC{0,300}",
        ) {
            let credentials = serde_json::json!({"username": username, "password": password});
            bodies(credentials.to_string().as_bytes());
            bodies(serde_json::json!({ "title": title }).to_string().as_bytes());
            bodies(serde_json::json!({ "title": title, "done": true }).to_string().as_bytes());
        }

        #[test]
        fn malformed_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..80)) {
            bodies(&body);
        }
    }
}
