//! Parsing stored Nexus webhooks. A `rm:repository:component` event with
//! `action: CREATED` for a component of format `docker` is an image push:
//! `component.name` is the repository and `component.version` the tag. The
//! payload has no digest (the worker resolves it) and no host (the source's
//! `registry` names it; the config requires it for this kind).

use serde::Deserialize;

use crate::domain::{Event, ImagePushed};
use crate::ingest::{from_json, image_name, tag, ParseError};

#[derive(Deserialize)]
struct ComponentEvent {
    action: String,
    #[serde(default)]
    component: Option<Component>,
}

#[derive(Deserialize)]
struct Component {
    format: String,
    name: String,
    #[serde(default)]
    version: Option<String>,
}

/// Parses a Nexus webhook of event `event` (`X-Nexus-Webhook-ID`).
pub fn parse(event: &str, body: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    if event != "rm:repository:component" {
        let _: serde::de::IgnoredAny = from_json("Nexus webhook", body)?;
        return Ok(Event::unknown("nexus", event, None));
    }
    let e: ComponentEvent = from_json("Nexus component event", body)?;
    let Some(component) = e.component else {
        return Err(ParseError::Invalid(
            "Nexus component event: no component".into(),
        ));
    };
    if component.format != "docker" {
        return Ok(Event::unknown(
            "nexus",
            "component",
            Some(&format!("{} {}", e.action, component.format)),
        ));
    }
    if e.action != "CREATED" {
        return Ok(Event::unknown(
            "nexus",
            "component",
            Some(&format!("{} docker", e.action)),
        ));
    }
    let image = image_name(
        registry.unwrap_or_default(),
        "registry",
        &component.name,
        "component.name",
    )?;
    let version = component.version.unwrap_or_default();
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag: Some(tag("component.version", &version)?),
        digest: None,
        media_type: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageName, Tag};

    const CREATED: &[u8] = include_bytes!("../../../fixtures/nexus/component.created.docker.json");
    const NPM: &[u8] = include_bytes!("../../../fixtures/nexus/component.created.npm.json");
    const EVENT: &str = "rm:repository:component";

    #[test]
    fn a_created_docker_component_is_an_image_push_without_a_digest() {
        assert_eq!(
            parse(EVENT, CREATED, Some("nexus.example.com:8082")).unwrap(),
            Event::ImagePushed(ImagePushed {
                image: ImageName::new("nexus.example.com:8082", "octo-org/hello-world").unwrap(),
                tag: Some(Tag::parse("v1.2.0").unwrap()),
                digest: None,
                media_type: None,
            })
        );
    }

    #[test]
    fn other_formats_actions_and_events_are_recorded_not_acted_on() {
        assert_eq!(
            parse(EVENT, NPM, Some("n.example.com")).unwrap(),
            Event::Unknown {
                what: "nexus component CREATED npm".into()
            }
        );
        let deleted = std::str::from_utf8(CREATED)
            .unwrap()
            .replace("CREATED", "DELETED");
        assert_eq!(
            parse(EVENT, deleted.as_bytes(), Some("n.example.com")).unwrap(),
            Event::Unknown {
                what: "nexus component DELETED docker".into()
            }
        );
        assert_eq!(
            parse("rm:repository:asset", CREATED, Some("n.example.com")).unwrap(),
            Event::Unknown {
                what: "nexus rm:repository:asset".into()
            }
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(parse(EVENT, b"{", Some("n.example.com")).is_err());
        assert!(parse(EVENT, CREATED, None).is_err());
        let bad = std::str::from_utf8(CREATED)
            .unwrap()
            .replace("v1.2.0", "-v");
        assert!(parse(EVENT, bad.as_bytes(), Some("n.example.com")).is_err());
    }
}
