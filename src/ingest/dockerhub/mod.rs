//! Docker Hub repository webhooks. Docker Hub cannot sign a request or set
//! a header: the secret travels in the URL as `?token=<secret>`, compared in
//! constant time and never logged or stored. Every webhook is a push; there
//! is no delivery id, so a hash of the body stands in. The payload's
//! `callback_url` is never called.

pub mod payload;

use bytes::Bytes;

use super::{
    body_hash_id, keep_headers, verify_query_token_json, Headers, HookSecret, NewDelivery,
    Rejection,
};

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

/// Verifies a Docker Hub webhook and yields its one delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    query: &str,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    verify_query_token_json(secrets, headers, query, &body, "Docker Hub webhook")?;
    Ok(NewDelivery {
        delivery_id: body_hash_id(&body),
        event: "push".into(),
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/dockerhub/push.json");

    fn run(query: &str, body: &'static [u8]) -> Result<NewDelivery, Rejection> {
        verify(
            &secrets(&["hub-s3cret"]),
            &TestHeaders(vec![("content-type", "application/json".into())]),
            query,
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_token_travels_in_the_query() {
        let d = run("token=hub-s3cret", PUSH).unwrap();
        assert_eq!(d.event, "push");
        assert!(d.headers.iter().all(|(_, v)| !v.contains("hub-s3cret")));
        assert_eq!(
            run("token=hub", PUSH).unwrap_err(),
            Rejection::SignatureMismatch("?token=")
        );
        assert_eq!(
            run("tok=hub-s3cret", PUSH).unwrap_err(),
            Rejection::MissingCredential("?token=")
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(matches!(
            run("token=hub-s3cret", b"{\"push_data\":"),
            Err(Rejection::InvalidBody { .. })
        ));
    }
}
