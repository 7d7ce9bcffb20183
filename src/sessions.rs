//! Dashboard sessions: signing in with the admin token or a service-account
//! token with scope `admin` opens a session whose random token lives in an
//! HttpOnly cookie; the database keeps only its SHA-256. Every request
//! checks the caller again, so revoking the account (or changing
//! `admin.token`) ends its sessions at once.
//!
//! Each session has one CSRF token, derived from the session token by a
//! keyed hash: forms carry it, nothing else stores it, and it reveals
//! nothing of the cookie.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::accounts::{self, AuthError, Caller};
use crate::domain::{Scope, Scopes};
use crate::store::sessions::{self, NewSession};
use crate::store::{Db, StoreError};

/// The session cookie's name.
pub const COOKIE: &str = "portcall_session";

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    csrf: String,
}

impl Session {
    /// The CSRF token every state-changing form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Why signing in was refused. The token is never included.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Refused(AuthError),
    #[error("this token lacks the scope admin, which the dashboard needs")]
    NotAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a token presented at sign-in and opens a session of `lifetime`.
/// Returns the cookie value (shown once, to the browser) and the session.
pub async fn sign_in(
    db: &Db,
    admin: Option<&SecretString>,
    presented: &str,
    now_ms: i64,
    lifetime: Duration,
) -> Result<(SecretString, Session), SignInError> {
    let caller = accounts::authenticate(db, admin, presented.trim(), now_ms)
        .await
        .map_err(|error| match error {
            AuthError::Store(error) => SignInError::Store(error),
            refused => SignInError::Refused(refused),
        })?;
    if !caller.scopes.allows(Scope::Admin) {
        return Err(SignInError::NotAdmin);
    }
    let token = hex::encode(accounts::random_bytes::<32>());
    let admin_token_hash = if caller.id == "admin" {
        admin_fingerprint(admin)
    } else {
        None
    };
    sessions::insert(
        db,
        &NewSession {
            token_hash: &accounts::token_hash(&token),
            caller: &caller.id,
            admin_token_hash: admin_token_hash.as_deref(),
            created_at: now_ms,
            expires_at: now_ms.saturating_add(millis(lifetime)),
        },
    )
    .await?;
    let session = Session {
        csrf: csrf_of(&token),
        caller,
    };
    Ok((SecretString::from(token), session))
}

/// The live session a cookie names, or `None` if it names none, expired,
/// or its caller may no longer use the dashboard.
pub async fn resume(
    db: &Db,
    admin: Option<&SecretString>,
    cookie: &str,
    now_ms: i64,
) -> Result<Option<Session>, StoreError> {
    let Some(stored) = sessions::find(db, &accounts::token_hash(cookie)).await? else {
        return Ok(None);
    };
    if stored.expires_at <= now_ms {
        return Ok(None);
    }
    let scopes = if stored.caller == "admin" {
        let current = admin_fingerprint(admin);
        let same = match (current.as_deref(), stored.admin_token_hash.as_deref()) {
            (Some(current), Some(signed_in_with)) => {
                bool::from(current.as_bytes().ct_eq(signed_in_with.as_bytes()))
            }
            _ => false,
        };
        if !same {
            return Ok(None);
        }
        Scopes::all()
    } else {
        let live = stored.account_revoked_at.is_none()
            && stored.account_expires_at.is_none_or(|at| at > now_ms);
        let Some(scopes) = stored.account_scopes.filter(|_| live) else {
            return Ok(None);
        };
        match Scopes::parse_list(&scopes) {
            Ok(scopes) if scopes.allows(Scope::Admin) => scopes,
            _ => return Ok(None),
        }
    };
    Ok(Some(Session {
        csrf: csrf_of(cookie),
        caller: Caller {
            id: stored.caller,
            scopes,
        },
    }))
}

/// Ends the session a cookie names.
pub async fn sign_out(db: &Db, cookie: &str) -> Result<(), StoreError> {
    sessions::delete(db, &accounts::token_hash(cookie)).await?;
    Ok(())
}

/// A fresh random token for a form that has no session yet (sign-in).
pub fn random_token() -> String {
    hex::encode(accounts::random_bytes::<32>())
}

/// The SHA-256 of the configured admin token, if there is one.
fn admin_fingerprint(admin: Option<&SecretString>) -> Option<String> {
    admin.map(|token| accounts::token_hash(token.expose_secret()))
}

/// The session's CSRF token: HMAC-SHA-256 of a fixed label keyed by the
/// session token, so it can be recomputed but not reversed.
fn csrf_of(session_token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(session_token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"portcall dashboard csrf");
    hex::encode(mac.finalize().into_bytes())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_stable_per_session_and_differs_between_sessions() {
        let a = csrf_of("a".repeat(64).as_str());
        assert_eq!(a, csrf_of("a".repeat(64).as_str()));
        assert_ne!(a, csrf_of("b".repeat(64).as_str()));
        assert_eq!(a.len(), 64);
        let session = Session {
            caller: Caller {
                id: "admin".into(),
                scopes: Scopes::all(),
            },
            csrf: a.clone(),
        };
        assert!(session.csrf_matches(&a));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&a[..63]));
    }
}
