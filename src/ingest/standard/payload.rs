//! Parsing stored Standard Webhooks deliveries into events.
//!
//! The specification recommends `{"type", "timestamp", "data"}` and leaves
//! the meaning of each `type` to the sender. No generic sender's event is
//! acted on yet, so a well-formed payload is recorded as
//! [`Event::Unknown`]; the shape is still checked, so that a sender whose
//! payloads portcall could never act on is noticed early.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::Event;
use crate::ingest::ParseError;

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    /// Kept unparsed: only its being an object is checked.
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Parses a Standard Webhooks payload. `event_type` is the `type` recorded at
/// ingest, which was read from this same body.
pub fn parse(event_type: &str, body: &[u8]) -> Result<Event, ParseError> {
    let payload: Payload<'_> = serde_json::from_slice(body).map_err(|source| ParseError::Json {
        what: "Standard Webhooks payload",
        source,
    })?;
    if !payload.data.get().starts_with('{') {
        return Err(ParseError::Invalid(
            "Standard Webhooks payload: data is not a JSON object".into(),
        ));
    }
    if payload.kind != event_type {
        // The recorded name and the body disagree: the stored row is not
        // what the request path wrote.
        return Err(ParseError::Invalid(
            "Standard Webhooks payload: type differs from the recorded event".into(),
        ));
    }
    Ok(Event::unknown("standard", &payload.kind, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTACT_CREATED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/standard-webhooks/contact.created.json"
    ));

    #[test]
    fn a_well_formed_payload_is_recorded_by_its_type() {
        assert_eq!(
            parse("contact.created", CONTACT_CREATED).unwrap(),
            Event::Unknown {
                what: "standard contact.created".into()
            }
        );
    }

    #[test]
    fn a_thin_payload_with_an_empty_data_object_is_well_formed() {
        let body =
            br#"{"type":"image.pushed","timestamp":"2022-11-03T20:26:10.344522Z","data":{}}"#;
        assert_eq!(
            parse("image.pushed", body).unwrap(),
            Event::Unknown {
                what: "standard image.pushed".into()
            }
        );
    }

    #[test]
    fn odd_characters_in_the_type_are_not_recorded() {
        let body = "{\"type\":\"a\\u0007b\",\"data\":{}}";
        assert_eq!(
            parse("a\u{7}b", body.as_bytes()).unwrap(),
            Event::Unknown {
                what: "standard a?b".into()
            }
        );
    }

    #[test]
    fn bad_payloads_are_errors_never_panics() {
        let half = &CONTACT_CREATED[..CONTACT_CREATED.len() / 2];
        let cases: [(&str, &[u8]); 14] = [
            ("truncated", half),
            ("empty", b""),
            ("an array", b"[]"),
            ("null", b"null"),
            ("no type", br#"{"data":{}}"#),
            ("type a number", br#"{"type":1,"data":{}}"#),
            ("type null", br#"{"type":null,"data":{}}"#),
            ("no data", br#"{"type":"contact.created"}"#),
            ("data an array", br#"{"type":"contact.created","data":[]}"#),
            (
                "data a string",
                br#"{"type":"contact.created","data":"{}"}"#,
            ),
            ("data null", br#"{"type":"contact.created","data":null}"#),
            (
                "trailing garbage",
                br#"{"type":"contact.created","data":{}} x"#,
            ),
            ("type differs", br#"{"type":"contact.deleted","data":{}}"#),
            ("not utf-8", b"{\"type\":\"\xff\",\"data\":{}}"),
        ];
        for (name, body) in cases {
            assert!(
                parse("contact.created", body).is_err(),
                "{name} was accepted"
            );
        }
    }

    #[test]
    fn deeply_nested_data_is_skipped_without_recursing() {
        let data = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let body = format!(r#"{{"type":"contact.created","data":{data}}}"#);
        assert!(parse("contact.created", body.as_bytes()).is_ok());
    }
}
