//! `pools:`.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// One entry of `pools:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    pub(crate) endpoints: Vec<String>,
    #[serde(default = "default_resolve_interval", deserialize_with = "duration")]
    pub(crate) resolve_interval: Duration,
    #[serde(default = "default_dns_grace", deserialize_with = "duration")]
    pub(crate) dns_grace: Duration,
    #[serde(default)]
    pub(crate) balance: BalanceFile,
    #[serde(default)]
    pub(crate) hash_key: Option<String>,
    #[serde(default)]
    pub(crate) timeouts: TimeoutsFile,
    #[serde(default)]
    pub(crate) health_check: Option<HealthCheckFile>,
    #[serde(default)]
    pub(crate) passive_health: PassiveHealthFile,
    #[serde(default)]
    pub(crate) retries: RetriesFile,
    /// A secret sent to this pool with forwarded claims, so its endpoints can tell the
    /// gateway from a client that reached them directly.
    #[serde(default)]
    pub(crate) forward_secret: Option<ForwardSecretFile>,
    #[serde(default)]
    pub(crate) tls: Option<UpstreamTlsFile>,
}

/// `pools.<name>.tls`: the endpoints speak HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamTlsFile {
    #[serde(default)]
    pub(crate) sni: Option<String>,
    #[serde(default = "yes")]
    pub(crate) verify: bool,
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_resolve_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_dns_grace() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BalanceFile {
    #[default]
    RoundRobin,
    Random,
    ConsistentHash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TimeoutsFile {
    #[serde(deserialize_with = "duration")]
    pub(crate) connect: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) read: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) write: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) idle: Duration,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckFile {
    pub(crate) kind: HealthCheckKind,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) expect_status: Option<Vec<u16>>,
    #[serde(default = "default_check_interval", deserialize_with = "duration")]
    pub(crate) interval: Duration,
    #[serde(default = "default_check_timeout", deserialize_with = "duration")]
    pub(crate) timeout: Duration,
    #[serde(default = "one")]
    pub(crate) healthy_threshold: usize,
    #[serde(default = "two")]
    pub(crate) unhealthy_threshold: usize,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn one() -> usize {
    1
}

fn two() -> usize {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PassiveHealthFile {
    /// Consecutive connect failures or 5xx responses that eject an endpoint; 0 disables.
    pub(crate) consecutive_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub(crate) cooldown: Duration,
}

impl Default for PassiveHealthFile {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetriesFile {
    /// Further attempts after the first one, each on a different endpoint when possible.
    pub(crate) attempts: usize,
    /// Retry idempotent methods (GET, HEAD) after a reset before any response byte.
    pub(crate) idempotent_on_reset: bool,
}

impl Default for RetriesFile {
    fn default() -> Self {
        Self {
            attempts: 2,
            idempotent_on_reset: true,
        }
    }
}

/// `pools.<name>.forward_secret`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardSecretFile {
    #[serde(default = "default_secret_header")]
    pub(crate) header: String,
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
}

fn default_secret_header() -> String {
    "X-Gateway-Secret".to_owned()
}
