//! One module per source kind. Each has two halves that run at different
//! times:
//!
//! - `verify` runs in the request path, on the raw body bytes, before
//!   anything is parsed: it authenticates the sender, pulls out the delivery
//!   id and event name, checks that the body is well-formed without building
//!   anything, and yields the [`NewDelivery`] rows to commit.
//! - `payload::parse` runs in the worker, on a stored delivery, and turns it
//!   into a normalized [`Event`].

pub mod acr;
pub mod distribution;
pub mod dockerhub;
pub mod ecr;
pub mod gar;
pub mod github;
pub mod gitlab;
pub mod harbor;
mod hmac;
pub mod jfrog;
pub mod nexus;
pub mod quay;
pub mod sign;
pub mod standard;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::domain::{Event, InvalidId};

/// The kinds of webhook senders portcall understands (`kind` in a
/// `[[sources]]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Github,
    Gitlab,
    Distribution,
    Standard,
    /// Azure Container Registry webhooks.
    Acr,
    /// Amazon ECR image actions, through an EventBridge API destination.
    Ecr,
    /// Google Artifact Registry (and Container Registry) notifications,
    /// through a Pub/Sub push subscription.
    Gar,
    Harbor,
    Quay,
    Dockerhub,
    Jfrog,
    Nexus,
}

impl SourceKind {
    pub const ALL: [SourceKind; 12] = [
        SourceKind::Github,
        SourceKind::Gitlab,
        SourceKind::Distribution,
        SourceKind::Standard,
        SourceKind::Acr,
        SourceKind::Ecr,
        SourceKind::Gar,
        SourceKind::Harbor,
        SourceKind::Quay,
        SourceKind::Dockerhub,
        SourceKind::Jfrog,
        SourceKind::Nexus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Github => "github",
            SourceKind::Gitlab => "gitlab",
            SourceKind::Distribution => "distribution",
            SourceKind::Standard => "standard",
            SourceKind::Acr => "acr",
            SourceKind::Ecr => "ecr",
            SourceKind::Gar => "gar",
            SourceKind::Harbor => "harbor",
            SourceKind::Quay => "quay",
            SourceKind::Dockerhub => "dockerhub",
            SourceKind::Jfrog => "jfrog",
            SourceKind::Nexus => "nexus",
        }
    }

    /// Whether the sender cannot set headers, so its secret travels in the
    /// URL as `?token=<secret>` (which then must never be logged).
    pub fn secret_in_query(self) -> bool {
        matches!(self, SourceKind::Quay | SourceKind::Dockerhub)
    }

    /// How a stored delivery of this kind was verified, told by the header
    /// names it was stored with (the credentials themselves never are).
    pub fn verified_by(self, stored_headers: &[String]) -> &'static str {
        let has = |name: &str| stored_headers.iter().any(|h| h == name);
        match self {
            SourceKind::Github => "HMAC-SHA256 (X-Hub-Signature-256)",
            SourceKind::Gitlab if has("webhook-id") => "signed webhook (webhook-signature)",
            SourceKind::Gitlab => "token (X-Gitlab-Token)",
            SourceKind::Standard => "Standard Webhooks signature",
            SourceKind::Distribution | SourceKind::Acr | SourceKind::Ecr => {
                "bearer token (Authorization)"
            }
            SourceKind::Harbor => "secret (Authorization)",
            SourceKind::Jfrog => "secret or HMAC (X-JFrog-Event-Auth)",
            SourceKind::Nexus => "HMAC-SHA1 (X-Nexus-Webhook-Signature)",
            SourceKind::Quay | SourceKind::Dockerhub => "token in the URL",
            SourceKind::Gar => "Google OIDC token or token in the URL",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A stored delivery as the worker reads it back, to be parsed.
#[derive(Debug, Clone, Copy)]
pub struct StoredPayload<'a> {
    pub kind: SourceKind,
    /// The event name recorded at ingest (`X-GitHub-Event`, `X-Gitlab-Event`,
    /// the Distribution or ACR action, the Standard Webhooks `type`, the
    /// EventBridge `detail-type`, `pubsub push` for GAR).
    pub event: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The source's configured canonical registry host, for image names.
    pub registry: Option<&'a str>,
    /// The delivery id recorded at ingest. A Quay push of several tags is
    /// one delivery per tag, and the id names the tag (`{body hash}:{tag}`).
    pub delivery_id: &'a str,
}

/// Why a stored delivery could not be turned into an [`Event`]. Parsing is
/// deterministic, so these are permanent: retrying the same bytes cannot help.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not the expected {what} JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("form-encoded body has no payload= field")]
    MissingFormPayload,
    #[error("field {field}: {source}")]
    Field {
        field: &'static str,
        #[source]
        source: InvalidId,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Deserializes a payload, naming what it should have been on failure.
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    json: &'a [u8],
) -> Result<T, ParseError> {
    serde_json::from_slice(json).map_err(|source| ParseError::Json { what, source })
}

/// A commit sha from a payload field, naming the field on failure.
pub(crate) fn commit_sha(
    field: &'static str,
    value: &str,
) -> Result<crate::domain::CommitSha, ParseError> {
    crate::domain::CommitSha::parse(value).map_err(|source| ParseError::Field { field, source })
}

/// A branch or tag name after its `refs/heads/` or `refs/tags/` prefix.
pub(crate) fn ref_name(name: &str) -> Result<String, ParseError> {
    if name.is_empty() {
        return Err(ParseError::Field {
            field: "ref",
            source: InvalidId {
                what: "git ref",
                expected: "refs/heads/<branch> or refs/tags/<tag>",
            },
        });
    }
    Ok(name.to_owned())
}

/// The fields of a registry's push event, named as the sender names them so
/// errors point at the field that was wrong.
pub(crate) struct PushFields<'a> {
    /// `(field, value)` of the registry host; the source's configured
    /// `registry` wins over it.
    pub host: (&'static str, Option<&'a str>),
    pub repository: (&'static str, &'a str),
    /// An absent or empty tag is a push by digest.
    pub tag: (&'static str, Option<&'a str>),
    pub digest: (&'static str, &'a str),
    pub media_type: Option<&'a str>,
}

/// Builds the [`crate::domain::ImagePushed`] of a registry push, checking every part.
/// Vendors' documented samples carry placeholder digests (`sha256:xxxx…`,
/// short hex): those are refused here with the field named, never turned
/// into a release.
pub(crate) fn pushed_image(
    fields: PushFields<'_>,
    registry: Option<&str>,
) -> Result<Event, ParseError> {
    use crate::domain::{Digest, ImageName, ImagePushed, Tag};
    let field = |field: &'static str| move |source: InvalidId| ParseError::Field { field, source };
    let host = registry.or(fields.host.1).unwrap_or_default();
    let image = ImageName::new(host, fields.repository.1).map_err(|source| {
        if source.what == "registry host" {
            ParseError::Field {
                field: fields.host.0,
                source,
            }
        } else {
            ParseError::Field {
                field: fields.repository.0,
                source,
            }
        }
    })?;
    let digest = Digest::parse(fields.digest.1).map_err(field(fields.digest.0))?;
    let tag = match fields.tag.1 {
        None | Some("") => None,
        Some(tag) => Some(Tag::parse(tag).map_err(field(fields.tag.0))?),
    };
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag,
        digest: Some(digest),
        media_type: fields.media_type.map(str::to_owned),
    }))
}

/// Parses a stored delivery into a normalized event.
pub fn parse(payload: &StoredPayload<'_>) -> Result<Event, ParseError> {
    match payload.kind {
        SourceKind::Github => github::payload::parse(
            payload.event,
            &github::json_body(payload.content_type, payload.body)?,
        ),
        SourceKind::Gitlab => gitlab::payload::parse(payload.event, payload.body),
        SourceKind::Distribution => distribution::payload::parse(payload.body, payload.registry),
        SourceKind::Standard => standard::payload::parse(payload.event, payload.body),
        SourceKind::Acr => acr::payload::parse(payload.body, payload.registry),
        SourceKind::Ecr => ecr::payload::parse(payload.body, payload.registry),
        SourceKind::Gar => gar::payload::parse(payload.body, payload.registry),
        SourceKind::Harbor => harbor::payload::parse(payload.body, payload.registry),
        SourceKind::Quay => {
            quay::payload::parse(payload.body, payload.registry, payload.delivery_id)
        }
        SourceKind::Dockerhub => dockerhub::payload::parse(payload.body, payload.registry),
        SourceKind::Jfrog => jfrog::payload::parse(payload.body, payload.registry),
        SourceKind::Nexus => nexus::payload::parse(payload.event, payload.body, payload.registry),
    }
}

/// A digest from a payload field, naming the field on failure. Vendors'
/// documented samples hold placeholders (`sha256:xxxx`, short digests):
/// those end here, as a readable parse error, never as a release.
pub(crate) fn digest(
    field: &'static str,
    value: &str,
) -> Result<crate::domain::Digest, ParseError> {
    crate::domain::Digest::parse(value).map_err(|source| ParseError::Field { field, source })
}

/// A tag from a payload field, naming the field on failure.
pub(crate) fn tag(field: &'static str, value: &str) -> Result<crate::domain::Tag, ParseError> {
    crate::domain::Tag::parse(value).map_err(|source| ParseError::Field { field, source })
}

/// An image name from a host and a repository, naming the field at fault.
pub(crate) fn image_name(
    host: &str,
    host_field: &'static str,
    repository: &str,
    repository_field: &'static str,
) -> Result<crate::domain::ImageName, ParseError> {
    crate::domain::ImageName::new(host, repository).map_err(|source| ParseError::Field {
        field: if source.what == "registry host" {
            host_field
        } else {
            repository_field
        },
        source,
    })
}

// ---------------------------------------------------------------------------
// The request-path half: what every verifier consumes and produces.

use base64::Engine as _;
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::domain::DeliveryId;

/// One configured webhook secret. Held only in `secrecy` wrappers: it cannot
/// be printed, and it is exposed only inside the comparisons in `hmac`.
pub struct HookSecret {
    value: SecretString,
    /// The HMAC key for Standard Webhooks signatures: the base64-decoded part
    /// of a `whsec_` secret, else the secret's own bytes.
    signing_key: SecretSlice<u8>,
}

impl HookSecret {
    pub fn new(value: SecretString) -> Self {
        let raw = value.expose_secret();
        let key = standard_key(raw).unwrap_or_else(|| raw.as_bytes().to_vec());
        Self {
            value,
            signing_key: key.into(),
        }
    }

    /// Whether this is a well-formed Standard Webhooks secret
    /// (`whsec_` followed by base64).
    pub fn is_standard_webhooks_secret(&self) -> bool {
        standard_key(self.value.expose_secret()).is_some()
    }
}

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookSecret([REDACTED])")
    }
}

fn standard_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// A configured webhook endpoint, `POST /webhooks/{name}`.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    /// Any one of these may match, so secrets can be rotated without downtime.
    pub secrets: Vec<HookSecret>,
    /// Canonical registry host for image names (registry kinds).
    pub registry: Option<String>,
    /// Where and how to read manifests and image configs (registry kinds).
    pub registry_api: Option<RegistryApi>,
    /// The Google OIDC tokens a Pub/Sub push subscription signs with (`gar`).
    pub oidc: Option<gar::GoogleOidc>,
    /// JFrog: `X-JFrog-Event-Auth` is an HMAC-SHA256 of the body rather
    /// than the secret itself.
    pub signed: bool,
}

/// Read access to a registry's v2 API.
#[derive(Debug)]
pub struct RegistryApi {
    pub url: String,
    pub username: Option<SecretString>,
    pub password: Option<SecretString>,
}

/// Read access to request headers, so verifiers do not depend on the HTTP
/// framework. Names are given in lower case.
pub trait Headers {
    /// Every value of the header, in the order received.
    fn values(&self, name: &str) -> Vec<&[u8]>;
}

/// One delivery to commit to the inbox.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: DeliveryId,
    pub event: String,
    /// The few headers worth keeping, as received; never credentials.
    pub headers: Vec<(&'static str, String)>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why a request was refused. Messages name the header or field and what was
/// expected; they never contain the credential received.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("missing {0} header")]
    MissingCredential(&'static str),
    #[error("{header} is malformed: expected {expected}")]
    MalformedCredential {
        header: &'static str,
        expected: &'static str,
    },
    #[error("{0} does not match any configured secret")]
    SignatureMismatch(&'static str),
    #[error("only the SHA-1 X-Hub-Signature header was sent; X-Hub-Signature-256 is required")]
    LegacySignatureOnly,
    #[error("webhook-timestamp is more than 5 minutes away from the current time")]
    TimestampOutOfTolerance,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("{0} header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("{header} header is invalid: expected {expected}")]
    InvalidHeader {
        header: &'static str,
        expected: &'static str,
    },
    #[error("unsupported Content-Type: expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("body is not a valid {what}: {detail}")]
    InvalidBody { what: &'static str, detail: String },
    #[error("the OIDC token's {0} is not accepted")]
    TokenClaimRejected(&'static str),
    #[error("missing the ?token= query parameter")]
    MissingQueryToken,
}

impl Rejection {
    /// Whether the sender failed to authenticate (401) rather than sent a
    /// malformed request (4xx).
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            Rejection::MissingCredential(_)
                | Rejection::MalformedCredential { .. }
                | Rejection::SignatureMismatch(_)
                | Rejection::LegacySignatureOnly
                | Rejection::TimestampOutOfTolerance
                | Rejection::TokenClaimRejected(_)
                | Rejection::MissingQueryToken
        )
    }

    /// A stable label for the `reason` of verification-failure metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingCredential(_) => "missing_credential",
            Rejection::MalformedCredential { .. } => "malformed_credential",
            Rejection::SignatureMismatch(_) => "signature_mismatch",
            Rejection::LegacySignatureOnly => "legacy_signature_only",
            Rejection::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::DuplicateHeader(_) => "duplicate_header",
            Rejection::InvalidHeader { .. } => "invalid_header",
            Rejection::UnsupportedMediaType { .. } => "unsupported_media_type",
            Rejection::InvalidBody { .. } => "invalid_body",
            Rejection::TokenClaimRejected(_) => "token_claim_rejected",
            Rejection::MissingQueryToken => "missing_credential",
        }
    }
}

/// Authenticates a request for `source` over its raw `body` and returns the
/// deliveries it holds (one, or several for a Distribution envelope).
/// `query` is the request's query string (without `?`), for the senders
/// that can only put their secret in the URL; `now_unix` is the current
/// time in seconds, for timestamped schemes.
pub fn verify(
    source: &Source,
    headers: &dyn Headers,
    query: &str,
    body: Bytes,
    now_unix: i64,
) -> Result<Vec<NewDelivery>, Rejection> {
    match source.kind {
        SourceKind::Acr => acr::verify(&source.secrets, headers, body).map(|d| vec![d]),
        SourceKind::Ecr => ecr::verify(&source.secrets, headers, body).map(|d| vec![d]),
        SourceKind::Gar => gar::verify(source, headers, query, body, now_unix).map(|d| vec![d]),
        SourceKind::Github => github::verify(&source.secrets, headers, body).map(|d| vec![d]),
        SourceKind::Gitlab => {
            gitlab::verify(&source.secrets, headers, body, now_unix).map(|d| vec![d])
        }
        SourceKind::Distribution => distribution::verify(&source.secrets, headers, body),
        SourceKind::Standard => {
            standard::verify(&source.secrets, headers, body, now_unix).map(|d| vec![d])
        }
        SourceKind::Harbor => harbor::verify(&source.secrets, headers, body).map(|d| vec![d]),
        SourceKind::Quay => quay::verify(&source.secrets, headers, query, body),
        SourceKind::Dockerhub => {
            dockerhub::verify(&source.secrets, headers, query, body).map(|d| vec![d])
        }
        SourceKind::Jfrog => {
            jfrog::verify(&source.secrets, source.signed, headers, body).map(|d| vec![d])
        }
        SourceKind::Nexus => nexus::verify(&source.secrets, headers, body).map(|d| vec![d]),
    }
}

/// Authenticates a sender that cannot set headers (Quay, Docker Hub) by its
/// `?token=`, then checks that the body is one JSON object.
pub(crate) fn verify_query_token_json(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    query: &str,
    body: &[u8],
    what: &'static str,
) -> Result<(), Rejection> {
    let token = query_token(query)?;
    if !hmac::any_token_matches(secrets, token.as_bytes()) {
        return Err(Rejection::SignatureMismatch("?token="));
    }
    let content_type = media_type(headers)?;
    if content_type.is_some_and(|ct| ct != "application/json") {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    check_json_object(body, None).map_err(|e| Rejection::InvalidBody {
        what,
        detail: e.to_string(),
    })?;
    Ok(())
}

/// The `?token=` credential of a query string: the secret of senders that
/// cannot set headers. It is compared in constant time by the caller and
/// never logged; the query string itself is never stored.
pub(crate) fn query_token(query: &str) -> Result<Cow<'_, str>, Rejection> {
    optional_query_token(query)?.ok_or(Rejection::MissingCredential("?token="))
}

/// The single `token` parameter of a query string, if there is one; two are
/// refused as ambiguous.
pub(crate) fn optional_query_token(query: &str) -> Result<Option<Cow<'_, str>>, Rejection> {
    let mut tokens = form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name == "token");
    let first = tokens.next().map(|(_, value)| value);
    if tokens.next().is_some() {
        return Err(Rejection::MalformedCredential {
            header: "?token=",
            expected: "one token query parameter",
        });
    }
    Ok(first)
}

/// A delivery id for senders whose requests carry none: a hash of the body,
/// so a sender's retry of the same bytes is recognised as a duplicate.
pub(crate) fn body_hash_id(body: &[u8]) -> DeliveryId {
    use sha2::Digest as _;
    let id = format!("sha256-{}", hex::encode(sha2::Sha256::digest(body)));
    DeliveryId::parse(&id).expect("71 visible ASCII characters are a valid delivery id")
}

/// The request-path check for the JSON-bodied registry kinds: the media
/// type is JSON (`+json` suffixes allowed) and the body one object; returns
/// the named top-level string fields (`None` when absent or not a string).
pub(crate) fn json_body_fields<const N: usize>(
    headers: &dyn Headers,
    body: &[u8],
    what: &'static str,
    fields: [&'static str; N],
) -> Result<[Option<String>; N], Rejection> {
    let ct = media_type(headers)?;
    if !ct
        .as_deref()
        .is_none_or(|ct| ct == "application/json" || ct.ends_with("+json"))
    {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    json_object_fields(body, fields).map_err(|e| Rejection::InvalidBody {
        what,
        detail: e.to_string(),
    })
}

/// The single value of a header, if present: refused when repeated (two
/// signatures or two delivery ids are ambiguous) or not UTF-8.
pub(crate) fn header<'h>(
    headers: &'h dyn Headers,
    name: &'static str,
) -> Result<Option<&'h str>, Rejection> {
    match headers.values(name).as_slice() {
        [] => Ok(None),
        [value] => std::str::from_utf8(value)
            .map(|v| Some(v.trim()))
            .map_err(|_| Rejection::InvalidHeader {
                header: name,
                expected: "UTF-8 text",
            }),
        _ => Err(Rejection::DuplicateHeader(name)),
    }
}

/// Checks `Authorization: Bearer <token>` against any of `secrets`.
pub(crate) fn bearer_token_matches(
    secrets: &[HookSecret],
    headers: &dyn Headers,
) -> Result<(), Rejection> {
    let token = bearer(headers)?;
    if hmac::any_token_matches(secrets, token.as_bytes()) {
        Ok(())
    } else {
        Err(Rejection::SignatureMismatch("Authorization"))
    }
}

/// Verifies a JSON event sent with `Authorization: Bearer <secret>` (ACR,
/// and ECR through an EventBridge API destination): one request is one
/// event, keyed by its top-level `id`, named by its `event_field`.
pub(crate) fn verify_bearer_event(
    secrets: &[HookSecret],
    headers: &dyn Headers,
    body: Bytes,
    what: &'static str,
    event_field: &'static str,
) -> Result<NewDelivery, Rejection> {
    const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];
    bearer_token_matches(secrets, headers)?;
    let [id, event] =
        json_object_fields(&body, ["id", event_field]).map_err(|e| Rejection::InvalidBody {
            what,
            detail: e.to_string(),
        })?;
    Ok(NewDelivery {
        delivery_id: delivery_id_field(what, "id", id)?,
        event: event_name_field(event),
        headers: keep_headers(headers, KEPT_HEADERS),
        content_type: Some("application/json".into()),
        body,
    })
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &dyn Headers) -> Result<&str, Rejection> {
    let authorization =
        header(headers, "authorization")?.ok_or(Rejection::MissingCredential("Authorization"))?;
    authorization
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Rejection::MalformedCredential {
            header: "Authorization",
            expected: "Bearer <token>",
        })
}

/// Like [`header`], but the header must be there.
pub(crate) fn required_header<'h>(
    headers: &'h dyn Headers,
    name: &'static str,
) -> Result<&'h str, Rejection> {
    header(headers, name)?.ok_or(Rejection::MissingHeader(name))
}

/// A delivery id from a header, checked against [`DeliveryId`]'s rules.
pub(crate) fn delivery_id(value: &str, name: &'static str) -> Result<DeliveryId, Rejection> {
    DeliveryId::parse(value).map_err(|_| Rejection::InvalidHeader {
        header: name,
        expected: "1 to 200 visible ASCII characters",
    })
}

/// A delivery id from a body field (already pulled out by
/// [`json_object_fields`]), for senders that put it there.
pub(crate) fn delivery_id_field(
    what: &'static str,
    field: &'static str,
    value: Option<String>,
) -> Result<DeliveryId, Rejection> {
    let value = value.ok_or_else(|| Rejection::InvalidBody {
        what,
        detail: format!("{field} is missing or not a string"),
    })?;
    DeliveryId::parse(&value).map_err(|e| Rejection::InvalidBody {
        what,
        detail: format!("{field}: {e}"),
    })
}

/// An event name from a body field: short printable text, `unknown` when
/// absent; longer or odd names are cut rather than refused, since the
/// worker decides what the event is.
pub(crate) fn event_name_field(value: Option<String>) -> String {
    let name: String = value
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect();
    if name.trim().is_empty() {
        "unknown".to_owned()
    } else {
        name
    }
}

/// An event name from a header: short visible text, stored as given.
pub(crate) fn event_name(value: &str, name: &'static str) -> Result<String, Rejection> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Rejection::InvalidHeader {
            header: name,
            expected: "1 to 100 printable ASCII characters",
        })
    }
}

/// The media type of a Content-Type header, without parameters, lower-cased.
pub(crate) fn media_type(headers: &dyn Headers) -> Result<Option<String>, Rejection> {
    Ok(header(headers, "content-type")?.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }))
}

/// Keeps the named headers that are present, for the stored delivery.
pub(crate) fn keep_headers(
    headers: &dyn Headers,
    names: &[&'static str],
) -> Vec<(&'static str, String)> {
    names
        .iter()
        .filter_map(|name| {
            let value = headers.values(name).first().copied()?;
            Some((*name, String::from_utf8_lossy(value).into_owned()))
        })
        .collect()
}

/// Whether a request header carries a credential: a signature, a token, a
/// password. Ingest never stores these (each kind keeps a short list of
/// harmless headers); whoever shows stored headers redacts these anyway,
/// as a second guard. Names are compared case-insensitively; besides the
/// headers the source kinds verify, any name containing `token`, `secret`,
/// `signature` or `auth` counts.
pub fn is_credential_header(name: &str) -> bool {
    const NAMED: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-gitlab-token",
        "webhook-signature",
        "x-jfrog-event-auth",
        "x-nexus-webhook-signature",
    ];
    let name = name.to_ascii_lowercase();
    NAMED.contains(&name.as_str())
        || ["token", "secret", "signature", "auth"]
            .iter()
            .any(|word| name.contains(word))
}

/// Any JSON value, checked and dropped without building anything. Unlike
/// `serde::de::IgnoredAny` it goes through `deserialize_any`, so serde_json's
/// recursion limit (128 levels) refuses absurdly nested bodies.
struct AnyValue;

impl<'de> serde::Deserialize<'de> for AnyValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyValueVisitor)
    }
}

struct AnyValueVisitor;

impl<'de> serde::de::Visitor<'de> for AnyValueVisitor {
    type Value = AnyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_str<E>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_unit<E>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        while map.next_entry::<AnyValue, AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }
}

/// Checks that `json` is one JSON object, building nothing; if `field` is
/// given, returns that top-level field's value when it is a string.
pub(crate) fn check_json_object(
    json: &[u8],
    field: Option<&'static str>,
) -> Result<Option<String>, serde_json::Error> {
    match field {
        Some(field) => json_object_fields(json, [field]).map(|[v]| v),
        None => json_object_fields(json, []).map(|[]| None),
    }
}

/// Checks that `json` is one JSON object, building nothing but the named
/// top-level fields' values when they are strings (`None` when absent or of
/// another type).
pub(crate) fn json_object_fields<const N: usize>(
    json: &[u8],
    fields: [&'static str; N],
) -> Result<[Option<String>; N], serde_json::Error> {
    use serde::de::{Deserializer, MapAccess, Visitor};

    struct ObjectVisitor<const N: usize>([&'static str; N]);

    impl<'de, const N: usize> Visitor<'de> for ObjectVisitor<N> {
        type Value = [Option<String>; N];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                match self.0.iter().position(|f| *f == key.as_ref()) {
                    Some(i) if found[i].is_none() => {
                        found[i] = map.next_value::<StringOrAny>()?.0;
                    }
                    _ => {
                        map.next_value::<AnyValue>()?;
                    }
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(json);
    let found = de.deserialize_map(ObjectVisitor(fields))?;
    de.end()?;
    Ok(found)
}

/// A JSON value kept only when it is a string; anything else is checked and
/// dropped like [`AnyValue`].
struct StringOrAny(Option<String>);

impl<'de> serde::Deserialize<'de> for StringOrAny {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringOrAny;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, s: &str) -> Result<StringOrAny, E> {
                Ok(StringOrAny(Some(s.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StringOrAny, E> {
                Ok(StringOrAny(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<StringOrAny, E> {
                Ok(StringOrAny(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<StringOrAny, E> {
                Ok(StringOrAny(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<StringOrAny, E> {
                Ok(StringOrAny(None))
            }
            fn visit_unit<E>(self) -> Result<StringOrAny, E> {
                Ok(StringOrAny(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<StringOrAny, A::Error> {
                serde::de::Visitor::visit_seq(AnyValueVisitor, seq).map(|_| StringOrAny(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<StringOrAny, A::Error> {
                serde::de::Visitor::visit_map(AnyValueVisitor, map).map(|_| StringOrAny(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Headers as a test writes them: `(name, value)` pairs.
    pub struct TestHeaders(pub Vec<(&'static str, String)>);

    impl Headers for TestHeaders {
        fn values(&self, name: &str) -> Vec<&[u8]> {
            self.0
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
                .collect()
        }
    }

    pub fn secrets(values: &[&str]) -> Vec<HookSecret> {
        values
            .iter()
            .map(|v| HookSecret::new(SecretString::from(*v)))
            .collect()
    }

    /// A source of `kind` named after it, holding `secrets`.
    pub fn source(kind: SourceKind, values: &[&str]) -> Source {
        Source {
            name: kind.as_str().to_owned(),
            kind,
            secrets: secrets(values),
            registry: None,
            registry_api: None,
            oidc: None,
            signed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_known_by_name_and_by_the_words_in_them() {
        for name in [
            "Authorization",
            "X-Hub-Signature",
            "x-hub-signature-256",
            "X-Gitlab-Token",
            "webhook-signature",
            "X-JFrog-Event-Auth",
            "X-Nexus-Webhook-Signature",
            "X-Custom-Token",
            "x-api-secret",
            "X-Amz-Security-Token",
            "Proxy-Authorization",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in [
            "x-github-event",
            "x-github-delivery",
            "x-gitlab-event-uuid",
            "idempotency-key",
            "webhook-id",
            "webhook-timestamp",
            "content-type",
            "user-agent",
        ] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn json_object_check_accepts_objects_only() {
        assert_eq!(
            check_json_object(br#"{"a":[1,{"b":2}]}"#, None).unwrap(),
            None
        );
        for bad in [&b"[]"[..], b"1", b"null", b"{", b"{} {}", b"", b"\xff"] {
            assert!(check_json_object(bad, None).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn json_object_check_can_pick_one_string_field() {
        let body = br#"{"data":{"type":"inner"},"type":"image.pushed"}"#;
        assert_eq!(
            check_json_object(body, Some("type")).unwrap().as_deref(),
            Some("image.pushed")
        );
        assert_eq!(
            check_json_object(br#"{"type":3}"#, Some("type")).unwrap(),
            None
        );
    }

    #[test]
    fn moderately_nested_json_and_brackets_in_strings_are_fine() {
        let nested = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(check_json_object(nested.as_bytes(), None).is_ok());
        assert!(check_json_object(br#"{"a":"[[[{{\"]"}"#, None).is_ok());
    }

    #[test]
    fn deeply_nested_json_is_refused_not_overflowed() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(check_json_object(deep.as_bytes(), None).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = HookSecret::new(SecretString::from("hunter2"));
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn whsec_secrets_are_recognised() {
        let s = test_support::secrets(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain"]);
        assert!(s[0].is_standard_webhooks_secret());
        assert!(!s[1].is_standard_webhooks_secret());
    }
}
