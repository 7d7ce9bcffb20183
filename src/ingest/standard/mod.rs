//! Standard Webhooks (standardwebhooks.com): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`, keyed by the base64 part of a `whsec_` secret.
//! GitLab's signed webhooks use the same scheme.

pub mod payload;

use base64::Engine as _;
use bytes::Bytes;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::hmac::hmac_sha256;
use super::{
    check_json_object, delivery_id, header, keep_headers, Headers, HookSecret, NewDelivery,
    Rejection,
};
use crate::domain::DeliveryId;

/// How far a `webhook-timestamp` may be from now, either way: the scheme's
/// defence against replaying an old signed request.
pub const TOLERANCE_SECS: i64 = 5 * 60;

const KEPT_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "content-type",
    "user-agent",
];

/// Whether the request carries any of the scheme's headers: then it must be
/// verified by this scheme and no other.
pub(crate) fn is_signed(headers: &dyn Headers) -> bool {
    ["webhook-signature", "webhook-id", "webhook-timestamp"]
        .iter()
        .any(|name| !headers.values(name).is_empty())
}

/// Checks the three headers and the signature; returns the `webhook-id`.
pub(crate) fn check_signature(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: &[u8],
    now_unix: i64,
) -> Result<DeliveryId, Rejection> {
    let id = header(headers, "webhook-id")?.ok_or(Rejection::MissingCredential("webhook-id"))?;
    let timestamp = header(headers, "webhook-timestamp")?
        .ok_or(Rejection::MissingCredential("webhook-timestamp"))?;
    let signatures = header(headers, "webhook-signature")?
        .ok_or(Rejection::MissingCredential("webhook-signature"))?;

    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| Rejection::MalformedCredential {
            header: "webhook-timestamp",
            expected: "seconds since the Unix epoch",
        })?;
    if now_unix.abs_diff(sent_at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(Rejection::TimestampOutOfTolerance);
    }

    // Several signatures may be listed, space-separated, each `version,base64`;
    // only v1 is defined. Decode them once, then try every secret on each.
    let mut received = Vec::new();
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, encoded)) = entry.split_once(',') else {
            return Err(Rejection::MalformedCredential {
                header: "webhook-signature",
                expected: "space-separated v1,<base64> signatures",
            });
        };
        if version == "v1" {
            if let Ok(mac) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                received.push(mac);
            }
        }
    }
    if received.is_empty() {
        return Err(Rejection::MalformedCredential {
            header: "webhook-signature",
            expected: "at least one v1,<base64> signature",
        });
    }

    let matched = secrets.iter().fold(false, |found, secret| {
        let expected = hmac_sha256(
            secret.signing_key.expose_secret(),
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        );
        received.iter().fold(found, |found, mac| {
            found | bool::from(expected.ct_eq(mac.as_slice()))
        })
    });
    if !matched {
        return Err(Rejection::SignatureMismatch("webhook-signature"));
    }
    delivery_id(id, "webhook-id")
}

/// Verifies a Standard Webhooks request. The event name is the body's `type`.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
    now_unix: i64,
) -> Result<NewDelivery, Rejection> {
    let delivery_id = check_signature(secrets, headers, &body, now_unix)?;
    let event = check_json_object(&body, Some("type"))
        .map_err(|e| Rejection::InvalidBody {
            what: "Standard Webhooks JSON payload",
            detail: e.to_string(),
        })?
        .ok_or_else(|| Rejection::InvalidBody {
            what: "Standard Webhooks JSON payload",
            detail: "missing string field \"type\"".into(),
        })?;
    Ok(NewDelivery {
        delivery_id,
        event,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: super::media_type(headers)?,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};

    // The reference library's vector (fixtures/standard-webhooks).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(signature: &str) -> TestHeaders {
        TestHeaders(vec![
            ("webhook-id", ID.into()),
            ("webhook-timestamp", TS.to_string()),
            ("webhook-signature", signature.into()),
        ])
    }

    fn check(signature: &str, now: i64) -> Result<DeliveryId, Rejection> {
        check_signature(
            &secrets(&[SECRET]),
            &headers(signature),
            BODY.as_bytes(),
            now,
        )
    }

    #[test]
    fn the_reference_vector_verifies() {
        assert_eq!(check(SIGNATURE, TS).unwrap().as_str(), ID);
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let listed = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(check(listed, TS).is_ok());
    }

    #[test]
    fn a_changed_signature_is_refused() {
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(
            check(wrong, TS),
            Err(Rejection::SignatureMismatch("webhook-signature"))
        );
    }

    #[test]
    fn timestamps_must_be_within_five_minutes() {
        assert!(check(SIGNATURE, TS + TOLERANCE_SECS).is_ok());
        assert!(check(SIGNATURE, TS - TOLERANCE_SECS).is_ok());
        for now in [TS + TOLERANCE_SECS + 1, TS - TOLERANCE_SECS - 1] {
            assert_eq!(
                check(SIGNATURE, now),
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn malformed_signature_headers_are_refused() {
        for bad in ["", "v1", "v2,abc", "g0hM9SsE"] {
            assert!(
                matches!(check(bad, TS), Err(Rejection::MalformedCredential { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn each_header_is_required() {
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut h = headers(SIGNATURE);
            h.0.retain(|(n, _)| *n != missing);
            let err = check_signature(&secrets(&[SECRET]), &h, BODY.as_bytes(), TS).unwrap_err();
            assert_eq!(err, Rejection::MissingCredential(missing));
        }
    }

    #[test]
    fn the_event_name_is_the_payload_type() {
        let body = br#"{"type":"build.completed","timestamp":"2024-01-01T00:00:00Z","data":{}}"#;
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let mac = hmac_sha256(
            &key,
            &[ID.as_bytes(), b".", TS.to_string().as_bytes(), b".", body],
        );
        let sig = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        let delivery = verify(
            &secrets(&[SECRET]),
            &headers(&sig),
            Bytes::from_static(body),
            TS,
        )
        .unwrap();
        assert_eq!(delivery.event, "build.completed");
    }
}
