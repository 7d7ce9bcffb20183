//! Parsing stored Docker Hub webhooks: `push_data.tag` on
//! `repository.repo_name`, with no digest (the worker resolves it).

use serde::Deserialize;

use crate::domain::{Event, ImagePushed};
use crate::ingest::{from_json, image_name, tag, ParseError};

/// Docker Hub's registry host, when the source names none.
pub const DOCKER_HUB: &str = "docker.io";

#[derive(Deserialize)]
struct Webhook {
    push_data: PushData,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushData {
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_name: String,
}

/// Parses a Docker Hub webhook. `registry` is the source's canonical host,
/// else `docker.io`.
pub fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let hook: Webhook = from_json("Docker Hub webhook", body)?;
    let image = image_name(
        registry.unwrap_or(DOCKER_HUB),
        "registry",
        &hook.repository.repo_name,
        "repository.repo_name",
    )?;
    let Some(pushed) = hook.push_data.tag.filter(|t| !t.is_empty()) else {
        return Ok(Event::unknown("dockerhub", "push", Some("without a tag")));
    };
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag: Some(tag("push_data.tag", &pushed)?),
        digest: None,
        media_type: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageName, Tag};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/dockerhub/push.json");

    #[test]
    fn a_push_is_an_image_push_on_docker_hub_without_a_digest() {
        assert_eq!(
            parse(PUSH, None).unwrap(),
            Event::ImagePushed(ImagePushed {
                image: ImageName::new("docker.io", "svendowideit/testhook").unwrap(),
                tag: Some(Tag::parse("latest").unwrap()),
                digest: None,
                media_type: None,
            })
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        for bad in [
            &b"{"[..],
            br#"{"push_data":{"tag":"x"}}"#,
            br#"{"push_data":{"tag":"-x"},"repository":{"repo_name":"a/b"}}"#,
            br#"{"push_data":{"tag":"x"},"repository":{"repo_name":"A/B"}}"#,
        ] {
            assert!(
                parse(bad, None).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
