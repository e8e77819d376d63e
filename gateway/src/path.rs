//! Canonical request paths: the one spelling of a path that routes, limits and upstreams see.
//!
//! Routing on the path as sent lets a client pick which route (and so which limits) applies
//! by spelling: `POST /auth/login/` missed an exact `/auth/login` route with a login limit and
//! fell into an unlimited `/auth` prefix, while the backend, which trims slashes, ran the
//! password check anyway. So before routing, the gateway rewrites every path to its canonical
//! form and forwards that form upstream:
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and the
//!   remaining escapes are written with upper-case hex (RFC 3986 §6.2.2);
//! - empty segments are dropped: `//a///b/` is `/a/b` (no trailing slash but on `/`).
//!
//! Some spellings have no safe canonical form and are refused (400): `.` and `..` segments
//! (also when encoded), which would let a path climb out of a route prefix once an upstream
//! resolves them; encoded `/` and `\` and a raw `\`, which upstreams disagree about; `%00`;
//! and malformed escapes.
//!
//! This module is a leaf: config validation uses it to insist that route paths are canonical,
//! the request phases to rewrite requests.

use std::fmt;

/// Why a path cannot be made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    DotSegment,
    EncodedSeparator,
    Backslash,
    EncodedNul,
    BadEscape,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DotSegment => "a '.' or '..' segment",
            Self::EncodedSeparator => "an encoded '/' or '\\'",
            Self::Backslash => "a '\\'",
            Self::EncodedNul => "an encoded NUL byte",
            Self::BadEscape => "a malformed percent-escape",
        })
    }
}

/// `Ok(None)` when `path` is canonical already (the common case, checked without
/// allocating), `Ok(Some(canonical))` when it had to be rewritten, `Err` when it must be
/// refused. A path that does not start with `/` (such as `OPTIONS *`) is left alone.
pub(crate) fn normalize(path: &str) -> Result<Option<String>, PathError> {
    if !path.starts_with('/') || is_canonical(path.as_bytes()) {
        return Ok(None);
    }
    let mut out = String::with_capacity(path.len());
    for raw in path.split('/').skip(1) {
        let segment = decode_segment(raw)?;
        match segment.as_str() {
            "" => continue,
            "." | ".." => return Err(PathError::DotSegment),
            _ => {
                out.push('/');
                out.push_str(&segment);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    // Canonical escapes (`%C3%A9`) take the slow path yet need no rewrite.
    Ok((out != path).then_some(out))
}

/// The quick test: no escapes, no backslash, no empty segment, no trailing slash, no dot
/// segment.
fn is_canonical(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    if path.last() == Some(&b'/') || path.contains(&b'%') || path.contains(&b'\\') {
        return false;
    }
    path[1..]
        .split(|b| *b == b'/')
        .all(|s| !s.is_empty() && s != b"." && s != b"..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One segment with unreserved escapes decoded and the others in upper-case hex.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let value = hi * 16 + lo;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::EncodedNul),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xF)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ => {
                // Copy the run up to the next escape or backslash as it is (it may hold
                // UTF-8 the URI parser let through).
                let end = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b'%' | b'\\'))
                    .map_or(bytes.len(), |p| i + p);
                out.push_str(&raw[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass_untouched() {
        for path in [
            "/",
            "/auth/login",
            "/todos/0190c7a2-7b1e",
            "/a.b/c-d_e~f",
            "/a/.b/..c",
            "/caf%C3%A9",
            "/100%25",
        ] {
            assert_eq!(normalize(path), Ok(None), "{path}");
        }
    }

    #[test]
    fn other_spellings_become_the_canonical_one() {
        let cases = [
            ("/auth/login/", "/auth/login"),
            ("//auth/login", "/auth/login"),
            ("/auth//login", "/auth/login"),
            ("/auth/login//", "/auth/login"),
            ("/auth/%6Cogin", "/auth/login"),
            ("/%61uth/%6c%6F%67in", "/auth/login"),
            ("/a%2db%5Fc%7E", "/a-b_c~"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/100%25/", "/100%25"),
            ("//", "/"),
        ];
        for (input, canonical) in cases {
            assert_eq!(normalize(input), Ok(Some(canonical.to_owned())), "{input}");
        }
    }

    #[test]
    fn spellings_without_a_safe_canonical_form_are_refused() {
        let cases = [
            ("/a/../b", PathError::DotSegment),
            ("/./a", PathError::DotSegment),
            ("/a/%2e%2E/b", PathError::DotSegment),
            ("/a/%2e", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/a%00b", PathError::EncodedNul),
            ("/a%zzb", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
        ];
        for (input, error) in cases {
            assert_eq!(normalize(input), Err(error), "{input}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing_more() {
        for input in ["/a//b/", "/%41%2d/x/", "/caf%c3%a9/", "/x%25y/"] {
            let once = normalize(input).unwrap().unwrap();
            assert_eq!(normalize(&once), Ok(None), "{input} -> {once}");
        }
    }
}
