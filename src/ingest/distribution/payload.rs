//! Parsing stored Distribution deliveries into events.
//!
//! Each delivery is one event taken out of a notification envelope. A
//! registry notifies every blob (layer, config) as well as the manifest, all
//! with `action: push`; only a manifest push is an image push, so the media
//! type decides.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::{Digest, Event, ImageName, ImagePushed, Tag};
use crate::ingest::{from_json, ParseError};

/// The media types of manifests and manifest lists; every other pushed media
/// type is a blob.
pub const MANIFEST_MEDIA_TYPES: [&str; 6] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Parses one Distribution event. `registry` is the source's configured
/// canonical host; without it the host the client pushed to is used.
pub fn parse(event_json: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let head: EventHead<'_> = from_json("Distribution event", event_json)?;
    let media_type = match head.target {
        Some(target) => target_media_type(target)?,
        None => None,
    };
    match (head.action.as_ref(), media_type.as_deref()) {
        ("push", Some(mt)) if is_manifest(mt) => manifest_push(event_json, registry),
        ("push", Some(_)) => Ok(unknown("blob push")),
        ("push", None) => Ok(unknown("push without a media type")),
        (action, _) => Ok(unknown(action)),
    }
}

/// The `mediaType` of an event's target. A target that is not an object is
/// refused here: serde would read `[]` as a target with no fields at all.
fn target_media_type(target: &RawValue) -> Result<Option<Cow<'_, str>>, ParseError> {
    if !target.get().starts_with('{') {
        return Err(ParseError::Invalid(
            "Distribution event: target is not a JSON object".into(),
        ));
    }
    let head: TargetHead<'_> = from_json("Distribution event", target.get().as_bytes())?;
    Ok(head.media_type)
}

fn is_manifest(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(media_type))
}

// ---------------------------------------------------------------------------
// The event shapes, holding only what portcall reads.

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    /// Absent on some deletes; read by [`target_media_type`].
    #[serde(borrow, default)]
    target: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TargetHead<'a> {
    #[serde(borrow, default, rename = "mediaType")]
    media_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ManifestEvent<'a> {
    #[serde(borrow)]
    target: Target<'a>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
}

#[derive(Deserialize)]
struct Target<'a> {
    #[serde(borrow, rename = "mediaType")]
    media_type: Cow<'a, str>,
    #[serde(borrow)]
    digest: Cow<'a, str>,
    #[serde(borrow)]
    repository: Cow<'a, str>,
    /// Absent for a push by digest; some registries send `""`.
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
}

fn manifest_push(event_json: &[u8], registry: Option<&str>) -> Result<Event, ParseError> {
    let e: ManifestEvent<'_> = from_json("Distribution event", event_json)?;
    let target = e.target;
    let host = e.request.and_then(|r| r.host);
    // An empty host is refused by `ImageName::new`, so a missing one is too.
    let registry_host = registry.or(host.as_deref()).unwrap_or_default();
    let image =
        ImageName::new(registry_host, &target.repository).map_err(|source| ParseError::Field {
            field: if source.what == "registry host" {
                "request.host"
            } else {
                "target.repository"
            },
            source,
        })?;
    let tag = match target.tag.as_deref() {
        None | Some("") => None,
        Some(tag) => Some(Tag::parse(tag).map_err(|source| ParseError::Field {
            field: "target.tag",
            source,
        })?),
    };
    let digest = Digest::parse(&target.digest).map_err(|source| ParseError::Field {
        field: "target.digest",
        source,
    })?;
    Ok(Event::ImagePushed(ImagePushed {
        image,
        tag,
        digest: Some(digest),
        media_type: Some(target.media_type.into_owned()),
    }))
}

/// `Unknown { what: "distribution {what}" }`. `what` may be the sender's
/// action, so it is cut to printable ASCII of bounded length.
fn unknown(what: &str) -> Event {
    Event::unknown("distribution", what, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/distribution/",
                $name
            ))
        };
    }

    /// The events of an envelope, as the request path stores them: each one's
    /// own bytes.
    fn events(envelope: &[u8]) -> Vec<&[u8]> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            events: Vec<&'a RawValue>,
        }
        let envelope: Envelope<'_> = serde_json::from_slice(envelope).unwrap();
        envelope.events.iter().map(|e| e.get().as_bytes()).collect()
    }

    fn only_event(envelope: &[u8]) -> &[u8] {
        let events = events(envelope);
        assert_eq!(events.len(), 1);
        events[0]
    }

    fn unknown(what: &str) -> Event {
        Event::Unknown { what: what.into() }
    }

    fn edited(event: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(event).unwrap();
        assert!(text.contains(from), "{from:?} not in event");
        text.replacen(from, to, 1).into_bytes()
    }

    const CAPTURED_DIGEST: &str =
        "sha256:103dbadba2499628b536b96b2fe6333202c4af3f2b721b3609ed150978572708";

    fn captured_push(registry: &str) -> Event {
        Event::ImagePushed(ImagePushed {
            image: ImageName::new(registry, "octo-org/hello-world").unwrap(),
            tag: Some(Tag::parse("v1.2.0").unwrap()),
            digest: Some(Digest::parse(CAPTURED_DIGEST).unwrap()),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        })
    }

    #[test]
    fn a_captured_manifest_push_is_an_image_push_under_the_configured_registry() {
        let event = only_event(fixture!("manifest-push.json"));
        assert_eq!(
            parse(event, Some("registry.example.com")).unwrap(),
            captured_push("registry.example.com")
        );
    }

    #[test]
    fn without_a_configured_registry_the_request_host_names_the_image() {
        let event = only_event(fixture!("manifest-push.json"));
        assert_eq!(parse(event, None).unwrap(), captured_push("127.0.0.1:5077"));
    }

    #[test]
    fn a_captured_blob_push_is_never_an_image() {
        let event = only_event(fixture!("blob-push.json"));
        assert_eq!(
            parse(event, Some("registry.example.com")).unwrap(),
            unknown("distribution blob push")
        );
    }

    #[test]
    fn the_documented_envelope_has_one_manifest_push_by_digest_and_two_blobs() {
        let parsed: Vec<Event> = events(fixture!("envelope.push-batch.json"))
            .into_iter()
            .map(|e| parse(e, None).unwrap())
            .collect();
        assert_eq!(
            parsed,
            vec![
                Event::ImagePushed(ImagePushed {
                    image: ImageName::new("registrycluster.local", "library/test").unwrap(),
                    tag: None,
                    digest: Some(
                        Digest::parse(
                            "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
                        )
                        .unwrap()
                    ),
                    media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
                }),
                unknown("distribution blob push"),
                unknown("distribution blob push"),
            ]
        );
    }

    #[test]
    fn every_manifest_media_type_is_an_image_push() {
        let event = only_event(fixture!("manifest-push.json"));
        for media_type in MANIFEST_MEDIA_TYPES {
            let body = edited(
                event,
                "application/vnd.oci.image.manifest.v1+json",
                media_type,
            );
            let Event::ImagePushed(pushed) = parse(&body, None).unwrap() else {
                panic!("{media_type} is not an image push");
            };
            assert_eq!(pushed.media_type.as_deref(), Some(media_type));
        }
    }

    #[test]
    fn an_empty_tag_is_a_push_by_digest() {
        let event = only_event(fixture!("manifest-push.json"));
        let body = edited(event, r#""tag": "v1.2.0""#, r#""tag": """#);
        let Event::ImagePushed(pushed) = parse(&body, None).unwrap() else {
            panic!("not an image push");
        };
        assert_eq!(pushed.tag, None);
    }

    #[test]
    fn pulls_deletes_and_mounts_are_not_image_pushes() {
        let event = only_event(fixture!("manifest-push.json"));
        for action in ["pull", "delete", "mount"] {
            let body = edited(
                event,
                r#""action": "push""#,
                &format!(r#""action": "{action}""#),
            );
            assert_eq!(
                parse(&body, None).unwrap(),
                unknown(&format!("distribution {action}")),
                "{action}"
            );
        }
        // A delete may carry no media type, or no target at all.
        let delete =
            br#"{"id":"x","action":"delete","target":{"digest":"sha256:0","repository":"a"}}"#;
        assert_eq!(parse(delete, None).unwrap(), unknown("distribution delete"));
        assert_eq!(
            parse(br#"{"action":"delete"}"#, None).unwrap(),
            unknown("distribution delete")
        );
        assert_eq!(
            parse(br#"{"action":"push","target":{"digest":"sha256:0"}}"#, None).unwrap(),
            unknown("distribution push without a media type")
        );
    }

    #[test]
    fn bad_events_are_errors_never_panics() {
        let event = only_event(fixture!("manifest-push.json"));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", event[..event.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("an array", b"[]".to_vec()),
            ("null", b"null".to_vec()),
            ("the whole envelope", fixture!("manifest-push.json").to_vec()),
            ("no action", br#"{"id":"x","target":{}}"#.to_vec()),
            ("action a number", br#"{"action":1}"#.to_vec()),
            ("target an array", br#"{"action":"push","target":[]}"#.to_vec()),
            ("media type a number", br#"{"action":"push","target":{"mediaType":1}}"#.to_vec()),
            ("bad digest", edited(event, CAPTURED_DIGEST, "sha256:103dbadba")),
            ("upper-case digest", edited(event, CAPTURED_DIGEST, &CAPTURED_DIGEST.to_uppercase().replace("SHA256", "sha256"))),
            ("no digest", edited(event, &format!(r#""digest": "{CAPTURED_DIGEST}","#), "")),
            ("bad tag", edited(event, r#""tag": "v1.2.0""#, r#""tag": "-v1""#)),
            ("tag a number", edited(event, r#""tag": "v1.2.0""#, r#""tag": 1"#)),
            ("upper-case repository", edited(event, r#""repository": "octo-org/hello-world""#, r#""repository": "Octo-Org/hello-world""#)),
            ("no repository", edited(event, r#""repository": "octo-org/hello-world","#, "")),
            ("no request and no registry", br#"{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:103dbadba2499628b536b96b2fe6333202c4af3f2b721b3609ed150978572708","repository":"a/b"}}"#.to_vec()),
            ("bad host", edited(event, r#""host": "127.0.0.1:5077""#, r#""host": "evil host/x""#)),
            ("deep nesting where a string belongs", format!("{{\"action\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ];
        for (name, body) in cases {
            assert!(parse(&body, None).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn errors_name_the_field_that_was_wrong() {
        let event = only_event(fixture!("manifest-push.json"));
        let body = edited(event, CAPTURED_DIGEST, "sha256:103dbadba");
        assert!(matches!(
            parse(&body, None),
            Err(ParseError::Field {
                field: "target.digest",
                ..
            })
        ));
        let body = edited(event, r#""host": "127.0.0.1:5077""#, r#""host": """#);
        assert!(matches!(
            parse(&body, None),
            Err(ParseError::Field {
                field: "request.host",
                ..
            })
        ));
        assert!(matches!(
            parse(b"[", None),
            Err(ParseError::Json {
                what: "Distribution event",
                ..
            })
        ));
    }
}
