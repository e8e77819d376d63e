//! TLS termination for the HTTPS listener: a rustls server config built from the model's
//! certificates (SNI picks one, a default answers the rest), and a stream wrapper that lets
//! the connection loop wait for a request without consuming it.
//!
//! Pingora's TLS listeners fix the protocol versions and hand-shake before the application
//! sees the connection; the gateway instead accepts plain TCP and hand-shakes in
//! `proxy::connection`, after its connection caps and within a deadline, with the acceptor
//! of the live runtime, so a reload changes certificates and versions for new connections.

mod peek;
mod self_signed;
mod sni;

pub(crate) use peek::Peekable;

use std::sync::Arc;

use pingora::listeners::tls::Acceptor;
use pingora::tls::{version, ServerConfig};

use crate::acme::Acme;
use crate::config::{Certificate, TlsConfig, TlsVersion};

/// ALPN in order of preference: HTTP/2, then HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What the HTTPS listener serves under one `tls:`: the handshake, and the certificate
/// `tls.self_signed` made or loaded (listed ones are in the config, ACME's in `Acme`).
pub(crate) struct Termination {
    pub(crate) acceptor: Acceptor,
    pub(crate) self_signed: Option<Certificate>,
}

/// The termination for `tls`: its certificates (and `acme`'s), its minimum version, modern
/// suites only (the ring provider's defaults: AEAD ciphers with ECDHE), ALPN `h2` and
/// `http/1.1`.
pub(crate) fn termination(tls: &TlsConfig, acme: Option<Arc<Acme>>) -> Termination {
    let self_signed = tls
        .self_signed
        .as_ref()
        .and_then(self_signed::load_or_generate);
    let key = self_signed.as_ref().map(|c| Arc::clone(&c.key));
    Termination {
        acceptor: acceptor(tls, acme, key),
        self_signed,
    }
}

fn acceptor(
    tls: &TlsConfig,
    acme: Option<Arc<Acme>>,
    self_signed: Option<Arc<pingora::tls::sign::CertifiedKey>>,
) -> Acceptor {
    pingora::tls::install_default_crypto_provider();
    let versions = match tls.min_version {
        TlsVersion::V1_2 => vec![&version::TLS12, &version::TLS13],
        TlsVersion::V1_3 => vec![&version::TLS13],
    };
    let mut config = ServerConfig::builder_with_protocol_versions(&versions)
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(sni::Certificates::new(tls, acme, self_signed)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's suite order (strongest first), not the client's: what scanners expect
    // of an edge, and no client can talk it down to a weaker suite it also offers.
    config.ignore_client_order = true;
    Acceptor::from_server_config(Arc::new(config))
}
