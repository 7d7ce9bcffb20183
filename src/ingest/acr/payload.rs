//! Parsing stored ACR events. `push` of an image manifest is an image push;
//! `delete`, `chart_push`, `chart_delete`, `quarantine` and `ping` are
//! recorded with what they were and not acted on.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::Event;
use crate::ingest::{from_json, pushed_image, ParseError, PushFields};

const WHAT: &str = "ACR event";

#[derive(Deserialize)]
struct ActionOnly<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PushEvent<'a> {
    #[serde(borrow)]
    target: Target<'a>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
}

#[derive(Deserialize)]
struct Target<'a> {
    #[serde(borrow, default, rename = "mediaType")]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    digest: Cow<'a, str>,
    #[serde(borrow)]
    repository: Cow<'a, str>,
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
}

/// Parses one ACR event. `registry` is the source's configured host; without
/// it the event's `request.host` (`myregistry.azurecr.io`) names the image.
pub fn parse(json: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json(WHAT, json)?;
    match action.as_ref() {
        "push" => {}
        "delete" => return Ok(unknown("delete", "(an image deleted is not a release)")),
        "chart_push" => return Ok(unknown("chart_push", "(Helm charts are not images)")),
        other => return Ok(unknown(other, "")),
    }
    let e: PushEvent<'_> = from_json(WHAT, json)?;
    let host = e.request.as_ref().and_then(|r| r.host.as_deref());
    pushed_image(
        PushFields {
            host: ("request.host", host),
            repository: ("target.repository", &e.target.repository),
            tag: ("target.tag", e.target.tag.as_deref()),
            digest: ("target.digest", &e.target.digest),
            media_type: e.target.media_type.as_deref(),
        },
        registry,
    )
}

fn unknown(action: &str, why: &str) -> Event {
    Event::unknown("acr", action, (!why.is_empty()).then_some(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageName, ImagePushed, Tag};

    const PUSH: &str = include_str!("../../../fixtures/acr/push.json");
    const DOCS_DIGEST: &str =
        "sha256:xxxxd5c8786bb9e621a45ece0dbxxxx1cdc624ad20da9fe62e9d25490f33xxxx";
    const DIGEST: &str = "sha256:3c1f8f6e1bd5c8786bb9e621a45ece0db7ac1cdc624ad20da9fe62e9d25490f3";

    #[test]
    fn the_documented_push_with_a_real_digest_is_an_image_push() {
        let body = PUSH.replace(DOCS_DIGEST, DIGEST);
        assert_eq!(
            parse(body.as_bytes(), None).unwrap(),
            Event::ImagePushed(ImagePushed {
                image: ImageName::new("myregistry.azurecr.io", "hello-world").unwrap(),
                tag: Some(Tag::parse("v1").unwrap()),
                digest: Some(Digest::parse(DIGEST).unwrap()),
                media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
            })
        );
        let Event::ImagePushed(p) = parse(body.as_bytes(), Some("acr.example.com")).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.image.to_string(), "acr.example.com/hello-world");
    }

    #[test]
    fn the_documented_placeholder_digest_is_refused_naming_the_field() {
        let error = parse(PUSH.as_bytes(), None).unwrap_err();
        assert!(
            matches!(
                error,
                ParseError::Field {
                    field: "target.digest",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("target.digest"), "{error}");
    }

    #[test]
    fn deletes_chart_pushes_and_pings_are_recorded_not_acted_on() {
        let delete = include_bytes!("../../../fixtures/acr/delete.json");
        let chart = include_bytes!("../../../fixtures/acr/chart_push.json");
        assert_eq!(
            parse(delete, None).unwrap(),
            Event::Unknown {
                what: "acr delete (an image deleted is not a release)".into()
            }
        );
        assert_eq!(
            parse(chart, None).unwrap(),
            Event::Unknown {
                what: "acr chart_push (Helm charts are not images)".into()
            }
        );
        assert_eq!(
            parse(br#"{"id":"1","action":"ping"}"#, None).unwrap(),
            Event::Unknown {
                what: "acr ping".into()
            }
        );
    }

    #[test]
    fn a_push_without_a_tag_is_by_digest_and_bad_pushes_are_errors() {
        let body = PUSH
            .replace(DOCS_DIGEST, DIGEST)
            .replace(r#""tag": "v1""#, r#""tag": """#);
        let Event::ImagePushed(p) = parse(body.as_bytes(), None).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.tag, None);
        for bad in [
            &b"["[..],
            b"{}",
            br#"{"action":"push"}"#,
            br#"{"action":"push","target":{"digest":"sha256:0","repository":"a"}}"#,
        ] {
            assert!(
                parse(bad, None).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
