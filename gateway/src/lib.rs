//! The gateway: a reverse proxy and API gateway on Pingora, driven by `gateway.yaml`.
//!
//! A request enters through the Pingora service built in [`server`], is identified, limited
//! and routed in `proxy::request_filters`, sent to an endpoint chosen by `upstream`,
//! and answered through `proxy::response_filters`, which also writes the access log line.
//!
//! # Layout
//! - [`config`]: `gateway.yaml` -> validated [`config::Config`], with file:line:column errors.
//! - `proxy`: the `ProxyHttp` implementation, one module per phase, and the connection wrapper.
//! - `upstream`: pools: DNS discovery, endpoint health, selection.
//! - `admin`: `/metrics`, `/healthz`, `/readyz` on the admin listener.
//! - `path`: canonical request paths (the one spelling routes and limits see).
//! - `policy`: edge policies (JWT verification, rate limits).
//! - `metrics`: every Prometheus metric, in the registry `pingora-prometheus` serves.
//! - `routing`: route precedence and matching.
//! - `runtime`: the composition root: config -> pools, verifier, limiters, router.
//! - `reload`: watches `gateway.yaml` (and SIGHUP) and swaps in a new runtime.
//! - [`server`]: wiring and process lifecycle (shutdown drain).
//! - [`telemetry`]: JSON logs; access lines buffered off the request path.
//! - `fuzzing`: entry points for the fuzz targets and property tests (not an API).

mod acme;
mod admin;
pub use admin::status_schema;
pub mod config;
mod error;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
mod metrics;
mod path;
mod policy;
mod proxy;
mod reload;
mod routing;
mod runtime;
pub mod server;
pub mod telemetry;
mod tls;
mod upstream;

pub use error::StartupError;
