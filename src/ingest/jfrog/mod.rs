//! JFrog Artifactory webhooks (the `docker` domain). The handler's secret
//! arrives in `X-JFrog-Event-Auth`: the secret itself, or, when the source
//! sets `signed = true` (Artifactory's "Use secret for payload signing"),
//! the hex HMAC-SHA256 of the body under it. There is no delivery id: a hash
//! of the body stands in. The event is `{domain}.{event_type}`.

pub mod payload;

use bytes::Bytes;

use super::hmac::{any_hmac_sha256_matches, any_token_matches};
use super::{
    body_hash_id, header, json_body_fields, keep_headers, Headers, HookSecret, NewDelivery,
    Rejection,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];
const AUTH: &str = "X-JFrog-Event-Auth";

/// Verifies an Artifactory webhook and yields its one delivery.
pub fn verify(
    secrets: &[HookSecret],
    signed: bool,
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    let auth = header(headers, "x-jfrog-event-auth")?.ok_or(Rejection::MissingCredential(AUTH))?;
    let ok = if signed {
        let mac = hex::decode(auth).map_err(|_| Rejection::MalformedCredential {
            header: AUTH,
            expected: "hex HMAC-SHA256 of the body",
        })?;
        any_hmac_sha256_matches(secrets, &body, &mac)
    } else {
        any_token_matches(secrets, auth.as_bytes())
    };
    if !ok {
        return Err(Rejection::SignatureMismatch(AUTH));
    }
    let [domain, event_type] = json_body_fields(
        headers,
        &body,
        "Artifactory webhook",
        ["domain", "event_type"],
    )?;
    let event = format!(
        "{}.{}",
        domain.as_deref().unwrap_or("unknown"),
        event_type.as_deref().unwrap_or("unknown")
    );
    Ok(NewDelivery {
        delivery_id: body_hash_id(&body),
        event: super::event_name(&event, "event_type").map_err(|_| Rejection::InvalidBody {
            what: "Artifactory webhook",
            detail: "domain and event_type: expected short printable ASCII".into(),
        })?,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::hmac::hmac_sha256;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/jfrog/docker.pushed.json");

    fn run(signed: bool, auth: Option<String>) -> Result<NewDelivery, Rejection> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(auth) = auth {
            h.push(("x-jfrog-event-auth", auth));
        }
        verify(
            &secrets(&["old", "jfrog-s3cret"]),
            signed,
            &TestHeaders(h),
            Bytes::from_static(PUSH),
        )
    }

    #[test]
    fn the_plain_secret_is_compared_whole() {
        let d = run(false, Some("jfrog-s3cret".into())).unwrap();
        assert_eq!(d.event, "docker.pushed");
        assert_eq!(
            run(false, Some("jfrog".into())).unwrap_err(),
            Rejection::SignatureMismatch(AUTH)
        );
        assert_eq!(
            run(false, None).unwrap_err(),
            Rejection::MissingCredential(AUTH)
        );
    }

    #[test]
    fn a_signed_source_wants_the_hex_hmac_of_the_body() {
        let mac = hex::encode(hmac_sha256(b"jfrog-s3cret", &[PUSH]));
        assert!(run(true, Some(mac)).is_ok());
        // The plain secret is no longer enough.
        assert_eq!(
            run(true, Some(hex::encode(b"jfrog-s3cret"))).unwrap_err(),
            Rejection::SignatureMismatch(AUTH)
        );
        assert!(matches!(
            run(true, Some("jfrog-s3cret".into())),
            Err(Rejection::MalformedCredential { .. })
        ));
    }
}
