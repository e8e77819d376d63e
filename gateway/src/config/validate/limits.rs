//! `rate_limiting:` and each route's `rate_limits:`.

use std::time::Duration;

use http::HeaderName;

use super::{require_at_most, require_positive, Errors};
use crate::config::file::{RateLimitFile, RateLimitingFile, ScopeFile};
use crate::config::{LimitKey, LimitScope, RateLimit, RateLimiting};

/// Longest period of a rate limit; GCRA state is kept for up to `per * burst / rate`.
pub(super) const MAX_LIMIT_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Largest burst of a rate limit.
pub(super) const MAX_BURST: u64 = 1_000_000;

pub(super) fn check_rate_limiting(
    errs: &mut Errors<'_>,
    r: RateLimitingFile,
) -> Option<RateLimiting> {
    errs.scoped(|errs| {
        if let Some(url) = &r.redis_url {
            if redis::Client::open(url.as_str()).is_err() {
                errs.push(
                    "rate_limiting.redis_url",
                    format!("invalid Redis URL {url:?}, expected redis://host:port"),
                );
            }
        }
        require_positive(errs, "rate_limiting.redis_timeout", r.redis_timeout);
        if r.max_local_keys == 0 {
            errs.push(
                "rate_limiting.max_local_keys",
                "must be greater than 0, got 0",
            );
        }
        if !(1..=128).contains(&r.ipv6_prefix) {
            errs.push(
                "rate_limiting.ipv6_prefix",
                format!("must be between 1 and 128, got {}", r.ipv6_prefix),
            );
        }
        Some(RateLimiting {
            redis_url: r.redis_url,
            redis_timeout: r.redis_timeout,
            key_prefix: r.key_prefix,
            headers_on_success: r.headers_on_success,
            max_local_keys: r.max_local_keys,
            ipv6_prefix: r.ipv6_prefix,
        })
    })
}

pub(super) fn check_rate_limit(
    errs: &mut Errors<'_>,
    at: &str,
    l: &RateLimitFile,
) -> Option<RateLimit> {
    errs.scoped(|errs| {
        let key = match l.key.as_str() {
            "client_ip" => Some(LimitKey::ClientIp),
            "subject" => Some(LimitKey::Subject),
            "route" => Some(LimitKey::Route),
            "api_key" => Some(LimitKey::ApiKey),
            other => match other
                .strip_prefix("header:")
                .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
            {
                Some(Ok(name)) => Some(LimitKey::Header(name)),
                _ => {
                    errs.push(
                        format!("{at}.key"),
                        format!("unknown key {other:?}, expected client_ip, subject, route, api_key or header:<name>"),
                    );
                    None
                }
            },
        };
        if l.rate == 0 {
            errs.push(format!("{at}.rate"), "must be greater than 0, got 0");
        }
        require_positive(errs, &format!("{at}.per"), l.per);
        // An unset burst follows the rate, whose own error already covers a zero.
        let burst = l.burst.unwrap_or(l.rate);
        if l.burst == Some(0) {
            errs.push(format!("{at}.burst"), "must be at least 1, got 0");
        }
        require_at_most(errs, &format!("{at}.per"), l.per, MAX_LIMIT_PERIOD);
        if burst > MAX_BURST {
            errs.push(
                format!("{at}.burst"),
                format!("must be at most {MAX_BURST}, got {burst}"),
            );
        }
        if u128::from(l.rate) > l.per.as_micros() {
            errs.push(
                format!("{at}.rate"),
                format!(
                    "{} per {:?} is finer than one per microsecond",
                    l.rate, l.per
                ),
            );
        }
        let scope = match l.scope {
            ScopeFile::Local => LimitScope::Local,
            ScopeFile::Cluster => LimitScope::Cluster,
        };
        Some(RateLimit {
            key: key.unwrap_or(LimitKey::Route),
            rate: l.rate,
            per: l.per,
            burst,
            scope,
            fail_open: l.fail_open,
        })
    })
}
