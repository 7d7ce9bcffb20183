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

#[derive(Deserialize)]
#[serde(untagged)]
enum UpdatedTags {
    List(Vec<String>),
    /// Very old Quay: `{"tag": "image id"}`; the values are not digests.
    Object(BTreeMap<String, serde::de::IgnoredAny>),
}

#[derive(Deserialize)]
struct RepoPush {
    repository: String,
    #[serde(default)]
    docker_url: Option<String>,
    updated_tags: UpdatedTags,
}

/// Parses a Quay notification. `registry` is the source's canonical host;
/// without it the host of `docker_url` names the image.
pub fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
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
    let tags: Vec<String> = match push.updated_tags {
        UpdatedTags::List(tags) => tags,
        UpdatedTags::Object(map) => map.into_keys().collect(),
    };
    // One delivery is one event: the first tag names the push. Quay sends
    // one notification per `docker push`, which pushes one tag.
    let Some(first) = tags.first() else {
        return Ok(Event::unknown(
            "quay",
            "repo_push",
            Some("without updated tags"),
        ));
    };
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag: Some(tag("updated_tags[0]", first)?),
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
        assert_eq!(parse(PUSH, None).unwrap(), expected("quay.io"));
        assert_eq!(
            parse(PUSH, Some("quay.example.com")).unwrap(),
            expected("quay.example.com")
        );
    }

    #[test]
    fn very_old_quay_sent_the_tags_as_an_object() {
        let body = std::str::from_utf8(PUSH)
            .unwrap()
            .replace("[\n    \"latest\"\n  ]", "{\"latest\": \"2d6e3e7b5a9a\"}");
        assert_eq!(parse(body.as_bytes(), None).unwrap(), expected("quay.io"));
    }

    #[test]
    fn build_and_other_notifications_are_recorded_not_acted_on() {
        assert_eq!(
            parse(BUILD, None).unwrap(),
            Event::Unknown {
                what: "quay build".into()
            }
        );
        assert_eq!(
            parse(br#"{"repository":"a/b"}"#, None).unwrap(),
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
                parse(bad, None).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
