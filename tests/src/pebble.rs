//! Let's Encrypt's ACME test server, Pebble (Debian package `pebble`), on loopback: its
//! directory and management API on free ports with a throwaway TLS certificate, and
//! `pebble-challtestsrv` as its DNS server, answering 127.0.0.1 for every name so that the
//! HTTP-01 validation of any domain reaches the gateway's HTTP listener on `http_port`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::certs::ca_signed_localhost;
use crate::process::Process;
use crate::{free_port, wait_for_port};

pub struct Pebble {
    /// The ACME directory URL, for `tls.acme.directory_url`.
    pub directory_url: String,
    /// The CA of Pebble's own HTTPS listener, for `tls.acme.ca_file`.
    pub ca_file: PathBuf,
    management: u16,
    pebble: Process,
    _dns: Process,
    log: PathBuf,
}

impl Pebble {
    /// Start Pebble validating HTTP-01 challenges on `http_port` of 127.0.0.1, with
    /// its files (config, certificate, log) in `dir`.
    pub fn start(dir: &Path, http_port: u16) -> Self {
        let (ca_file, tls) = ca_signed_localhost(dir, "pebble-listener");
        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": tls.cert_file,
            "privateKey": tls.key_file,
            "httpPort": http_port,
            // TLS-ALPN-01 is not offered by the gateway; a port nothing listens on.
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble.json");
        let log = dir.join("pebble.log");
        let dns_process = Process::spawn(
            "pebble-challtestsrv",
            Command::new("pebble-challtestsrv")
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]),
            Some(&dir.join("challtestsrv.log")),
        )
        .expect("pebble-challtestsrv is installed (Debian package pebble)");
        wait_for_port(dns_management, "pebble-challtestsrv");
        let pebble = Process::spawn(
            "pebble",
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // Validate at once instead of after a random pause of up to 15 s.
                .env("PEBBLE_VA_NOSLEEP", "1"),
            Some(&log),
        )
        .expect("pebble is installed (Debian package pebble)");
        wait_for_port(acme, "pebble");
        Self {
            directory_url: format!("https://127.0.0.1:{acme}/dir"),
            ca_file,
            management,
            pebble,
            _dns: dns_process,
            log,
        }
    }

    /// The root of the certificates Pebble issues (new on every start), as PEM.
    pub async fn issuing_root(&self) -> String {
        let out = tokio::process::Command::new("curl")
            .args(["-sf", "--max-time", "10", "--cacert"])
            .arg(&self.ca_file)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .await
            .expect("curl is installed");
        assert!(out.status.success(), "Pebble's root: {out:?}");
        String::from_utf8(out.stdout).expect("PEM")
    }

    /// How many certificates Pebble has issued so far, from its log.
    pub fn issued(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Issued certificate serial")
            .count()
    }

    /// Stop Pebble: from now on every order fails.
    pub async fn stop(&mut self) {
        self.pebble.terminate(Duration::from_secs(5)).await;
    }
}
