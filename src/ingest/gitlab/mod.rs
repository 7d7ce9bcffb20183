//! GitLab project, group and system hooks: the `X-Gitlab-Token` secret token,
//! or GitLab's signed webhooks (the Standard Webhooks scheme). A request that
//! carries the signature headers is judged by them alone: a valid token
//! cannot rescue a bad signature.

pub mod payload;

use bytes::Bytes;

use super::hmac::any_token_matches;
use super::{
    check_json_object, delivery_id, event_name, header, keep_headers, media_type, required_header,
    standard, Headers, HookSecret, NewDelivery, Rejection,
};

const KEPT_HEADERS: &[&str] = &[
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "x-gitlab-webhook-uuid",
    "x-gitlab-instance",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "content-type",
    "user-agent",
];

/// Verifies a GitLab delivery.
pub fn verify(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
    now_unix: i64,
) -> Result<NewDelivery, Rejection> {
    let signed_id = if standard::is_signed(headers) {
        Some(standard::check_signature(
            secrets, headers, &body, now_unix,
        )?)
    } else {
        let token = header(headers, "x-gitlab-token")?
            .ok_or(Rejection::MissingCredential("X-Gitlab-Token"))?;
        if !any_token_matches(secrets, token.as_bytes()) {
            return Err(Rejection::SignatureMismatch("X-Gitlab-Token"));
        }
        None
    };

    let event = event_name(
        required_header(headers, "x-gitlab-event")?,
        "X-Gitlab-Event",
    )?;
    // Idempotency-Key stays the same across GitLab's own retries of one
    // delivery; the event UUID is the fallback for older GitLab versions.
    let delivery_id = if let Some(key) = header(headers, "idempotency-key")? {
        delivery_id(key, "Idempotency-Key")?
    } else if let Some(uuid) = header(headers, "x-gitlab-event-uuid")? {
        delivery_id(uuid, "X-Gitlab-Event-UUID")?
    } else if let Some(id) = signed_id {
        id
    } else {
        return Err(Rejection::MissingHeader(
            "Idempotency-Key or X-Gitlab-Event-UUID",
        ));
    };
    let content_type = media_type(headers)?;
    if content_type
        .as_deref()
        .is_some_and(|ct| ct != "application/json")
    {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    check_json_object(&body, None).map_err(|e| Rejection::InvalidBody {
        what: "GitLab webhook payload",
        detail: e.to_string(),
    })?;

    Ok(NewDelivery {
        delivery_id,
        event,
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::ingest::hmac::hmac_sha256;
    use crate::ingest::test_support::{secrets, TestHeaders};

    const TOKEN: &str = "gl-hook-token";
    const BODY: &[u8] = br#"{"object_kind":"push"}"#;

    fn token_headers(token: &str) -> TestHeaders {
        TestHeaders(vec![
            ("x-gitlab-token", token.into()),
            ("x-gitlab-event", "Push Hook".into()),
            (
                "x-gitlab-event-uuid",
                "13792a34-cac6-4fda-95a8-c58e00a3954e".into(),
            ),
            ("content-type", "application/json".into()),
        ])
    }

    fn run(h: &TestHeaders, secret_list: &[&str]) -> Result<NewDelivery, Rejection> {
        verify(
            &secrets(secret_list),
            h,
            Bytes::from_static(BODY),
            1_700_000_000,
        )
    }

    #[test]
    fn the_secret_token_must_match_exactly() {
        assert!(run(&token_headers(TOKEN), &[TOKEN]).is_ok());
        assert!(run(&token_headers(TOKEN), &["previous", TOKEN]).is_ok());
        for wrong in ["", "gl-hook-toke", "GL-HOOK-TOKEN", "gl-hook-token2"] {
            assert_eq!(
                run(&token_headers(wrong), &[TOKEN]).unwrap_err(),
                Rejection::SignatureMismatch("X-Gitlab-Token"),
                "{wrong:?}"
            );
        }
        let mut none = token_headers(TOKEN);
        none.0.remove(0);
        assert_eq!(
            run(&none, &[TOKEN]).unwrap_err(),
            Rejection::MissingCredential("X-Gitlab-Token")
        );
    }

    #[test]
    fn idempotency_key_wins_over_the_event_uuid() {
        let mut h = token_headers(TOKEN);
        assert_eq!(
            run(&h, &[TOKEN]).unwrap().delivery_id.as_str(),
            "13792a34-cac6-4fda-95a8-c58e00a3954e"
        );
        h.0.push(("idempotency-key", "f6b3a3b5-retry-stable".into()));
        assert_eq!(
            run(&h, &[TOKEN]).unwrap().delivery_id.as_str(),
            "f6b3a3b5-retry-stable"
        );
        h.0.retain(|(n, _)| !matches!(*n, "idempotency-key" | "x-gitlab-event-uuid"));
        assert!(matches!(
            run(&h, &[TOKEN]),
            Err(Rejection::MissingHeader(_))
        ));
    }

    fn signed_headers(secret: &str, now: i64) -> TestHeaders {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mac = hmac_sha256(&key, &[b"msg_1.", now.to_string().as_bytes(), b".", BODY]);
        TestHeaders(vec![
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", now.to_string()),
            (
                "webhook-signature",
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(mac)
                ),
            ),
            ("x-gitlab-event", "Push Hook".into()),
            ("content-type", "application/json".into()),
        ])
    }

    #[test]
    fn signed_webhooks_verify_and_use_webhook_id_as_a_last_resort() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let d = run(&signed_headers(secret, 1_700_000_000), &[secret]).unwrap();
        assert_eq!(d.delivery_id.as_str(), "msg_1");
    }

    #[test]
    fn a_bad_signature_never_falls_back_to_the_token() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let mut h = signed_headers("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1_700_000_000);
        h.0.push(("x-gitlab-token", TOKEN.into()));
        assert_eq!(
            run(&h, &[secret, TOKEN]).unwrap_err(),
            Rejection::SignatureMismatch("webhook-signature")
        );
    }

    #[test]
    fn the_body_must_be_a_json_object() {
        let h = token_headers(TOKEN);
        let err = verify(&secrets(&[TOKEN]), &h, Bytes::from_static(b"[1]"), 0).unwrap_err();
        assert!(matches!(err, Rejection::InvalidBody { .. }));
    }
}
