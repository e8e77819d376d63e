//! `server:`, `listeners:`, `limits:`, `trusted_proxies:` and `dns:`.

use std::net::SocketAddr;

use ipnet::IpNet;

use super::{require_positive, Errors};
use crate::config::file::{DnsFile, LimitsFile, ListenersFile, ServerFile};
use crate::config::{Limits, Listeners, ServerSettings};

pub(super) fn check_server(errs: &mut Errors<'_>, s: &ServerFile) -> ServerSettings {
    if s.threads == 0 || s.threads > 256 {
        errs.push(
            "server.threads",
            format!("must be between 1 and 256, got {}", s.threads),
        );
    }
    require_positive(errs, "server.shutdown_grace", s.shutdown_grace);
    if s.upstream_keepalive_pool_size == 0 {
        errs.push(
            "server.upstream_keepalive_pool_size",
            "must be greater than 0, got 0",
        );
    }
    let buffer = usize::try_from(s.downstream_read_buffer.0).unwrap_or(usize::MAX);
    if buffer != 0 && !(1024..=1024 * 1024).contains(&buffer) {
        errs.push(
            "server.downstream_read_buffer",
            format!("must be 0 (no buffer) or between 1KiB and 1MiB, got {buffer} bytes"),
        );
    }
    ServerSettings {
        threads: s.threads,
        shutdown_grace: s.shutdown_grace,
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        downstream_read_buffer_bytes: buffer,
    }
}

pub(super) fn check_listeners(errs: &mut Errors<'_>, l: &ListenersFile) -> Option<Listeners> {
    let parse = |errs: &mut Errors<'_>, key: &str, value: &str| match value.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push(
                format!("listeners.{key}"),
                format!(
                    "invalid listen address {value:?}, expected ip:port such as \"0.0.0.0:80\""
                ),
            );
            None
        }
    };
    let http = parse(errs, "http", &l.http);
    let admin = parse(errs, "admin", &l.admin);
    let https = l.https.as_ref().map(|h| parse(errs, "https", h));
    let (http, admin, https) = (http?, admin?, https.map_or(Some(None), |h| h.map(Some))?);
    if http == admin {
        errs.push(
            "listeners.admin",
            format!("must differ from listeners.http, both are {http}"),
        );
    }
    if let Some(https) = https {
        for (other, addr) in [("http", http), ("admin", admin)] {
            if https == addr {
                errs.push(
                    "listeners.https",
                    format!("must differ from listeners.{other}, both are {https}"),
                );
            }
        }
    }
    Some(Listeners { http, admin, https })
}

pub(super) fn check_limits(errs: &mut Errors<'_>, l: &LimitsFile) -> Limits {
    if l.max_uri_bytes < 16 {
        errs.push(
            "limits.max_uri_bytes",
            format!("must be at least 16, got {}", l.max_uri_bytes),
        );
    }
    if l.max_header_bytes < 256 {
        errs.push(
            "limits.max_header_bytes",
            format!("must be at least 256, got {}", l.max_header_bytes),
        );
    }
    require_positive(errs, "limits.header_timeout", l.header_timeout);
    require_positive(errs, "limits.idle_timeout", l.idle_timeout);
    if l.max_connections == 0 {
        errs.push("limits.max_connections", "must be at least 1, got 0");
    }
    if l.max_connections_per_client == Some(0) {
        errs.push(
            "limits.max_connections_per_client",
            "must be at least 1, got 0 (leave it out for no per-client cap)",
        );
    }
    Limits {
        max_uri_bytes: l.max_uri_bytes,
        max_header_bytes: l.max_header_bytes,
        max_body_bytes: l.max_body_bytes.0,
        header_timeout: l.header_timeout,
        idle_timeout: l.idle_timeout,
        max_connections: l.max_connections,
        max_connections_per_client: l.max_connections_per_client,
    }
}

pub(super) fn check_trusted(errs: &mut Errors<'_>, list: &[String]) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, text) in list.iter().enumerate() {
        if let Some(net) = super::parse_net(text) {
            nets.push(net);
        } else {
            errs.push(
                format!("trusted_proxies[{i}]"),
                format!("invalid CIDR {text:?}, expected e.g. \"10.0.0.0/8\" or \"127.0.0.1\""),
            );
        }
    }
    nets
}

pub(super) fn check_dns(errs: &mut Errors<'_>, d: &DnsFile) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (i, text) in d.nameservers.iter().enumerate() {
        match text.parse::<SocketAddr>() {
            Ok(addr) => out.push(addr),
            Err(_) => errs.push(
                format!("dns.nameservers[{i}]"),
                format!("invalid name server {text:?}, expected ip:port such as \"127.0.0.11:53\""),
            ),
        }
    }
    out
}
