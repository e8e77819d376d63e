//! Entry points for the fuzz targets (`fuzz/`) and the property tests: thin wrappers that
//! let code outside the crate drive the parsers that see client or operator input. Each
//! wrapper also checks the parser's contract, so a fuzzer finds wrong answers as well as
//! panics. Not an API: nothing else should call these.

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use crate::config::{self, PathMatch, RouteAction, RouteConfig, RouteMatch};
use crate::policy::jwt::Verifier;
use crate::proxy::headers;
use crate::routing::Router;

/// The secret of the fuzzing verifier's HS256 key.
pub const JWT_SECRET: &[u8] = b"fuzzing-secret-not-a-real-one";

/// Normalize `path` and check the contract: a canonical result starts with `/`, has no
/// empty segment, no trailing slash (but `/`), and normalizes to itself.
pub fn normalize_path(path: &str) -> Result<Option<String>, String> {
    let result = crate::path::normalize(path).map_err(|e| e.to_string());
    if let Ok(Some(canonical)) = &result {
        assert!(canonical.starts_with('/'), "{path:?} -> {canonical:?}");
        assert!(!canonical.contains("//"), "{path:?} -> {canonical:?}");
        assert!(
            canonical == "/" || !canonical.ends_with('/'),
            "{path:?} -> {canonical:?}"
        );
        assert_eq!(
            crate::path::normalize(canonical),
            Ok(None),
            "{path:?} -> {canonical:?} is not stable"
        );
    }
    result
}

fn fuzz_router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let route = |name: &str, path: PathMatch, methods: Option<Vec<http::Method>>| RouteConfig {
            name: name.to_owned(),
            matcher: RouteMatch {
                path,
                host: None,
                methods,
            },
            action: RouteAction::Proxy {
                pool: 0,
                strip_prefix: false,
            },
            body_limit: 1024,
            auth: config::AuthMode::None,
            rate_limits: Vec::new(),
            https_redirect: true,
            policies: Default::default(),
            timeouts: Default::default(),
            split: None,
            mirror: None,
        };
        Router::new(&[
            route(
                "login",
                PathMatch::Exact("/auth/login".to_owned()),
                Some(vec![http::Method::POST]),
            ),
            route("auth", PathMatch::Prefix("/auth".to_owned()), None),
            route("todos", PathMatch::Prefix("/todos".to_owned()), None),
            route("root", PathMatch::Prefix("/".to_owned()), None),
        ])
    })
}

/// Parse a request target as Pingora does (`http::Uri`), normalize it and route it. Checks
/// that a path which normalizes to `/auth/login` is routed to the login route.
pub fn route_target(method: &[u8], target: &[u8]) -> Option<String> {
    let method = http::Method::from_bytes(method).ok()?;
    let uri = http::Uri::try_from(target).ok()?;
    let path = uri.path();
    let canonical = normalize_path(path).ok()?;
    let path = canonical.as_deref().unwrap_or(path);
    let found = fuzz_router()
        .find(None, path, &method)
        .map(|r| r.name.clone());
    if path == "/auth/login" && method == http::Method::POST {
        assert_eq!(found.as_deref(), Some("login"), "{target:?}");
    }
    found
}

/// The client address from `X-Forwarded-For` lines sent by `peer`, which is trusted when it
/// is in `trusted`. Checks that the answer is the peer or an address from the lines, and
/// that an untrusted peer's lines are never believed.
pub fn client_address(peer: IpAddr, trusted: &[ipnet::IpNet], lines: &[&[u8]]) -> Option<IpAddr> {
    let mut map = http::HeaderMap::new();
    for line in lines {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            map.append("x-forwarded-for", value);
        }
    }
    let joined = headers::forwarded_for(&map);
    let client = headers::client_ip(Some(peer), joined.as_deref(), trusted)?;
    let peer_trusted = trusted.iter().any(|n| n.contains(&peer));
    if !peer_trusted {
        assert_eq!(client, peer, "an untrusted peer's header was believed");
    } else if client != peer {
        let listed = joined
            .as_deref()
            .unwrap_or("")
            .split(',')
            .any(|hop| hop.trim().parse::<IpAddr>().ok() == Some(client));
        assert!(listed, "{client} is neither the peer nor in the header");
    }
    let _ = headers::client_key(client, 64);
    Some(client)
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::for_fuzzing(JWT_SECRET))
}

/// Run an arbitrary bearer token through verification (header decoding, key selection,
/// signature and claims checks). Returns the subject when it is accepted.
pub fn verify_token(token: &str) -> Option<String> {
    let verified = verifier().verify(token).ok()?;
    verified.subject
}

/// Sign `claims` (any JSON) with the fuzzing key and verify the token: exercises the claims
/// checks and the claim-to-header copy on arbitrary claim values.
pub fn verify_claims(claims: &[u8]) -> Option<String> {
    let claims: serde_json::Value = serde_json::from_slice(claims).ok()?;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .ok()?;
    verify_token(&token)
}

/// Parse a JWKS document; an accepted one has at least one key.
pub fn parse_jwks(body: &[u8]) -> Result<usize, String> {
    crate::policy::jwt::parse_jwks(body).map(|keys| {
        assert!(!keys.is_empty());
        keys.len()
    })
}

/// Load `text` as `gateway.yaml`: every outcome is a config or a list of errors that each
/// render with the file name, never a panic.
pub fn load_config(text: &str) -> Result<usize, usize> {
    match config::parse(Path::new("fuzz.yaml"), text) {
        Ok(config) => Ok(config.routes.len()),
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            let rendered = errors.to_string();
            assert!(rendered.starts_with("fuzz.yaml"), "{rendered}");
            Err(errors.errors.len())
        }
    }
}

/// Property tests: the fuzz targets' contracts, checked on generated input in every test run
/// (the fuzz targets themselves run in `scripts/fuzz.sh`).
#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Path-like strings: separators, dots, escapes (valid and not), backslashes, letters.
    fn paths() -> impl Strategy<Value = String> {
        "(/|//|\\.|\\.\\.|%2[eEfF]|%5[cC]|%00|%[0-9a-fA-F]{2}|%[g-z]|%|\\\\|[a-zA-Z0-9~_-]{1,4}){0,24}"
    }

    proptest! {
        #[test]
        fn normalizing_any_path_is_total_and_stable(path in paths()) {
            let _ = normalize_path(&format!("/{path}"));
            let _ = normalize_path(&path);
        }

        #[test]
        fn any_spelling_of_the_login_path_routes_to_the_login_route(
            slashes in prop::collection::vec("/{1,3}", 3),
            escape_l in any::<bool>(),
            trailing in any::<bool>(),
        ) {
            let l = if escape_l { "%6C" } else { "l" };
            let target = format!(
                "{}auth{}{l}ogin{}",
                slashes[0],
                slashes[1],
                if trailing { slashes[2].as_str() } else { "" }
            );
            let routed = route_target(b"POST", target.as_bytes());
            prop_assert_eq!(routed.as_deref(), Some("login"), "{}", target);
        }

        #[test]
        fn routing_any_target_never_panics(target in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = route_target(b"GET", &target);
        }

        #[test]
        fn the_client_address_is_the_peer_or_a_listed_hop(
            lines in prop::collection::vec("([0-9]{1,3}\\.){3}[0-9]{1,3}(, ?[0-9a-f:.]{0,20}){0,3}|[ -~]{0,20}", 0..4),
            trusted in any::<bool>(),
        ) {
            let peer: IpAddr = "10.0.0.1".parse().unwrap();
            let nets: Vec<ipnet::IpNet> = if trusted {
                vec!["10.0.0.0/8".parse().unwrap()]
            } else {
                Vec::new()
            };
            let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            prop_assert!(client_address(peer, &nets, &bytes).is_some());
        }

        #[test]
        fn arbitrary_tokens_are_refused_without_panic(
            token in "[A-Za-z0-9_=-]{0,40}(\\.[A-Za-z0-9_=-]{0,40}){0,3}|[ -~]{0,60}",
        ) {
            prop_assert_eq!(verify_token(&token), None);
        }

        #[test]
        fn signed_claims_are_accepted_exactly_when_the_rules_hold(
            sub in prop::option::of("[ -~]{0,12}"),
            iss in prop::sample::select(vec!["fuzz-issuer", "other"]),
            aud in prop::sample::select(vec!["fuzz-api", "other"]),
            exp_offset in -100_000i64..100_000,
            org in prop::option::of(any::<i64>()),
        ) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let mut claims = serde_json::json!({"iss": iss, "aud": aud, "exp": now + exp_offset});
            if let Some(sub) = &sub {
                claims["sub"] = sub.clone().into();
            }
            if let Some(org) = org {
                claims["org"] = org.into();
            }
            let accepted = verify_claims(claims.to_string().as_bytes());
            let valid = sub.is_some() && iss == "fuzz-issuer" && aud == "fuzz-api"
                && exp_offset > -30;
            // Near the leeway edge the clock may tick between building and checking.
            if !(-32..=-28).contains(&exp_offset) {
                prop_assert_eq!(accepted.is_some(), valid, "{}", claims);
            }
        }

        #[test]
        fn jwks_documents_never_panic(body in "\\{(\"keys\": ?\\[(\\{[ -~]{0,80}\\},?){0,3}\\])?\\}|[ -~]{0,60}") {
            let _ = parse_jwks(body.as_bytes());
        }

        #[test]
        fn any_mutation_of_the_committed_config_loads_or_reports_errors(
            cut in any::<prop::sample::Index>(),
            len in 0usize..40,
            insert in "[ -~\\n]{0,12}",
        ) {
            let text = include_str!("../../gateway.yaml");
            let at = cut.index(text.len());
            let end = (at + len).min(text.len());
            let (at, end) = (floor_char(text, at), floor_char(text, end));
            let mutated = format!("{}{insert}{}", &text[..at], &text[end..]);
            let _ = load_config(&mutated);
        }
    }

    fn floor_char(text: &str, mut i: usize) -> usize {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
