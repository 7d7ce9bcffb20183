//! Azure Container Registry webhooks. One request is one event, keyed by its
//! `id`; the sender authenticates with a custom header the webhook is
//! configured with, `Authorization: Bearer <secret>`.

pub mod payload;

use bytes::Bytes;

use super::{verify_bearer_event, Headers, HookSecret, NewDelivery, Rejection};

const WHAT: &str = "Azure Container Registry event";

/// Verifies one ACR webhook request.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    verify_bearer_event(secrets, headers, body, WHAT, "action")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/acr/push.json");

    fn run(auth: Option<&str>, body: &'static [u8]) -> Result<NewDelivery, Rejection> {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(auth) = auth {
            headers.push(("authorization", auth.to_owned()));
        }
        verify(
            &secrets(&["old", "acr-token"]),
            &TestHeaders(headers),
            Bytes::from_static(body),
        )
    }

    #[test]
    fn the_documented_push_is_one_delivery_keyed_by_its_id() {
        let delivery = run(Some("Bearer acr-token"), PUSH).unwrap();
        assert_eq!(
            delivery.delivery_id.as_str(),
            "cb8c3971-9adc-488b-xxxx-43cbb4974ff5"
        );
        assert_eq!(delivery.event, "push");
        assert!(delivery.headers.iter().all(|(n, _)| *n != "authorization"));
    }

    #[test]
    fn the_bearer_token_must_match_one_of_the_secrets() {
        assert!(run(Some("Bearer old"), PUSH).is_ok());
        assert_eq!(
            run(Some("Bearer wrong"), PUSH).unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        assert_eq!(
            run(None, PUSH).unwrap_err(),
            Rejection::MissingCredential("Authorization")
        );
        assert!(matches!(
            run(Some("acr-token"), PUSH),
            Err(Rejection::MalformedCredential { .. })
        ));
    }

    #[test]
    fn bodies_without_an_id_or_not_json_are_refused() {
        for bad in [&b"{"[..], b"[]", b"{}", b"{\"id\":\"\"}", b"{\"id\":1}"] {
            assert!(
                matches!(
                    run(Some("Bearer acr-token"), bad),
                    Err(Rejection::InvalidBody { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
