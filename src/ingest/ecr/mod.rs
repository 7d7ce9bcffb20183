//! Amazon ECR image actions, delivered by an EventBridge rule whose target
//! is an API destination. The destination's connection uses the API key
//! authorization with key `Authorization` and value `Bearer <secret>`. One
//! request is one EventBridge event, keyed by its `id`; its `detail-type`
//! is the event name.

pub mod payload;

use bytes::Bytes;

use super::{verify_bearer_event, Headers, HookSecret, NewDelivery, Rejection};

const WHAT: &str = "EventBridge event";

/// Verifies one EventBridge API-destination request.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    verify_bearer_event(secrets, headers, body, WHAT, "detail-type")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/ecr/image-action.push.json");

    fn run(auth: Option<&str>, body: &'static [u8]) -> Result<NewDelivery, Rejection> {
        let mut headers = vec![("content-type", "application/json; charset=utf-8".to_owned())];
        if let Some(auth) = auth {
            headers.push(("authorization", auth.to_owned()));
        }
        verify(
            &secrets(&["ecr-token", "next"]),
            &TestHeaders(headers),
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_documented_event_is_one_delivery_keyed_by_the_event_id() {
        let delivery = run(Some("Bearer ecr-token"), PUSH).unwrap();
        assert_eq!(
            delivery.delivery_id.as_str(),
            "13cde686-328b-6117-af20-0e5566167482"
        );
        assert_eq!(delivery.event, "ECR Image Action");
    }

    #[test]
    fn the_bearer_token_must_match_one_of_the_secrets() {
        assert!(run(Some("Bearer next"), PUSH).is_ok());
        assert_eq!(
            run(Some("Bearer ecr-tokenx"), PUSH).unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        assert_eq!(
            run(None, PUSH).unwrap_err(),
            Rejection::MissingCredential("Authorization")
        );
        assert!(matches!(
            run(Some("Basic ZWNyOnRva2Vu"), PUSH),
            Err(Rejection::MalformedCredential { .. })
        ));
    }

    #[test]
    fn bodies_without_an_id_or_not_json_are_refused() {
        for bad in [&b"{"[..], b"[]", b"{\"detail-type\":\"ECR Image Action\"}"] {
            assert!(matches!(
                run(Some("Bearer ecr-token"), bad),
                Err(Rejection::InvalidBody { .. })
            ));
        }
    }
}
