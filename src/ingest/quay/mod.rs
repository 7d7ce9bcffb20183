//! Quay (quay.io and Red Hat Quay) repository notifications of the
//! "Webhook POST" method. Quay cannot sign a request or set a header: the
//! secret travels in the URL as `?token=<secret>`, compared in constant time
//! and never logged or stored. Requests carry no delivery id and no event
//! name: the id is a hash of the body, and the event is told by its fields
//! (`updated_tags` for `repo_push`, `build_id` for build events,
//! `vulnerability` for `vulnerability_found`).

pub mod payload;

use bytes::Bytes;

use super::hmac::any_token_matches;
use super::{
    body_hash_id, check_json_object, keep_headers, media_type, query_token, Headers, HookSecret,
    NewDelivery, Rejection,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

/// Verifies a Quay notification and yields its one delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    query: &str,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    let token = query_token(query)?;
    if !any_token_matches(secrets, token.as_bytes()) {
        return Err(Rejection::SignatureMismatch("?token="));
    }
    let ct = media_type(headers)?;
    if ct.as_deref().is_some_and(|ct| ct != "application/json") {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    check_json_object(&body, None).map_err(|e| Rejection::InvalidBody {
        what: "Quay notification",
        detail: e.to_string(),
    })?;
    // The body's keys name the event, for the record.
    let event = payload::event_name(&body);
    Ok(NewDelivery {
        delivery_id: body_hash_id(&body),
        event: event.to_owned(),
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/quay/repo_push.json");

    fn run(query: &str, body: &'static [u8]) -> Result<NewDelivery, Rejection> {
        verify(
            &secrets(&["quay-s3cret", "next"]),
            &TestHeaders(vec![("content-type", "application/json".into())]),
            query,
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_token_travels_in_the_query_and_any_secret_may_match() {
        let d = run("token=quay-s3cret", PUSH).unwrap();
        assert_eq!(d.event, "repo_push");
        assert!(run("a=1&token=next", PUSH).is_ok());
        assert_eq!(
            run("token=quay-s3cre", PUSH).unwrap_err(),
            Rejection::SignatureMismatch("?token=")
        );
        assert_eq!(
            run("", PUSH).unwrap_err(),
            Rejection::MissingCredential("?token=")
        );
        assert!(matches!(
            run("token=quay-s3cret&token=next", PUSH),
            Err(Rejection::MalformedCredential { .. })
        ));
    }

    #[test]
    fn rejections_never_echo_the_token() {
        let err = run("token=not-the-secret", PUSH).unwrap_err();
        assert!(!err.to_string().contains("not-the-secret"));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [&b"not json"[..], b"[]", b"{"] {
            assert!(matches!(
                run("token=quay-s3cret", bad),
                Err(Rejection::InvalidBody { .. })
            ));
        }
    }
}
