//! `tls.self_signed`: a certificate the gateway makes for itself, the way the stack's
//! development JWT key is made: generated (ECDSA P-256) into `storage` on first start, with
//! the files owner-only, and reused on every later start and reload, so a browser that
//! accepted it once keeps accepting it. For development only: no client trusts it.

use crate::acme::write_private;
use crate::config::{load_certificate, Certificate, SelfSigned};

/// The certificate for `config`: the stored one when it has every name, else a new one,
/// stored. `None` (logged) when neither works, e.g. an unwritable directory.
pub(super) fn load_or_generate(config: &SelfSigned) -> Option<Certificate> {
    let cert_file = config.storage.join("self-signed.crt.pem");
    let key_file = config.storage.join("self-signed.key.pem");
    if let Ok(cert) = load_certificate(&cert_file, &key_file) {
        let covers = config
            .names
            .iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_err())
            .all(|n| cert.names.contains(n));
        if covers {
            return Some(cert);
        }
    }
    let made = generate(&config.names).and_then(|(cert, key)| {
        write_private(&key_file, key.as_bytes()).map_err(|e| e.to_string())?;
        write_private(&cert_file, cert.as_bytes()).map_err(|e| e.to_string())?;
        load_certificate(&cert_file, &key_file)
    });
    match made {
        Ok(cert) => {
            tracing::info!(file = %cert_file.display(), names = ?config.names, "self-signed certificate generated (for development: no client trusts it)");
            Some(cert)
        }
        Err(e) => {
            tracing::error!(dir = %config.storage.display(), error = %e, "cannot make the self-signed certificate; names without another certificate fail the handshake");
            None
        }
    }
}

/// A self-signed certificate (PEM) and its key (PEM) for `names`, DNS names and IP
/// addresses, the first one its common name.
fn generate(names: &[String]) -> Result<(String, String), String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    let cn = names.first().map_or("gateway", String::as_str);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_on_first_start_and_reused_after() {
        let dir = tempfile::tempdir().unwrap();
        let config = SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
            storage: dir.path().join("tls"),
        };

        let first = load_or_generate(&config).expect("generated");
        let again = load_or_generate(&config).expect("loaded");

        assert_eq!(
            first.key.cert, again.key.cert,
            "the stored certificate is reused"
        );
        let more = SelfSigned {
            names: vec!["localhost".into(), "dev.test".into()],
            ..config
        };
        let other = load_or_generate(&more).expect("regenerated");
        assert_ne!(
            first.key.cert, other.key.cert,
            "a new name makes a new certificate"
        );
    }
}
