//! `tls:`: every certificate loaded and checked, paths relative to the config file.

use std::path::Path;

use super::Errors;
use crate::config::file::{CertificateFile, TlsFile, TlsVersionFile};
use crate::config::tls::{load_certificate, Certificate, TlsConfig, TlsVersion};

pub(super) fn check_tls(errs: &mut Errors<'_>, t: &TlsFile, base_dir: &Path) -> Option<TlsConfig> {
    errs.scoped(|errs| check(errs, t, base_dir))
}

fn check(errs: &mut Errors<'_>, t: &TlsFile, base_dir: &Path) -> Option<TlsConfig> {
    let load = |errs: &mut Errors<'_>, at: String, c: &CertificateFile| -> Option<Certificate> {
        load_certificate(&base_dir.join(&c.cert_file), &base_dir.join(&c.key_file))
            .map_err(|e| errs.push(format!("{at}.cert_file"), e))
            .ok()
    };
    let certificates: Vec<Certificate> = t
        .certificates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| load(errs, format!("tls.certificates[{i}]"), c))
        .collect();
    let default_certificate = t
        .default_certificate
        .as_ref()
        .and_then(|c| load(errs, "tls.default_certificate".to_owned(), c));
    if t.certificates.is_empty() && t.default_certificate.is_none() {
        errs.push(
            "tls.certificates",
            "list at least one certificate (cert_file and key_file), or a default_certificate",
        );
    }
    let hsts = t.hsts.as_ref().map(|h| {
        let mut value = format!("max-age={}", h.max_age.as_secs());
        if h.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        http::HeaderValue::try_from(value).expect("digits and ASCII")
    });
    Some(TlsConfig {
        fingerprint: TlsConfig::fingerprint_of(&certificates, default_certificate.as_ref()),
        certificates,
        default_certificate,
        redirect_http: t.redirect_http,
        hsts,
        min_version: match t.min_version {
            TlsVersionFile::V1_2 => TlsVersion::V1_2,
            TlsVersionFile::V1_3 => TlsVersion::V1_3,
        },
    })
}
