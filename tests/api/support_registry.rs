//! A real CNCF Distribution registry (Debian's `docker-registry`) on a free
//! local port, and OCI images built on disk and pushed to it with `skopeo`.
//! No network, no Docker daemon.
//!
//! ```ignore
//! if !registry_tools_installed() { return; }
//! let registry = Registry::start(&app).await;            // notifies the app
//! let registry = Registry::start_with(RegistryOptions::default()).await; // quiet
//! // The app's config names the registry first: pick the port, then start.
//! let registry = Registry::try_start_with(&RegistryOptions { port: Some(port), .. }).await?;
//! let image = OciImage::with_labels(&[(REVISION_LABEL, REVISION)]);
//! registry.push(&image).await;                           // octo-org/hello-world:v1.2.0
//! reader.image_source(REPOSITORY, &Digest::parse(image.digest())?)
//! ```
//!
//! Without the programs on `PATH` the tests that need them are skipped with
//! a notice, except under CI (`CI` set), where they must be installed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::{Duration, Instant};

use portcall::store::deliveries::DeliveryRecord;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::{Child, Command};

use crate::helpers::{free_port, TestApp, REGISTRY_TOKEN};

pub const REPOSITORY: &str = "octo-org/hello-world";
pub const TAG: &str = "v1.2.0";
pub const REVISION: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
pub const SOURCE_URL: &str = "https://github.com/octo-org/hello-world";
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
pub const SOURCE_LABEL: &str = "org.opencontainers.image.source";

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How long the registry may take to notify what it was sent.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The tools.

/// Whether `docker-registry` and `skopeo` can run. Under CI their absence is
/// a failure; elsewhere the tests are skipped with a notice.
pub fn registry_tools_installed() -> bool {
    tools_installed(&["docker-registry", "skopeo"])
}

/// Whether all of `programs` are on `PATH`; see [`registry_tools_installed`].
pub fn tools_installed(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| !on_path(program))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} not on PATH: .ci/run must install them (apt-get install -y docker-registry skopeo openssl)",
        missing.join(" and ")
    );
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the terminal: the test harness captures println!.
        let _ = writeln!(
            std::io::stderr(),
            "\nnote: {} not on PATH: the real-registry tests are SKIPPED\n",
            missing.join(" and ")
        );
    });
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

// ---------------------------------------------------------------------------
// The registry process.

/// How to configure a [`Registry`]. The default is a quiet, open registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// A URL to send notifications to, with `Authorization: Bearer
    /// REGISTRY_TOKEN` (the app's `registry` source).
    pub notify: Option<String>,
    /// Require bearer tokens from a token service.
    pub token_auth: Option<TokenAuth>,
    /// Listen on this port (picked with [`free_port`]) instead of a fresh
    /// one per attempt: for an app whose configuration names the registry
    /// (`api_url`) before the registry, which notifies the app, can start.
    /// If another process takes it first, the start fails and the caller
    /// picks again (see `release_e2e.rs`).
    pub port: Option<u16>,
    /// Require HTTP Basic credentials (`auth: htpasswd:`), this user and
    /// password; pushes then send them too. The bcrypt entry is written
    /// with `htpasswd -B` (apache2-utils).
    pub basic_auth: Option<(String, String)>,
}

/// Distribution's `auth: token:` section: clients are sent to `realm` for a
/// JWT issued by `issuer` for `service`, signed by a key whose certificate
/// is in `root_cert_bundle` and named in the token's `x5c` header.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub root_cert_bundle: PathBuf,
}

/// A `docker-registry` child process on a free local port, storing into a
/// tempdir. Killed when dropped.
pub struct Registry {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    /// `user:password` for pushes to a registry behind basic auth.
    creds: Option<String>,
}

impl Registry {
    /// A registry that notifies `app`'s `registry` source of every push.
    pub async fn start(app: &TestApp) -> Self {
        Self::start_with(RegistryOptions {
            notify: Some(app.url("/webhooks/registry")),
            ..RegistryOptions::default()
        })
        .await
    }

    /// Starts the registry and waits until it answers `GET /v2/`. The port
    /// is picked by binding port 0 and letting go of it, so another process
    /// can take it in between: a registry that exits at once is started
    /// again on a new port (unless `options.port` fixed it: one attempt).
    pub async fn start_with(options: RegistryOptions) -> Self {
        let attempts = if options.port.is_some() { 1 } else { 3 };
        let mut failures = Vec::new();
        for _ in 0..attempts {
            match Self::try_start_with(&options).await {
                Ok(registry) => return registry,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "docker-registry did not start:\n{}",
            failures.join("\n---\n")
        );
    }

    /// One attempt of [`Self::start_with`]: on `options.port`, else on a
    /// fresh free port; why it failed, if it did.
    pub async fn try_start_with(options: &RegistryOptions) -> Result<Self, String> {
        let port = options.port.unwrap_or_else(free_port);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(&config, registry_config(dir.path(), port, options)).unwrap();
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
        let creds = options
            .basic_auth
            .as_ref()
            .map(|(user, password)| format!("{user}:{password}"));
        let mut registry = Self {
            port,
            child,
            dir,
            creds,
        };

        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("{}/v2/", registry.api_url());
        loop {
            if let Ok(response) = client.get(&url).send().await {
                // A token-protected registry answers 401 with its challenge.
                let status = response.status();
                if status.is_success() || status == reqwest::StatusCode::UNAUTHORIZED {
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

    /// What a source's `api_url` would be: `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Pushes `image` as `octo-org/hello-world:v1.2.0`.
    pub async fn push(&self, image: &OciImage) {
        self.push_to(image, REPOSITORY, TAG).await;
    }

    /// Pushes `image` as `repository:tag`. `--preserve-digests` keeps the
    /// layers uncompressed, so the manifests keep their digests; an index
    /// is pushed whole (`--all`).
    pub async fn push_to(&self, image: &OciImage, repository: &str, tag: &str) {
        let mut command = Command::new("skopeo");
        command.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ]);
        if image.index_digest.is_some() {
            command.arg("--all");
        }
        if let Some(creds) = &self.creds {
            command.arg(format!("--dest-creds={creds}"));
        }
        let output = command
            .arg(format!("oci:{}:{TAG}", image.layout().display()))
            .arg(format!(
                "docker://127.0.0.1:{}/{repository}:{tag}",
                self.port
            ))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
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
    pub async fn wait_for(
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Filesystem storage; optionally one notification endpoint (blobs are
/// notified too, the default: portcall must not take them for images) and
/// token authentication.
fn registry_config(dir: &Path, port: u16, options: &RegistryOptions) -> String {
    let mut config = format!(
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
"#,
        storage = dir.join("storage").display(),
    );
    if let Some(endpoint) = &options.notify {
        config.push_str(&format!(
            r#"notifications:
  endpoints:
    - name: portcall
      url: {endpoint}
      headers:
        Authorization: [Bearer {REGISTRY_TOKEN}]
      timeout: 2s
      threshold: 5
      backoff: 1s
"#
        ));
    }
    if let Some((user, password)) = &options.basic_auth {
        let file = dir.join("htpasswd");
        let output = std::process::Command::new("htpasswd")
            .args(["-B", "-b", "-c"])
            .arg(&file)
            .args([user, password])
            .output()
            .expect("htpasswd runs (apt-get install apache2-utils)");
        assert!(output.status.success(), "htpasswd failed: {output:?}");
        config.push_str(&format!(
            r#"auth:
  htpasswd:
    realm: portcall-test
    path: {path}
"#,
            path = file.display(),
        ));
    }
    if let Some(token) = &options.token_auth {
        config.push_str(&format!(
            r#"auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
"#,
            realm = token.realm,
            service = token.service,
            issuer = token.issuer,
            bundle = token.root_cert_bundle.display(),
        ));
    }
    config
}

// ---------------------------------------------------------------------------
// The image.

/// One image manifest to build: its platform, the labels of its config and
/// the annotations of the manifest.
#[derive(Debug, Clone)]
pub struct ManifestSpec {
    pub os: String,
    pub architecture: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ManifestSpec {
    pub fn new(os: &str, architecture: &str) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64")
    }

    /// A label in the config's `config.Labels`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// An annotation on the manifest.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// The digests of one image manifest written by [`OciImage`].
#[derive(Debug, Clone)]
pub struct BuiltManifest {
    pub layer_digest: String,
    pub config_digest: String,
    pub manifest_digest: String,
}

/// An OCI image layout in a tempdir, tagged `v1.2.0`: one image manifest,
/// or an image index over several. Each manifest has one uncompressed layer
/// holding one file whose contents are new on every build, so neither the
/// registry nor skopeo's blob cache has seen it.
pub struct OciImage {
    dir: tempfile::TempDir,
    /// In the order given.
    pub manifests: Vec<BuiltManifest>,
    /// Set when the tag names an image index.
    pub index_digest: Option<String>,
}

impl OciImage {
    /// A linux/amd64 image whose config is labelled with [`REVISION`] and
    /// [`SOURCE_URL`].
    pub fn build() -> Self {
        Self::with_labels(&[(REVISION_LABEL, REVISION), (SOURCE_LABEL, SOURCE_URL)])
    }

    /// A linux/amd64 image whose config carries exactly these labels.
    pub fn with_labels(labels: &[(&str, &str)]) -> Self {
        let spec = labels
            .iter()
            .fold(ManifestSpec::linux_amd64(), |spec, (k, v)| spec.label(k, v));
        Self::single(spec)
    }

    /// One image manifest, as `spec` says.
    pub fn single(spec: ManifestSpec) -> Self {
        let mut layout = Layout::new();
        let manifest = layout.manifest(&spec);
        let digests = manifest.built.clone();
        layout.finish(manifest.descriptor);
        Self {
            dir: layout.dir,
            manifests: vec![digests],
            index_digest: None,
        }
    }

    /// An OCI image index over one manifest per spec (each entry with its
    /// platform), with `annotations` on the index.
    pub fn index(specs: &[ManifestSpec], annotations: &[(&str, &str)]) -> Self {
        let mut layout = Layout::new();
        let mut entries = Vec::new();
        let mut manifests = Vec::new();
        for spec in specs {
            let manifest = layout.manifest(spec);
            let mut entry = manifest.descriptor;
            entry["platform"] = json!({"os": spec.os, "architecture": spec.architecture});
            entries.push(entry);
            manifests.push(manifest.built);
        }
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let index = layout.blob(&to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
            "annotations": annotations,
        })));
        let index_digest = digest_of(&index);
        layout.finish(descriptor(OCI_INDEX, &index));
        Self {
            dir: layout.dir,
            manifests,
            index_digest: Some(index_digest),
        }
    }

    /// The digest the tag names: the index's, else the manifest's.
    pub fn digest(&self) -> &str {
        match &self.index_digest {
            Some(index) => index,
            None => &self.manifest().manifest_digest,
        }
    }

    /// The image manifest of a single-manifest image.
    pub fn manifest(&self) -> &BuiltManifest {
        assert!(self.index_digest.is_none(), "this image is an index");
        &self.manifests[0]
    }

    fn layout(&self) -> PathBuf {
        self.dir.path().join("layout")
    }
}

/// An OCI image layout being written.
struct Layout {
    dir: tempfile::TempDir,
}

struct WrittenManifest {
    descriptor: Value,
    built: BuiltManifest,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("layout/blobs/sha256")).unwrap();
        Self { dir }
    }

    /// Writes a blob; returns its digest and size.
    fn blob(&mut self, bytes: &[u8]) -> Value {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = self
            .dir
            .path()
            .join("layout/blobs/sha256")
            .join(&digest["sha256:".len()..]);
        std::fs::write(path, bytes).unwrap();
        json!({"digest": digest, "size": bytes.len()})
    }

    fn manifest(&mut self, spec: &ManifestSpec) -> WrittenManifest {
        let contents = format!("hello from portcall {}\n", uuid::Uuid::new_v4());
        let layer = self.blob(&tar_one_file("hello.txt", contents.as_bytes()));
        let config = self.blob(&to_vec(&json!({
            "architecture": spec.architecture,
            "os": spec.os,
            "config": {"Labels": spec.labels},
            // The layer is not compressed: its digest is its diff id.
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        })));
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": [descriptor(OCI_LAYER_TAR, &layer)],
        });
        if !spec.annotations.is_empty() {
            manifest["annotations"] = json!(spec.annotations);
        }
        let manifest = self.blob(&to_vec(&manifest));
        WrittenManifest {
            descriptor: descriptor(OCI_MANIFEST, &manifest),
            built: BuiltManifest {
                layer_digest: digest_of(&layer),
                config_digest: digest_of(&config),
                manifest_digest: digest_of(&manifest),
            },
        }
    }

    /// Writes `index.json`, tagging `tagged` as [`TAG`], and `oci-layout`.
    fn finish(&mut self, mut tagged: Value) {
        let layout = self.dir.path().join("layout");
        tagged["annotations"] = json!({"org.opencontainers.image.ref.name": TAG});
        let index = json!({"schemaVersion": 2, "manifests": [tagged]});
        std::fs::write(layout.join("index.json"), to_vec(&index)).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
    }
}

/// An OCI descriptor of a blob written by [`Layout::blob`].
fn descriptor(media_type: &str, blob: &Value) -> Value {
    json!({"mediaType": media_type, "digest": blob["digest"], "size": blob["size"]})
}

fn digest_of(blob: &Value) -> String {
    blob["digest"].as_str().unwrap().to_owned()
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
