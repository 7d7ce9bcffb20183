//! CNCF Distribution (Docker Registry v2) notifications. One request is an
//! envelope of many events; each event is stored as its own delivery, keyed
//! by its `id`, so a retried envelope is deduplicated event by event.

pub mod payload;

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::hmac::any_token_matches;
use super::{header, keep_headers, media_type, Headers, HookSecret, NewDelivery, Rejection};
use crate::domain::DeliveryId;

/// The media types a registry sends an envelope with.
pub const ENVELOPE_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
];

const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Only what the request path needs from each event.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
}

/// Verifies an envelope and splits it into one delivery per event.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<Vec<NewDelivery>, Rejection> {
    let authorization =
        header(headers, "authorization")?.ok_or(Rejection::MissingCredential("Authorization"))?;
    let token = authorization
        .strip_prefix("Bearer ")
        .ok_or(Rejection::MalformedCredential {
            header: "Authorization",
            expected: "Bearer <token>",
        })?;
    if !any_token_matches(secrets, token.as_bytes()) {
        return Err(Rejection::SignatureMismatch("Authorization"));
    }

    let content_type = media_type(headers)?;
    if !content_type
        .as_deref()
        .is_some_and(|ct| ENVELOPE_MEDIA_TYPES.contains(&ct))
    {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/vnd.docker.distribution.events.v1+json (or v2)",
        });
    }
    let invalid = |detail: String| Rejection::InvalidBody {
        what: "Distribution notification envelope",
        detail,
    };
    // The path names the field at fault ("events: invalid type …").
    let mut json = serde_json::Deserializer::from_slice(&body);
    let envelope: Envelope<'_> =
        serde_path_to_error::deserialize(&mut json).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => invalid(e.into_inner().to_string()),
                path => invalid(format!("{path}: {}", e.into_inner())),
            }
        })?;
    json.end().map_err(|e| invalid(e.to_string()))?;
    let kept = keep_headers(headers, KEPT_HEADERS);

    envelope
        .events
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let head: EventHead<'_> = serde_json::from_str(raw.get())
                .map_err(|e| invalid(format!("events[{i}]: {e}")))?;
            if !raw.get().starts_with('{') {
                return Err(invalid(format!("events[{i}] is not an object")));
            }
            Ok(NewDelivery {
                delivery_id: DeliveryId::parse(&head.id)
                    .map_err(|e| invalid(format!("events[{i}].id: {e}")))?,
                event: head.action.as_deref().unwrap_or("unknown").to_owned(),
                headers: kept.clone(),
                content_type: Some("application/json".into()),
                // The event's own bytes, shared with the envelope: no copy.
                body: body.slice_ref(raw.get().as_bytes()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const ENVELOPE: &[u8] =
        include_bytes!("../../../fixtures/distribution/envelope.push-batch.json");

    fn headers(auth: &str) -> TestHeaders {
        TestHeaders(vec![
            ("authorization", auth.into()),
            (
                "content-type",
                "application/vnd.docker.distribution.events.v1+json".into(),
            ),
        ])
    }

    fn run(auth: &str, body: &'static [u8]) -> Result<Vec<NewDelivery>, Rejection> {
        verify(
            &secrets(&["reg-token"]),
            &headers(auth),
            Bytes::from_static(body),
        )
    }

    #[test]
    fn an_envelope_becomes_one_delivery_per_event() {
        let deliveries = run("Bearer reg-token", ENVELOPE).unwrap();
        assert_eq!(deliveries.len(), 3);
        assert_eq!(deliveries[0].delivery_id.as_str(), "asdf-asdf-asdf-asdf-0");
        assert!(deliveries.iter().all(|d| d.event == "push"));
        let first: serde_json::Value = serde_json::from_slice(&deliveries[0].body).unwrap();
        assert_eq!(first["id"], "asdf-asdf-asdf-asdf-0");
    }

    #[test]
    fn the_bearer_token_must_match() {
        assert_eq!(
            run("Bearer wrong", ENVELOPE).unwrap_err(),
            Rejection::SignatureMismatch("Authorization")
        );
        assert!(matches!(
            run("reg-token", ENVELOPE),
            Err(Rejection::MalformedCredential { .. })
        ));
        let none = TestHeaders(vec![]);
        assert_eq!(
            verify(
                &secrets(&["reg-token"]),
                &none,
                Bytes::from_static(ENVELOPE)
            )
            .unwrap_err(),
            Rejection::MissingCredential("Authorization")
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        for bad in [
            &b"{}"[..],
            b"{\"events\":{}}",
            b"{\"events\":[{}]}",
            b"{\"events\":[{\"id\":\"\"}]}",
            b"{\"events\":[[]]}",
            b"not json",
        ] {
            assert!(
                matches!(
                    run("Bearer reg-token", bad),
                    Err(Rejection::InvalidBody { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
