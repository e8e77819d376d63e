//! `pools:`: endpoints, balancing, timeouts, health checks, retries, the forward secret, TLS.

use std::net::SocketAddr;
use std::path::Path;

use http::{HeaderName, StatusCode};

use super::{is_reserved_header, require_positive, Errors};
use crate::config::file::{
    BalanceFile, ForwardSecretFile, HealthCheckFile, HealthCheckKind, PoolFile,
};
use crate::config::tls::load_ca_file;
use crate::config::{
    Balance, EndpointSpec, ForwardSecret, HashKey, HealthCheck, PassiveHealth, PoolConfig, Probe,
    Retries, Timeouts, UpstreamTls,
};

/// The most retries a pool may ask for; more only multiplies load on a failing upstream.
pub(super) const MAX_RETRY_ATTEMPTS: usize = 10;

/// `ip:port`, `[v6]:port` or `hostname:port`.
pub(crate) fn parse_endpoint(text: &str) -> Result<EndpointSpec, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(EndpointSpec::Addr(addr));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid endpoint {text:?}, expected ip:port or hostname:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port in endpoint {text:?}, expected 1-65535"))?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid_host {
        return Err(format!("invalid host name in endpoint {text:?}"));
    }
    Ok(EndpointSpec::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

pub(super) fn check_pool(
    errs: &mut Errors<'_>,
    name: String,
    p: PoolFile,
    base_dir: &Path,
) -> Option<PoolConfig> {
    errs.scoped(|errs| {
        let at = |key: &str| format!("pools.{name}.{key}");

        if p.endpoints.is_empty() {
            errs.push(at("endpoints"), "must list at least one endpoint");
        }
        let mut endpoints = Vec::new();
        for (i, text) in p.endpoints.iter().enumerate() {
            match parse_endpoint(text) {
                Ok(spec) if endpoints.contains(&spec) => {
                    errs.push(
                        format!("pools.{name}.endpoints[{i}]"),
                        format!("duplicate endpoint {text:?}"),
                    );
                }
                Ok(spec) => endpoints.push(spec),
                Err(message) => errs.push(format!("pools.{name}.endpoints[{i}]"), message),
            }
        }
        require_positive(errs, &at("resolve_interval"), p.resolve_interval);
        require_positive(errs, &at("dns_grace"), p.dns_grace);

        let balance = match (p.balance, p.hash_key.as_deref()) {
            (BalanceFile::RoundRobin, None) => Some(Balance::RoundRobin),
            (BalanceFile::Random, None) => Some(Balance::Random),
            (BalanceFile::ConsistentHash, Some(key)) => match parse_hash_key(key) {
                Ok(key) => Some(Balance::ConsistentHash(key)),
                Err(message) => {
                    errs.push(at("hash_key"), message);
                    None
                }
            },
            (BalanceFile::ConsistentHash, None) => {
                errs.push(
                    at("balance"),
                    "consistent_hash needs hash_key: client_ip, path or header:<name>",
                );
                None
            }
            (_, Some(key)) => {
                errs.push(
                    at("hash_key"),
                    format!("hash_key {key:?} is only used with balance: consistent_hash"),
                );
                None
            }
        };

        let t = &p.timeouts;
        for (key, value) in [
            ("connect", t.connect),
            ("read", t.read),
            ("write", t.write),
            ("idle", t.idle),
        ] {
            require_positive(errs, &at(&format!("timeouts.{key}")), value);
        }

        let health_check = p
            .health_check
            .and_then(|hc| check_health(errs, &at("health_check"), hc));

        if p.passive_health.consecutive_failures > 0 {
            require_positive(
                errs,
                &at("passive_health.cooldown"),
                p.passive_health.cooldown,
            );
        }
        if p.retries.attempts > MAX_RETRY_ATTEMPTS {
            errs.push(
                at("retries.attempts"),
                format!(
                    "must be at most {MAX_RETRY_ATTEMPTS}, got {}",
                    p.retries.attempts
                ),
            );
        }

        let forward_secret = p
            .forward_secret
            .and_then(|f| check_forward_secret(errs, &at("forward_secret"), f, base_dir));
        let tls = p.tls.and_then(|t| {
            // The SNI names the host the certificate must be for: by default the first
            // endpoint's host, which is what a client of that endpoint would ask for.
            let sni = t.sni.or_else(|| {
                endpoints.first().map(|e| match e {
                    EndpointSpec::Addr(addr) => addr.ip().to_string(),
                    EndpointSpec::Name { host, .. } => host.clone(),
                })
            })?;
            let ca = match t.ca_file {
                Some(file) => match load_ca_file(&base_dir.join(file)) {
                    Ok(ca) => Some(ca),
                    Err(e) => {
                        errs.push(at("tls.ca_file"), e);
                        return None;
                    }
                },
                None => None,
            };
            Some(UpstreamTls {
                sni,
                verify: t.verify,
                ca,
            })
        });

        Some(PoolConfig {
            forward_secret,
            tls,
            name,
            endpoints,
            resolve_interval: p.resolve_interval,
            dns_grace: p.dns_grace,
            balance: balance?,
            timeouts: Timeouts {
                connect: t.connect,
                read: t.read,
                write: t.write,
                idle: t.idle,
            },
            health_check,
            passive: PassiveHealth {
                consecutive_failures: p.passive_health.consecutive_failures,
                cooldown: p.passive_health.cooldown,
            },
            retries: Retries {
                attempts: p.retries.attempts,
                idempotent_on_reset: p.retries.idempotent_on_reset,
            },
        })
    })
}

pub(super) fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    match text {
        "client_ip" => Ok(HashKey::ClientIp),
        "path" => Ok(HashKey::Path),
        other => {
            let name = other.strip_prefix("header:").ok_or_else(|| {
                format!("unknown hash_key {other:?}, expected client_ip, path or header:<name>")
            })?;
            HeaderName::from_bytes(name.trim().as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("invalid header name {name:?} in hash_key"))
        }
    }
}

pub(super) fn check_health(
    errs: &mut Errors<'_>,
    at: &str,
    hc: HealthCheckFile,
) -> Option<HealthCheck> {
    errs.scoped(|errs| {
        require_positive(errs, &format!("{at}.interval"), hc.interval);
        require_positive(errs, &format!("{at}.timeout"), hc.timeout);
        for (key, value) in [
            ("healthy_threshold", hc.healthy_threshold),
            ("unhealthy_threshold", hc.unhealthy_threshold),
        ] {
            if value == 0 {
                errs.push(format!("{at}.{key}"), "must be at least 1, got 0");
            }
        }
        let probe = match hc.kind {
            HealthCheckKind::Tcp => {
                for (key, set) in [
                    ("path", hc.path.is_some()),
                    ("host", hc.host.is_some()),
                    ("expect_status", hc.expect_status.is_some()),
                ] {
                    if set {
                        errs.push(format!("{at}.{key}"), "only applies to kind: http");
                    }
                }
                Probe::Tcp
            }
            HealthCheckKind::Http => {
                let path = hc.path.unwrap_or_else(|| "/".to_owned());
                if !path.starts_with('/') {
                    errs.push(
                        format!("{at}.path"),
                        format!("must start with '/', got {path:?}"),
                    );
                }
                let mut expect_status = Vec::new();
                for (i, code) in hc.expect_status.unwrap_or_default().into_iter().enumerate() {
                    match StatusCode::from_u16(code) {
                        Ok(status) if (100..600).contains(&code) => expect_status.push(status),
                        _ => errs.push(
                            format!("{at}.expect_status[{i}]"),
                            format!("not an HTTP status code: {code}"),
                        ),
                    }
                }
                Probe::Http {
                    path,
                    host: hc.host.unwrap_or_else(|| "localhost".to_owned()),
                    expect_status,
                }
            }
        };
        Some(HealthCheck {
            probe,
            interval: hc.interval,
            timeout: hc.timeout,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
        })
    })
}

/// `pools.<name>.forward_secret`: the header and the secret, read now (a missing or short secret is a
/// config error, not a surprise at the first request).
pub(super) fn check_forward_secret(
    errs: &mut Errors<'_>,
    at: &str,
    f: ForwardSecretFile,
    base_dir: &Path,
) -> Option<ForwardSecret> {
    let header = match HeaderName::from_bytes(f.header.as_bytes()) {
        Ok(name) if is_reserved_header(&name) => {
            errs.push(
                format!("{at}.header"),
                format!("{:?} is a header the gateway owns", f.header),
            );
            return None;
        }
        Ok(name) => name,
        Err(_) => {
            errs.push(
                format!("{at}.header"),
                format!("invalid header name {:?}", f.header),
            );
            return None;
        }
    };
    let secret = match (f.secret_file, f.secret_env) {
        (Some(file), None) => match std::fs::read(base_dir.join(&file)) {
            Ok(bytes) => bytes.trim_ascii().to_vec(),
            Err(e) => {
                errs.push(
                    format!("{at}.secret_file"),
                    format!("cannot read {file:?}: {e}"),
                );
                return None;
            }
        },
        (None, Some(var)) => match std::env::var(&var) {
            Ok(value) => value.trim().as_bytes().to_vec(),
            Err(_) => {
                errs.push(
                    format!("{at}.secret_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
        _ => {
            errs.push(at, "needs exactly one of secret_file or secret_env");
            return None;
        }
    };
    if secret.len() < 16 {
        errs.push(at, "the secret must be at least 16 bytes");
        return None;
    }
    match http::HeaderValue::from_bytes(&secret) {
        Ok(value) => Some(ForwardSecret { header, value }),
        Err(_) => {
            errs.push(
                at,
                "the secret must be visible ASCII (it is sent as a header)",
            );
            None
        }
    }
}
