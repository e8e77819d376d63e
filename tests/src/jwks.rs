//! Signing keys made at run time, tokens minted with them, and a JWKS server on loopback
//! whose key set tests rotate or take down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Jwks, Jwt};

/// An Ed25519 key pair with a key id.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    /// The raw public key, as published in the JWK's `x`.
    pub public: [u8; 32],
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let der = key.to_pkcs8_der().expect("pkcs8 encoding");
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public: key.verifying_key().to_bytes(),
        }
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(self.public),
        })
    }

    /// Sign `claims` with this key, `kid` in the header.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time fits")
}

/// Claims the test gateway config accepts: issuer `test-issuer`, audience `test-api`.
pub fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "iss": "test-issuer", "aud": "test-api",
        "iat": now(), "exp": now() + 300, "jti": "t1",
    })
}

/// The `jwt:` section matching [`claims`], fetching keys from `jwks_url`.
pub fn jwt_section(jwks_url: &str) -> Jwt {
    Jwt::new(&["test-issuer"], &["test-api"])
        .forward_claim("sub", "X-User-Id")
        .jwks(
            Jwks::url(jwks_url)
                .refresh_interval("1h")
                .min_refresh_interval("200ms"),
        )
}

/// A JWKS endpoint serving whatever key set the test put there.
pub struct JwksServer {
    pub addr: SocketAddr,
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
    task: Option<JoinHandle<()>>,
}

impl JwksServer {
    pub async fn spawn(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect()));
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Self {
            addr,
            keys: shared,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Publish `keys` from now on.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.keys.lock().expect("keys lock") = keys.iter().map(|k| k.jwk()).collect();
    }

    /// Stop answering (connections refused).
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, keys: Arc<Mutex<Vec<serde_json::Value>>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let keys = Arc::clone(&keys);
                connections.spawn(async move {
                    let service = service_fn(move |_req| {
                        let body = serde_json::json!({ "keys": *keys.lock().expect("keys lock") }).to_string();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
