//! `gateway check`'s summary of a valid config, in the spirit of `nginx -t`: the YAML
//! spellings and human sizes a user wrote, not Rust names and byte counts.

use std::fmt;
use std::time::Duration;

use http::Method;

use super::{
    AuthMode, Balance, Config, HashKey, LimitScope, PathMatch, Probe, RouteAction, RouteConfig,
};

impl Config {
    /// A human summary for `gateway check`, in the spirit of `nginx -t`.
    pub fn summary(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let _ = write!(
            out,
            "listeners: http {} admin {}",
            self.listeners.http, self.listeners.admin
        );
        match self.listeners.https {
            Some(https) => {
                let _ = writeln!(out, " https {https}");
            }
            None => out.push('\n'),
        }
        if let Some(tls) = &self.tls {
            let _ = writeln!(out, "tls: minimum version {}", tls.min_version);
            let default = tls.default_certificate.iter().map(|c| (c, " (default)"));
            for (cert, note) in tls.certificates.iter().map(|c| (c, "")).chain(default) {
                let _ = writeln!(
                    out,
                    "  {}: {}, expires {}{note}",
                    cert.cert_file.display(),
                    cert.names.join(", "),
                    utc_date(cert.not_after)
                );
            }
            if let Some(acme) = &tls.acme {
                let _ = writeln!(
                    out,
                    "  acme: {} from {}, stored in {}, renewed {} before expiry",
                    acme.domains.join(", "),
                    acme.directory_url,
                    acme.storage.display(),
                    humantime::format_duration(acme.renew_before)
                );
            }
        }
        let _ = writeln!(out, "pools:");
        for pool in &self.pools {
            let endpoints: Vec<String> = pool.endpoints.iter().map(ToString::to_string).collect();
            let check = match &pool.health_check {
                None => "no active check".to_owned(),
                Some(hc) => match &hc.probe {
                    Probe::Tcp => format!("tcp check every {}", human(hc.interval)),
                    Probe::Http { path, .. } => {
                        format!("http check {path} every {}", human(hc.interval))
                    }
                },
            };
            let b = &pool.breaker;
            let breaker = match (b.consecutive_failures, b.failure_ratio) {
                (0, None) => "no breaker".to_owned(),
                (n, None) => format!("breaker after {n} failures"),
                (0, Some(r)) => format!("breaker at {}% failed", r.ratio * 100.0),
                (n, Some(r)) => {
                    format!("breaker after {n} failures or {}% failed", r.ratio * 100.0)
                }
            };
            let admission = pool.admission.map_or_else(String::new, |a| {
                format!(", max {} in flight + {} queued", a.max_in_flight, a.queue)
            });
            let _ = writeln!(
                out,
                "  {}: [{}] {}, {check}, {breaker}, {} retries (budget {}%){admission}",
                pool.name,
                endpoints.join(", "),
                pool.balance.spelling(),
                pool.retries.attempts,
                pool.retries.budget.percent,
            );
        }
        let _ = writeln!(out, "routes:");
        for route in &self.routes {
            let auth = match route.auth {
                AuthMode::None => String::new(),
                AuthMode::Optional => ", auth optional".to_owned(),
                AuthMode::Required => ", auth required".to_owned(),
            };
            let limits = route.rate_limit_texts();
            let limits = if limits.is_empty() {
                String::new()
            } else {
                format!(", limits [{}]", limits.join("; "))
            };
            let policies = format!(", policies [{}]", route.policies_in_order().join(" > "));
            let mut traffic = String::new();
            if let Some(deadline) = route.timeouts.request {
                let _ = write!(traffic, ", deadline {}", human(deadline));
            }
            if let Some(wait) = route.timeouts.upstream_response {
                let _ = write!(traffic, ", upstream response within {}", human(wait));
            }
            if let Some(m) = &route.mirror {
                let _ = write!(
                    traffic,
                    ", mirror {}% to {}",
                    m.percent, self.pools[m.pool].name
                );
            }
            let _ = writeln!(
                out,
                "  {} [{}] -> {}, body <= {}{auth}{limits}{policies}{traffic}",
                route.name,
                route.match_text(),
                self.route_target(route),
                size(route.body_limit)
            );
        }
        out
    }
}

impl Config {
    /// Where `route` sends a request: `pool backend`, `split a 90 / b 10`, `respond 200`,
    /// `redirect 302` (with `(strip prefix)` when it strips one).
    pub fn route_target(&self, route: &RouteConfig) -> String {
        let strip = |strip_prefix: bool| if strip_prefix { " (strip prefix)" } else { "" };
        match (&route.action, &route.split) {
            (RouteAction::Proxy { strip_prefix, .. }, Some(split)) => {
                let shares: Vec<String> = split
                    .pools
                    .iter()
                    .map(|(pool, weight)| format!("{} {weight}", self.pools[*pool].name))
                    .collect();
                format!("split {}{}", shares.join(" / "), strip(*strip_prefix))
            }
            (RouteAction::Proxy { pool, strip_prefix }, None) => {
                format!("pool {}{}", self.pools[*pool].name, strip(*strip_prefix))
            }
            (RouteAction::Respond { status, .. }, _) => format!("respond {}", status.as_u16()),
            (RouteAction::Redirect(r), _) => format!("redirect {}", r.status.as_u16()),
        }
    }
}

impl RouteConfig {
    /// What the route matches: `host path methods`, `*` for any host, `= /exact` or
    /// `/prefix*`, `any` method.
    pub fn match_text(&self) -> String {
        let path = match &self.matcher.path {
            PathMatch::Exact(p) => format!("= {p}"),
            PathMatch::Prefix(p) => format!("{p}*"),
        };
        let host = self.matcher.host.as_deref().unwrap_or("*");
        let methods = self.matcher.methods.as_ref().map_or_else(
            || "any".to_owned(),
            |m| m.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        );
        format!("{host} {path} {methods}")
    }

    /// Each rate limit as `10 per 1m, burst 5, cluster`.
    pub fn rate_limit_texts(&self) -> Vec<String> {
        self.rate_limits
            .iter()
            .map(|l| {
                let scope = match l.scope {
                    LimitScope::Local => "local",
                    LimitScope::Cluster => "cluster",
                };
                format!(
                    "{} per {}, burst {}, {scope}",
                    l.rate,
                    human(l.per),
                    l.burst
                )
            })
            .collect()
    }

    /// The policies the route has, in the order the gateway applies them (README, "Edge
    /// policies").
    pub fn policies_in_order(&self) -> Vec<&'static str> {
        let p = &self.policies;
        [
            (!p.ip_access.allow.is_empty(), "ip_allow"),
            (!p.ip_access.deny.is_empty(), "ip_deny"),
            (p.cors.is_some(), "cors"),
            (p.basic_auth.is_some(), "basic_auth"),
            (p.api_keys.is_some(), "api_keys"),
            (p.forward_auth.is_some(), "forward_auth"),
            (self.auth != AuthMode::None, "auth"),
            (true, "body_limit"),
            (!self.rate_limits.is_empty(), "rate_limits"),
            (self.split.is_some(), "split"),
            (p.rewrite.is_some(), "rewrite"),
            (p.upstream_host.is_some(), "upstream_host"),
            (!p.request_headers.is_empty(), "request_headers"),
            (p.security_headers != Default::default(), "security_headers"),
            (!p.response_headers.is_empty(), "response_headers"),
            (p.compression.is_some(), "compression"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A duration as `gateway.yaml` writes it (`250ms`, `2s`, `1m`).
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A size as people read it (`16 KiB`, `10 MiB`).
fn size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

impl Balance {
    /// The spelling in `gateway.yaml`.
    pub fn spelling(&self) -> String {
        match self {
            Self::RoundRobin => "round_robin".to_owned(),
            Self::Random => "random".to_owned(),
            Self::ConsistentHash(key) => {
                let key = match key {
                    HashKey::ClientIp => "client_ip".to_owned(),
                    HashKey::Path => "path".to_owned(),
                    HashKey::Header(h) => format!("header:{h}"),
                };
                format!("consistent_hash on {key}")
            }
        }
    }
}

/// Seconds since the epoch as a UTC date (`2027-01-31`), by the date type x509-parser
/// already brings.
fn utc_date(secs: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(secs)
        .map_or_else(|_| secs.to_string(), |t| t.to_datetime().date().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_route_lists_its_policies_in_the_order_they_apply() {
        let text = r#"pools:
  p:
    endpoints: ["127.0.0.1:1"]
route_defaults:
  compression: {}
  ip_deny: [192.0.2.0/24]
routes:
  - match: { path_prefix: / }
    pool: p
    response_headers: { set: { Cache-Control: no-store } }
    rewrite: { match: "^/(.*)$", to: "/v2/$1" }
    rate_limits: [{ rate: 5, per: 1s }]
    cors: { allow_origins: ["https://app.example.com"] }
"#;
        let config = crate::config::parse(std::path::Path::new("gw.yaml"), text).unwrap();

        let summary = config.summary();

        assert!(
            summary.contains(
                "policies [ip_deny > cors > body_limit > rate_limits > rewrite > response_headers > compression]"
            ),
            "{summary}"
        );
    }

    #[test]
    fn dates_are_civil_utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29");
        assert_eq!(super::utc_date(1_798_675_200), "2026-12-31");
    }
}
