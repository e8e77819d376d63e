//! One order with the ACME CA (RFC 8555): the account (created once and stored), an order for
//! every domain, an HTTP-01 challenge per authorization, the CSR with a new key, and the
//! certificate chain.

use std::time::Duration;

use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use super::storage::{write_private, Storage};
use super::Challenges;
use crate::config::AcmeConfig;

/// How long the CA may take to validate the challenges, then to issue.
const VALIDATION: Duration = Duration::from_secs(90);
const ISSUANCE: Duration = Duration::from_secs(60);

/// A certificate chain and its key, as PEM.
pub(super) struct Issued {
    pub(super) chain_pem: String,
    pub(super) key_pem: String,
}

/// Why an order failed, for the log line.
#[derive(Debug, thiserror::Error)]
pub(super) enum OrderError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("the stored account cannot be read: {0}")]
    Account(serde_json::Error),
    #[error("{0}")]
    Refused(String),
}

/// Order a certificate for `config.domains`, publishing each challenge's answer in memory
/// and in storage while the CA validates it.
pub(super) async fn obtain(
    config: &AcmeConfig,
    storage: &Storage,
    challenges: &Challenges,
) -> Result<Issued, OrderError> {
    let account = account(config, storage).await?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut published = Vec::new();
    let outcome = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(OrderError::Refused(format!(
                        "authorization for {} is {other:?}",
                        authz.identifier()
                    )))
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                OrderError::Refused("the CA offers no HTTP-01 challenge".to_owned())
            })?;
            let token = challenge.token.clone();
            let answer = challenge.key_authorization().as_str().to_owned();
            storage.put_challenge(&token, &answer)?;
            challenges.insert(token.clone(), answer);
            published.push(token);
            challenge.set_ready().await?;
        }
        let retries = RetryPolicy::new().timeout(VALIDATION);
        match order.poll_ready(&retries).await? {
            OrderStatus::Ready => Ok(()),
            status => Err(OrderError::Refused(format!(
                "the order is {status:?} after validation"
            ))),
        }
    }
    .await;
    for token in &published {
        challenges.remove(token);
        storage.remove_challenge(token);
    }
    outcome?;
    let key_pem = order.finalize().await?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::new().timeout(ISSUANCE))
        .await?;
    Ok(Issued { chain_pem, key_pem })
}

/// The stored account for this CA, or a new one (stored before it is used).
async fn account(config: &AcmeConfig, storage: &Storage) -> Result<Account, OrderError> {
    let path = storage.account(config);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let credentials: AccountCredentials =
                serde_json::from_slice(&bytes).map_err(OrderError::Account)?;
            Ok(builder(config)?.from_credentials(credentials).await?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let new = NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            };
            let (account, credentials) = builder(config)?
                .create(&new, config.directory_url.clone(), None)
                .await?;
            let json = serde_json::to_vec(&credentials).map_err(OrderError::Account)?;
            write_private(&path, &json)?;
            tracing::info!(directory = %config.directory_url, account = account.id(), "ACME account created");
            Ok(account)
        }
        Err(e) => Err(e.into()),
    }
}

fn builder(config: &AcmeConfig) -> Result<AccountBuilder, OrderError> {
    Ok(match &config.ca_file {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    })
}
