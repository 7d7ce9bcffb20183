//! GitHub App authentication: the app's own JWT, which installation serves
//! which repository, and the installation tokens that API calls carry.
//!
//! A GitHub App proves who it is with a short-lived RS256 JWT signed by its
//! private key. That JWT may only look up installations and mint
//! installation tokens; everything else (statuses, check runs, comments)
//! needs an installation token, which GitHub issues for one hour. Tokens are
//! kept here per installation and replaced five minutes before they expire,
//! so a call never starts with a token that dies half-way through.
//!
//! Minting is single-flight: each installation has an async mutex around its
//! slot, so callers that arrive together while the token is missing or stale
//! wait for one mint and then share its result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use octocrab::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::clock::Clock;
use crate::domain::RepoSlug;
use crate::scm::ScmError;

/// The JWT's `iat` is set this far in the past, allowing for clock drift
/// between us and GitHub (GitHub's recommendation, and what octocrab does).
const JWT_BACKDATE_SECS: i64 = 60;
/// The JWT's `exp` is this far in the future; GitHub refuses more than ten
/// minutes.
const JWT_LIFETIME_SECS: i64 = 9 * 60;
/// A cached installation token is replaced this long before it expires.
pub(super) const TOKEN_REFRESH_MARGIN_SECS: i64 = 5 * 60;
/// Assumed lifetime of a token whose answer carried no `expires_at`
/// (GitHub's installation tokens last one hour).
const TOKEN_DEFAULT_LIFETIME_SECS: i64 = 60 * 60;

/// The GitHub App's identity: its id and its parsed RSA private key.
pub(super) struct AppKey {
    app_id: u64,
    key: EncodingKey,
}

/// The configured private key is not a usable RSA key. Says nothing about
/// the key's content.
#[derive(Debug, thiserror::Error)]
#[error(
    "the GitHub App private key is not a usable RSA private key in PEM form (PKCS#1 or PKCS#8)"
)]
pub(super) struct InvalidKey;

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    /// The app id as a number, as octocrab's `create_jwt` sends it.
    iss: u64,
}

impl AppKey {
    /// Parses the PEM once and signs a throwaway JWT, so that a key that
    /// parses as PEM but is not an RSA private key fails at start-up rather
    /// than at the first mint.
    pub(super) fn from_pem(app_id: u64, pem: &SecretString) -> Result<Self, InvalidKey> {
        let key =
            EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(|_| InvalidKey)?;
        let app = Self { app_id, key };
        app.jwt(0).map_err(|_| InvalidKey)?;
        Ok(app)
    }

    /// An app JWT: RS256, `iat` a minute ago, `exp` nine minutes ahead,
    /// `iss` the app id. octocrab's `auth::create_jwt` builds the same
    /// claims; ours takes the injectable clock.
    pub(super) fn jwt(&self, now_unix: i64) -> Result<SecretString, jsonwebtoken::errors::Error> {
        let claims = Claims {
            iat: now_unix - JWT_BACKDATE_SECS,
            exp: now_unix + JWT_LIFETIME_SECS,
            iss: self.app_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(SecretString::from)
    }

    pub(super) fn app_id(&self) -> u64 {
        self.app_id
    }
}

/// Which installation of the app serves which repository, as learned from
/// webhooks, the database or `GET /repos/{o}/{r}/installation`.
#[derive(Default)]
pub(super) struct InstallationIds(RwLock<HashMap<String, u64>>);

impl InstallationIds {
    /// GitHub owner and repository names are case-insensitive.
    fn key(repo: &RepoSlug) -> String {
        repo.path().to_ascii_lowercase()
    }

    pub(super) fn get(&self, repo: &RepoSlug) -> Option<u64> {
        // A poisoned map still holds valid entries: each write is one insert.
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&Self::key(repo)).copied()
    }

    pub(super) fn insert(&self, repo: &RepoSlug, installation_id: u64) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(Self::key(repo), installation_id);
    }

    /// Forgets every repository served by `installation_id` (it was
    /// deleted), so their next call looks the installation up again.
    pub(super) fn forget_installation(&self, installation_id: u64) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, id| *id != installation_id);
    }
}

/// An installation token handed to one call. `serial` tells this token from
/// a newer one, so that a call refused with a stale token does not throw
/// away the fresh token another call has minted meanwhile.
#[derive(Clone)]
pub(super) struct InstallationToken {
    pub(super) secret: SecretString,
    serial: u64,
}

struct Cached {
    token: InstallationToken,
    /// Unix time after which the token is replaced before use.
    refresh_at: i64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// A freshly minted token and when GitHub says it expires (Unix seconds).
pub(super) struct Minted {
    pub(super) secret: SecretString,
    pub(super) expires_at: Option<i64>,
}

/// Installation tokens, one slot per installation.
#[derive(Default)]
pub(super) struct TokenCache {
    slots: Mutex<HashMap<u64, Slot>>,
    serial: AtomicU64,
}

impl TokenCache {
    fn slot(&self, installation_id: u64) -> Slot {
        // The map only ever gains entries; a poisoned lock leaves it intact.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(installation_id).or_default().clone()
    }

    /// The cached token for `installation_id` if it is not due for
    /// replacement, else one minted by `mint`. The slot stays locked while
    /// minting, so concurrent callers for one installation mint once.
    pub(super) async fn get_or_mint<F, Fut>(
        &self,
        installation_id: u64,
        clock: &Clock,
        mint: F,
    ) -> Result<InstallationToken, ScmError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Minted, ScmError>>,
    {
        let slot = self.slot(installation_id);
        let mut cached = slot.lock().await;
        // Read the clock after the wait: another caller may have minted.
        if let Some(c) = cached.as_ref().filter(|c| clock.now_unix() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let minted = mint().await?;
        let expires_at = minted
            .expires_at
            .unwrap_or_else(|| clock.now_unix() + TOKEN_DEFAULT_LIFETIME_SECS);
        let token = InstallationToken {
            secret: minted.secret,
            serial: self.serial.fetch_add(1, Ordering::Relaxed),
        };
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: expires_at - TOKEN_REFRESH_MARGIN_SECS,
        });
        Ok(token)
    }

    /// Drops `stale` (GitHub refused it) unless it was already replaced.
    pub(super) async fn invalidate(&self, installation_id: u64, stale: &InstallationToken) {
        let slot = self.slot(installation_id);
        let mut cached = slot.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.serial == stale.serial)
        {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_rsa_is_refused_without_echoing_it() {
        let not_a_key = SecretString::from(
            "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n",
        );
        let err = AppKey::from_pem(1, &not_a_key).err().expect("refused");
        assert!(!err.to_string().contains("c2VjcmV0"));
        assert!(AppKey::from_pem(1, &SecretString::from("secret")).is_err());
    }

    #[tokio::test]
    async fn a_token_is_replaced_five_minutes_before_it_expires() {
        let cache = TokenCache::default();
        let mint = |name: &'static str, expires_at: i64| {
            move || async move {
                Ok(Minted {
                    secret: SecretString::from(name),
                    expires_at: Some(expires_at),
                })
            }
        };
        let at = Clock::fixed;
        let first = cache
            .get_or_mint(7, &at(1_000), mint("a", 10_000))
            .await
            .unwrap();
        let cached = cache
            .get_or_mint(7, &at(9_699), mint("b", 20_000))
            .await
            .unwrap();
        assert_eq!(cached.secret.expose_secret(), "a");
        let renewed = cache
            .get_or_mint(7, &at(9_700), mint("c", 20_000))
            .await
            .unwrap();
        assert_eq!(renewed.secret.expose_secret(), "c");
        // A call refused with the old token does not drop the new one...
        cache.invalidate(7, &first).await;
        let still = cache
            .get_or_mint(7, &at(9_701), mint("d", 30_000))
            .await
            .unwrap();
        assert_eq!(still.secret.expose_secret(), "c");
        // ...but one refused with the current token does.
        cache.invalidate(7, &still).await;
        let fresh = cache
            .get_or_mint(7, &at(9_702), mint("e", 30_000))
            .await
            .unwrap();
        assert_eq!(fresh.secret.expose_secret(), "e");
    }
}
