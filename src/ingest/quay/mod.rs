//! Quay (quay.io and Red Hat Quay) repository notifications of the
//! "Webhook POST" method. Quay cannot sign a request or set a header: the
//! secret travels in the URL as `?token=<secret>`, compared in constant time
//! and never logged or stored. Requests carry no delivery id and no event
//! name: the id is a hash of the body, and the event is told by its fields
//! (`updated_tags` for `repo_push`, `build_id` for build events,
//! `vulnerability` for `vulnerability_found`). A `repo_push` of several
//! tags is one delivery per tag, `{body hash}:{tag}`, so each tag is matched
//! against the release rules, like Distribution's one delivery per event.

pub mod payload;

use bytes::Bytes;

use crate::domain::DeliveryId;

use super::{
    body_hash_id, keep_headers, verify_query_token_json, Headers, HookSecret, NewDelivery,
    Rejection,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

/// Verifies a Quay notification and yields its deliveries: one, or one per
/// pushed tag.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    query: &str,
    body: Bytes,
) -> Result<Vec<NewDelivery>, Rejection> {
    verify_query_token_json(secrets, headers, query, &body, "Quay notification")?;
    // The body's keys name the event, for the record.
    let event = payload::event_name(&body);
    let hash = body_hash_id(&body);
    let tags = if event == "repo_push" {
        payload::updated_tags(&body).unwrap_or_default()
    } else {
        Vec::new()
    };
    let kept = keep_headers(headers, KEPT_HEADERS);
    let delivery = |delivery_id: DeliveryId| NewDelivery {
        delivery_id,
        event: event.to_owned(),
        headers: kept.clone(),
        content_type: Some("application/json".into()),
        body: body.clone(),
    };
    if tags.len() < 2 {
        return Ok(vec![delivery(hash)]);
    }
    tags.iter()
        .map(|tag| {
            // A tag that is not one would make an invalid id: it is refused
            // by the worker's parse, under the plain body hash.
            let id = DeliveryId::parse(&format!("{}:{tag}", hash.as_str()))
                .unwrap_or_else(|_| hash.clone());
            Ok(delivery(id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/quay/repo_push.json");

    fn run(query: &str, body: &'static [u8]) -> Result<Vec<NewDelivery>, Rejection> {
        verify(
            &secrets(&["quay-s3cret", "next"]),
            &TestHeaders(vec![("content-type", "application/json".into())]),
            query,
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_token_travels_in_the_query_and_any_secret_may_match() {
        let d = run("token=quay-s3cret", PUSH).unwrap().remove(0);
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
    fn a_push_of_several_tags_is_one_delivery_per_tag() {
        let body = br#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":["latest","v1.2.0"]}"#;
        let deliveries = run("token=quay-s3cret", body).unwrap();
        let ids: Vec<&str> = deliveries.iter().map(|d| d.delivery_id.as_str()).collect();
        assert_eq!(ids.len(), 2);
        assert!(
            ids[0].ends_with(":latest") && ids[1].ends_with(":v1.2.0"),
            "{ids:?}"
        );
        assert_eq!(
            ids[0].split_once(':').unwrap().0,
            body_hash_id(body).as_str()
        );
        // One tag: the body hash alone.
        let one = run("token=quay-s3cret", PUSH).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].delivery_id, body_hash_id(PUSH));
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
