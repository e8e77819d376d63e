//! Upstream pools: membership, health (active and passive) and endpoint selection.
//!
//! - `discovery`: DNS names re-resolved on the pool's timer, with a grace period;
//! - `health`: one endpoint's health state machine (active verdict, passive ejection);
//! - this module: `Pool`, which ties them to Pingora's balancer and runs the timers.
//!
//! Pingora's `LoadBalancer` provides membership (through our [`DnsDiscovery`]) and the
//! selection algorithms. Health is tracked here instead of in Pingora's registry because we
//! need three things it does not do: a new endpoint gets no traffic before its first passing
//! active check, passive ejection after consecutive failures, and a pool that is never fully
//! ejected (when every endpoint is ejected, ejections are ignored).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_resolver::TokioAsyncResolver;
use pingora::lb::health_check::{HealthCheck as PingoraCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::upstreams::peer::HttpPeer;
use tokio_util::sync::CancellationToken;

pub(crate) mod discovery;
mod health;
mod tls;

use crate::config::{Balance, HealthCheck, PoolConfig, Probe};
use crate::metrics;
use discovery::{DnsDiscovery, SharedDiscovery};
use health::{now_ms, Endpoint};
use tls::PeerTls;

/// The selection algorithm, as a closed set so that `Pool` stays one concrete type.
enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Consistent(LoadBalancer<Consistent>),
}

fn select_in<S>(
    lb: &LoadBalancer<S>,
    key: &[u8],
    max: usize,
    accept: &dyn Fn(&Backend) -> bool,
) -> Option<Backend>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    lb.select_with(key, max, |b, _pingora_health| accept(b))
}

impl Selector {
    fn new(balance: &Balance, discovery: Arc<DnsDiscovery>) -> Self {
        let backends = Backends::new(Box::new(SharedDiscovery(discovery)));
        match balance {
            Balance::RoundRobin => Self::RoundRobin(LoadBalancer::from_backends(backends)),
            Balance::Random => Self::Random(LoadBalancer::from_backends(backends)),
            Balance::ConsistentHash(_) => Self::Consistent(LoadBalancer::from_backends(backends)),
        }
    }

    async fn update(&self) -> pingora::Result<()> {
        match self {
            Self::RoundRobin(lb) => lb.update().await,
            Self::Random(lb) => lb.update().await,
            Self::Consistent(lb) => lb.update().await,
        }
    }

    fn members(&self) -> Arc<BTreeSet<Backend>> {
        match self {
            Self::RoundRobin(lb) => lb.backends().get_backend(),
            Self::Random(lb) => lb.backends().get_backend(),
            Self::Consistent(lb) => lb.backends().get_backend(),
        }
    }

    fn select(&self, key: &[u8], max: usize, accept: &dyn Fn(&Backend) -> bool) -> Option<Backend> {
        match self {
            Self::RoundRobin(lb) => select_in(lb, key, max, accept),
            Self::Random(lb) => select_in(lb, key, max, accept),
            Self::Consistent(lb) => select_in(lb, key, max, accept),
        }
    }
}

/// The probe an active check runs, reusing Pingora's TCP and HTTP checks.
type Prober = Box<dyn PingoraCheck + Send + Sync>;

fn prober(hc: &HealthCheck, tls: Option<&PeerTls>) -> Prober {
    match &hc.probe {
        Probe::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(hc.timeout);
            check
        }
        Probe::Http {
            path,
            host,
            expect_status,
        } => {
            let mut check = HttpHealthCheck::new(host, false);
            if let Some(tls) = tls {
                tls.apply(&mut check.peer_template);
            }
            check.peer_template.options.connection_timeout = Some(hc.timeout);
            check.peer_template.options.read_timeout = Some(hc.timeout);
            check.peer_template.options.write_timeout = Some(hc.timeout);
            if let Ok(mut req) = pingora::http::RequestHeader::build("GET", path.as_bytes(), None) {
                let _ = req.insert_header("Host", host.as_str());
                let _ = req.insert_header("User-Agent", "gateway-health-check");
                check.req = req;
            }
            let expect = expect_status.clone();
            check.validator = Some(Box::new(move |resp| {
                let ok = if expect.is_empty() {
                    resp.status.is_success()
                } else {
                    expect.contains(&resp.status)
                };
                if ok {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::new("HealthCheckStatus"),
                        format!("unexpected status {}", resp.status.as_u16()),
                    )
                }
            }));
            Box::new(check)
        }
    }
}

pub(crate) struct Pool {
    pub(crate) config: PoolConfig,
    selector: Selector,
    /// Membership by DNS; shared with the selector, kept here so a successor can inherit it.
    discovery: Arc<DnsDiscovery>,
    /// Current members by address; swapped whole when discovery changes the set, so the
    /// request path reads it without locking.
    endpoints: ArcSwap<HashMap<SocketAddr, Arc<Endpoint>>>,
    prober: Option<Prober>,
    /// How to speak TLS to the endpoints, when the pool's `tls:` says they speak HTTPS.
    tls: Option<PeerTls>,
    /// Cancelled when a reload drops this pool, to end its timers.
    retired: CancellationToken,
    /// Set (before `retired` is cancelled) when a successor of the same name took over: it
    /// then keeps publishing the health gauges, so this pool must not remove them.
    succeeded: std::sync::atomic::AtomicBool,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, resolver: Arc<TokioAsyncResolver>) -> Self {
        let tls = config.tls.as_ref().map(PeerTls::new);
        let discovery = Arc::new(DnsDiscovery::new(
            config.name.clone(),
            config.endpoints.clone(),
            config.dns_grace,
            resolver,
        ));
        Self {
            selector: Selector::new(&config.balance, Arc::clone(&discovery)),
            discovery,
            prober: config
                .health_check
                .as_ref()
                .map(|hc| prober(hc, tls.as_ref())),
            tls,
            config,
            endpoints: ArcSwap::from_pointee(HashMap::new()),
            retired: CancellationToken::new(),
            succeeded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The pool for `config` that takes over from `previous`, the pool of the same name
    /// under the config before a reload: it inherits the members, their health verdicts and
    /// passive state, and what DNS last said, so it can take traffic at once (see [`warm`]).
    ///
    /// [`warm`]: Pool::warm
    pub(crate) fn succeed(
        config: PoolConfig,
        resolver: Arc<TokioAsyncResolver>,
        previous: &Pool,
    ) -> Self {
        let pool = Self::new(config, resolver);
        pool.discovery.inherit(&previous.discovery);
        let checked = pool.prober.is_some();
        let inherited: HashMap<SocketAddr, Arc<Endpoint>> = previous
            .endpoints
            .load()
            .iter()
            .map(|(addr, e)| (*addr, Arc::new(e.inherited(checked))))
            .collect();
        pool.endpoints.store(Arc::new(inherited));
        pool
    }

    /// Make a new pool ready before it takes traffic: discover its members and run the first
    /// active check on those it did not inherit, within `deadline`. Returns whether it has an
    /// endpoint that can take traffic.
    pub(crate) async fn warm(&self, deadline: Duration) -> bool {
        let ready = async {
            let added = self.refresh().await;
            self.check(Some(&added)).await;
        };
        if tokio::time::timeout(deadline, ready).await.is_err() {
            tracing::warn!(pool = %self.name(), ?deadline, "pool not warmed up in time; swapping it in anyway");
        }
        self.publish_health();
        self.has_healthy_endpoint()
    }

    /// End this pool's timers (a reload replaced or removed it). With `succeeded`, a pool of
    /// the same name took over and keeps the health gauges; otherwise they are removed.
    pub(crate) fn retire(&self, succeeded: bool) {
        self.succeeded
            .store(succeeded, std::sync::atomic::Ordering::Release);
        self.retired.cancel();
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Choose an endpoint for one attempt. `tried` holds the endpoints earlier attempts of
    /// this request used; they are avoided while any other endpoint can take the request.
    pub(crate) fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<SocketAddr> {
        let now = now_ms();
        let endpoints = self.endpoints.load();
        let max = endpoints.len() * 4 + 8;
        let pick = |avoid_tried: bool| {
            self.selector.select(key, max, &|b: &Backend| {
                let Some(addr) = b.addr.as_inet() else {
                    return false;
                };
                if avoid_tried && tried.contains(addr) {
                    return false;
                }
                endpoints.get(addr).is_some_and(|e| e.routable(now))
            })
        };
        // When every candidate is ejected, ejections are ignored (the pool is never ejected
        // whole), and the one whose ejection ends soonest goes first: it failed longest ago.
        // (Asking the balancer again would not do: its rejected passes have advanced the
        // round-robin counter, so it would keep landing on the same endpoint.)
        let soonest_back = |avoid_tried: bool| {
            endpoints
                .values()
                .filter(|e| e.active_healthy() && !(avoid_tried && tried.contains(&e.addr)))
                .min_by_key(|e| (e.ejected_until(), e.addr))
                .map(|e| e.addr)
        };
        let addr = |b: Backend| b.addr.as_inet().copied();
        // Prefer fresh, non-ejected endpoints; a retry may finally reuse an endpoint, e.g.
        // after a stale keep-alive reset.
        pick(true)
            .and_then(addr)
            .or_else(|| soonest_back(true))
            .or_else(|| pick(false).and_then(addr))
            .or_else(|| soonest_back(false))
    }

    /// Pingora's peer for `addr`, carrying the pool's timeouts.
    pub(crate) fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, false, String::new());
        if let Some(tls) = &self.tls {
            tls.apply(&mut peer);
        }
        let t = &self.config.timeouts;
        peer.options.connection_timeout = Some(t.connect);
        peer.options.read_timeout = Some(t.read);
        peer.options.write_timeout = Some(t.write);
        peer.options.idle_timeout = Some(t.idle);
        peer
    }

    /// Passive health: a connect failure or a 5xx from `addr`.
    pub(crate) fn report_failure(&self, addr: SocketAddr) {
        let threshold = self.config.passive.consecutive_failures;
        if threshold == 0 {
            return;
        }
        let endpoints = self.endpoints.load();
        let Some(e) = endpoints.get(&addr) else {
            return;
        };
        if e.record_failure(threshold, self.config.passive.cooldown, now_ms()) {
            self.ejected(addr, "consecutive failures");
        }
    }

    /// Passive health: `addr` refused a connection. Nothing listens there (a replica that is
    /// stopping or gone), so it is ejected at once rather than after `consecutive_failures`:
    /// when several replicas stop together, every request that tried one would otherwise
    /// spend a retry on each of them.
    pub(crate) fn report_refused(&self, addr: SocketAddr) {
        if self.config.passive.consecutive_failures == 0 {
            return;
        }
        let endpoints = self.endpoints.load();
        if let Some(e) = endpoints.get(&addr) {
            e.eject(self.config.passive.cooldown, now_ms());
            self.ejected(addr, "connection refused");
        }
    }

    /// Log and count an ejection passive health just made.
    fn ejected(&self, addr: SocketAddr, reason: &'static str) {
        metrics::EJECTIONS.with_label_values(&[self.name()]).inc();
        metrics::ENDPOINT_HEALTHY
            .with_label_values(&[self.name(), &addr.to_string()])
            .set(0);
        tracing::warn!(pool = %self.name(), endpoint = %addr, reason, cooldown = ?self.config.passive.cooldown, "endpoint ejected by passive health");
    }

    /// Passive health: `addr` answered without a 5xx.
    pub(crate) fn report_success(&self, addr: SocketAddr) {
        if let Some(e) = self.endpoints.load().get(&addr) {
            e.record_success();
        }
    }

    /// Whether at least one endpoint would be chosen now.
    pub(crate) fn has_healthy_endpoint(&self) -> bool {
        self.endpoints.load().values().any(|e| e.active_healthy())
    }

    /// `(endpoint, routable)` for every member, for `/readyz` and tests.
    pub(crate) fn endpoint_health(&self) -> Vec<(SocketAddr, bool)> {
        let now = now_ms();
        let mut out: Vec<_> = self
            .endpoints
            .load()
            .values()
            .map(|e| (e.addr, e.routable(now)))
            .collect();
        out.sort();
        out
    }

    /// Set the health gauge of every member to whether it takes traffic right now.
    fn publish_health(&self) {
        for (addr, routable) in self.endpoint_health() {
            metrics::ENDPOINT_HEALTHY
                .with_label_values(&[self.name(), &addr.to_string()])
                .set(i64::from(routable));
        }
    }

    /// Re-run discovery and reconcile the endpoint table. Returns the new members.
    pub(crate) async fn refresh(&self) -> Vec<SocketAddr> {
        if let Err(e) = self.selector.update().await {
            tracing::warn!(pool = %self.name(), error = %e, "discovery failed");
        }
        let members: Vec<SocketAddr> = self
            .selector
            .members()
            .iter()
            .filter_map(|b| b.addr.as_inet().copied())
            .collect();
        let old = self.endpoints.load_full();
        let unchanged = old.len() == members.len() && members.iter().all(|a| old.contains_key(a));
        if unchanged {
            return Vec::new();
        }
        let mut next = HashMap::with_capacity(members.len());
        let mut added = Vec::new();
        for addr in &members {
            let e = old.get(addr).cloned().unwrap_or_else(|| {
                added.push(*addr);
                Arc::new(Endpoint::new(*addr, self.prober.is_some()))
            });
            next.insert(*addr, e);
        }
        for gone in old.keys().filter(|a| !next.contains_key(*a)) {
            tracing::info!(pool = %self.name(), endpoint = %gone, "endpoint removed");
            let _ =
                metrics::ENDPOINT_HEALTHY.remove_label_values(&[self.name(), &gone.to_string()]);
        }
        for addr in &added {
            let healthy = self.prober.is_none();
            tracing::info!(pool = %self.name(), endpoint = %addr, routable = healthy, "endpoint added");
            metrics::ENDPOINT_HEALTHY
                .with_label_values(&[self.name(), &addr.to_string()])
                .set(i64::from(healthy));
        }
        self.endpoints.store(Arc::new(next));
        added
    }

    /// Run the active check once against `addrs` (every member when `None`).
    pub(crate) async fn check(&self, addrs: Option<&[SocketAddr]>) {
        let (Some(prober), Some(hc)) = (&self.prober, &self.config.health_check) else {
            return;
        };
        let endpoints = self.endpoints.load_full();
        let targets: Vec<Arc<Endpoint>> = match addrs {
            Some(list) => list
                .iter()
                .filter_map(|a| endpoints.get(a).cloned())
                .collect(),
            None => endpoints.values().cloned().collect(),
        };
        let probes = targets.iter().map(|e| async move {
            let backend = Backend {
                addr: PingoraAddr::Inet(e.addr),
                weight: 1,
                ext: http::Extensions::new(),
            };
            let result = match tokio::time::timeout(hc.timeout, prober.check(&backend)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer within {:?}", hc.timeout)),
            };
            (e, result)
        });
        // Probes run together so one slow endpoint does not delay the verdict on the others.
        for (e, result) in futures::future::join_all(probes).await {
            self.observe(e, hc, result);
        }
    }

    fn observe(&self, e: &Endpoint, hc: &HealthCheck, result: Result<(), String>) {
        let Some(healthy) =
            e.observe_check(result.is_ok(), hc.healthy_threshold, hc.unhealthy_threshold)
        else {
            return;
        };
        metrics::ENDPOINT_HEALTHY
            .with_label_values(&[self.name(), &e.addr.to_string()])
            .set(i64::from(healthy && !e.ejected(now_ms())));
        match result {
            Ok(()) => {
                tracing::info!(pool = %self.name(), endpoint = %e.addr, "endpoint passes its health check")
            }
            Err(error) => {
                tracing::warn!(pool = %self.name(), endpoint = %e.addr, error, "endpoint fails its health check")
            }
        }
    }

    /// Discovery and health-check timers for this pool; returns when `stop` fires or the
    /// pool is retired.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let added = self.refresh().await;
        self.check(Some(&added)).await;
        let check_every = self
            .config
            .health_check
            .as_ref()
            .map_or(Duration::from_secs(3600), |hc| hc.interval);
        let mut resolve_tick = tokio::time::interval(self.config.resolve_interval);
        let mut check_tick = tokio::time::interval(check_every);
        resolve_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = resolve_tick.tick() => {
                    let added = self.refresh().await;
                    // New endpoints get their first check now rather than at the next tick,
                    // since they take no traffic before it passes.
                    self.check(Some(&added)).await;
                }
                _ = check_tick.tick() => self.check(None).await,
                () = stop.cancelled() => return,
                () = self.retired.cancelled() => {
                    if !self.succeeded.load(std::sync::atomic::Ordering::Acquire) {
                        for (addr, _) in self.endpoint_health() {
                            let _ = metrics::ENDPOINT_HEALTHY.remove_label_values(&[self.name(), &addr.to_string()]);
                        }
                    }
                    return;
                }
            }
            // Ejections end by the clock, not by an event; republish so the gauge follows.
            self.publish_health();
        }
    }
}
