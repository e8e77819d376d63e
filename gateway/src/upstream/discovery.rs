//! DNS discovery of upstream endpoints, re-resolved on the pool's own timer.
//!
//! Pingora ships only static discovery. This one resolves every `hostname:port` endpoint
//! itself, with caching off, because Docker's embedded DNS answers with a TTL of 600 s and
//! `docker compose up --scale` must take effect within seconds.
//!
//! A name that stops resolving keeps its last addresses for the pool's `dns_grace`, so a
//! flapping resolver cannot empty a pool; after the grace the addresses are dropped and that
//! is logged. A name that resolves to a smaller set shrinks the pool at once: that is what
//! scaling down looks like.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;

use crate::config::{EndpointSpec, WeightedEndpoint};

/// Build the resolver every pool shares: the configured name servers, or the system's.
pub(crate) fn resolver(nameservers: &[SocketAddr]) -> std::io::Result<TokioAsyncResolver> {
    let (config, mut opts) = if nameservers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()?
    } else {
        let mut group = NameServerConfigGroup::new();
        for ns in nameservers {
            group.merge(NameServerConfigGroup::from_ips_clear(
                &[ns.ip()],
                ns.port(),
                true,
            ));
        }
        (
            ResolverConfig::from_parts(None, Vec::new(), group),
            ResolverOpts::default(),
        )
    };
    // Re-resolve for real on every tick; the TTL is deliberately ignored.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(1);
    opts.attempts = 1;
    Ok(TokioAsyncResolver::tokio(config, opts))
}

/// What one name last resolved to.
struct NameState {
    addrs: Vec<SocketAddr>,
    last_ok: Instant,
    /// Set once the failure streak has been logged, to log each streak once.
    failing_since: Option<Instant>,
}

pub(crate) struct DnsDiscovery {
    pool: String,
    specs: Vec<WeightedEndpoint>,
    grace: Duration,
    resolver: Arc<TokioAsyncResolver>,
    names: Mutex<HashMap<String, NameState>>,
    /// Set when this discovery succeeds one of an earlier config (a reload changed the
    /// pool): the first discovery answers names from the inherited state instead of asking
    /// DNS, so the new pool holds its members before it takes traffic.
    inherited: std::sync::atomic::AtomicBool,
}

impl DnsDiscovery {
    pub(crate) fn new(
        pool: String,
        specs: Vec<WeightedEndpoint>,
        grace: Duration,
        resolver: Arc<TokioAsyncResolver>,
    ) -> Self {
        Self {
            pool,
            specs,
            grace,
            resolver,
            names: Mutex::new(HashMap::new()),
            inherited: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Take over what `previous` (the same pool under the config before a reload) knows of
    /// each name this pool still uses, with this pool's port for it: the next discovery
    /// answers from that without asking DNS (names new to the pool join at the discovery
    /// after), later ones ask DNS again, and the grace period keeps counting from the last
    /// successful resolution.
    pub(crate) fn inherit(&self, previous: &DnsDiscovery) {
        let old = previous.names.lock().unwrap_or_else(|p| p.into_inner());
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for endpoint in &self.specs {
            let EndpointSpec::Name { host, port } = &endpoint.spec else {
                continue;
            };
            if let Some(state) = old.get(host) {
                names.insert(
                    host.clone(),
                    NameState {
                        addrs: state
                            .addrs
                            .iter()
                            .map(|a| SocketAddr::new(a.ip(), *port))
                            .collect(),
                        last_ok: state.last_ok,
                        failing_since: state.failing_since,
                    },
                );
            }
        }
        self.inherited
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the first discovery after inheriting answers for `host`: its inherited
    /// addresses, or none (not a DNS query: a slow resolver must not hold up a reload).
    fn inherited_addrs(&self, host: &str) -> Vec<SocketAddr> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.get(host).map(|s| s.addrs.clone()).unwrap_or_default()
    }

    /// Resolve every endpoint once and apply the grace rules: each address with its weight
    /// (the largest, when two entries give the same address).
    pub(crate) async fn resolve_all(&self) -> BTreeMap<SocketAddr, u16> {
        let first = self
            .inherited
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let mut out = BTreeMap::new();
        for endpoint in &self.specs {
            let addrs = match &endpoint.spec {
                EndpointSpec::Addr(addr) => vec![*addr],
                EndpointSpec::Name { host, .. } if first => self.inherited_addrs(host),
                EndpointSpec::Name { host, port } => {
                    let result = self.resolver.lookup_ip(host.as_str()).await;
                    let resolved: Vec<SocketAddr> = match &result {
                        Ok(lookup) => lookup.iter().map(|ip| SocketAddr::new(ip, *port)).collect(),
                        Err(_) => Vec::new(),
                    };
                    let error = result.err().map(|e| e.to_string());
                    self.apply(host, resolved, error)
                }
            };
            for addr in addrs {
                let weight = out.entry(addr).or_insert(endpoint.weight);
                *weight = (*weight).max(endpoint.weight);
            }
        }
        out
    }

    /// Fold one resolution result into the per-name state; returns the addresses to use.
    fn apply(
        &self,
        host: &str,
        resolved: Vec<SocketAddr>,
        error: Option<String>,
    ) -> Vec<SocketAddr> {
        let now = Instant::now();
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if !resolved.is_empty() {
            if let Some(state) = names.get(host) {
                if state.failing_since.is_some() {
                    tracing::info!(pool = %self.pool, host, endpoints = resolved.len(), "name resolves again");
                }
            }
            names.insert(
                host.to_owned(),
                NameState {
                    addrs: resolved.clone(),
                    last_ok: now,
                    failing_since: None,
                },
            );
            return resolved;
        }
        let error = error.unwrap_or_else(|| "no addresses".to_owned());
        let Some(state) = names.get_mut(host) else {
            tracing::warn!(pool = %self.pool, host, error, "name does not resolve; no endpoints from it yet");
            return Vec::new();
        };
        if state.addrs.is_empty() {
            return Vec::new();
        }
        if now.duration_since(state.last_ok) >= self.grace {
            tracing::error!(
                pool = %self.pool, host, error, grace = ?self.grace, dropped = state.addrs.len(),
                "name has not resolved for the whole grace period; its endpoints are removed"
            );
            state.addrs.clear();
            return Vec::new();
        }
        if state.failing_since.is_none() {
            state.failing_since = Some(now);
            tracing::warn!(
                pool = %self.pool, host, error, grace = ?self.grace, kept = state.addrs.len(),
                "name stopped resolving; keeping its last endpoints for the grace period"
            );
        }
        state.addrs.clone()
    }
}

/// The discovery a pool's balancer runs, shared with the pool so a successor can inherit
/// its state.
pub(crate) struct SharedDiscovery(pub(crate) Arc<DnsDiscovery>);

#[async_trait]
impl ServiceDiscovery for SharedDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        self.0.discover().await
    }
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        // Always return Ok: an Err would make the balancer keep its old set silently, and the
        // grace rules above are the deliberate answer to resolution failures.
        let backends = self
            .resolve_all()
            .await
            .into_iter()
            .map(|(addr, weight)| Backend {
                addr: PingoraAddr::Inet(addr),
                weight: usize::from(weight),
                ext: http::Extensions::new(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(grace: Duration) -> DnsDiscovery {
        let resolver = resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap();
        DnsDiscovery::new("p".into(), Vec::new(), grace, Arc::new(resolver))
    }

    #[tokio::test]
    async fn failed_resolution_keeps_last_addresses_during_grace() {
        // Arrange
        let d = discovery(Duration::from_secs(60));
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        d.apply("svc", vec![addr], None);

        // Act
        let kept = d.apply("svc", Vec::new(), Some("NXDOMAIN".into()));

        // Assert
        assert_eq!(kept, vec![addr]);
    }

    #[tokio::test]
    async fn failed_resolution_after_grace_empties_the_name() {
        let d = discovery(Duration::ZERO);
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        d.apply("svc", vec![addr], None);

        let kept = d.apply("svc", Vec::new(), Some("NXDOMAIN".into()));

        assert!(kept.is_empty());
    }

    #[tokio::test]
    async fn a_successor_answers_its_first_discovery_from_the_inherited_names() {
        // Arrange: the resolver points nowhere, so only inherited state can answer.
        let resolver = Arc::new(resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap());
        let spec = || {
            vec![WeightedEndpoint {
                spec: EndpointSpec::Name {
                    host: "svc".into(),
                    port: 80,
                },
                weight: 1,
            }]
        };
        let old = DnsDiscovery::new(
            "p".into(),
            spec(),
            Duration::from_secs(60),
            Arc::clone(&resolver),
        );
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        old.apply("svc", vec![addr], None);
        let new = DnsDiscovery::new("p".into(), spec(), Duration::from_secs(60), resolver);

        // Act
        new.inherit(&old);
        let first = new.resolve_all().await;

        // Assert: and the grace period still applies to later failed lookups.
        assert_eq!(first.into_keys().collect::<Vec<_>>(), vec![addr]);
        assert_eq!(
            new.resolve_all().await.into_keys().collect::<Vec<_>>(),
            vec![addr]
        );
    }

    #[tokio::test]
    async fn every_address_of_a_name_gets_its_weight() {
        // Arrange: a weighted name whose addresses come from inherited state (no DNS), and
        // a literal address of weight 1.
        let resolver = Arc::new(resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap());
        let specs = vec![
            WeightedEndpoint {
                spec: EndpointSpec::Name {
                    host: "svc".into(),
                    port: 80,
                },
                weight: 3,
            },
            WeightedEndpoint {
                spec: EndpointSpec::Addr("10.0.0.9:80".parse().unwrap()),
                weight: 1,
            },
        ];
        let grace = Duration::from_secs(60);
        let old = DnsDiscovery::new("p".into(), specs.clone(), grace, Arc::clone(&resolver));
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        old.apply("svc", vec![a, b], None);
        let new = DnsDiscovery::new("p".into(), specs, grace, resolver);
        new.inherit(&old);

        // Act
        let weights = new.resolve_all().await;

        // Assert
        let expected: BTreeMap<SocketAddr, u16> =
            [(a, 3), (b, 3), ("10.0.0.9:80".parse().unwrap(), 1)].into();
        assert_eq!(weights, expected);
    }

    #[tokio::test]
    async fn a_successor_with_another_port_keeps_it_through_the_grace_period() {
        // Arrange: the old pool used port 80, the new config says 8080.
        let resolver = Arc::new(resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap());
        let spec = |port| {
            vec![WeightedEndpoint {
                spec: EndpointSpec::Name {
                    host: "svc".into(),
                    port,
                },
                weight: 1,
            }]
        };
        let grace = Duration::from_secs(60);
        let old = DnsDiscovery::new("p".into(), spec(80), grace, Arc::clone(&resolver));
        old.apply("svc", vec!["10.0.0.1:80".parse().unwrap()], None);
        let new = DnsDiscovery::new("p".into(), spec(8080), grace, resolver);

        // Act: the first discovery answers from the inherited state, the second finds DNS
        // failing (the resolver points nowhere) and falls back on the grace rule.
        new.inherit(&old);
        let first = new.resolve_all().await;
        let during_grace = new.resolve_all().await;

        // Assert
        let expected: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(first.into_keys().collect::<Vec<_>>(), vec![expected]);
        assert_eq!(during_grace.into_keys().collect::<Vec<_>>(), vec![expected]);
    }

    #[tokio::test]
    async fn a_smaller_answer_shrinks_the_set_at_once() {
        let d = discovery(Duration::from_secs(60));
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        d.apply("svc", vec![a, b], None);

        let now = d.apply("svc", vec![b], None);

        assert_eq!(now, vec![b]);
    }
}
