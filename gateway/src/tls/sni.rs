//! Certificate choice by SNI: an exact name of a listed certificate first, then the ACME
//! certificate's names, then a `*.` wildcard one label deep, then the default certificate
//! (or else the self-signed one), then the ACME certificate; with none of them, the
//! handshake fails.

use std::collections::HashMap;
use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

use crate::acme::Acme;
use crate::config::TlsConfig;

#[derive(Debug)]
pub(super) struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`: `*.example.com` is under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// `tls.self_signed`, which answers where `default` would when there is none.
    self_signed: Option<Arc<CertifiedKey>>,
    /// Its certificate changes as it is obtained and renewed, so it is asked each time.
    acme: Option<Arc<Acme>>,
}

impl Certificates {
    pub(super) fn new(
        tls: &TlsConfig,
        acme: Option<Arc<Acme>>,
        self_signed: Option<Arc<CertifiedKey>>,
    ) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        // The first certificate listed for a name wins, as the order in the file says.
        for cert in &tls.certificates {
            for name in &cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()),
                    None => exact.entry(name.clone()),
                }
                .or_insert_with(|| Arc::clone(&cert.key));
            }
        }
        Self {
            exact,
            wildcard,
            default: tls.default_certificate.as_ref().map(|c| Arc::clone(&c.key)),
            self_signed,
            acme,
        }
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let acme = self.acme.as_deref();
        let named = sni.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let exact = self.exact.get(&name).cloned();
            exact
                .or_else(|| acme.and_then(|a| a.certificate_for(&name)))
                .or_else(|| {
                    name.split_once('.')
                        .and_then(|(_, parent)| self.wildcard.get(parent))
                        .cloned()
                })
        });
        named
            .or_else(|| self.default.clone())
            .or_else(|| self.self_signed.clone())
            .or_else(|| acme.and_then(Acme::any_certificate))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}
