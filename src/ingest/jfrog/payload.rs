//! Parsing stored Artifactory webhooks: `domain: docker`,
//! `event_type: pushed`, `data.{repo_key,image_name,tag,sha256}`. The
//! payload names no host: the source's `registry` does (the config requires
//! it for this kind). Images are named `{registry}/{repo_key}/{image_name}`,
//! Artifactory's "repository path" access method.

use serde::Deserialize;

use crate::domain::{Event, ImagePushed};
use crate::ingest::{digest, from_json, image_name, tag, ParseError};

#[derive(Deserialize)]
struct Head {
    domain: String,
    event_type: String,
}

#[derive(Deserialize)]
struct Pushed {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    repo_key: String,
    image_name: String,
    tag: String,
    sha256: String,
}

/// Parses an Artifactory webhook under the source's `registry` host.
pub fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let head: Head = from_json("Artifactory webhook", body)?;
    if head.domain != "docker" || head.event_type != "pushed" {
        return Ok(Event::unknown(
            "jfrog",
            &format!("{}.{}", head.domain, head.event_type),
            None,
        ));
    }
    let pushed: Pushed = from_json("Artifactory docker webhook", body)?;
    let data = pushed.data;
    let image = image_name(
        registry.unwrap_or_default(),
        "registry",
        &format!("{}/{}", data.repo_key, data.image_name),
        "data.image_name",
    )?;
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag: Some(tag("data.tag", &data.tag)?),
        digest: Some(digest("data.sha256", &format!("sha256:{}", data.sha256))?),
        media_type: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageName, Tag};

    const PUSH: &[u8] = include_bytes!("../../../fixtures/jfrog/docker.pushed.json");
    const DELETE: &[u8] = include_bytes!("../../../fixtures/jfrog/docker.deleted.json");

    #[test]
    fn a_docker_push_is_an_image_push_under_the_configured_registry() {
        assert_eq!(
            parse(PUSH, Some("example.jfrog.io")).unwrap(),
            Event::ImagePushed(ImagePushed {
                image: ImageName::new("example.jfrog.io", "docker-remote-cache/library/ubuntu")
                    .unwrap(),
                tag: Some(Tag::parse("latest").unwrap()),
                digest: Some(
                    Digest::parse(
                        "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce"
                    )
                    .unwrap()
                ),
                media_type: None,
            })
        );
    }

    #[test]
    fn other_events_are_recorded_not_acted_on() {
        assert_eq!(
            parse(DELETE, Some("example.jfrog.io")).unwrap(),
            Event::Unknown {
                what: "jfrog docker.deleted".into()
            }
        );
        assert_eq!(
            parse(br#"{"domain":"artifact","event_type":"deployed"}"#, None).unwrap(),
            Event::Unknown {
                what: "jfrog artifact.deployed".into()
            }
        );
    }

    #[test]
    fn the_documented_placeholder_checksum_is_an_error_naming_the_field() {
        let body = std::str::from_utf8(DELETE)
            .unwrap()
            .replace("\"deleted\"", "\"pushed\"")
            .replace("sample_repo", "docker-local");
        let err = parse(body.as_bytes(), Some("example.jfrog.io")).unwrap_err();
        assert!(err.to_string().contains("data."), "{err}");
        let body = std::str::from_utf8(PUSH)
            .unwrap()
            .replace("35c4a2c1", "xxxx");
        let err = parse(body.as_bytes(), Some("example.jfrog.io")).unwrap_err();
        assert!(err.to_string().contains("data.sha256"), "{err}");
    }
}
