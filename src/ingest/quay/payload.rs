//! Parsing stored Quay notifications. Only `repo_push` is an image push;
//! it names the repository and the tags pushed (`updated_tags`, a list; very
//! old Quay sent an object keyed by tag) but no digest: the worker resolves
//! it from the registry.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::{Event, ImagePushed};
use crate::ingest::{from_json, image_name, tag, ParseError};

/// The event a notification is, told by its fields.
pub(crate) fn event_name(body: &[u8]) -> &'static str {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default)]
        updated_tags: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        build_id: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        vulnerability: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Keys>(body) {
        Ok(Keys {
            updated_tags: Some(_),
            ..
        }) => "repo_push",
        Ok(Keys {
            build_id: Some(_), ..
        }) => "build",
        Ok(Keys {
            vulnerability: Some(_),
            ..
        }) => "vulnerability_found",
        _ => "unknown",
    }
}

/// The tags of a `repo_push`, for the request path (which splits a push of
/// several tags into one delivery each); `None` when they cannot be read.
pub(crate) fn updated_tags(body: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Tags {
        updated_tags: UpdatedTags,
    }
    let tags: Tags = serde_json::from_slice(body).ok()?;
    Some(tags.updated_tags.into_vec())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UpdatedTags {
    List(Vec<String>),
    /// Very old Quay: `{"tag": "image id"}`; the values are not digests.
    Object(BTreeMap<String, serde::de::IgnoredAny>),
}

impl UpdatedTags {
    fn into_vec(self) -> Vec<String> {
        match self {
            UpdatedTags::List(tags) => tags,
            UpdatedTags::Object(map) => map.into_keys().collect(),
        }
    }
}

#[derive(Deserialize)]
struct RepoPush {
    repository: String,
    #[serde(default)]
    docker_url: Option<String>,
    updated_tags: UpdatedTags,
}

/// Parses a Quay notification. `registry` is the source's canonical host;
/// without it the host of `docker_url` names the image. `delivery_id` names
/// the tag when the request path split a push of several tags
/// (`{body hash}:{tag}`); else the push's only (or first) tag is the one.
pub fn parse(body: &[u8], registry: Option<&str>, delivery_id: &str) -> Result<Event, ParseError> {
    let event = event_name(body);
    if event != "repo_push" {
        // Still refuse what is not JSON at all.
        let _: serde::de::IgnoredAny = from_json("Quay notification", body)?;
        return Ok(Event::unknown("quay", event, None));
    }
    let push: RepoPush = from_json("Quay repo_push notification", body)?;
    let host = match registry {
        Some(host) => host.to_owned(),
        None => push
            .docker_url
            .as_deref()
            .and_then(|u| u.split_once('/'))
            .map(|(h, _)| h.to_owned())
            .unwrap_or_default(),
    };
    let image = image_name(&host, "docker_url", &push.repository, "repository")?;
    let tags = push.updated_tags.into_vec();
    let split = delivery_id
        .split_once(':')
        .map(|(_, t)| t)
        .filter(|t| tags.iter().any(|tag| tag == t));
    let Some(pushed) = split.or(tags.first().map(String::as_str)) else {
        return Ok(Event::unknown(
            "quay",
            "repo_push",
            Some("without updated tags"),
        ));
    };
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag: Some(tag("updated_tags", pushed)?),
        digest: None,
        media_type: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageName, Tag};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/quay/repo_push.json");
    const BUILD: &[u8] = include_bytes!("../../../fixtures/quay/build_success.json");
    const ID: &str = "sha256-0123";

    fn expected(host: &str) -> Event {
        Event::ImagePushed(ImagePushed {
            image: ImageName::new(host, "mynamespace/repository").unwrap(),
            tag: Some(Tag::parse("latest").unwrap()),
            digest: None,
            media_type: None,
        })
    }

    #[test]
    fn a_repo_push_is_an_image_push_without_a_digest() {
        assert_eq!(parse(PUSH, None, ID).unwrap(), expected("quay.io"));
        assert_eq!(
            parse(PUSH, Some("quay.example.com"), ID).unwrap(),
            expected("quay.example.com")
        );
    }

    #[test]
    fn very_old_quay_sent_the_tags_as_an_object() {
        let body = std::str::from_utf8(PUSH)
            .unwrap()
            .replace("[\n    \"latest\"\n  ]", "{\"latest\": \"2d6e3e7b5a9a\"}");
        assert_eq!(
            parse(body.as_bytes(), None, ID).unwrap(),
            expected("quay.io")
        );
    }

    #[test]
    fn a_split_delivery_is_the_push_of_the_tag_its_id_names() {
        let body = br#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":["latest","v1.2.0"]}"#;
        let tag_of = |id: &str| match parse(body, None, id).unwrap() {
            Event::ImagePushed(p) => p.tag.unwrap().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tag_of("sha256-0123:v1.2.0"), "v1.2.0");
        assert_eq!(tag_of("sha256-0123:latest"), "latest");
        assert_eq!(tag_of("sha256-0123"), "latest");
        assert_eq!(tag_of("sha256-0123:not-listed"), "latest");
    }

    #[test]
    fn build_and_other_notifications_are_recorded_not_acted_on() {
        assert_eq!(
            parse(BUILD, None, ID).unwrap(),
            Event::Unknown {
                what: "quay build".into()
            }
        );
        assert_eq!(
            parse(br#"{"repository":"a/b"}"#, None, ID).unwrap(),
            Event::Unknown {
                what: "quay unknown".into()
            }
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        for bad in [
            &b"{"[..],
            br#"{"repository":"a/b","updated_tags":"latest"}"#,
            br#"{"repository":"A/B","docker_url":"quay.io/A/B","updated_tags":["x"]}"#,
            br#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":["-bad"]}"#,
        ] {
            assert!(
                parse(bad, None, ID).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
