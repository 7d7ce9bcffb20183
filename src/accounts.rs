//! Who is calling `/api/v1`: the admin token from the configuration, or a
//! service account's token. Tokens are `pc_sa_` and 64 hex digits (256 bits
//! from the operating system's CSPRNG), shown once and stored as their
//! SHA-256; the admin token is compared in constant time.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Scopes;
use crate::store::service_accounts::{self, NewServiceAccount, ServiceAccount};
use crate::store::{Db, StoreError};

/// The prefix of every service-account token, so leaked tokens can be
/// recognised by secret scanners.
pub const TOKEN_PREFIX: &str = "pc_sa_";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `admin` for the configured admin token, else the account id.
    pub id: String,
    pub scopes: Scopes,
}

/// Why a bearer token was refused. The token itself is never included.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a presented bearer token.
pub async fn authenticate(
    db: &Db,
    admin: Option<&SecretString>,
    presented: &str,
    now_ms: i64,
) -> Result<Caller, AuthError> {
    if let Some(admin) = admin {
        if bool::from(admin.expose_secret().as_bytes().ct_eq(presented.as_bytes())) {
            return Ok(Caller {
                id: "admin".to_owned(),
                scopes: Scopes::all(),
            });
        }
    }
    if !presented.starts_with(TOKEN_PREFIX) {
        return Err(AuthError::Invalid);
    }
    let account = service_accounts::by_token_hash(db, &token_hash(presented))
        .await?
        .ok_or(AuthError::Invalid)?;
    if account.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if account.expires_at.is_some_and(|at| at <= now_ms) {
        return Err(AuthError::Expired);
    }
    Ok(Caller {
        // A stored list is written by `create` from parsed scopes.
        scopes: Scopes::parse_list(&account.scopes).map_err(|_| AuthError::Invalid)?,
        id: account.id,
    })
}

/// A service account to create, validated.
#[derive(Debug)]
pub struct NewAccount {
    pub name: String,
    pub description: Option<String>,
    pub scopes: Scopes,
    pub expires_in: Option<Duration>,
}

/// A created account and its token, shown once.
#[derive(Debug)]
pub struct Created {
    pub account: ServiceAccount,
    pub token: SecretString,
}

/// Creates a service account with a fresh token.
pub async fn create(db: &Db, new: &NewAccount, now_ms: i64) -> Result<Created, StoreError> {
    let id = format!("sa_{}", hex::encode(random_bytes::<16>()));
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<32>()));
    let scopes = new.scopes.to_list();
    let expires_at = new
        .expires_in
        .map(|d| now_ms + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    let hash = token_hash(&token);
    service_accounts::insert(
        db,
        &NewServiceAccount {
            id: &id,
            name: &new.name,
            description: new.description.as_deref(),
            token_hash: &hash,
            scopes: &scopes,
            created_at: now_ms,
            expires_at,
        },
    )
    .await?;
    Ok(Created {
        account: ServiceAccount {
            id,
            name: new.name.clone(),
            description: new.description.clone(),
            scopes,
            created_at: now_ms,
            expires_at,
            revoked_at: None,
        },
        token: SecretString::from(token),
    })
}

/// Parses `365d`, `12h`, `30m` or `3600s`.
pub fn parse_lifetime(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    // Ten years at most: a token that outlives its owners is a liability.
    (secs <= 10 * 366 * 86_400).then(|| Duration::from_secs(secs))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source is available");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_days_hours_minutes_or_seconds_and_bounded() {
        assert_eq!(
            parse_lifetime("365d"),
            Some(Duration::from_secs(365 * 86_400))
        );
        assert_eq!(parse_lifetime("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_lifetime("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "d", "0d", "-1d", "1y", "99999d", "1.5h"] {
            assert_eq!(parse_lifetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_hash_to_stable_hex() {
        assert_eq!(token_hash("pc_sa_x").len(), 64);
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }
}
