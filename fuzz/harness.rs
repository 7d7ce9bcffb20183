//! The fuzz targets' bodies, one `pub fn <target>(data: &[u8])` each: they
//! turn the fuzzer's bytes into what the HTTP handler (`ingest::verify`) or
//! the worker (`ingest::parse`) would receive, call portcall, and check a
//! few invariants. Compiled both by the fuzz crate (`fuzz/fuzz_targets/`)
//! and by `tests/fuzz_regressions.rs`, so it uses only crates the main
//! package has as (dev-)dependencies. Nothing here panics except when
//! portcall misbehaves.
//!
//! # Input format
//!
//! Header lines, an empty line, then the body:
//!
//! ```text
//! content-type: application/json
//! x-github-event: push
//! :sign
//! :event: push
//!
//! {"ref":"refs/heads/main"}
//! ```
//!
//! Lines are `name: value`, separated by `\n` (a trailing `\r` is dropped;
//! the value is trimmed of spaces and tabs, as HTTP does). Without an empty
//! line (`\n\n`) the whole input is the body.
//! Names starting with `:` are controls for the harness, not headers:
//!
//! - verify targets: `:query` (the query string), `:now` (the clock, Unix
//!   seconds), `:sign` (sign the request as the sender would, with the
//!   configured secret, replacing any credential headers given), `:signed`
//!   (JFrog: the source has `signed = true`; GitLab: sign with the Standard
//!   Webhooks headers), `:id` and `:event` (the delivery id and event name
//!   the signer adds, for the kinds that carry them in headers);
//! - parse targets: `:event`, `:content-type`, `:registry`, `:delivery-id`
//!   (the stored delivery's columns);
//! - `verify_gar_oidc`: `:header` (the JWT header JSON); the body is the
//!   token's claims, signed with the test key that the source's JWKS holds.
#![allow(dead_code)]

use std::sync::OnceLock;

use base64::Engine as _;
use bytes::Bytes;
use portcall::ingest::gar::GoogleOidc;
use portcall::ingest::sign::{self, Outgoing};
use portcall::ingest::{
    self, is_credential_header, Headers, HookSecret, NewDelivery, Rejection, Source, SourceKind,
    StoredPayload,
};

/// The default clock of the verify targets.
pub const NOW: i64 = 1_700_000_000;
/// The configured plain secret (tokens, HMAC keys).
const SECRET: &str = "fuzz-secret";
/// The configured Standard Webhooks secret (its key is the base64 part).
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Secrets that are not configured: whatever they sign must be refused.
const WRONG_SECRET: &str = "fuzz-secret-wrong";
const WRONG_STANDARD_SECRET: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

const OIDC_AUDIENCE: &str = "https://portcall.example.com/webhooks/gar";
const OIDC_ACCOUNT: &str = "pubsub-push@my-project.iam.gserviceaccount.com";
const OIDC_JWKS: &str = include_str!("../fixtures/gar/test-jwks.json");
/// The private half of the JWKS's `portcall-test-key`.
const OIDC_KEY: &[u8] = include_bytes!("../fixtures/github/test-app-key.pem");
const OIDC_HEADER: &str = r#"{"alg":"RS256","typ":"JWT","kid":"portcall-test-key"}"#;
const GAR_NOTIFICATION: &[u8] = include_bytes!("../fixtures/gar/insert.json");

// ---------------------------------------------------------------------------
// Splitting the input.

struct Input<'a> {
    headers: Vec<(String, &'a [u8])>,
    controls: Vec<(String, &'a [u8])>,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Self {
        let mut input = Input {
            headers: Vec::new(),
            controls: Vec::new(),
            body: data,
        };
        let Some((head, body)) = split_once(data, b"\n\n") else {
            return input;
        };
        input.body = body;
        for line in head.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (is_control, rest) = match line.strip_prefix(b":") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, value) = match rest.iter().position(|&b| b == b':') {
                Some(i) => (&rest[..i], trim(&rest[i + 1..])),
                None => (rest, &b""[..]),
            };
            let name = String::from_utf8_lossy(trim(name)).to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if is_control {
                input.controls.push((name, value));
            } else {
                input.headers.push((name, value));
            }
        }
        input
    }

    fn control(&self, name: &str) -> Option<&'a [u8]> {
        self.controls
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    fn control_str(&self, name: &str) -> Option<String> {
        self.control(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn has(&self, name: &str) -> bool {
        self.control(name).is_some()
    }
}

fn split_once<'a>(data: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let i = data.windows(sep.len()).position(|w| w == sep)?;
    Some((&data[..i], &data[i + sep.len()..]))
}

fn trim(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// Request headers as the HTTP handler's adapter gives them: every value
/// of a name, case-insensitively, in order.
struct FuzzHeaders(Vec<(String, Vec<u8>)>);

impl Headers for FuzzHeaders {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// What a sender's signer may put in a header: visible ASCII and spaces.
fn header_text(value: Option<String>) -> Option<String> {
    value.map(|v| {
        v.chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .collect::<String>()
            .trim()
            .to_owned()
    })
}

// ---------------------------------------------------------------------------
// Sources.

fn secret(value: &str) -> HookSecret {
    HookSecret::new(value.into())
}

fn source(kind: SourceKind, signed: bool) -> Source {
    Source {
        name: kind.as_str().to_owned(),
        kind,
        secrets: vec![secret(SECRET), secret(STANDARD_SECRET)],
        registry: None,
        registry_api: None,
        oidc: None,
        signed,
    }
}

fn oidc() -> GoogleOidc {
    GoogleOidc::new(OIDC_AUDIENCE, OIDC_ACCOUNT, OIDC_JWKS).expect("the test JWKS holds an RSA key")
}

/// A `gar` source with both forms configured: `?token=` secrets and OIDC.
fn gar_source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| Source {
        oidc: Some(oidc()),
        ..source(SourceKind::Gar, false)
    })
}

/// A `gar` source that takes OIDC tokens only.
fn gar_oidc_source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| Source {
        secrets: Vec::new(),
        oidc: Some(oidc()),
        ..source(SourceKind::Gar, false)
    })
}

// ---------------------------------------------------------------------------
// Verify targets.

/// Whether a valid credential of `kind` binds the body, so the same
/// credential over other bytes must be refused.
fn signs_body(kind: SourceKind, signed: bool) -> bool {
    match kind {
        SourceKind::Github | SourceKind::Standard | SourceKind::Nexus => true,
        SourceKind::Jfrog | SourceKind::Gitlab => signed,
        _ => false,
    }
}

/// The request as the fuzzer wrote it, or signed as the sender would with
/// `with` (replacing the credentials the fuzzer wrote).
fn request(
    kind: SourceKind,
    input: &Input<'_>,
    body: &[u8],
    now: i64,
    with: Option<&str>,
) -> (FuzzHeaders, String) {
    let mut headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.to_vec()))
        .collect();
    let mut query = input.control_str("query").unwrap_or_default();
    let Some(with) = with else {
        return (FuzzHeaders(headers), query);
    };
    let signed = input.has("signed");
    let event = header_text(input.control_str("event"));
    let id = header_text(input.control_str("id"));
    let out = sign::sign(
        kind,
        &secret(with),
        &Outgoing {
            body,
            event: event.as_deref(),
            delivery_id: id.as_deref(),
            signed,
            now_unix: now,
        },
    );
    let mut replaced: Vec<String> = out
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n != "content-type")
        .collect();
    if kind == SourceKind::Gitlab && !signed {
        // Any Standard Webhooks header makes GitLab judge by the signature.
        replaced.extend(["webhook-id", "webhook-timestamp", "webhook-signature"].map(String::from));
    }
    headers.retain(|(n, _)| !replaced.contains(n));
    headers.extend(
        out.headers
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.into_bytes())),
    );
    if let Some(token) = out.query_token {
        let pair = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &token)
            .finish();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&pair);
    }
    (FuzzHeaders(headers), query)
}

/// What every accepted request must satisfy, and the worker's parse of
/// each delivery, which must not panic either.
fn check_accepted(kind: SourceKind, body: &[u8], deliveries: &[NewDelivery]) {
    for d in deliveries {
        for (name, _) in &d.headers {
            assert!(
                !is_credential_header(name),
                "{kind}: credential header {name} kept"
            );
        }
        if kind == SourceKind::Distribution {
            assert!(!d.body.is_empty(), "distribution: an empty event");
            assert!(
                split_once(body, &d.body).is_some(),
                "distribution: an event's bytes are not in the envelope"
            );
        } else {
            assert_eq!(
                &d.body[..],
                body,
                "{kind}: the stored body is not the received body"
            );
        }
        assert!(!d.event.is_empty(), "{kind}: empty event name");
        let payload = StoredPayload {
            kind,
            event: &d.event,
            content_type: d.content_type.as_deref(),
            body: &d.body,
            registry: None,
            delivery_id: d.delivery_id.as_str(),
        };
        if let Err(e) = ingest::parse(&payload) {
            let _ = e.to_string();
        }
    }
}

fn verify_kind(kind: SourceKind, data: &[u8]) {
    let input = Input::split(data);
    let now = input
        .control_str("now")
        .and_then(|n| n.parse().ok())
        .unwrap_or(NOW);
    let signed = input.has("signed");
    let sign_mode = input.has("sign");
    let owned;
    let source = match kind {
        SourceKind::Gar => gar_source(),
        _ => {
            owned = source(kind, signed);
            &owned
        }
    };
    let body = input.body;
    let run = |headers: &FuzzHeaders, query: &str, body: &[u8]| {
        ingest::verify(source, headers, query, Bytes::copy_from_slice(body), now)
    };

    if !sign_mode {
        let (headers, query) = request(kind, &input, body, now, None);
        let result = run(&headers, &query, body);
        match &result {
            Ok(deliveries) => {
                check_accepted(kind, body, deliveries);
                if kind == SourceKind::Gar && ingest_query_token(&query).is_none() {
                    panic!("gar: a request without ?token= passed as a Google-signed OIDC token");
                }
            }
            Err(e) => {
                let _ = (e.to_string(), e.reason());
            }
        }
        return;
    }

    let standard_key = kind == SourceKind::Standard || (kind == SourceKind::Gitlab && signed);
    let (good, wrong) = if standard_key {
        (STANDARD_SECRET, WRONG_STANDARD_SECRET)
    } else {
        (SECRET, WRONG_SECRET)
    };

    let (headers, query) = request(kind, &input, body, now, Some(good));
    let result = run(&headers, &query, body);
    match &result {
        Ok(deliveries) => check_accepted(kind, body, deliveries),
        Err(e) => assert!(
            !matches!(e, Rejection::SignatureMismatch(_)),
            "{kind}: a request signed with the configured secret was refused: {e}"
        ),
    }
    if result.is_ok() && signs_body(kind, signed) {
        let mut other = body.to_vec();
        other.push(b' ');
        let refused = run(&headers, &query, &other);
        assert!(
            matches!(refused, Err(Rejection::SignatureMismatch(_))),
            "{kind}: a signature over one body was not refused for another: {refused:?}"
        );
    }

    let (headers, query) = request(kind, &input, body, now, Some(wrong));
    match run(&headers, &query, body) {
        Ok(_) => panic!("{kind}: a request signed with a secret that is not configured passed"),
        Err(e) => assert!(
            e.is_authentication_failure(),
            "{kind}: a wrongly signed request was refused for something else first: {e}"
        ),
    }
}

fn ingest_query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, v)| v.into_owned())
}

pub fn verify_github(data: &[u8]) {
    verify_kind(SourceKind::Github, data)
}

pub fn verify_gitlab(data: &[u8]) {
    verify_kind(SourceKind::Gitlab, data)
}

pub fn verify_standard(data: &[u8]) {
    verify_kind(SourceKind::Standard, data)
}

pub fn verify_distribution(data: &[u8]) {
    verify_kind(SourceKind::Distribution, data)
}

pub fn verify_harbor(data: &[u8]) {
    verify_kind(SourceKind::Harbor, data)
}

pub fn verify_quay(data: &[u8]) {
    verify_kind(SourceKind::Quay, data)
}

pub fn verify_dockerhub(data: &[u8]) {
    verify_kind(SourceKind::Dockerhub, data)
}

pub fn verify_jfrog(data: &[u8]) {
    verify_kind(SourceKind::Jfrog, data)
}

pub fn verify_nexus(data: &[u8]) {
    verify_kind(SourceKind::Nexus, data)
}

pub fn verify_acr(data: &[u8]) {
    verify_kind(SourceKind::Acr, data)
}

pub fn verify_ecr(data: &[u8]) {
    verify_kind(SourceKind::Ecr, data)
}

pub fn verify_gar(data: &[u8]) {
    verify_kind(SourceKind::Gar, data)
}

/// A Pub/Sub push with `Authorization: Bearer <token>`, the token's claims
/// being the fuzzer's body (any bytes) signed with the JWKS's test key.
/// Accepted tokens must carry the configured claims, and the same signature
/// over other claims must be refused.
pub fn verify_gar_oidc(data: &[u8]) {
    static KEY: OnceLock<jsonwebtoken::EncodingKey> = OnceLock::new();
    static ENVELOPE: OnceLock<Vec<u8>> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        jsonwebtoken::EncodingKey::from_rsa_pem(OIDC_KEY).expect("the test key is an RSA PEM")
    });
    let envelope = ENVELOPE.get_or_init(|| {
        serde_json::to_vec(&serde_json::json!({
            "message": {
                "data": base64::engine::general_purpose::STANDARD.encode(GAR_NOTIFICATION),
                "messageId": "2070443601311540",
            },
            "subscription": "projects/my-project/subscriptions/portcall",
        }))
        .expect("JSON")
    });

    let input = Input::split(data);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = input.control("header").unwrap_or(OIDC_HEADER.as_bytes());
    let signing_input = |claims: &[u8]| format!("{}.{}", b64.encode(header), b64.encode(claims));
    let message = signing_input(input.body);
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key, jsonwebtoken::Algorithm::RS256)
            .expect("RS256 signs any bytes");

    let source = gar_oidc_source();
    let run = |token: &str| {
        let headers = FuzzHeaders(vec![
            ("content-type".into(), b"application/json".to_vec()),
            (
                "authorization".into(),
                format!("Bearer {token}").into_bytes(),
            ),
        ]);
        ingest::verify(source, &headers, "", Bytes::from(envelope.clone()), NOW)
    };

    let result = run(&format!("{message}.{signature}"));
    if let Ok(deliveries) = &result {
        check_accepted(SourceKind::Gar, envelope, deliveries);
        let claims: serde_json::Value =
            serde_json::from_slice(input.body).expect("accepted claims are JSON");
        let iss = claims["iss"].as_str().unwrap_or_default();
        assert!(
            ingest::gar::GOOGLE_ISSUERS.contains(&iss),
            "gar: issuer {iss:?} accepted"
        );
        assert_eq!(claims["aud"], OIDC_AUDIENCE, "gar: audience accepted");
        assert_eq!(claims["email"], OIDC_ACCOUNT, "gar: account accepted");

        let mut other = input.body.to_vec();
        other.push(b' ');
        let forged = format!("{}.{signature}", signing_input(&other));
        let refused = run(&forged);
        assert!(
            matches!(refused, Err(Rejection::SignatureMismatch(_))),
            "gar: a signature over one token was not refused for another: {refused:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Parse targets: a stored delivery, as the worker reads it back.

fn parse_kind(kind: SourceKind, data: &[u8]) {
    let input = Input::split(data);
    let event = input
        .control_str("event")
        .unwrap_or_else(|| "unknown".into());
    let content_type = input.control_str("content-type");
    let registry = input.control_str("registry");
    // The inbox only ever holds valid delivery ids.
    let delivery_id = input
        .control_str("delivery-id")
        .filter(|id| portcall::domain::DeliveryId::parse(id).is_ok())
        .unwrap_or_else(|| "fuzz-delivery-1".into());
    let payload = StoredPayload {
        kind,
        event: &event,
        content_type: content_type.as_deref(),
        body: input.body,
        registry: registry.as_deref(),
        delivery_id: &delivery_id,
    };
    match ingest::parse(&payload) {
        Ok(event) => {
            let _ = format!("{event:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

pub fn parse_github(data: &[u8]) {
    parse_kind(SourceKind::Github, data)
}

pub fn parse_gitlab(data: &[u8]) {
    parse_kind(SourceKind::Gitlab, data)
}

pub fn parse_standard(data: &[u8]) {
    parse_kind(SourceKind::Standard, data)
}

pub fn parse_distribution(data: &[u8]) {
    parse_kind(SourceKind::Distribution, data)
}

pub fn parse_harbor(data: &[u8]) {
    parse_kind(SourceKind::Harbor, data)
}

pub fn parse_quay(data: &[u8]) {
    parse_kind(SourceKind::Quay, data)
}

pub fn parse_dockerhub(data: &[u8]) {
    parse_kind(SourceKind::Dockerhub, data)
}

pub fn parse_jfrog(data: &[u8]) {
    parse_kind(SourceKind::Jfrog, data)
}

pub fn parse_nexus(data: &[u8]) {
    parse_kind(SourceKind::Nexus, data)
}

pub fn parse_acr(data: &[u8]) {
    parse_kind(SourceKind::Acr, data)
}

pub fn parse_ecr(data: &[u8]) {
    parse_kind(SourceKind::Ecr, data)
}

pub fn parse_gar(data: &[u8]) {
    parse_kind(SourceKind::Gar, data)
}
