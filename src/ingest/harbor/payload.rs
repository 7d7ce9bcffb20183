//! Parsing stored Harbor deliveries. The three formats share one shape for
//! the part portcall reads: `event_data` (default JSON, Harbor 1.x) or
//! `data` (CloudEvents) holds `resources[]` with `digest`, `tag` and
//! `resource_url`, and `repository.repo_full_name`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::{Event, ImagePushed, Tag};
use crate::ingest::{digest, from_json, image_name, tag, ParseError};

/// The `type`s that mean an artifact was pushed.
const PUSH_TYPES: [&str; 3] = ["PUSH_ARTIFACT", "harbor.artifact.pushed", "pushImage"];

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(borrow, default)]
    event_data: Option<Data<'a>>,
    #[serde(borrow, default)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    resources: Vec<Resource<'a>>,
    #[serde(borrow)]
    repository: Repository<'a>,
}

#[derive(Deserialize)]
struct Resource<'a> {
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource_url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow)]
    repo_full_name: Cow<'a, str>,
}

/// Parses a Harbor event. `registry` is the source's canonical host; without
/// it the host of the resource's `resource_url` names the image.
pub fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let head: Head<'_> = from_json("Harbor event", body)?;
    if !PUSH_TYPES.contains(&head.kind.as_ref()) {
        return Ok(Event::unknown("harbor", &head.kind, None));
    }
    let push: Push<'_> = from_json("Harbor event", body)?;
    let data = push.event_data.or(push.data).ok_or_else(|| {
        ParseError::Invalid("Harbor event: neither event_data nor data is present".into())
    })?;
    // One push is one artifact; Harbor lists it as the only resource.
    let resource =
        data.resources.into_iter().next().ok_or_else(|| {
            ParseError::Invalid("Harbor event: event_data.resources is empty".into())
        })?;
    let host = match registry {
        Some(host) => host.to_owned(),
        None => resource
            .resource_url
            .as_deref()
            .and_then(|url| url.split_once('/'))
            .map(|(host, _)| host.to_owned())
            .unwrap_or_default(),
    };
    let image = image_name(
        &host,
        "event_data.resources[0].resource_url",
        &data.repository.repo_full_name,
        "event_data.repository.repo_full_name",
    )?;
    let digest = resource
        .digest
        .as_deref()
        .map(|d| digest("event_data.resources[0].digest", d))
        .transpose()?;
    // A push by digest puts the digest where the tag goes: not a tag.
    let tag: Option<Tag> = match resource.tag.as_deref() {
        None | Some("") => None,
        Some(t) if t.contains(':') => None,
        Some(t) => Some(tag("event_data.resources[0].tag", t)?),
    };
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag,
        digest,
        media_type: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageName};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/harbor/PUSH_ARTIFACT.json");
    const CLOUD: &[u8] =
        include_bytes!("../../../fixtures/harbor/cloudevents.artifact.pushed.json");
    const V1: &[u8] = include_bytes!("../../../fixtures/harbor/pushImage.v1.json");
    const DIGEST: &str = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8";

    fn expected(host: &str, tag: Option<&str>) -> Event {
        Event::ImagePushed(ImagePushed {
            image: ImageName::new(host, "test-webhook/debian").unwrap(),
            tag: tag.map(|t| Tag::parse(t).unwrap()),
            digest: Some(Digest::parse(DIGEST).unwrap()),
            media_type: None,
        })
    }

    fn edited(from: &str, to: &str) -> Vec<u8> {
        let s = std::str::from_utf8(PUSH).unwrap();
        assert!(s.contains(from));
        s.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn all_three_formats_are_the_same_image_push() {
        for body in [PUSH, CLOUD, V1] {
            assert_eq!(
                parse(body, None).unwrap(),
                expected("hub.harbor.com", Some("latest"))
            );
            assert_eq!(
                parse(body, Some("harbor.example.com")).unwrap(),
                expected("harbor.example.com", Some("latest"))
            );
        }
    }

    #[test]
    fn a_push_by_digest_has_no_tag() {
        let body = edited("\"tag\": \"latest\"", &format!("\"tag\": \"{DIGEST}\""));
        assert_eq!(
            parse(&body, None).unwrap(),
            expected("hub.harbor.com", None)
        );
    }

    #[test]
    fn other_types_are_recorded_not_acted_on() {
        for kind in [
            "PULL_ARTIFACT",
            "DELETE_ARTIFACT",
            "SCANNING_COMPLETED",
            "harbor.artifact.deleted",
        ] {
            let body = edited("PUSH_ARTIFACT", kind);
            assert_eq!(
                parse(&body, None).unwrap(),
                Event::Unknown {
                    what: format!("harbor {kind}")
                }
            );
        }
    }

    #[test]
    fn placeholder_digests_are_errors_naming_the_field() {
        for bad in [
            "sha256:xxxx",
            "sha256:8a9e9863",
            "8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8",
        ] {
            let body = edited(DIGEST, bad);
            let err = parse(&body, None).unwrap_err();
            assert!(
                err.to_string().contains("event_data.resources[0].digest"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_bodies_are_errors_never_panics() {
        for bad in [&b"{"[..], b"[]", b"{\"type\":\"PUSH_ARTIFACT\"}", b"{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{\"resources\":[],\"repository\":{\"repo_full_name\":\"a/b\"}}}"] {
            assert!(parse(bad, Some("h.example.com")).is_err());
        }
        assert!(parse(
            &edited(
                "\"repo_full_name\": \"test-webhook/debian\"",
                "\"repo_full_name\": \"Test/Debian\""
            ),
            None
        )
        .is_err());
    }
}
