//! End to end with a real CNCF Distribution registry: Debian's
//! `docker-registry` notifies portcall while `skopeo` pushes a one-layer OCI
//! image that the test builds on disk (see `support_registry`). No network,
//! no Docker daemon.

use portcall::store::deliveries::{DeliveryRecord, Status};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;
use crate::support_registry::*;

/// The image name portcall reports: the source's canonical host, not the
/// `127.0.0.1:PORT` the image was pushed to.
const CANONICAL_IMAGE: &str = "registry.example.com/octo-org/hello-world";

const ENVELOPE_V1: &str = "application/vnd.docker.distribution.events.v1+json";
/// What Distribution 2.8 reports as the media type of every blob.
const BLOB: &str = "application/octet-stream";

on_both_backends! {
    async fn a_real_registry_push_is_one_image_push_and_a_resent_event_is_a_duplicate(db: TestDb) {
        if !registry_tools_installed() {
            return;
        }
        let pushed = push_once(db).await;
        assert_first_push_recorded(&pushed).await;
        resending_the_stored_manifest_event_is_a_duplicate(&pushed).await;
        pushed.finish().await;
    }

    async fn pushing_the_same_image_again_is_a_new_event_and_leaves_the_first_alone(db: TestDb) {
        if !registry_tools_installed() {
            return;
        }
        let pushed = push_once(db).await;
        assert_first_push_recorded(&pushed).await;
        pushing_again_gives_new_deliveries_only(&pushed).await;
        pushed.finish().await;
    }
}

// ---------------------------------------------------------------------------
// The scenarios.

/// portcall, a registry notifying it, and one image pushed to that registry,
/// with the manifest push stored and everything processed.
struct Pushed {
    app: TestApp,
    registry: Registry,
    image: OciImage,
}

impl Pushed {
    async fn finish(self) {
        self.registry.stop().await;
        self.app.finish().await;
    }
}

async fn push_once(db: TestDb) -> Pushed {
    let app = TestApp::spawn(db).await;
    let registry = Registry::start(&app).await;
    let image = OciImage::build();
    registry.push(&image).await;
    registry
        .wait_for(&app, "the manifest push", |rows| {
            image_pushes(rows).count() == 1
        })
        .await;
    app.wait_until_processed().await;
    Pushed {
        app,
        registry,
        image,
    }
}

/// The registry notified each blob (layer, config) and then the manifest;
/// only the manifest became an image push.
async fn assert_first_push_recorded(pushed: &Pushed) {
    let Pushed { app, image, .. } = pushed;
    let rows = app.deliveries().await;
    let events = stored_events(app).await;
    assert_unique_ids(&rows);

    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.media_type.as_str(), e.digest.as_str()))
        .collect();
    let (manifest, blobs) = summary.split_last().expect("the registry sent events");
    assert_eq!(
        *manifest,
        (
            "push",
            OCI_MANIFEST,
            image.manifest().manifest_digest.as_str()
        ),
        "the manifest is notified last: {events:#?}"
    );
    let mut blobs = blobs.to_vec();
    blobs.sort();
    let mut expected = vec![
        ("push", BLOB, image.manifest().layer_digest.as_str()),
        ("push", BLOB, image.manifest().config_digest.as_str()),
    ];
    expected.sort();
    assert_eq!(blobs, expected, "{events:#?}");
    let manifest_event = events.last().unwrap();
    assert_eq!(manifest_event.tag.as_deref(), Some(TAG));
    assert_eq!(manifest_event.method, "PUT");

    for (row, event) in paired(&rows, &events) {
        assert_eq!(
            (row.source.as_str(), row.event.as_str()),
            ("registry", "push")
        );
        if event.media_type == OCI_MANIFEST {
            assert_eq!(row.status, Status::Processed, "{row:#?}");
            assert_eq!(row.event_kind.as_deref(), Some("image_pushed"));
            let outcome = row.outcome.as_deref().unwrap_or_default();
            let expected = format!(
                "{CANONICAL_IMAGE}:{TAG} {}",
                image.manifest().manifest_digest
            );
            assert!(
                outcome.contains(&expected),
                "{outcome:?} should name {expected}"
            );
        } else {
            assert_ignored(row);
        }
    }

    // What the registry sent, as portcall kept it.
    for headers in stored_headers(app).await {
        assert_eq!(headers["content-type"], ENVELOPE_V1, "{headers}");
        assert!(headers["user-agent"].is_string(), "{headers}");
    }
}

/// The registry resends an envelope only after a failure; a resend carries
/// the same event ids. Send the stored manifest event back the same way.
async fn resending_the_stored_manifest_event_is_a_duplicate(pushed: &Pushed) {
    let Pushed { app, registry, .. } = pushed;
    let before = serde_json::to_value(app.deliveries().await).unwrap();
    let manifest_id = image_push_ids(&app.deliveries().await).remove(0);
    let body = app.received_body("registry", &manifest_id).await;
    let envelope = [&b"{\"events\":["[..], &body, b"]}"].concat();

    let response = app
        .post_webhook("registry", &registry_headers(), envelope)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"status": "duplicate", "delivery": manifest_id,
               "deliveries": [{"delivery": manifest_id, "status": "duplicate"}]})
    );
    let after = serde_json::to_value(app.wait_until_processed().await).unwrap();
    assert_eq!(
        after,
        before,
        "a duplicate changed the inbox; registry log:\n{}",
        registry.log()
    );
}

/// A second push of the same image is a new event to the registry: new ids,
/// so new deliveries; the first push's rows are not touched again.
async fn pushing_again_gives_new_deliveries_only(pushed: &Pushed) {
    let Pushed {
        app,
        registry,
        image,
    } = pushed;
    let first = app.deliveries().await;
    let last_first_id = first.iter().map(|r| r.id).max().unwrap();

    registry.push(image).await;
    registry
        .wait_for(app, "the second manifest push", |rows| {
            image_pushes(rows).count() == 2
        })
        .await;
    let rows = app.wait_until_processed().await;
    assert_unique_ids(&rows);
    assert_eq!(
        serde_json::to_value(&rows[..first.len()]).unwrap(),
        serde_json::to_value(&first).unwrap(),
        "the first push's deliveries were processed again"
    );

    let events = stored_events(app).await;
    let new: Vec<(&DeliveryRecord, &StoredEvent)> = paired(&rows, &events)
        .filter(|(row, _)| row.id > last_first_id)
        .collect();
    let (manifests, others): (Vec<_>, Vec<_>) = new
        .iter()
        .partition(|(row, _)| row.event_kind.as_deref() == Some("image_pushed"));
    assert_eq!(manifests.len(), 1, "{new:#?}");
    let (row, event) = manifests[0];
    assert_eq!(
        (
            event.action.as_str(),
            event.media_type.as_str(),
            event.digest.as_str(),
            event.tag.as_deref()
        ),
        (
            "push",
            OCI_MANIFEST,
            image.manifest().manifest_digest.as_str(),
            Some(TAG)
        )
    );
    assert_eq!(row.status, Status::Processed);
    // Anything else is recorded and not acted on: Distribution notifies
    // skopeo's HEAD checks of the blobs it already holds as `pull`s.
    for (row, event) in others {
        let manifest_push = event.action == "push" && event.media_type == OCI_MANIFEST;
        assert!(
            !manifest_push,
            "a manifest push was not an image push: {row:#?}"
        );
        assert_ignored(row);
    }
}

// ---------------------------------------------------------------------------
// Reading back what was stored.

fn image_pushes(rows: &[DeliveryRecord]) -> impl Iterator<Item = &DeliveryRecord> {
    rows.iter()
        .filter(|r| r.event_kind.as_deref() == Some("image_pushed"))
}

fn image_push_ids(rows: &[DeliveryRecord]) -> Vec<String> {
    image_pushes(rows).map(|r| r.delivery_id.clone()).collect()
}

/// Each delivery with its stored event; both lists are in row order.
fn paired<'a>(
    rows: &'a [DeliveryRecord],
    events: &'a [StoredEvent],
) -> impl Iterator<Item = (&'a DeliveryRecord, &'a StoredEvent)> {
    assert_eq!(rows.len(), events.len(), "{rows:#?}\n{events:#?}");
    rows.iter().zip(events).inspect(|(row, event)| {
        assert_eq!(row.delivery_id, event.delivery_id);
    })
}

fn assert_unique_ids(rows: &[DeliveryRecord]) {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.delivery_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        rows.len(),
        "a delivery id was stored twice: {rows:#?}"
    );
}

fn assert_ignored(row: &DeliveryRecord) {
    assert_eq!(row.status, Status::Ignored, "{row:#?}");
    assert_eq!(row.event_kind.as_deref(), Some("unknown"), "{row:#?}");
}

/// The fields of a stored Distribution event that the tests look at.
#[derive(Debug)]
struct StoredEvent {
    delivery_id: String,
    action: String,
    media_type: String,
    digest: String,
    tag: Option<String>,
    method: String,
}

/// Every stored event, in the order the deliveries were stored.
async fn stored_events(app: &TestApp) -> Vec<StoredEvent> {
    let mut rows = Vec::new();
    for delivery in app.deliveries().await {
        let body = app
            .received_body(&delivery.source, &delivery.delivery_id)
            .await;
        rows.push((delivery.delivery_id, body));
    }
    rows.into_iter()
        .map(|(delivery_id, body)| {
            let event: Value = serde_json::from_slice(&body).expect("a stored event is JSON");
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            assert_eq!(
                event["id"],
                delivery_id.as_str(),
                "the event's id is its delivery id"
            );
            StoredEvent {
                delivery_id,
                action: text(&event["action"]),
                media_type: text(&event["target"]["mediaType"]),
                digest: text(&event["target"]["digest"]),
                tag: event["target"]["tag"].as_str().map(str::to_owned),
                method: text(&event["request"]["method"]),
            }
        })
        .collect()
}

async fn stored_headers(app: &TestApp) -> Vec<Value> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT headers FROM deliveries ORDER BY id")
        .fetch_all(&app.sql().await)
        .await
        .unwrap();
    rows.iter()
        .map(|h| serde_json::from_str(h).unwrap())
        .collect()
}

/// The headers Distribution 2.8 sends with a notification.
fn registry_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {REGISTRY_TOKEN}")),
        ("Content-Type", ENVELOPE_V1.to_owned()),
        ("User-Agent", "Go-http-client/1.1".to_owned()),
    ]
}
