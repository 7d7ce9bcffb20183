//! Harbor webhooks: the default JSON (`type` `PUSH_ARTIFACT`, and Harbor
//! 1.x's `pushImage`, which has the same shape) and the CloudEvents format
//! (`application/cloudevents+json`, `type` `harbor.artifact.pushed`).
//!
//! Harbor sends the policy's "Auth Header" verbatim as `Authorization`, so
//! the whole header value is the secret. The default format carries no
//! delivery id: a hash of the body stands in, stable across Harbor's
//! retries; a CloudEvent's `id` is used when present.

pub mod payload;

use bytes::Bytes;

use super::hmac::any_token_matches;
use super::{
    body_hash_id, header, json_body_fields, keep_headers, media_type, Headers, HookSecret,
    NewDelivery, Rejection,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

/// Verifies a Harbor webhook and yields its one delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    let authorization =
        header(headers, "authorization")?.ok_or(Rejection::MissingCredential("Authorization"))?;
    if !any_token_matches(secrets, authorization.as_bytes()) {
        return Err(Rejection::SignatureMismatch("Authorization"));
    }
    let [event, id] = json_body_fields(headers, &body, "Harbor event", ["type", "id"])?;
    let cloud_event = media_type(headers)?.as_deref() == Some("application/cloudevents+json");
    let delivery_id = match id.filter(|_| cloud_event) {
        Some(id) => super::DeliveryId::parse(&id).map_err(|e| Rejection::InvalidBody {
            what: "Harbor CloudEvent",
            detail: format!("id: {e}"),
        })?,
        None => body_hash_id(&body),
    };
    let event = event.ok_or_else(|| Rejection::InvalidBody {
        what: "Harbor event",
        detail: "no string field \"type\"".into(),
    })?;
    Ok(NewDelivery {
        delivery_id,
        event: super::event_name(&event, "type").map_err(|_| Rejection::InvalidBody {
            what: "Harbor event",
            detail: "type: expected 1 to 100 printable ASCII characters".into(),
        })?,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some(if cloud_event {
            "application/cloudevents+json".into()
        } else {
            "application/json".into()
        }),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/harbor/PUSH_ARTIFACT.json");
    const CLOUD: &[u8] =
        include_bytes!("../../../fixtures/harbor/cloudevents.artifact.pushed.json");

    fn run(auth: Option<&str>, ct: &str, body: &'static [u8]) -> Result<NewDelivery, Rejection> {
        let mut h = vec![("content-type", ct.to_owned())];
        if let Some(auth) = auth {
            h.push(("authorization", auth.to_owned()));
        }
        verify(
            &secrets(&["old-header", "Bearer harbor-s3cret"]),
            &TestHeaders(h),
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_auth_header_is_compared_whole_and_any_secret_may_match() {
        let d = run(Some("Bearer harbor-s3cret"), "application/json", PUSH).unwrap();
        assert_eq!(d.event, "PUSH_ARTIFACT");
        assert!(d.delivery_id.as_str().starts_with("sha256-"));
        assert!(run(Some("old-header"), "application/json", PUSH).is_ok());
        for wrong in [
            "harbor-s3cret",
            "Bearer harbor-s3cre",
            "bearer harbor-s3cret",
        ] {
            assert_eq!(
                run(Some(wrong), "application/json", PUSH).unwrap_err(),
                Rejection::SignatureMismatch("Authorization")
            );
        }
        assert_eq!(
            run(None, "application/json", PUSH).unwrap_err(),
            Rejection::MissingCredential("Authorization")
        );
    }

    #[test]
    fn a_retried_body_keeps_its_delivery_id() {
        let a = run(Some("old-header"), "application/json", PUSH).unwrap();
        let b = run(Some("old-header"), "application/json", PUSH).unwrap();
        assert_eq!(a.delivery_id, b.delivery_id);
    }

    #[test]
    fn a_cloud_event_is_keyed_by_its_id() {
        let d = run(Some("old-header"), "application/cloudevents+json", CLOUD).unwrap();
        assert_eq!(
            d.delivery_id.as_str(),
            "4b2f89a4-d5ad-4f4b-9b4f-1a5c2a3c9f10"
        );
        assert_eq!(d.event, "harbor.artifact.pushed");
        assert_eq!(
            d.content_type.as_deref(),
            Some("application/cloudevents+json")
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [&b"not json"[..], b"[]", b"{\"type\":", b"{}"] {
            assert!(matches!(
                run(Some("old-header"), "application/json", bad),
                Err(Rejection::InvalidBody { .. })
            ));
        }
    }
}
