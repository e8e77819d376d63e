//! Upstream pools: membership, health (active and passive) and endpoint selection.
//!
//! - `discovery`: DNS names re-resolved on the pool's timer, with a grace period;
//! - `health`: one endpoint's health state machine (active verdict, circuit breaker);
//! - `budget`: the pool's retry budget; `admission`: its `max_in_flight` and queue;
//! - `mirror`: copies of a route's requests sent to a shadow pool;
//! - this module: `Pool`, which ties them to Pingora's balancer, decides when a breaker
//!   opens, and runs the timers.
//!
//! Pingora's `LoadBalancer` provides membership (through our [`DnsDiscovery`]) and the
//! selection algorithms. Health is tracked here instead of in Pingora's registry because we
//! need three things it does not do: a new endpoint gets no traffic before its first passing
//! active check, a circuit breaker per endpoint fed by real traffic, and a pool that is never
//! fully ejected (at most `max_ejected_percent` of it is open, and when every endpoint is out
//! anyway, ejections are ignored).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_limits::inflight::{Guard, Inflight};
use pingora_limits::rate::{Rate, RateComponents};

use arc_swap::ArcSwap;
use hickory_resolver::TokioAsyncResolver;
use pingora::lb::health_check::{HealthCheck as PingoraCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::upstreams::peer::HttpPeer;
use tokio_util::sync::CancellationToken;

pub(crate) mod admission;
mod budget;
pub(crate) mod discovery;
mod health;
pub(crate) mod mirror;
mod tls;

use crate::config::{Balance, HealthCheck, PoolConfig, Probe};
use crate::metrics;
use admission::Admission;
use budget::Budget;
use discovery::{DnsDiscovery, SharedDiscovery};
use health::{now_ms, Admit, BreakerState, Endpoint};
pub(crate) use health::{Attempt, Probe as BreakerProbe};
use tls::PeerTls;

/// One member as `/readyz` shows it.
pub(crate) struct EndpointStatus {
    pub(crate) addr: SocketAddr,
    /// Its active verdict passes and its breaker is not open.
    pub(crate) routable: bool,
    /// The active check's verdict: `passing`, `failing` or `unknown`.
    pub(crate) verdict: &'static str,
    pub(crate) breaker: &'static str,
    /// Attempts at it now.
    pub(crate) in_flight: u32,
    /// Moving average of its time to answer.
    pub(crate) answer_time: Option<Duration>,
}

/// The endpoint chosen for one attempt, its half-open probe place if it is one, and its
/// place under `max_in_flight_per_endpoint`; both places are held for the attempt.
pub(crate) struct Selected {
    pub(crate) addr: SocketAddr,
    pub(crate) probe: Option<BreakerProbe>,
    pub(crate) slot: Option<Guard>,
    /// Counts the attempt in the endpoint's in-flight requests.
    pub(crate) attempt: Option<Attempt>,
}

/// Why no endpoint was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// None is healthy (or the pool is empty).
    NoEndpoint,
    /// Every one that could take the request is at `max_in_flight_per_endpoint`.
    AtCapacity,
}

/// Requests at each endpoint, for `max_in_flight_per_endpoint`: one estimator for the
/// process, keyed by pool name and address, so the counts outlive a reload's new pools
/// (the requests they count do). A count-min sketch only ever over-counts, which errs
/// towards protecting the endpoint.
static ENDPOINT_IN_FLIGHT: std::sync::LazyLock<Inflight> = std::sync::LazyLock::new(Inflight::new);

/// Requests and failures per endpoint over the breaker's window: one sketch for each, keyed
/// by address (one sketch for both would let a collision count an endpoint's requests as
/// failures; within one kind a collision only over-counts both of two endpoints).
struct FailureWindow {
    requests: Rate,
    failures: Rate,
}

impl FailureWindow {
    fn new(window: Duration) -> Self {
        Self {
            requests: Rate::new_with_estimator_config(window, 4, 256),
            failures: Rate::new_with_estimator_config(window, 4, 256),
        }
    }

    /// Count one outcome; returns `(requests, failures)` over the last window.
    fn observe(&self, addr: SocketAddr, failed: bool) -> (f64, f64) {
        // The last full interval, weighted by the part of it still inside the window,
        // plus the current one: a sliding window from two counters.
        fn in_window(c: RateComponents) -> f64 {
            #[allow(clippy::cast_precision_loss)]
            let (prev, curr) = (c.prev_samples as f64, c.curr_samples as f64);
            prev * (1.0 - c.current_interval_fraction) + curr
        }
        self.requests.observe(&addr, 1);
        if failed {
            self.failures.observe(&addr, 1);
        }
        (
            self.requests.rate_with(&addr, in_window),
            self.failures.rate_with(&addr, in_window),
        )
    }
}

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
    /// The retry budget.
    pub(crate) budget: Budget,
    /// `max_in_flight` and its queue, when set.
    pub(crate) admission: Option<Arc<Admission>>,
    /// With `failure_ratio`: the outcomes per endpoint over its window. Shared with the
    /// pool's successors while the window is the same.
    failure_window: Option<Arc<FailureWindow>>,
    /// Cancelled when a reload drops this pool, to end its timers.
    retired: CancellationToken,
    /// Set (before `retired` is cancelled) when a successor of the same name took over: it
    /// then keeps publishing the health gauges, so this pool must not remove them.
    succeeded: std::sync::atomic::AtomicBool,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, resolver: Arc<TokioAsyncResolver>) -> Self {
        let tls = config.tls.as_ref().map(PeerTls::new);
        // The pool's counters exist at 0 from its start, so a rate over one is 0, not nothing
        // (dashboards and alerts divide and compare them).
        for counter in [
            &metrics::CONNECT_FAILURES,
            &metrics::RETRIES,
            &metrics::EJECTIONS,
            &metrics::BREAKER_DIVERTED,
            &metrics::RETRY_BUDGET_EXHAUSTED,
        ] {
            counter.with_label_values(&[config.name.as_str()]);
        }
        let discovery = Arc::new(DnsDiscovery::new(
            config.name.clone(),
            config.endpoints.clone(),
            config.dns_grace,
            resolver,
        ));
        Self {
            budget: Budget::new(config.retries.budget),
            admission: config
                .admission
                .map(|a| Arc::new(Admission::new(a, &config.name))),
            failure_window: config
                .breaker
                .failure_ratio
                .map(|r| Arc::new(FailureWindow::new(r.window))),
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
        let mut pool = Self::new(config, resolver);
        pool.discovery.inherit(&previous.discovery);
        pool.budget = Budget::succeed(pool.config.retries.budget, &previous.budget);
        // Requests admitted under the old limit still hold its places: the queue carries
        // over while the limit does, or the gateway would briefly admit twice the limit.
        if pool.config.admission == previous.config.admission {
            pool.admission.clone_from(&previous.admission);
        }
        let same_window = |p: &Pool| p.config.breaker.failure_ratio.map(|r| r.window);
        if same_window(&pool) == same_window(previous) {
            pool.failure_window.clone_from(&previous.failure_window);
        }
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
    /// An endpoint whose breaker is open is skipped, and one that is half-open is chosen only
    /// when a probe place is free (the request then holds it); with
    /// `max_in_flight_per_endpoint`, so is one that many requests are at already.
    pub(crate) fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Result<Selected, Unavailable> {
        let now = now_ms();
        let endpoints = self.endpoints.load();
        let max = endpoints.len() * 4 + 8;
        let max_probes = self.config.breaker.half_open_probes;
        // The balancer takes a `Fn`; what its callback learns goes through cells.
        let probe = std::cell::RefCell::new(None);
        let slot = std::cell::RefCell::new(None);
        let refused_by_breaker = std::cell::Cell::new(false);
        let at_capacity = std::cell::Cell::new(false);
        // A place at `addr` under `max_in_flight_per_endpoint` (none needed without it).
        let take_slot = |addr: SocketAddr| -> bool {
            let Some(cap) = self.config.max_in_flight_per_endpoint else {
                return true;
            };
            let (guard, count) = ENDPOINT_IN_FLIGHT.incr((self.name(), addr), 1);
            if usize::try_from(count).unwrap_or(usize::MAX) > cap {
                at_capacity.set(true);
                return false;
            }
            slot.replace(Some(guard));
            true
        };
        let pick = |avoid_tried: bool| {
            self.selector.select(key, max, &|b: &Backend| {
                let Some(addr) = b.addr.as_inet() else {
                    return false;
                };
                if avoid_tried && tried.contains(addr) {
                    return false;
                }
                let Some(e) = endpoints.get(addr) else {
                    return false;
                };
                match e.admit(now, max_probes) {
                    // Accepting ends the balancer's pass: this is the endpoint used.
                    Admit::Yes => take_slot(*addr),
                    Admit::Probe(p) => {
                        let taken = take_slot(*addr);
                        if taken {
                            probe.replace(Some(p));
                        }
                        taken
                    }
                    Admit::No => {
                        if e.active_healthy() {
                            refused_by_breaker.set(true);
                        }
                        false
                    }
                }
            })
        };
        // When every candidate is out, ejections are ignored (the pool is never ejected
        // whole), and the one whose ejection ends soonest goes first: it failed longest ago.
        // (Asking the balancer again would not do: its rejected passes have advanced the
        // round-robin counter, so it would keep landing on the same endpoint.)
        let soonest_back = |avoid_tried: bool| {
            let mut candidates: Vec<&Arc<Endpoint>> = endpoints
                .values()
                .filter(|e| e.active_healthy() && !(avoid_tried && tried.contains(&e.addr)))
                .collect();
            candidates.sort_by_key(|e| (e.ejected_until(), e.addr));
            candidates
                .into_iter()
                .map(|e| e.addr)
                .find(|addr| take_slot(*addr))
        };
        let addr = |b: Backend| b.addr.as_inet().copied();
        // Prefer fresh, admitted endpoints; a retry may finally reuse an endpoint, e.g.
        // after a stale keep-alive reset.
        let chosen = pick(true)
            .and_then(addr)
            .or_else(|| soonest_back(true))
            .or_else(|| pick(false).and_then(addr))
            .or_else(|| soonest_back(false));
        if refused_by_breaker.get() {
            metrics::BREAKER_DIVERTED
                .with_label_values(&[self.name()])
                .inc();
        }
        match chosen {
            Some(addr) => Ok(Selected {
                probe: probe.into_inner(),
                slot: slot.into_inner(),
                attempt: endpoints.get(&addr).map(Attempt::new),
                addr,
            }),
            None if at_capacity.get() => Err(Unavailable::AtCapacity),
            None => Err(Unavailable::NoEndpoint),
        }
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

    /// Whether `status` from an endpoint counts against its breaker.
    pub(crate) fn is_failure_status(&self, status: u16) -> bool {
        self.config.breaker.failure_statuses.contains(status)
    }

    /// A failed attempt on `addr` (a connect failure other than a refusal, a timeout, a
    /// reset, or a failure status): it may open the breaker, by the count in a row or by the
    /// ratio over the window.
    pub(crate) fn report_failure(&self, addr: SocketAddr) {
        let b = &self.config.breaker;
        if !b.enabled() {
            return;
        }
        let endpoints = self.endpoints.load();
        let Some(e) = endpoints.get(&addr) else {
            return;
        };
        let now = now_ms();
        let in_a_row = e.record_failure();
        let by_ratio = match (&self.failure_window, b.failure_ratio) {
            (Some(window), Some(r)) => {
                let (requests, failures) = window.observe(addr, true);
                requests >= f64::from(r.min_requests) && failures >= requests * r.ratio
            }
            _ => false,
        };
        let by_count = b.consecutive_failures > 0 && in_a_row >= b.consecutive_failures;
        match e.breaker(now) {
            // A failed probe opens it again, for longer.
            BreakerState::HalfOpen => self.open(e, now, "probe failed", true),
            BreakerState::Closed if by_count => self.open(e, now, "consecutive failures", true),
            BreakerState::Closed if by_ratio => self.open(e, now, "failure ratio", true),
            BreakerState::Closed | BreakerState::Open => {}
        }
    }

    /// `addr` refused a connection. Nothing listens there (a replica that is stopping or
    /// gone), so its breaker opens at once rather than after `consecutive_failures`: when
    /// several replicas stop together, every request that tried one would otherwise spend a
    /// retry on each of them.
    pub(crate) fn report_refused(&self, addr: SocketAddr) {
        if !self.config.breaker.enabled() {
            return;
        }
        let endpoints = self.endpoints.load();
        if let Some(e) = endpoints.get(&addr) {
            let now = now_ms();
            if e.breaker(now) != BreakerState::Open {
                // Not capped by `max_ejected_percent`: an endpoint that refuses connections
                // serves nothing, so keeping it in rotation protects no one. (When every
                // endpoint is out, `select` still ignores ejections.)
                self.open(e, now, "connection refused", false);
                e.mark_refused();
            }
        }
    }

    /// Open `e`'s breaker; when `capped`, not if that would take more than
    /// `max_ejected_percent` of the pool out (a half-open one reopening is already counted).
    fn open(&self, e: &Endpoint, now: u64, reason: &'static str, capped: bool) {
        let b = &self.config.breaker;
        let endpoints = self.endpoints.load();
        if capped && e.breaker(now) == BreakerState::Closed {
            let members = endpoints.len();
            let out = endpoints
                .values()
                .filter(|other| other.breaker(now) != BreakerState::Closed)
                .count();
            if out + 1 > max_ejected(members, b.max_ejected_percent) {
                tracing::warn!(pool = %self.name(), endpoint = %e.addr, reason, out, members, "breaker not opened: max_ejected_percent of the pool is out already");
                return;
            }
        }
        let length = e.eject(b.open_for, b.max_open_for, now);
        metrics::EJECTIONS.with_label_values(&[self.name()]).inc();
        metrics::BREAKER_TRANSITIONS
            .with_label_values(&[self.name(), BreakerState::Open.label()])
            .inc();
        let endpoint = e.addr.to_string();
        metrics::ENDPOINT_HEALTHY
            .with_label_values(&[self.name(), &endpoint])
            .set(0);
        metrics::BREAKER_STATE
            .with_label_values(&[self.name(), &endpoint])
            .set(BreakerState::Open as i64);
        tracing::warn!(pool = %self.name(), endpoint = %e.addr, reason, open_for = ?length, "circuit breaker opened");
    }

    /// `addr` answered with a status that is not a failure.
    pub(crate) fn report_success(&self, addr: SocketAddr) {
        let endpoints = self.endpoints.load();
        let Some(e) = endpoints.get(&addr) else {
            return;
        };
        if let Some(window) = &self.failure_window {
            window.observe(addr, false);
        }
        if e.record_success(now_ms()) {
            self.closed(addr, "a probe succeeded");
        }
    }

    /// Count and log a breaker that just closed.
    fn closed(&self, addr: SocketAddr, why: &'static str) {
        metrics::BREAKER_TRANSITIONS
            .with_label_values(&[self.name(), BreakerState::Closed.label()])
            .inc();
        let endpoint = addr.to_string();
        metrics::BREAKER_STATE
            .with_label_values(&[self.name(), &endpoint])
            .set(BreakerState::Closed as i64);
        tracing::info!(pool = %self.name(), endpoint = %addr, why, "circuit breaker closed");
    }

    /// Whether at least one endpoint would be chosen now.
    pub(crate) fn has_healthy_endpoint(&self) -> bool {
        self.endpoints.load().values().any(|e| e.active_healthy())
    }

    /// Every member with whether it takes traffic now and its breaker's state, for `/readyz`.
    pub(crate) fn endpoint_health(&self) -> Vec<EndpointStatus> {
        let now = now_ms();
        let mut out: Vec<_> = self
            .endpoints
            .load()
            .values()
            .map(|e| EndpointStatus {
                addr: e.addr,
                routable: e.routable(now),
                verdict: e.verdict(),
                breaker: e.breaker(now).label(),
                in_flight: e.in_flight(),
                answer_time: e.answer_time(),
            })
            .collect();
        out.sort_by_key(|s| s.addr);
        out
    }

    /// Set the health and breaker gauges of every member to what holds right now.
    fn publish_health(&self) {
        let now = now_ms();
        for e in self.endpoints.load().values() {
            let endpoint = e.addr.to_string();
            metrics::ENDPOINT_HEALTHY
                .with_label_values(&[self.name(), &endpoint])
                .set(i64::from(e.routable(now)));
            metrics::BREAKER_STATE
                .with_label_values(&[self.name(), &endpoint])
                .set(e.breaker(now) as i64);
        }
    }

    /// Remove the gauges of `addr` (it left the pool, or the pool is gone).
    fn forget_gauges(&self, addr: SocketAddr) {
        let labels = [self.name(), &addr.to_string()];
        let _ = metrics::ENDPOINT_HEALTHY.remove_label_values(&labels);
        let _ = metrics::BREAKER_STATE.remove_label_values(&labels);
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
            self.forget_gauges(*gone);
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
        if result.is_ok() && e.listening_again() {
            self.closed(
                e.addr,
                "it passes its active check again after refusing connections",
            );
        }
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
                        for status in self.endpoint_health() {
                            self.forget_gauges(status.addr);
                        }
                    }
                    return;
                }
            }
            // Openings end by the clock, not by an event; republish so the gauges follow.
            self.publish_health();
        }
    }
}

/// How many of `members` endpoints may be out at once: `percent` of them, at least one of a
/// pool of two or more (unless `percent` is 0), never all.
fn max_ejected(members: usize, percent: u8) -> usize {
    if percent == 0 || members < 2 {
        return 0;
    }
    (members * usize::from(percent) / 100).clamp(1, members - 1)
}

#[cfg(test)]
mod tests {
    use super::max_ejected;

    #[test]
    fn at_most_the_percentage_is_out_but_one_may_be_and_never_all() {
        assert_eq!(
            max_ejected(1, 100),
            0,
            "a single endpoint always takes traffic"
        );
        assert_eq!(max_ejected(2, 10), 1, "at least one of two");
        assert_eq!(max_ejected(4, 50), 2);
        assert_eq!(max_ejected(4, 100), 3, "never all");
        assert_eq!(max_ejected(10, 0), 0, "0 turns ejection off");
    }
}
