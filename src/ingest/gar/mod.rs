//! Google Artifact Registry (and Container Registry) notifications. The
//! registry publishes to the Pub/Sub topic `gcr`; a push subscription posts
//! each message to portcall wrapped in an envelope
//! `{"message":{"data":"<base64>","messageId":"…"},"subscription":"…"}`.
//!
//! The subscription authenticates one of two ways:
//! - with authentication enabled, an `Authorization: Bearer <OIDC token>`
//!   signed by Google for the subscription's service account: checked
//!   against the source's JWKS (Google's public keys), issuer, audience,
//!   service-account email (verified) and expiry;
//! - the `?token=<secret>` form: a secret in the push endpoint's URL,
//!   compared in constant time with the source's `secrets`.
//!
//! The request path reads only the envelope's `messageId` (the delivery id);
//! the base64 `data` is decoded in the worker.

pub mod payload;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::hmac::any_token_matches;
use super::{
    bearer, delivery_id, keep_headers, optional_query_token, Headers, NewDelivery, Rejection,
    Source,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

const WHAT: &str = "Pub/Sub push envelope";

/// The issuers Google writes in its OIDC tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// How long after `exp` a token is still taken, for clock skew.
const LEEWAY_SECS: i64 = 60;

/// How often, at most, the JWKS file is read again for a token that names a
/// key it does not hold (Google rotated its keys).
const RELOAD_INTERVAL_SECS: i64 = 60;

type Keys = Vec<(Option<String>, DecodingKey)>;

/// What a Pub/Sub push subscription's OIDC token must say, and the keys it
/// must be signed with.
pub struct GoogleOidc {
    audience: String,
    service_account: String,
    keys: RwLock<Arc<Keys>>,
    /// The JWKS file, read again (at most every [`RELOAD_INTERVAL_SECS`])
    /// when a token names an unknown key, so a refreshed file takes effect
    /// without a restart.
    reload_from: Option<PathBuf>,
    /// When the file was last read again (Unix seconds).
    reloaded_at: AtomicI64,
}

impl fmt::Debug for GoogleOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleOidc")
            .field("audience", &self.audience)
            .field("service_account", &self.service_account)
            .field("keys", &self.current_keys().len())
            .field("reload_from", &self.reload_from)
            .finish()
    }
}

/// The RSA keys of a JWKS document.
fn rsa_keys(jwks_json: &str) -> Result<Keys, String> {
    let set: JwkSet = serde_json::from_str(jwks_json)
        .map_err(|e| format!("not a JWKS document ({{\"keys\":[…]}}): {e}"))?;
    let keys: Keys = set
        .keys
        .iter()
        .filter(|jwk| {
            matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            )
        })
        .filter_map(|jwk| Some((jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk).ok()?)))
        .collect();
    if keys.is_empty() {
        return Err("the JWKS holds no RSA key".into());
    }
    Ok(keys)
}

impl GoogleOidc {
    /// Builds the check from a JWKS document (Google publishes its keys at
    /// `https://www.googleapis.com/oauth2/v3/certs`). Only RSA keys are
    /// kept: Google signs with RS256.
    pub fn new(audience: &str, service_account: &str, jwks_json: &str) -> Result<Self, String> {
        Ok(Self {
            audience: audience.to_owned(),
            service_account: service_account.to_owned(),
            keys: RwLock::new(Arc::new(rsa_keys(jwks_json)?)),
            reload_from: None,
            reloaded_at: AtomicI64::new(i64::MIN),
        })
    }

    /// Reads `path` again when a token names a key not yet known.
    pub fn reloading_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.reload_from = Some(path.into());
        self
    }

    fn current_keys(&self) -> Arc<Keys> {
        // A poisoned lock still holds a complete key set: it is only ever
        // replaced whole.
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the JWKS file again, unless that was done recently. A file that
    /// cannot be read or parsed leaves the keys as they were.
    fn reload(&self, now_unix: i64) -> bool {
        let Some(path) = &self.reload_from else {
            return false;
        };
        let last = self.reloaded_at.load(Ordering::Relaxed);
        if now_unix.saturating_sub(last) < RELOAD_INTERVAL_SECS
            || self
                .reloaded_at
                .compare_exchange(last, now_unix, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let keys = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| rsa_keys(&text));
        match keys {
            Ok(keys) => {
                tracing::info!(path = %path.display(), keys = keys.len(), "JWKS file read again");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                true
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "JWKS file could not be read again");
                false
            }
        }
    }

    /// The key a token header names; one without a kid may only match a
    /// lone key.
    fn key_for(keys: &Keys, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => keys.iter().find(|(id, _)| id.as_deref() == Some(kid)),
            None if keys.len() == 1 => keys.first(),
            None => None,
        }
        .map(|(_, key)| key.clone())
    }

    /// Checks a token's signature and claims at `now_unix`.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<(), Rejection> {
        let malformed = || Rejection::MalformedCredential {
            header: "Authorization",
            expected: "Bearer <a Google-signed RS256 OIDC token>",
        };
        let head = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        if head.alg != Algorithm::RS256 {
            return Err(malformed());
        }
        let kid = head.kid.as_deref();
        let key = Self::key_for(&self.current_keys(), kid)
            .or_else(|| {
                self.reload(now_unix)
                    .then(|| Self::key_for(&self.current_keys(), kid))
                    .flatten()
            })
            .ok_or(Rejection::SignatureMismatch("Authorization"))?;
        let key = &key;

        let mut validation = Validation::new(Algorithm::RS256);
        // Time is checked below with the injectable clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    Rejection::SignatureMismatch("Authorization")
                }
                _ => malformed(),
            })?
            .claims;

        let same = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
        let issuer_ok = claims
            .iss
            .as_deref()
            .is_some_and(|iss| GOOGLE_ISSUERS.iter().any(|g| same(g, iss)));
        if !issuer_ok {
            return Err(Rejection::TokenClaimRejected("issuer (iss)"));
        }
        if !claims
            .aud
            .as_deref()
            .is_some_and(|aud| same(aud, &self.audience))
        {
            return Err(Rejection::TokenClaimRejected("audience (aud)"));
        }
        let email_ok = claims
            .email
            .as_deref()
            .is_some_and(|email| same(email, &self.service_account));
        if !email_ok || !claims.email_verified.is_verified() {
            return Err(Rejection::TokenClaimRejected("service account (email)"));
        }
        // `exp` is the token's: near i64::MAX, adding the leeway overflowed.
        if claims
            .exp
            .is_none_or(|exp| now_unix > exp.saturating_add(LEEWAY_SECS))
        {
            return Err(Rejection::TokenClaimRejected("expiry (exp)"));
        }
        if claims.iat.is_some_and(|iat| iat > now_unix + LEEWAY_SECS) {
            return Err(Rejection::TokenClaimRejected("issue time (iat)"));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    /// Google's tokens carry one audience, as a string.
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Verified,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
}

/// `email_verified` is a boolean; some Google tokens have carried `"true"`.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Verified {
    Bool(bool),
    Text(String),
    #[default]
    Absent,
}

impl Verified {
    fn is_verified(&self) -> bool {
        match self {
            Verified::Bool(b) => *b,
            Verified::Text(s) => s == "true",
            Verified::Absent => false,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: MessageHead<'a>,
}

/// Pub/Sub writes the id twice, `messageId` and `message_id`.
#[derive(Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow, default, rename = "messageId")]
    message_id_camel: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "message_id")]
    message_id_snake: Option<Cow<'a, str>>,
}

/// Verifies one Pub/Sub push request for a `gar` source.
pub fn verify(
    source: &Source,
    headers: &dyn Headers,
    query: &str,
    body: Bytes,
    now_unix: i64,
) -> Result<NewDelivery, Rejection> {
    match (optional_query_token(query)?, &source.oidc) {
        (Some(token), _) if !source.secrets.is_empty() => {
            if !any_token_matches(&source.secrets, token.as_bytes()) {
                return Err(Rejection::SignatureMismatch("?token="));
            }
        }
        (_, Some(oidc)) => oidc.verify(bearer(headers)?, now_unix)?,
        (Some(_), None) => return Err(Rejection::SignatureMismatch("?token=")),
        (None, None) => return Err(Rejection::MissingQueryToken),
    }
    // Pub/Sub always sends JSON: the Content-Type is not checked.
    let invalid = |detail: String| Rejection::InvalidBody { what: WHAT, detail };
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(invalid("expected a JSON object".into()));
    }
    let envelope: Envelope<'_> =
        serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    let id = envelope
        .message
        .message_id_camel
        .or(envelope.message.message_id_snake)
        .ok_or_else(|| invalid("message.messageId is missing".into()))?;
    Ok(NewDelivery {
        delivery_id: delivery_id(&id, "message.messageId").map_err(|_| {
            invalid("message.messageId: expected 1 to 200 visible ASCII characters".into())
        })?,
        event: "pubsub push".into(),
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};
    use crate::ingest::SourceKind;

    pub const AUDIENCE: &str = "https://portcall.example.com/webhooks/gar";
    pub const SERVICE_ACCOUNT: &str = "pubsub-push@my-project.iam.gserviceaccount.com";
    pub const NOW: i64 = 1_764_000_000;
    const JWKS: &str = include_str!("../../../fixtures/gar/test-jwks.json");
    const KEY: &[u8] = include_bytes!("../../../fixtures/github/test-app-key.pem");

    pub fn token(claims: serde_json::Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(KEY).unwrap()).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "112233445566778899000",
            "sub": "112233445566778899000",
            "email": SERVICE_ACCOUNT,
            "email_verified": true,
            "iat": NOW - 10,
            "exp": NOW + 3590,
        })
    }

    fn source(secret_values: &[&str], oidc: bool) -> Source {
        Source {
            name: "gar".into(),
            kind: SourceKind::Gar,
            secrets: secrets(secret_values),
            registry: None,
            registry_api: None,
            signed: false,
            oidc: oidc.then(|| GoogleOidc::new(AUDIENCE, SERVICE_ACCOUNT, JWKS).unwrap()),
        }
    }

    pub fn envelope(data: &[u8]) -> Vec<u8> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        serde_json::to_vec(&json!({
            "message": {
                "attributes": {},
                "data": data,
                "messageId": "2070443601311540",
                "message_id": "2070443601311540",
                "publishTime": "2021-02-26T19:13:55.749Z",
                "publish_time": "2021-02-26T19:13:55.749Z"
            },
            "subscription": "projects/my-project/subscriptions/portcall"
        }))
        .unwrap()
    }

    fn run(source: &Source, auth: Option<String>, query: &str) -> Result<NewDelivery, Rejection> {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let body = envelope(include_bytes!("../../../fixtures/gar/insert.json"));
        verify(source, &TestHeaders(headers), query, Bytes::from(body), NOW)
    }

    fn bearer(claims: serde_json::Value) -> Option<String> {
        Some(format!(
            "Bearer {}",
            token(claims, Some("portcall-test-key"))
        ))
    }

    #[test]
    fn a_google_signed_token_for_the_audience_and_account_is_accepted() {
        let delivery = run(&source(&[], true), bearer(claims()), "").unwrap();
        assert_eq!(delivery.delivery_id.as_str(), "2070443601311540");
        let mut short_issuer = claims();
        short_issuer["iss"] = json!("accounts.google.com");
        assert!(run(&source(&[], true), bearer(short_issuer), "").is_ok());
    }

    #[test]
    fn each_claim_is_checked() {
        let s = source(&[], true);
        for (claim, value, expected) in [
            ("iss", json!("https://evil.example.com"), "issuer (iss)"),
            ("aud", json!("https://other.example.com"), "audience (aud)"),
            (
                "email",
                json!("someone@example.com"),
                "service account (email)",
            ),
            ("email_verified", json!(false), "service account (email)"),
            ("exp", json!(NOW - 61), "expiry (exp)"),
            ("iat", json!(NOW + 3600), "issue time (iat)"),
        ] {
            let mut c = claims();
            c[claim] = value;
            assert_eq!(
                run(&s, bearer(c), "").unwrap_err(),
                Rejection::TokenClaimRejected(expected),
                "{claim}"
            );
        }
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            run(&s, bearer(c), "").unwrap_err(),
            Rejection::TokenClaimRejected("expiry (exp)")
        );
    }

    #[test]
    fn an_expiry_at_the_end_of_time_is_taken_not_overflowed() {
        // `exp + leeway` overflowed: a panic in debug builds, a wrap to
        // "expired" in release (fuzz/regressions/verify_gar_oidc/exp-i64-max).
        let mut c = claims();
        c["exp"] = json!(i64::MAX);
        assert!(run(&source(&[], true), bearer(c), "").is_ok());
    }

    #[test]
    fn a_token_not_signed_by_a_configured_key_is_refused() {
        let s = source(&[], true);
        let unknown_kid = Some(format!("Bearer {}", token(claims(), Some("other"))));
        assert_eq!(
            run(&s, unknown_kid, "").unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        // The right header and claims, another signature.
        let good = token(claims(), Some("portcall-test-key"));
        let (rest, _) = good.rsplit_once('.').unwrap();
        let forged = Some(format!("Bearer {rest}.{}", "A".repeat(342)));
        assert_eq!(
            run(&s, forged, "").unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        for garbage in ["Bearer x.y.z", "Bearer not-a-jwt", "Basic abc"] {
            assert!(matches!(
                run(&s, Some(garbage.into()), ""),
                Err(Rejection::MalformedCredential { .. })
            ));
        }
        assert_eq!(
            run(&s, None, "").unwrap_err(),
            Rejection::MissingCredential("Authorization")
        );
    }

    #[test]
    fn the_token_form_compares_against_any_secret() {
        let s = source(&["old", "gar-token"], false);
        assert!(run(&s, None, "token=gar-token").is_ok());
        assert!(run(&s, None, "a=1&token=old").is_ok());
        assert_eq!(
            run(&s, None, "token=wrong").unwrap_err(),
            Rejection::SignatureMismatch("?token=")
        );
        assert_eq!(run(&s, None, "").unwrap_err(), Rejection::MissingQueryToken);
        assert!(matches!(
            run(&s, None, "token=old&token=gar-token"),
            Err(Rejection::MalformedCredential { .. })
        ));
        // Without OIDC configured, a bearer token alone is not enough.
        assert_eq!(
            run(&s, bearer(claims()), "").unwrap_err(),
            Rejection::MissingQueryToken
        );
    }

    #[test]
    fn refused_credentials_are_never_in_the_message() {
        let s = source(&["gar-token"], false);
        let error = run(&s, None, "token=hunter2-secret").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn envelopes_without_a_message_id_are_refused() {
        let s = source(&["gar-token"], false);
        let headers = TestHeaders(vec![]);
        for bad in [
            &b"{"[..],
            b"[]",
            b"{}",
            br#"{"message":{}}"#,
            br#"{"message":{"messageId":""}}"#,
            br#"{"message":[]}"#,
        ] {
            assert!(
                matches!(
                    verify(
                        &s,
                        &headers,
                        "token=gar-token",
                        Bytes::from_static(bad),
                        NOW
                    ),
                    Err(Rejection::InvalidBody { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_refreshed_jwks_file_is_read_again_for_an_unknown_key_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let old = JWKS.replace("portcall-test-key", "retired-key");
        std::fs::write(&path, &old).unwrap();
        let oidc = GoogleOidc::new(AUDIENCE, SERVICE_ACCOUNT, &old)
            .unwrap()
            .reloading_from(&path);
        let token = token(claims(), Some("portcall-test-key"));
        // Unknown key: the file is read again, still without it.
        assert_eq!(
            oidc.verify(&token, NOW).unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        std::fs::write(&path, JWKS).unwrap();
        // Within the minute the file is not read again.
        assert!(oidc.verify(&token, NOW + 30).is_err());
        assert!(oidc.verify(&token, NOW + 61).is_ok());
        // A broken file later leaves the keys as they were.
        std::fs::write(&path, "not json").unwrap();
        let other = super::tests::token(claims(), Some("another-new-key"));
        assert!(oidc.verify(&other, NOW + 200).is_err());
        assert!(oidc.verify(&token, NOW + 201).is_ok());
    }

    #[test]
    fn a_jwks_without_rsa_keys_is_refused() {
        assert!(GoogleOidc::new(AUDIENCE, SERVICE_ACCOUNT, r#"{"keys":[]}"#).is_err());
        assert!(GoogleOidc::new(AUDIENCE, SERVICE_ACCOUNT, "nope").is_err());
    }
}
