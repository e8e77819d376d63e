//! `tls:`: every certificate loaded and checked, paths relative to the config file.

use std::path::Path;

use super::Errors;
use crate::config::file::{AcmeFile, CertificateFile, SelfSignedFile, TlsFile, TlsVersionFile};
use crate::config::tls::{
    load_ca_file, load_certificate, AcmeConfig, Certificate, SelfSigned, TlsConfig, TlsVersion,
};

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
    let acme = t.acme.as_ref().and_then(|a| check_acme(errs, a, base_dir));
    let self_signed = t
        .self_signed
        .as_ref()
        .and_then(|s| check_self_signed(errs, s, base_dir));
    let sources = [t.acme.is_some(), t.self_signed.is_some()];
    if t.certificates.is_empty() && t.default_certificate.is_none() && sources == [false; 2] {
        errs.push(
            "tls.certificates",
            "list at least one certificate (cert_file and key_file), a default_certificate, acme or self_signed",
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
        acme,
        self_signed,
        min_version: match t.min_version {
            TlsVersionFile::V1_2 => TlsVersion::V1_2,
            TlsVersionFile::V1_3 => TlsVersion::V1_3,
        },
    })
}

fn check_self_signed(
    errs: &mut Errors<'_>,
    s: &SelfSignedFile,
    base_dir: &Path,
) -> Option<SelfSigned> {
    errs.scoped(|errs| {
        if s.names.is_empty() {
            errs.push(
                "tls.self_signed.names",
                "list the names to make it for, such as localhost",
            );
        }
        let mut names = Vec::new();
        for (i, name) in s.names.iter().enumerate() {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let dns_ok = name.len() <= 253 && name.split('.').all(dns_label);
            if name.parse::<std::net::IpAddr>().is_err() && !dns_ok {
                errs.push(
                    format!("tls.self_signed.names[{i}]"),
                    format!("{name:?} is neither a DNS name nor an IP address"),
                );
            }
            names.push(name);
        }
        let storage = storage_dir(errs, "tls.self_signed.storage", &s.storage, base_dir);
        Some(SelfSigned { names, storage })
    })
}

/// A directory the gateway writes to: named, and not an existing file.
fn storage_dir(errs: &mut Errors<'_>, at: &str, dir: &str, base_dir: &Path) -> std::path::PathBuf {
    let path = base_dir.join(dir);
    if dir.trim().is_empty() {
        errs.push(at, "name a directory to keep the files in");
    } else if path.exists() && !path.is_dir() {
        errs.push(
            at,
            format!("{} exists and is not a directory", path.display()),
        );
    }
    path
}

fn check_acme(errs: &mut Errors<'_>, a: &AcmeFile, base_dir: &Path) -> Option<AcmeConfig> {
    errs.scoped(|errs| {
        let url = a.directory_url.trim();
        if !url.starts_with("https://") || url.len() == "https://".len() {
            errs.push(
                "tls.acme.directory_url",
                format!("{url:?} is not an https:// URL of an ACME directory (Let's Encrypt's is https://acme-v02.api.letsencrypt.org/directory)"),
            );
        }
        if let Some(email) = &a.email {
            let (user, host) = email.split_once('@').unwrap_or(("", ""));
            if user.is_empty() || !host.contains('.') || email.contains(char::is_whitespace) {
                errs.push("tls.acme.email", format!("{email:?} is not an email address"));
            }
        }
        if a.domains.is_empty() {
            errs.push("tls.acme.domains", "list the DNS names the certificate is for");
        }
        let mut domains: Vec<String> = Vec::new();
        for (i, domain) in a.domains.iter().enumerate() {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            match domain_problem(&name) {
                Some(problem) => errs.push(format!("tls.acme.domains[{i}]"), problem),
                None if domains.contains(&name) => {
                    errs.push(format!("tls.acme.domains[{i}]"), format!("{name} is listed twice"))
                }
                None => domains.push(name),
            }
        }
        if a.renew_before.is_zero() {
            errs.push("tls.acme.renew_before", "must be longer than zero");
        }
        let storage = storage_dir(errs, "tls.acme.storage", &a.storage, base_dir);
        let ca_file = a.ca_file.as_ref().map(|f| base_dir.join(f));
        if let Some(Err(e)) = ca_file.as_deref().map(load_ca_file) {
            errs.push("tls.acme.ca_file", e);
        }
        Some(AcmeConfig {
            directory_url: url.to_owned(),
            email: a.email.clone(),
            domains,
            storage,
            renew_before: a.renew_before,
            ca_file,
        })
    })
}

/// Why `name` (lowercase, no trailing dot) cannot be in an HTTP-01 certificate, if it cannot.
fn domain_problem(name: &str) -> Option<String> {
    if name.starts_with("*.") {
        return Some(format!(
            "{name}: a wildcard needs the DNS-01 challenge; the gateway answers HTTP-01 only"
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some(format!("{name}: an IP address; list DNS names"));
    }
    if name.len() > 253 || !name.contains('.') || !name.split('.').all(dns_label) {
        return Some(format!(
            "{name:?} is not a DNS name with at least two labels (such as api.example.com)"
        ));
    }
    None
}

/// One label of a DNS name: letters, digits and inner hyphens, 1 to 63 bytes.
fn dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
