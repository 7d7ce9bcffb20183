//! Parsing stored EventBridge events from ECR. Only a successful `PUSH`
//! `ECR Image Action` is an image push; the image's host is the account's
//! private registry, `{account}.dkr.ecr.{region}.amazonaws.com`, unless the
//! source configures `registry`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::Event;
use crate::ingest::{from_json, pushed_image, ParseError, PushFields};

const WHAT: &str = "EventBridge event";

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "detail-type")]
    detail_type: Cow<'a, str>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ImageAction<'a> {
    #[serde(borrow)]
    account: Cow<'a, str>,
    #[serde(borrow)]
    region: Cow<'a, str>,
    #[serde(borrow)]
    detail: Detail<'a>,
}

#[derive(Deserialize)]
struct Detail<'a> {
    #[serde(borrow, rename = "action-type")]
    action_type: Cow<'a, str>,
    #[serde(borrow)]
    result: Cow<'a, str>,
    #[serde(borrow, default, rename = "repository-name")]
    repository_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "image-digest")]
    image_digest: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "image-tag")]
    image_tag: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "manifest-media-type")]
    manifest_media_type: Option<Cow<'a, str>>,
}

/// Parses one EventBridge event.
pub fn parse(json: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let head: Head<'_> = from_json(WHAT, json)?;
    if head.detail_type != "ECR Image Action" || head.source.as_deref() != Some("aws.ecr") {
        return Ok(Event::unknown("ecr", &head.detail_type, None));
    }
    let e: ImageAction<'_> = from_json(WHAT, json)?;
    let d = &e.detail;
    if d.action_type != "PUSH" {
        return Ok(Event::unknown(
            "ecr",
            &d.action_type,
            Some("(only PUSH creates images)"),
        ));
    }
    if d.result != "SUCCESS" {
        return Ok(Event::unknown(
            "ecr",
            &format!("PUSH {}", d.result),
            Some("(the push did not succeed)"),
        ));
    }
    let host = format!("{}.dkr.ecr.{}.amazonaws.com", e.account, e.region);
    let missing = |field: &'static str| {
        ParseError::Invalid(format!("{WHAT}: detail.{field} is missing on a PUSH"))
    };
    pushed_image(
        PushFields {
            host: ("account", Some(&host)),
            repository: (
                "detail.repository-name",
                d.repository_name
                    .as_deref()
                    .ok_or_else(|| missing("repository-name"))?,
            ),
            tag: ("detail.image-tag", d.image_tag.as_deref()),
            digest: (
                "detail.image-digest",
                d.image_digest
                    .as_deref()
                    .ok_or_else(|| missing("image-digest"))?,
            ),
            media_type: d.manifest_media_type.as_deref(),
        },
        registry,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageName, ImagePushed, Tag};

    const PUSH: &str = include_str!("../../../fixtures/ecr/image-action.push.json");
    /// The documentation's digest has 60 hex digits, not 64.
    const DOCS_DIGEST: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234";
    const DIGEST: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678";

    fn edited(from: &str, to: &str) -> String {
        assert!(PUSH.contains(from), "{from}");
        PUSH.replace(DOCS_DIGEST, DIGEST).replacen(from, to, 1)
    }

    #[test]
    fn the_documented_push_is_an_image_in_the_accounts_registry() {
        let body = PUSH.replace(DOCS_DIGEST, DIGEST);
        assert_eq!(
            parse(body.as_bytes(), None).unwrap(),
            Event::ImagePushed(ImagePushed {
                image: ImageName::new(
                    "123456789012.dkr.ecr.us-west-2.amazonaws.com",
                    "my-repository-name"
                )
                .unwrap(),
                tag: Some(Tag::parse("latest").unwrap()),
                digest: Some(Digest::parse(DIGEST).unwrap()),
                media_type: None,
            })
        );
        let Event::ImagePushed(p) = parse(body.as_bytes(), Some("ecr.example.com")).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.image.registry(), "ecr.example.com");
    }

    #[test]
    fn the_documented_short_digest_is_refused_naming_the_field() {
        let error = parse(PUSH.as_bytes(), None).unwrap_err();
        assert!(
            matches!(
                error,
                ParseError::Field {
                    field: "detail.image-digest",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn deletes_failures_and_other_events_are_recorded_not_acted_on() {
        let delete = include_bytes!("../../../fixtures/ecr/image-action.delete.json");
        assert_eq!(
            parse(delete, None).unwrap(),
            Event::Unknown {
                what: "ecr DELETE (only PUSH creates images)".into()
            }
        );
        let failed = edited(r#""result": "SUCCESS""#, r#""result": "FAILURE""#);
        assert_eq!(
            parse(failed.as_bytes(), None).unwrap(),
            Event::Unknown {
                what: "ecr PUSH FAILURE (the push did not succeed)".into()
            }
        );
        let scan = edited(r#""ECR Image Action""#, r#""ECR Image Scan""#);
        assert_eq!(
            parse(scan.as_bytes(), None).unwrap(),
            Event::Unknown {
                what: "ecr ECR Image Scan".into()
            }
        );
    }

    #[test]
    fn a_push_without_a_tag_is_by_digest_and_broken_pushes_are_errors() {
        let untagged = edited(",\n        \"image-tag\": \"latest\"", "");
        let Event::ImagePushed(p) = parse(untagged.as_bytes(), None).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.tag, None);
        for bad in [
            edited(r#""account": "123456789012","#, ""),
            edited(r#""repository-name": "my-repository-name","#, ""),
            edited(r#""region": "us-west-2""#, r#""region": "us west""#),
            PUSH[..40].to_owned(),
        ] {
            assert!(parse(bad.as_bytes(), None).is_err(), "{bad}");
        }
    }
}
