//! The composition root: a validated [`Config`] becomes a [`Runtime`], the pools, verifier
//! and limiters the request phases use, built with what must survive from the runtime it
//! replaces. Requests load one `Runtime` and use it to the end; a reload swaps it whole.

use std::sync::Arc;

use hickory_resolver::TokioAsyncResolver;

use crate::acme::Acme;
use crate::config::{Certificate, Config, JwksSource, JwtConfig, RateLimit};
use crate::policy::edge::BasicVerifier;
use crate::policy::forward_auth::ForwardAuthClient;
use crate::policy::jwt::jwks::{EndpointPicker, JwksRefresher};
use crate::policy::jwt::Verifier;
use crate::policy::rate_limit::{Limiter, RedisStore};
use crate::routing::Router;
use crate::tls::{self, Termination};
use crate::upstream::mirror::Mirror;
use crate::upstream::Pool;

/// Everything derived from one loaded config; swapped whole so a request sees one version.
pub(crate) struct Runtime {
    pub(crate) config: Arc<Config>,
    pub(crate) router: Router,
    /// Indexed like `config.pools`; routes refer to pools by that index.
    pub(crate) pools: Vec<Arc<Pool>>,
    /// Token verification for routes with `auth`, when `jwt:` is configured.
    pub(crate) verifier: Option<Arc<Verifier>>,
    /// Fetches the verifier's JWK set, when `jwt.jwks` is configured.
    pub(crate) jwks: Option<Arc<JwksRefresher>>,
    /// `jwt.verification_limit`: signature checks per client (cached tokens are free), so
    /// a flood of invalid tokens cannot buy unbounded CPU.
    pub(crate) verification_limiter: Option<Arc<Limiter>>,
    /// Headers only the gateway may set upstream; client copies are always removed.
    pub(crate) owned_headers: Vec<http::HeaderName>,
    /// Each route's limiters, indexed like `config.routes`.
    pub(crate) limiters: Vec<Vec<Arc<Limiter>>>,
    /// Each route's `basic_auth` checker, indexed like `config.routes`. Rebuilt on every
    /// reload (the users file is read with the config), sharing one bound on password checks.
    pub(crate) basic_auth: Vec<Option<Arc<BasicVerifier>>>,
    /// Each route's `forward_auth` client, indexed like `config.routes` (a reload starts
    /// each with a closed breaker and an empty cache).
    pub(crate) forward_auth: Vec<Option<Arc<ForwardAuthClient>>>,
    /// Each route's `mirror`, indexed like `config.routes`.
    pub(crate) mirrors: Vec<Option<Arc<Mirror>>>,
    /// The Redis connection cluster limits share; kept across reloads that keep its settings.
    redis: Option<Arc<RedisStore>>,
    /// The HTTPS listener's handshakes, when `tls:` is configured; kept across reloads that
    /// keep `tls:` (certificates compared by content), rebuilt otherwise.
    pub(crate) tls: Option<Arc<Termination>>,
    /// Certificates from `tls.acme`; kept across reloads that keep its storage directory.
    pub(crate) acme: Option<Arc<Acme>>,
}

/// How long a reload may spend warming up new pools before it swaps them in anyway.
const WARM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a `jwt:` section fetches its key set from, independent of pool positions: two
/// verifiers with the same origin see the same keys.
fn jwks_origin(config: &Config) -> Option<String> {
    let jwks = config.jwt.as_ref()?.jwks.as_ref()?;
    Some(match &jwks.source {
        JwksSource::Url(url) => format!("url {url}"),
        JwksSource::Pool { pool, path } => {
            format!("pool {} {path}", config.pools.get(*pool)?.name)
        }
    })
}

/// Where a served certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateSource {
    /// `tls.certificates` or `tls.default_certificate`.
    File,
    SelfSigned,
    Acme,
}

impl Runtime {
    /// Every certificate the HTTPS listener serves now: the listed files and the default,
    /// the self-signed one, ACME's once obtained.
    pub(crate) fn served_certificates(&self) -> Vec<(CertificateSource, Certificate)> {
        let mut served = Vec::new();
        if let Some(tls) = &self.config.tls {
            for cert in tls.certificates.iter().chain(&tls.default_certificate) {
                served.push((CertificateSource::File, cert.clone()));
            }
        }
        if let Some(cert) = self.tls.as_ref().and_then(|t| t.self_signed.clone()) {
            served.push((CertificateSource::SelfSigned, cert));
        }
        if let Some(cert) = self.acme.as_ref().and_then(|a| a.served_certificate()) {
            served.push((CertificateSource::Acme, (*cert).clone()));
        }
        served
    }

    /// Build the runtime for `config`, taking over from `previous` what must survive a
    /// reload: a pool whose settings are unchanged is kept as it is; a pool of the same name
    /// with other settings is succeeded by one that inherits its members and health (see
    /// `Pool::succeed`); an unchanged `jwt:` keeps its verifier and refresher (keys and
    /// cached tokens), a changed one starts with the old keys when it fetches from the same
    /// place; a limiter
    /// whose route name and spec are unchanged keeps its counters.
    pub(crate) fn build(
        config: Arc<Config>,
        resolver: &Arc<TokioAsyncResolver>,
        previous: Option<&Runtime>,
    ) -> Self {
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|pc| {
                let old_pools = previous.map_or(&[][..], |p| &p.pools[..]);
                if let Some(same) = old_pools.iter().find(|old| old.config == *pc) {
                    return Arc::clone(same);
                }
                let resolver = Arc::clone(resolver);
                match old_pools.iter().find(|old| old.name() == pc.name) {
                    Some(old) => Arc::new(Pool::succeed(pc.clone(), resolver, old)),
                    None => Arc::new(Pool::new(pc.clone(), resolver)),
                }
            })
            .collect();
        let (verifier, jwks) = verification(&config, &pools, previous);
        let verification_limiter = config
            .jwt
            .as_ref()
            .and_then(|j| j.verification_limit.as_ref())
            .map(|spec| {
                let old = previous.and_then(|p| p.verification_limiter.as_ref());
                keep_or_build(old, spec, || {
                    Limiter::new(spec, &config.rate_limiting, None, "jwt:verifications")
                })
            });
        let owned_headers = config.identity_headers();
        // Password hashes are slow on purpose: at most one check per core at a time.
        let hash_permits = Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, usize::from),
        ));
        let basic_auth = config
            .routes
            .iter()
            .map(|r| {
                let auth = r.policies.basic_auth.clone()?;
                Some(Arc::new(BasicVerifier::new(auth, hash_permits.clone())))
            })
            .collect();
        let forward_auth = config
            .routes
            .iter()
            .map(|r| {
                let f = r.policies.forward_auth.clone()?;
                Some(Arc::new(ForwardAuthClient::new(f)))
            })
            .collect();
        let mirrors = config
            .routes
            .iter()
            .map(|r| {
                let m = r.mirror?;
                let pool = Arc::clone(pools.get(m.pool)?);
                Some(Arc::new(Mirror::new(m, pool, r.name.clone())))
            })
            .collect();
        let same_store = previous.is_some_and(|p| p.config.rate_limiting == config.rate_limiting);
        let redis = match previous {
            Some(p) if same_store => p.redis.clone(),
            _ => RedisStore::new(&config.rate_limiting),
        };
        let limiters = config
            .routes
            .iter()
            .map(|route| {
                let old = previous.filter(|_| same_store).and_then(|p| {
                    let index = p.config.routes.iter().position(|r| r.name == route.name)?;
                    Some(&p.limiters[index])
                });
                route
                    .rate_limits
                    .iter()
                    .enumerate()
                    .map(|(j, spec)| {
                        keep_or_build(old.and_then(|o| o.get(j)), spec, || {
                            Limiter::new(
                                spec,
                                &config.rate_limiting,
                                redis.clone(),
                                // Route names are unique; no position in the file, which
                                // a reload may shift differently on each gateway.
                                &format!("{}:{j}", route.name),
                            )
                        })
                    })
                    .collect()
            })
            .collect();
        let acme = config.tls.as_ref().and_then(|t| t.acme.as_ref()).map(|a| {
            match previous.and_then(|p| p.acme.as_ref()) {
                Some(old) if old.serves(a) => Arc::clone(old),
                _ => Arc::new(Acme::new(a.clone(), config.listeners.http)),
            }
        });
        let tls = match (&config.tls, previous) {
            (Some(now), Some(prev))
                if prev.config.tls.as_ref() == Some(now)
                    && prev.acme.as_ref().map(Arc::as_ptr) == acme.as_ref().map(Arc::as_ptr) =>
            {
                prev.tls.clone()
            }
            (Some(now), _) => Some(Arc::new(tls::termination(now, acme.clone()))),
            (None, _) => None,
        };
        Self {
            router: Router::new(&config.routes),
            tls,
            acme,
            config,
            pools,
            verifier,
            jwks,
            verification_limiter,
            owned_headers,
            limiters,
            basic_auth,
            forward_auth,
            mirrors,
            redis,
        }
    }

    /// Make the pools this runtime does not share with `previous` ready to take traffic
    /// (members discovered, first checks run), all at once and within `WARM_DEADLINE`.
    pub(crate) async fn warm(&self, previous: &Runtime) {
        let fresh = self
            .pools
            .iter()
            .filter(|p| !previous.pools.iter().any(|old| Arc::ptr_eq(old, p)));
        futures::future::join_all(fresh.map(|p| p.warm(WARM_DEADLINE))).await;
    }

    /// Called once this runtime serves: a kept JWKS refresher now fetches from this
    /// runtime's pool; a kept ACME component follows this runtime's `tls.acme`.
    pub(crate) fn activate(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.set_picker(jwks_picker(&self.config, &self.pools));
        }
        let acme_config = self.config.tls.as_ref().and_then(|t| t.acme.as_ref());
        if let (Some(acme), Some(config)) = (&self.acme, acme_config) {
            acme.set_config(config);
        }
    }
}

/// Whether two `jwt:` sections verify tokens the same way: all but `verification_limit`,
/// which the runtime applies, not the verifier (changing it keeps keys and cached tokens).
fn same_verification(a: &JwtConfig, b: &JwtConfig) -> bool {
    let strip = |j: &JwtConfig| JwtConfig {
        verification_limit: None,
        ..j.clone()
    };
    strip(a) == strip(b)
}

/// `old` when it enforces `spec` already (it keeps its counters), else a new limiter.
fn keep_or_build(
    old: Option<&Arc<Limiter>>,
    spec: &RateLimit,
    build: impl FnOnce() -> Limiter,
) -> Arc<Limiter> {
    match old {
        Some(limiter) if limiter.spec == *spec => Arc::clone(limiter),
        _ => Arc::new(build()),
    }
}

/// The verifier and JWKS refresher for `config.jwt`, kept from `previous` when they would
/// verify the same way from the same keys (they keep keys and cached tokens); a rebuilt
/// verifier starts with the old keys when it fetches from the same place.
fn verification(
    config: &Config,
    pools: &[Arc<Pool>],
    previous: Option<&Runtime>,
) -> (Option<Arc<Verifier>>, Option<Arc<JwksRefresher>>) {
    let Some(jwt) = &config.jwt else {
        return (None, None);
    };
    let origin = jwks_origin(config);
    let old = previous.and_then(|p| {
        let v = p.verifier.as_ref()?;
        Some((p, v, jwks_origin(&p.config) == origin))
    });
    if let Some((p, v, true)) = old {
        if same_verification(v.config(), jwt) {
            return (Some(Arc::clone(v)), p.jwks.clone());
        }
    }
    let verifier = Verifier::new(jwt);
    if let Some((_, old, true)) = old {
        verifier.inherit_keys(old);
    }
    let verifier = Arc::new(verifier);
    let jwks = jwt.jwks.clone().map(|j| {
        Arc::new(JwksRefresher::new(
            j,
            Arc::clone(&verifier),
            jwks_picker(config, pools),
        ))
    });
    (Some(verifier), jwks)
}

/// The pool `config`'s JWKS is fetched from, if it names one, as the refresher sees it.
fn jwks_picker(config: &Config, pools: &[Arc<Pool>]) -> Option<Arc<dyn EndpointPicker>> {
    match &config.jwt.as_ref()?.jwks.as_ref()?.source {
        JwksSource::Pool { pool, .. } => {
            let pool: Arc<dyn EndpointPicker> = pools.get(*pool).cloned()?;
            Some(pool)
        }
        JwksSource::Url(_) => None,
    }
}

/// A pool picks JWKS endpoints like any request would (no retry bookkeeping).
impl EndpointPicker for Pool {
    fn pick(&self) -> Option<std::net::SocketAddr> {
        self.select(b"", &[]).ok().map(|chosen| chosen.addr)
    }
}
