//! Parsing stored Pub/Sub push envelopes from Artifact Registry (or
//! Container Registry). The envelope's `message.data` is base64 of the
//! registry's notification:
//!
//! ```json
//! {"action":"INSERT","digest":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world@sha256:…",
//!  "tag":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.1"}
//! ```
//!
//! `digest` and `tag` are whole image references. An `INSERT` with a
//! digest is an image push (with a tag when `tag` is there); `DELETE` is
//! recorded and not acted on.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;

use crate::domain::Event;
use crate::ingest::{from_json, pushed_image, ParseError, PushFields};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
}

/// Parses one stored push envelope. `registry` is the source's configured
/// host; without it the host in the notification's references is used.
pub fn parse(json: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let envelope: Envelope<'_> = from_json("Pub/Sub push envelope", json)?;
    let data = envelope.message.data.ok_or_else(|| {
        ParseError::Invalid("Pub/Sub push envelope: message.data is missing".into())
    })?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|e| ParseError::Invalid(format!("message.data is not base64: {e}")))?;
    parse_notification(&data, registry)
}

/// Parses the decoded notification.
pub fn parse_notification(data: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let n: Notification<'_> = from_json("Artifact Registry notification", data)?;
    match n.action.as_ref() {
        "INSERT" => {}
        "DELETE" => {
            return Ok(Event::unknown(
                "gar",
                "DELETE",
                Some("(an image deleted is not a release)"),
            ))
        }
        other => return Ok(Event::unknown("gar", other, None)),
    }
    let Some(digest_ref) = n.digest.as_deref() else {
        return Ok(Event::unknown(
            "gar",
            "INSERT",
            Some("without a digest (a tag alone names no image content)"),
        ));
    };
    let (name, digest) = digest_ref.split_once('@').ok_or_else(|| {
        ParseError::Invalid(format!(
            "digest: expected HOST/PATH@sha256:…, got {:?}",
            printable(digest_ref)
        ))
    })?;
    let tag = match n.tag.as_deref() {
        None | Some("") => None,
        Some(tag_ref) => {
            // `HOST/PATH:TAG`: the tag follows the last ':' after the last '/'.
            let (tag_name, tag) = tag_ref
                .rsplit_once(':')
                .filter(|(name, tag)| !name.is_empty() && !tag.contains('/'))
                .ok_or_else(|| {
                    ParseError::Invalid(format!(
                        "tag: expected HOST/PATH:TAG, got {:?}",
                        printable(tag_ref)
                    ))
                })?;
            if tag_name != name {
                return Err(ParseError::Invalid(format!(
                    "tag {:?} names another image than digest {:?}",
                    printable(tag_ref),
                    printable(digest_ref)
                )));
            }
            Some(tag)
        }
    };
    let (host, repository) = name.split_once('/').unwrap_or((name, ""));
    pushed_image(
        PushFields {
            host: ("digest", Some(host)),
            repository: ("digest", repository),
            tag: ("tag", tag),
            digest: ("digest", digest),
            media_type: None,
        },
        registry,
    )
}

fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageName, ImagePushed, Tag};
    use crate::ingest::gar::tests::envelope;

    const INSERT: &str = include_str!("../../../fixtures/gar/insert.json");
    const DOCS_DIGEST: &str = "sha256:6ec128e26cd5...";
    const DIGEST: &str = "sha256:6ec128e26cd5e2e8c21c1fa1e6b1bd3b2a0f4ad0b4a3b43b9e85e1a0d36b9c2f";

    fn real(fixture: &str) -> Vec<u8> {
        envelope(fixture.replace(DOCS_DIGEST, DIGEST).as_bytes())
    }

    fn image(host: &str, path: &str, tag: Option<&str>) -> Event {
        Event::ImagePushed(ImagePushed {
            image: ImageName::new(host, path).unwrap(),
            tag: tag.map(|t| Tag::parse(t).unwrap()),
            digest: Some(Digest::parse(DIGEST).unwrap()),
            media_type: None,
        })
    }

    #[test]
    fn a_documented_insert_is_a_tagged_image_push() {
        assert_eq!(
            parse(&real(INSERT), None).unwrap(),
            image(
                "us-east1-docker.pkg.dev",
                "my-project/my-repo/hello-world",
                Some("1.1")
            )
        );
        let gcr = include_str!("../../../fixtures/gar/gcr.insert.json");
        assert_eq!(
            parse(&real(gcr), None).unwrap(),
            image("gcr.io", "my-project/hello-world", Some("1.1"))
        );
        let Event::ImagePushed(p) = parse(&real(INSERT), Some("gar.example.com")).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(
            p.image.to_string(),
            "gar.example.com/my-project/my-repo/hello-world"
        );
    }

    #[test]
    fn a_digest_only_insert_has_no_tag() {
        let only = include_str!("../../../fixtures/gar/insert.digest-only.json");
        assert_eq!(
            parse(&real(only), None).unwrap(),
            image(
                "us-east1-docker.pkg.dev",
                "my-project/my-repo/hello-world",
                None
            )
        );
    }

    #[test]
    fn the_documented_shortened_digest_is_refused_naming_the_field() {
        let error = parse(&envelope(INSERT.as_bytes()), None).unwrap_err();
        assert!(
            matches!(
                error,
                ParseError::Field {
                    field: "digest",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn deletes_and_tag_only_inserts_are_recorded_not_acted_on() {
        let delete = include_bytes!("../../../fixtures/gar/delete.json");
        assert_eq!(
            parse(&envelope(delete), None).unwrap(),
            Event::Unknown {
                what: "gar DELETE (an image deleted is not a release)".into()
            }
        );
        let tag_only = br#"{"action":"INSERT","tag":"gcr.io/p/app:1"}"#;
        assert!(matches!(
            parse(&envelope(tag_only), None).unwrap(),
            Event::Unknown { what } if what.starts_with("gar INSERT without a digest")
        ));
    }

    #[test]
    fn broken_envelopes_and_notifications_are_errors() {
        for bad in [
            &b"{"[..],
            br#"{"message":{}}"#,
            br#"{"message":{"data":"!!!"}}"#,
        ] {
            assert!(
                parse(bad, None).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let d = format!("gcr.io/p/app@{DIGEST}");
        for bad in [
            "not json".to_owned(),
            r#"{"digest":"x"}"#.to_owned(),
            r#"{"action":"INSERT","digest":"gcr.io/p/app"}"#.to_owned(),
            format!(r#"{{"action":"INSERT","digest":"{d}","tag":"gcr.io/p/other:1"}}"#),
            format!(r#"{{"action":"INSERT","digest":"{d}","tag":"gcr.io/p/app"}}"#),
            format!(r#"{{"action":"INSERT","digest":"gcr.io@{DIGEST}"}}"#),
            format!(r#"{{"action":"INSERT","digest":"GCR.io/P/App@{DIGEST}"}}"#),
        ] {
            assert!(parse(&envelope(bad.as_bytes()), None).is_err(), "{bad}");
        }
    }
}
