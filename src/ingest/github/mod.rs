//! GitHub webhooks (App and repository hooks): `X-Hub-Signature-256` over the
//! raw body, any of the configured secrets; JSON or form-encoded bodies.

pub mod payload;

use std::borrow::Cow;

use bytes::Bytes;

use super::hmac::any_hmac_sha256_matches;
use super::{
    check_json_object, delivery_id, event_name, header, keep_headers, media_type, required_header,
    Headers, HookSecret, NewDelivery, ParseError, Rejection,
};

const SIGNATURE: &str = "x-hub-signature-256";

const KEPT_HEADERS: &[&str] = &[
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
    "content-type",
    "user-agent",
];

const FORM: &str = "application/x-www-form-urlencoded";

/// Verifies a GitHub delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
) -> Result<NewDelivery, Rejection> {
    let Some(signature) = header(headers, SIGNATURE)? else {
        // The SHA-1 header alone is not enough: SHA-1 HMACs are deprecated.
        return Err(if headers.values("x-hub-signature").is_empty() {
            Rejection::MissingCredential("X-Hub-Signature-256")
        } else {
            Rejection::LegacySignatureOnly
        });
    };
    let mac = signature
        .strip_prefix("sha256=")
        .filter(|hex| hex.len() == 64)
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or(Rejection::MalformedCredential {
            header: "X-Hub-Signature-256",
            expected: "sha256= followed by 64 hex digits",
        })?;
    if !any_hmac_sha256_matches(secrets, &body, &mac) {
        return Err(Rejection::SignatureMismatch("X-Hub-Signature-256"));
    }

    let event = event_name(
        required_header(headers, "x-github-event")?,
        "X-GitHub-Event",
    )?;
    let delivery_id = delivery_id(
        required_header(headers, "x-github-delivery")?,
        "X-GitHub-Delivery",
    )?;
    let content_type = media_type(headers)?;
    match content_type.as_deref() {
        None | Some("application/json") | Some(FORM) => {}
        Some(_) => {
            return Err(Rejection::UnsupportedMediaType {
                expected: "application/json or application/x-www-form-urlencoded",
            })
        }
    }
    let invalid = |detail: String| Rejection::InvalidBody {
        what: "GitHub webhook payload",
        detail,
    };
    let json = json_body(content_type.as_deref(), &body).map_err(|e| invalid(e.to_string()))?;
    check_json_object(&json, None).map_err(|e| invalid(e.to_string()))?;

    Ok(NewDelivery {
        delivery_id,
        event,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type,
        body,
    })
}

/// The JSON document of a GitHub body: the body itself, or the `payload=`
/// field of a form-encoded one.
pub fn json_body<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, ParseError> {
    if content_type != Some(FORM) {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| Cow::Owned(value.into_owned().into_bytes()))
        .ok_or(ParseError::MissingFormPayload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::hmac::hmac_sha256;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const SECRET: &str = "It's a Secret to Everybody";

    fn signed(body: &[u8], secret: &str) -> TestHeaders {
        TestHeaders(vec![
            (
                "x-hub-signature-256",
                format!(
                    "sha256={}",
                    hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
                ),
            ),
            ("x-github-event", "push".into()),
            (
                "x-github-delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            ("content-type", "application/json".into()),
        ])
    }

    fn run(
        secret_list: &[&str],
        headers: &TestHeaders,
        body: &'static [u8],
    ) -> Result<NewDelivery, Rejection> {
        verify(&secrets(secret_list), headers, Bytes::from_static(body))
    }

    #[test]
    fn githubs_published_test_vector_verifies() {
        // "Hello, World!" is not JSON, so the vector stops at the body check:
        // the signature itself was accepted.
        let mut h = signed(b"Hello, World!", SECRET);
        assert_eq!(
            h.0[0].1,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let err = run(&[SECRET], &h, b"Hello, World!").unwrap_err();
        assert!(matches!(err, Rejection::InvalidBody { .. }), "{err:?}");
        h.0[0].1.replace_range(70.., "0");
        assert_eq!(
            run(&[SECRET], &h, b"Hello, World!").unwrap_err(),
            Rejection::SignatureMismatch("X-Hub-Signature-256")
        );
    }

    #[test]
    fn a_signed_json_push_is_accepted_with_its_delivery_id() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let d = run(&[SECRET], &signed(body, SECRET), body).unwrap();
        assert_eq!(
            d.delivery_id.as_str(),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(d.event, "push");
        assert!(d.headers.iter().all(|(n, _)| !n.contains("signature")));
    }

    #[test]
    fn any_configured_secret_may_sign() {
        let body = br#"{}"#;
        assert!(run(&["new", SECRET], &signed(body, SECRET), body).is_ok());
        assert!(run(&["new"], &signed(body, SECRET), body).is_err());
    }

    #[test]
    fn the_sha1_header_alone_is_refused() {
        let h = TestHeaders(vec![
            (
                "x-hub-signature",
                "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59".into(),
            ),
            ("x-github-event", "push".into()),
            ("x-github-delivery", "d".into()),
        ]);
        assert_eq!(
            run(&[SECRET], &h, b"{}").unwrap_err(),
            Rejection::LegacySignatureOnly
        );
        let none = TestHeaders(vec![("x-github-event", "push".into())]);
        assert_eq!(
            run(&[SECRET], &none, b"{}").unwrap_err(),
            Rejection::MissingCredential("X-Hub-Signature-256")
        );
    }

    #[test]
    fn malformed_signatures_are_refused_before_any_hmac() {
        for bad in [
            "757107ea",
            "sha256=xyz",
            "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
            "sha256=",
        ] {
            let mut h = signed(b"{}", SECRET);
            h.0[0].1 = bad.into();
            assert!(
                matches!(
                    run(&[SECRET], &h, b"{}"),
                    Err(Rejection::MalformedCredential { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn event_and_delivery_headers_are_required_after_the_signature() {
        for missing in ["x-github-event", "x-github-delivery"] {
            let mut h = signed(b"{}", SECRET);
            h.0.retain(|(n, _)| *n != missing);
            assert_eq!(
                run(&[SECRET], &h, b"{}").unwrap_err(),
                Rejection::MissingHeader(missing)
            );
        }
    }

    #[test]
    fn form_encoded_bodies_carry_json_in_payload() {
        let body = b"payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D";
        let mut h = signed(body, SECRET);
        h.0[3].1 = "application/x-www-form-urlencoded".into();
        let d = run(&[SECRET], &h, body).unwrap();
        let json = json_body(d.content_type.as_deref(), &d.body).unwrap();
        assert_eq!(&*json, br#"{"zen":"Keep it logically awesome."}"#);

        let no_payload = b"other=1";
        let mut h = signed(no_payload, SECRET);
        h.0[3].1 = "application/x-www-form-urlencoded".into();
        assert!(matches!(
            run(&[SECRET], &h, no_payload),
            Err(Rejection::InvalidBody { .. })
        ));
    }

    #[test]
    fn other_content_types_are_refused() {
        let mut h = signed(b"{}", SECRET);
        h.0[3].1 = "text/plain".into();
        assert!(matches!(
            run(&[SECRET], &h, b"{}"),
            Err(Rejection::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn a_repeated_signature_header_is_refused() {
        let mut h = signed(b"{}", SECRET);
        h.0.push(h.0[0].clone());
        assert_eq!(
            run(&[SECRET], &h, b"{}").unwrap_err(),
            Rejection::DuplicateHeader("x-hub-signature-256")
        );
    }
}
