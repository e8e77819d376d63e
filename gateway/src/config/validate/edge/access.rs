//! CORS and the ways a route admits requests: basic auth, API keys, an auth service.

use std::collections::HashMap;
use std::path::Path;

use http::{HeaderName, HeaderValue, Method};

use super::headers::header_name;
use super::{Errors, FRAMING, REQUEST_IDENTITY};
use crate::config::edge::{ApiKeys, BasicAuth, Cors, ForwardAuth, OriginPattern, PasswordHash};
use crate::config::file::{ApiKeysFile, BasicAuthFile, CorsFile, ForwardAuthFile};

pub(super) fn check_cors(errs: &mut Errors<'_>, at: &str, file: &CorsFile) -> Option<Cors> {
    let before = errs.list.len();
    let mut origins = Vec::new();
    for (i, text) in file.allow_origins.iter().enumerate() {
        match origin_pattern(text) {
            Some(p) => origins.push(p),
            None => errs.push(
                format!("{at}.allow_origins[{i}]"),
                format!("invalid origin {text:?}, expected \"*\", \"https://app.example.com\" or \"https://*.example.com\" (scheme and host, no path)"),
            ),
        }
    }
    if origins.is_empty() && errs.list.len() == before {
        errs.push(format!("{at}.allow_origins"), "needs at least one origin");
    }
    if file.allow_credentials {
        if let Some(i) = file.allow_origins.iter().position(|o| o == "*") {
            errs.push(
                format!("{at}.allow_origins[{i}]"),
                "\"*\" cannot be used with allow_credentials: true (browsers refuse it); list the origins",
            );
        }
        for (key, list) in [
            ("allow_headers", &file.allow_headers),
            ("expose_headers", &file.expose_headers),
            ("allow_methods", &file.allow_methods),
        ] {
            if let Some(i) = list.iter().position(|h| h == "*") {
                errs.push(
                    format!("{at}.{key}[{i}]"),
                    "\"*\" means a literal \"*\" to browsers when credentials are allowed; list the names",
                );
            }
        }
    }
    let mut methods = Vec::new();
    for (i, m) in file.allow_methods.iter().enumerate() {
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if m != "*" => methods.push(method),
            Ok(_) => {}
            Err(_) => errs.push(
                format!("{at}.allow_methods[{i}]"),
                format!("invalid method {m:?}"),
            ),
        }
    }
    let list_value = |errs: &mut Errors<'_>, key: &str, list: &[String]| -> Option<HeaderValue> {
        for (i, h) in list.iter().enumerate() {
            if h != "*" && header_name(h).is_none() {
                errs.push(
                    format!("{at}.{key}[{i}]"),
                    format!("invalid header name {h:?}"),
                );
            }
        }
        if list.is_empty() {
            return None;
        }
        HeaderValue::from_str(&list.join(", ")).ok()
    };
    let allow_headers = list_value(errs, "allow_headers", &file.allow_headers);
    let expose_headers = list_value(errs, "expose_headers", &file.expose_headers);
    let allow_methods = HeaderValue::from_str(&file.allow_methods.join(", ")).ok()?;
    (errs.list.len() == before).then_some(Cors {
        origins,
        allow_methods,
        methods,
        allow_headers,
        expose_headers,
        allow_credentials: file.allow_credentials,
        max_age: file.max_age,
    })
}

fn origin_pattern(text: &str) -> Option<OriginPattern> {
    if text == "*" {
        return Some(OriginPattern::Any);
    }
    let lower = text.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return None;
    }
    if let Some(suffix) = rest.strip_prefix("*.") {
        if suffix.contains('*') || !suffix.contains('.') {
            return None;
        }
        return Some(OriginPattern::Subdomains {
            scheme: scheme.to_owned(),
            suffix: format!(".{suffix}"),
        });
    }
    if rest.contains('*') || rest.parse::<http::uri::Authority>().is_err() {
        return None;
    }
    Some(OriginPattern::Exact(lower))
}

pub(super) fn check_basic_auth(
    errs: &mut Errors<'_>,
    at: &str,
    file: BasicAuthFile,
    base_dir: &Path,
) -> Option<BasicAuth> {
    let path = base_dir.join(&file.users_file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            errs.push(
                format!("{at}.users_file"),
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    let before = errs.list.len();
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{}:{}", path.display(), n + 1);
        let Some((user, hash)) = line.split_once(':') else {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: expected user:hash"),
            );
            continue;
        };
        let hash = if hash.starts_with("$argon2") {
            match argon2::PasswordHash::new(hash) {
                Ok(_) => PasswordHash::Argon2(hash.to_owned()),
                Err(e) => {
                    errs.push(
                        format!("{at}.users_file"),
                        format!("{place}: invalid argon2 hash ({e})"),
                    );
                    continue;
                }
            }
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60 {
            PasswordHash::Bcrypt(hash.to_owned())
        } else {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: user {user:?} has an unsupported hash; use argon2id or bcrypt (htpasswd -B)"),
            );
            continue;
        };
        if user.is_empty() || users.insert(user.to_owned(), hash).is_some() {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: empty or repeated user {user:?}"),
            );
        }
    }
    let forward_user = match file.forward_user.as_deref().map(header_name) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            errs.push(format!("{at}.forward_user"), "invalid header name");
            None
        }
    };
    let realm_ok = !file.realm.is_empty()
        && file
            .realm
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' || c == ' ');
    if !realm_ok {
        errs.push(
            format!("{at}.realm"),
            "must be printable ASCII without quotes",
        );
    }
    (errs.list.len() == before).then_some(BasicAuth {
        realm: file.realm,
        users,
        forward_user,
    })
}

pub(super) fn check_api_keys(
    errs: &mut Errors<'_>,
    at: &str,
    file: &ApiKeysFile,
    base_dir: &Path,
) -> Option<ApiKeys> {
    let before = errs.list.len();
    let mut names = |key: &str, text: &str| match header_name(text) {
        Some(n) if !FRAMING.contains(&n.as_str()) && !REQUEST_IDENTITY.contains(&n.as_str()) => {
            Some(n)
        }
        _ => {
            errs.push(
                format!("{at}.{key}"),
                format!("{text:?} is not a header name the gateway lets a policy use"),
            );
            None
        }
    };
    let header = names("header", &file.header);
    let forward_name = names("forward_name", &file.forward_name);
    let path = base_dir.join(&file.keys_file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            errs.push(
                format!("{at}.keys_file"),
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{}:{}", path.display(), n + 1);
        let digest = line.split_once(':').and_then(|(name, hex)| {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<_>>()?;
            Some((name, <[u8; 32]>::try_from(bytes).ok()?))
        });
        match digest {
            Some((name, d)) if !name.is_empty() && !keys.iter().any(|(k, _)| k == name) => {
                keys.push((name.to_owned(), d));
            }
            _ => errs.push(
                format!("{at}.keys_file"),
                format!(
                    "{place}: expected name:<64 hex digits of the key's SHA-256>, each name once"
                ),
            ),
        }
    }
    (errs.list.len() == before).then_some(ApiKeys {
        header: header?,
        keys,
        forward_name: forward_name?,
    })
}

pub(super) fn check_forward_auth(
    errs: &mut Errors<'_>,
    at: &str,
    file: &ForwardAuthFile,
) -> Option<ForwardAuth> {
    let before = errs.list.len();
    let url_ok = file
        .url
        .parse::<http::Uri>()
        .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
    if !url_ok {
        errs.push(
            format!("{at}.url"),
            format!(
                "expected an http:// URL of the auth service, got {:?}",
                file.url
            ),
        );
    }
    if file.timeout.is_zero() || file.timeout > std::time::Duration::from_secs(30) {
        errs.push(format!("{at}.timeout"), "must be between 1ms and 30s");
    }
    let mut names = |key: &str, list: &[String], identity_ok: bool| -> Vec<HeaderName> {
        let mut out = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match header_name(text) {
                Some(n)
                    if !FRAMING.contains(&n.as_str())
                        && (identity_ok || !REQUEST_IDENTITY.contains(&n.as_str())) =>
                {
                    out.push(n);
                }
                _ => errs.push(
                    format!("{at}.{key}[{i}]"),
                    format!("{text:?} is not a header this policy may use"),
                ),
            }
        }
        out
    };
    // Any request header may be shown to the auth service; only fields the gateway does not
    // own may be copied onto the upstream request.
    let forward_headers = names("forward_headers", &file.forward_headers, true);
    let copy_headers = names("copy_headers", &file.copy_headers, false);
    (errs.list.len() == before).then(|| ForwardAuth {
        url: file.url.clone(),
        timeout: file.timeout,
        forward_headers,
        copy_headers,
        cache_ttl: file.cache_ttl,
    })
}
