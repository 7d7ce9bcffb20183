//! Sonatype Nexus Repository webhooks ("Webhook: Repository" capability).
//! `X-Nexus-Webhook-Signature` is the hex HMAC-SHA1 of the body under the
//! capability's secret key; `X-Nexus-Webhook-Delivery` is the delivery id
//! and `X-Nexus-Webhook-ID` the event (`rm:repository:component`, …).

pub mod payload;

use bytes::Bytes;

use super::hmac::any_hmac_sha1_matches;
use super::{
    body_hash_id, delivery_id, event_name, header, json_body_fields, keep_headers, Headers,
    HookSecret, NewDelivery, Rejection,
};

const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-nexus-webhook-id",
    "x-nexus-webhook-delivery",
];
const SIGNATURE: &str = "X-Nexus-Webhook-Signature";

/// Verifies a Nexus webhook and yields its one delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    let signature = header(headers, "x-nexus-webhook-signature")?
        .ok_or(Rejection::MissingCredential(SIGNATURE))?;
    let mac = hex::decode(signature).map_err(|_| Rejection::MalformedCredential {
        header: SIGNATURE,
        expected: "hex HMAC-SHA1 of the body",
    })?;
    if !any_hmac_sha1_matches(secrets, &body, &mac) {
        return Err(Rejection::SignatureMismatch(SIGNATURE));
    }
    let delivery = match header(headers, "x-nexus-webhook-delivery")? {
        Some(id) => delivery_id(id, "X-Nexus-Webhook-Delivery")?,
        None => body_hash_id(&body),
    };
    let event = match header(headers, "x-nexus-webhook-id")? {
        Some(id) => event_name(id, "X-Nexus-Webhook-ID")?,
        None => "unknown".into(),
    };
    json_body_fields(headers, &body, "Nexus webhook", [])?;
    Ok(NewDelivery {
        delivery_id: delivery,
        event,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};

    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const CREATED: &[u8] = include_bytes!("../../../fixtures/nexus/component.created.docker.json");

    pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn run(signature: Option<String>) -> Result<NewDelivery, Rejection> {
        let mut h = vec![
            ("content-type", "application/json".to_owned()),
            ("x-nexus-webhook-id", "rm:repository:component".to_owned()),
            (
                "x-nexus-webhook-delivery",
                "7f7d0a54-8a0b-4f0e-9b5c-5d1b2c3d4e5f".to_owned(),
            ),
        ];
        if let Some(s) = signature {
            h.push(("x-nexus-webhook-signature", s));
        }
        verify(
            &secrets(&["old", "nexus-s3cret"]),
            &TestHeaders(h),
            Bytes::from_static(CREATED),
        )
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha1_of_the_body() {
        let d = run(Some(sign("nexus-s3cret", CREATED))).unwrap();
        assert_eq!(d.event, "rm:repository:component");
        assert_eq!(
            d.delivery_id.as_str(),
            "7f7d0a54-8a0b-4f0e-9b5c-5d1b2c3d4e5f"
        );
        assert!(d
            .headers
            .iter()
            .all(|(n, _)| *n != "x-nexus-webhook-signature"));
        assert_eq!(
            run(Some(sign("wrong", CREATED))).unwrap_err(),
            Rejection::SignatureMismatch(SIGNATURE)
        );
        assert_eq!(
            run(None).unwrap_err(),
            Rejection::MissingCredential(SIGNATURE)
        );
        assert!(matches!(
            run(Some("zz".into())),
            Err(Rejection::MalformedCredential { .. })
        ));
    }
}
