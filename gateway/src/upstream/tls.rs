//! TLS to a pool's endpoints (`pools.<name>.tls`): the SNI, verification and trusted roots
//! every connection and active check of the pool uses.

use std::sync::Arc;

use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::{HttpPeer, Scheme};
use pingora::utils::tls::{parse_x509, WrappedX509};

use crate::config::UpstreamTls;

/// A pool's TLS settings in the form Pingora's connector takes them, built once per pool.
pub(super) struct PeerTls {
    sni: String,
    verify: bool,
    /// The pool's own trusted roots; `None` uses the system's.
    ca: Option<Arc<CaType>>,
    /// Tells apart connections verified against different roots: Pingora's connection
    /// reuse keys on address, SNI and the verify flags but not on the roots, so without it
    /// a pool could borrow a connection another pool verified against another CA.
    group_key: u64,
}

impl PeerTls {
    pub(super) fn new(config: &UpstreamTls) -> Self {
        let ca = config.ca.as_ref().map(|certs| {
            // The DER was parsed when the config was validated.
            let wrapped: Vec<WrappedX509> = certs
                .iter()
                .map(|der| WrappedX509::new(der.clone(), parse_x509))
                .collect();
            Arc::<CaType>::from(wrapped)
        });
        let group_key = config.ca.as_ref().map_or(0, |certs| {
            use std::hash::{Hash as _, Hasher as _};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            certs.hash(&mut hasher);
            hasher.finish() | 1
        });
        Self {
            sni: config.sni.clone(),
            verify: config.verify,
            ca,
            group_key,
        }
    }

    /// Make `peer` speak TLS with these settings. Verification covers the chain and the
    /// name (Pingora skips both when the SNI is empty, so it never is).
    pub(super) fn apply(&self, peer: &mut HttpPeer) {
        peer.scheme = Scheme::HTTPS;
        peer.sni.clone_from(&self.sni);
        peer.options.verify_cert = self.verify;
        peer.options.verify_hostname = self.verify;
        peer.options.ca.clone_from(&self.ca);
        peer.group_key = self.group_key;
    }
}
