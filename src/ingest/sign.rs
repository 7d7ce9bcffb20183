//! Signing a request the way each source kind's sender does: the other half
//! of every verifier, for `portcall send` (testing a setup, reproducing a
//! delivery). It uses the same HMAC helpers the verifiers compare with, so a
//! signed request is accepted by construction; the tests below check that
//! against [`super::verify`] for every kind.

use base64::Engine as _;
use secrecy::ExposeSecret as _;

use super::hmac::{hmac_sha1, hmac_sha256};
use super::{HookSecret, SourceKind};

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub body: &'a [u8],
    /// The event name, for the kinds that carry one in a header (github,
    /// gitlab, nexus).
    pub event: Option<&'a str>,
    /// The delivery id, for the kinds that carry one in a header (github,
    /// gitlab, standard, nexus).
    pub delivery_id: Option<&'a str>,
    /// jfrog: the HMAC form of `X-JFrog-Event-Auth` (a source with
    /// `signed = true`); gitlab: GitLab's signed webhooks (Standard
    /// Webhooks headers) instead of `X-Gitlab-Token`.
    pub signed: bool,
    /// The current time in seconds, for Standard Webhooks timestamps.
    pub now_unix: i64,
}

/// The credential-bearing parts of a request: headers, and for the senders
/// that cannot set headers the `?token=` query value. These hold the secret
/// or a signature made with it: send them, never print them.
#[derive(Default)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    pub query_token: Option<String>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Signed")
            .field("headers", &names)
            .field(
                "query_token",
                &self.query_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Whether `kind`'s sender puts a delivery id in a header (else the
/// verifier takes it from the body).
pub fn takes_delivery_id(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Github | SourceKind::Gitlab | SourceKind::Standard | SourceKind::Nexus
    )
}

/// Whether `kind`'s sender names the event in a header that the verifier
/// requires (github, gitlab).
pub fn requires_event(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::Github | SourceKind::Gitlab)
}

/// The headers (and query token) `kind`'s sender adds to `request`, signed
/// with `secret`.
pub fn sign(kind: SourceKind, secret: &HookSecret, request: &Outgoing<'_>) -> Signed {
    let value = || secret.value.expose_secret().to_owned();
    let mut signed = Signed::default();
    let headers = &mut signed.headers;
    headers.push(("Content-Type", "application/json".to_owned()));
    match kind {
        SourceKind::Github => {
            let mac = hmac_sha256(value().as_bytes(), &[request.body]);
            headers.push((
                "X-Hub-Signature-256",
                format!("sha256={}", hex::encode(mac)),
            ));
            if let Some(event) = request.event {
                headers.push(("X-GitHub-Event", event.to_owned()));
            }
            if let Some(id) = request.delivery_id {
                headers.push(("X-GitHub-Delivery", id.to_owned()));
            }
        }
        SourceKind::Gitlab => {
            if request.signed {
                headers.extend(standard_headers(secret, request));
            } else {
                headers.push(("X-Gitlab-Token", value()));
            }
            if let Some(event) = request.event {
                headers.push(("X-Gitlab-Event", event.to_owned()));
            }
            if let Some(id) = request.delivery_id {
                headers.push(("X-Gitlab-Event-UUID", id.to_owned()));
                headers.push(("Idempotency-Key", id.to_owned()));
            }
        }
        SourceKind::Standard => headers.extend(standard_headers(secret, request)),
        SourceKind::Distribution | SourceKind::Acr | SourceKind::Ecr => {
            headers.push(("Authorization", format!("Bearer {}", value())));
        }
        SourceKind::Harbor => headers.push(("Authorization", value())),
        SourceKind::Jfrog => {
            let auth = if request.signed {
                hex::encode(hmac_sha256(value().as_bytes(), &[request.body]))
            } else {
                value()
            };
            headers.push(("X-JFrog-Event-Auth", auth));
        }
        SourceKind::Nexus => {
            let mac = hmac_sha1(value().as_bytes(), request.body);
            headers.push(("X-Nexus-Webhook-Signature", hex::encode(mac)));
            if let Some(id) = request.delivery_id {
                headers.push(("X-Nexus-Webhook-Delivery", id.to_owned()));
            }
            if let Some(event) = request.event {
                headers.push(("X-Nexus-Webhook-ID", event.to_owned()));
            }
        }
        SourceKind::Quay | SourceKind::Dockerhub | SourceKind::Gar => {
            signed.query_token = Some(value());
        }
    }
    signed
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`.
fn standard_headers(secret: &HookSecret, request: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let id = request.delivery_id.unwrap_or_default();
    let timestamp = request.now_unix.to_string();
    let mac = hmac_sha256(
        secret.signing_key.expose_secret(),
        &[
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            request.body,
        ],
    );
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp),
        (
            "webhook-signature",
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{secrets, TestHeaders};
    use crate::ingest::{verify, Rejection};

    const NOW: i64 = 1_700_000_000;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Signs `body` for `kind` with `signing`, then verifies it against a
    /// source of that kind holding `configured`.
    fn round_trip(
        kind: SourceKind,
        signing: &str,
        configured: &str,
        signed: bool,
        body: &[u8],
    ) -> Result<Vec<String>, Rejection> {
        let secret = &secrets(&[signing])[0];
        let out = sign(
            kind,
            secret,
            &Outgoing {
                body,
                event: requires_event(kind).then_some("push"),
                delivery_id: takes_delivery_id(kind).then_some("d-1"),
                signed,
                now_unix: NOW,
            },
        );
        let query = out
            .query_token
            .map(|t| {
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", &t)
                    .finish()
            })
            .unwrap_or_default();
        let mut source = crate::ingest::test_support::source(kind, &[configured]);
        source.signed = signed && kind == SourceKind::Jfrog;
        verify(
            &source,
            &TestHeaders(out.headers),
            &query,
            body.to_vec().into(),
            NOW,
        )
        .map(|ds| {
            ds.into_iter()
                .map(|d| d.delivery_id.as_str().to_owned())
                .collect()
        })
    }

    #[test]
    fn every_kind_signs_what_its_verifier_accepts_and_a_wrong_secret_is_refused() {
        let cases: &[(SourceKind, &str, bool)] = &[
            (SourceKind::Github, "github/push.json", false),
            (SourceKind::Gitlab, "gitlab/push.json", false),
            (SourceKind::Gitlab, "gitlab/push.json", true),
            (
                SourceKind::Standard,
                "standard-webhooks/contact.created.json",
                false,
            ),
            (
                SourceKind::Distribution,
                "distribution/manifest-push.json",
                false,
            ),
            (SourceKind::Acr, "acr/push.json", false),
            (SourceKind::Ecr, "ecr/image-action.push.json", false),
            (SourceKind::Harbor, "harbor/PUSH_ARTIFACT.json", false),
            (SourceKind::Jfrog, "jfrog/docker.pushed.json", false),
            (SourceKind::Jfrog, "jfrog/docker.pushed.json", true),
            (
                SourceKind::Nexus,
                "nexus/component.created.docker.json",
                false,
            ),
            (SourceKind::Quay, "quay/repo_push.json", false),
            (SourceKind::Dockerhub, "dockerhub/push.json", false),
        ];
        let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let bad = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for (kind, file, signed) in cases {
            let body = fixture(file);
            let ids = round_trip(*kind, good, good, *signed, &body)
                .unwrap_or_else(|e| panic!("{kind} (signed: {signed}): {e}"));
            if takes_delivery_id(*kind) {
                assert_eq!(ids, ["d-1"], "{kind}");
            }
            let refused = round_trip(*kind, bad, good, *signed, &body).unwrap_err();
            assert!(refused.is_authentication_failure(), "{kind}: {refused}");
        }
    }

    #[test]
    fn debug_never_shows_credentials() {
        let secret = &secrets(&["s3cret"])[0];
        let out = sign(
            SourceKind::Quay,
            secret,
            &Outgoing {
                body: b"{}",
                event: None,
                delivery_id: None,
                signed: false,
                now_unix: NOW,
            },
        );
        assert!(!format!("{out:?}").contains("s3cret"));
        let out = sign(
            SourceKind::Harbor,
            secret,
            &Outgoing {
                body: b"{}",
                event: None,
                delivery_id: None,
                signed: false,
                now_unix: NOW,
            },
        );
        assert!(!format!("{out:?}").contains("s3cret"));
    }
}
