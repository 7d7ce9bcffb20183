//! End to end with a real CNCF Distribution registry: Debian's
//! `docker-registry` notifies portcall while `skopeo` pushes a one-layer OCI
//! image that the test builds on disk. No network, no Docker daemon.
//!
//! Without the two programs on `PATH` the tests are skipped with a notice,
//! except under CI (`CI` set), where they must be installed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::{Duration, Instant};

use portcall::store::deliveries::{DeliveryRecord, Status};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::on_both_backends;

const REPOSITORY: &str = "octo-org/hello-world";
const TAG: &str = "v1.2.0";
const REVISION: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const SOURCE_URL: &str = "https://github.com/octo-org/hello-world";
/// The image name portcall reports: the source's canonical host, not the
/// `127.0.0.1:PORT` the image was pushed to.
const CANONICAL_IMAGE: &str = "registry.example.com/octo-org/hello-world";

const ENVELOPE_V1: &str = "application/vnd.docker.distribution.events.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// What Distribution 2.8 reports as the media type of every blob.
const BLOB: &str = "application/octet-stream";

/// How long the registry may take to notify what it was sent.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(15);

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
        ("push", OCI_MANIFEST, image.manifest_digest.as_str()),
        "the manifest is notified last: {events:#?}"
    );
    let mut blobs = blobs.to_vec();
    blobs.sort();
    let mut expected = vec![
        ("push", BLOB, image.layer_digest.as_str()),
        ("push", BLOB, image.config_digest.as_str()),
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
            let expected = format!("{CANONICAL_IMAGE}:{TAG} {}", image.manifest_digest);
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
            image.manifest_digest.as_str(),
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

// ---------------------------------------------------------------------------
// The registry process.

/// Whether `docker-registry` and `skopeo` can run. Under CI their absence is
/// a failure; elsewhere the tests are skipped with a notice.
fn registry_tools_installed() -> bool {
    let missing: Vec<&str> = ["docker-registry", "skopeo"]
        .into_iter()
        .filter(|program| !on_path(program))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} not on PATH: .ci/run must install them (apt-get install -y docker-registry skopeo)",
        missing.join(" and ")
    );
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the terminal: the test harness captures println!.
        let _ = writeln!(
            std::io::stderr(),
            "\nnote: {} not on PATH: the real-registry tests (tests/api/registry.rs) are SKIPPED\n",
            missing.join(" and ")
        );
    });
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A `docker-registry` child process on a free local port, storing into a
/// tempdir and notifying the app's `registry` source.
struct Registry {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry and waits until it answers `GET /v2/`. The port
    /// is picked by binding port 0 and letting go of it, so another process
    /// can take it in between: a registry that exits at once is started
    /// again on a new port.
    async fn start(app: &TestApp) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(app).await {
                Ok(registry) => return registry,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "docker-registry did not start:\n{}",
            failures.join("\n---\n")
        );
    }

    async fn try_start(app: &TestApp) -> Result<Self, String> {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            registry_config(dir.path(), port, &app.url("/webhooks/registry")),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run docker-registry: {e}"))?;
        let mut registry = Self { port, child, dir };

        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("http://127.0.0.1:{port}/v2/");
        loop {
            if let Ok(response) = app.client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(registry);
                }
            }
            if let Ok(Some(exit)) = registry.child.try_wait() {
                return Err(format!(
                    "docker-registry exited ({exit}):\n{}",
                    registry.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{url} did not answer within 10 s:\n{}",
                    registry.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pushes `image` as `octo-org/hello-world:v1.2.0`. `--preserve-digests`
    /// keeps the layer uncompressed, so the manifest keeps its digest.
    async fn push(&self, image: &OciImage) {
        let command = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:{TAG}", image.layout().display()))
            .arg(format!(
                "docker://127.0.0.1:{}/{REPOSITORY}:{TAG}",
                self.port
            ))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), command)
            .await
            .unwrap_or_else(|_| panic!("skopeo copy took over 60 s; registry log:\n{}", self.log()))
            .expect("skopeo runs");
        assert!(
            output.status.success(),
            "skopeo copy failed ({}):\n{}\nregistry log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// Polls the app's deliveries until `done` holds, for at most
    /// [`NOTIFY_TIMEOUT`].
    async fn wait_for(
        &self,
        app: &TestApp,
        what: &str,
        done: impl Fn(&[DeliveryRecord]) -> bool,
    ) -> Vec<DeliveryRecord> {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        loop {
            let rows = app.deliveries().await;
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{what} was not stored within {NOTIFY_TIMEOUT:?}: {rows:#?}\nregistry log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Filesystem storage, and one notification endpoint: the app. Blobs are
/// notified too (the default); portcall must not take them for images.
fn registry_config(dir: &Path, port: u16, endpoint: &str) -> String {
    format!(
        r#"version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: 127.0.0.1:{port}
notifications:
  endpoints:
    - name: portcall
      url: {endpoint}
      headers:
        Authorization: [Bearer {REGISTRY_TOKEN}]
      timeout: 2s
      threshold: 5
      backoff: 1s
"#,
        storage = dir.join("storage").display(),
    )
}

// ---------------------------------------------------------------------------
// The image.

/// A one-layer OCI image layout in a tempdir, tagged `v1.2.0`.
struct OciImage {
    dir: tempfile::TempDir,
    layer_digest: String,
    config_digest: String,
    manifest_digest: String,
}

impl OciImage {
    /// The layer holds one file whose contents are new on every run, so
    /// neither the registry nor skopeo's blob cache has seen it.
    fn build() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        let blob = |bytes: &[u8]| -> Value {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
            let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
            std::fs::write(path, bytes).unwrap();
            json!({"digest": digest, "size": bytes.len()})
        };

        let contents = format!("hello from portcall {}\n", uuid::Uuid::new_v4());
        let layer = blob(&tar_one_file("hello.txt", contents.as_bytes()));
        let config = blob(&to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {
                "org.opencontainers.image.revision": REVISION,
                "org.opencontainers.image.source": SOURCE_URL,
            }},
            // The layer is not compressed: its digest is its diff id.
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        })));
        let manifest = blob(&to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": [descriptor(OCI_LAYER_TAR, &layer)],
        })));
        let mut tagged = descriptor(OCI_MANIFEST, &manifest);
        tagged["annotations"] = json!({"org.opencontainers.image.ref.name": TAG});
        let index = json!({"schemaVersion": 2, "manifests": [tagged]});
        std::fs::write(layout.join("index.json"), to_vec(&index)).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();

        let digest = |blob: &Value| blob["digest"].as_str().unwrap().to_owned();
        Self {
            layer_digest: digest(&layer),
            config_digest: digest(&config),
            manifest_digest: digest(&manifest),
            dir,
        }
    }

    fn layout(&self) -> PathBuf {
        self.dir.path().join("layout")
    }
}

/// An OCI descriptor of a blob written by `OciImage::build`.
fn descriptor(media_type: &str, blob: &Value) -> Value {
    json!({"mediaType": media_type, "digest": blob["digest"], "size": blob["size"]})
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// An uncompressed POSIX (ustar) tar archive of one regular file.
fn tar_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "a ustar name field holds 99 bytes");
    let mut header = [0u8; 512];
    let mut field = |at: usize, value: &[u8]| header[at..at + value.len()].copy_from_slice(value);
    field(0, name.as_bytes());
    field(100, b"0000644\0"); // mode
    field(108, b"0000000\0"); // uid
    field(116, b"0000000\0"); // gid
    field(124, format!("{:011o}\0", contents.len()).as_bytes()); // size
    field(136, b"00000000000\0"); // mtime: the epoch
    field(148, b"        "); // the checksum counts its own field as spaces
    field(156, b"0"); // a regular file
    field(257, b"ustar\0"); // magic
    field(263, b"00"); // version
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
    // Two zero blocks end the archive.
    tar.resize(tar.len() + 1024, 0);
    tar
}
