//! Reading what a pushed image says about its source, from the registry's
//! v2 API.
//!
//! A registry notification names an image by repository and digest; the
//! source commit is in the image itself, as the OCI annotations
//! `org.opencontainers.image.revision` and `org.opencontainers.image.source`
//! (on the manifest or the image index) or as labels of the same names in
//! the image config (what `docker build --label` and most CI templates
//! write). [`RegistryReader::image_source`] reads them:
//!
//! 1. the manifest by digest, from the host of the source's `api_url` (not
//!    the canonical host in image names, which may be a load balancer or
//!    CDN name the worker cannot reach);
//! 2. for an image index (or Docker manifest list), the `linux/amd64`
//!    manifest, else the first one that is not a build attestation;
//! 3. the config blob, unless the annotations already said everything.
//!
//! This is outbound work: the background worker calls it, never a webhook
//! request, and the job dispatcher owns the one retry policy. Every failure
//! is therefore a [`RegistryError`] that says whether trying again can help.
//!
//! Authentication is oci-client's: it asks `GET /v2/`, follows a
//! `WWW-Authenticate: Bearer realm=…,service=…` challenge to the token
//! service (sending the configured credentials there, with a `pull` scope
//! for the repository), or falls back to HTTP Basic when the registry asks
//! for that. The password is held by the client and never written into an
//! error message or a log line.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    ImageIndexEntry, OciImageIndex, OciImageManifest, OciManifest, IMAGE_CONFIG_MEDIA_TYPE,
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::Digest;
use crate::ingest::RegistryApi;

mod probe;

/// The OCI annotation (and label) naming the source commit.
pub const REVISION_KEY: &str = "org.opencontainers.image.revision";
/// The OCI annotation (and label) naming the source repository's URL.
pub const SOURCE_KEY: &str = "org.opencontainers.image.source";

/// How long connecting to the registry (or its token service) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the registry may stay silent while answering.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one [`RegistryReader::image_source`] may take in all, so a
/// registry that trickles bytes cannot hold a worker forever.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
/// What portcall calls itself to registries.
const USER_AGENT: &str = concat!("portcall/", env!("CARGO_PKG_VERSION"));
/// The largest image config read. Configs are a few KiB; a long build
/// history makes them tens of KiB.
const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// What an image says about where it was built from. Neither value is
/// checked here: the caller decides whether the revision is a commit sha and
/// whether the source matches the component's repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSource {
    /// `org.opencontainers.image.revision`, trimmed.
    pub revision: Option<String>,
    /// `org.opencontainers.image.source`, trimmed.
    pub source: Option<String>,
}

/// Why an image could not be read, and whether trying again can help.
/// Messages name the step and the registry's answer; never the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A connection failure, a timeout, a 5xx, a 429: try again later.
    #[error("{0}")]
    Transient(String),
    /// A 404 (manifest or blob unknown), a 401/403 after authenticating, a
    /// malformed manifest or config, a misconfigured `api_url`: trying again
    /// cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl RegistryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Transient(_))
    }
}

/// Reads manifests and configs from one registry, as one `[[sources]]`
/// entry's `api_url` and read credentials describe it. Cheap to share: hold
/// one per source and call it from any task.
pub struct RegistryReader {
    client: Client,
    /// `host[:port]` of `api_url`: what oci-client addresses.
    host: String,
    /// `api_url` itself (`http(s)://host[:port]`), for the health check's
    /// plain requests.
    base_url: String,
    /// The health check's HTTP client (see [`probe`]).
    http: reqwest_oci::Client,
    auth: RegistryAuth,
    /// Kept only to scrub it out of error messages, in case a registry or
    /// token service echoes it back.
    password: Option<SecretString>,
}

impl fmt::Debug for RegistryReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryReader")
            .field("host", &self.host)
            // RegistryAuth's Debug shows the username, never the password.
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl RegistryReader {
    /// A reader for `api`: `http://host[:port]` or `https://host[:port]`
    /// (no path: the v2 API lives at the root), with Basic credentials when
    /// both a username and a password are configured, else anonymous.
    pub fn new(api: &RegistryApi) -> Result<Self, RegistryError> {
        let (protocol, host) = split_api_url(&api.url)?;
        let auth = match (&api.username, &api.password) {
            (Some(user), Some(password)) => RegistryAuth::Basic(
                user.expose_secret().to_owned(),
                password.expose_secret().to_owned(),
            ),
            _ => RegistryAuth::Anonymous,
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            // Indexes are followed here, not by oci-client, so that the
            // index's own annotations are seen too.
            platform_resolver: None,
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        // `Client::new` would fall back to a default (https) client on error.
        let client = Client::try_from(config).map_err(|e| {
            RegistryError::Permanent(format!("cannot build a client for {host}: {e}"))
        })?;
        let http = reqwest_oci::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(READ_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| {
                RegistryError::Permanent(format!("cannot build a client for {host}: {e}"))
            })?;
        Ok(Self {
            client,
            base_url: api.url.trim_end_matches('/').to_owned(),
            http,
            host,
            auth,
            password: api.password.clone(),
        })
    }

    /// Reads the revision and source of the image `repository@digest`
    /// (e.g. `octo-org/hello-world`, the path without the registry host).
    ///
    /// Each value is the first non-empty one of, in order: the image
    /// manifest's annotations, the index entry's annotations and the image
    /// index's annotations (when `digest` names an index), then the config's
    /// `config.Labels`.
    #[tracing::instrument(
        name = "registry.image_source",
        skip_all,
        fields(registry.host = %self.host, image.repository = repository, image.digest = %digest)
    )]
    pub async fn image_source(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<ImageSource, RegistryError> {
        let reference =
            Reference::with_digest(self.host.clone(), repository.to_owned(), digest.to_string());
        match tokio::time::timeout(TOTAL_TIMEOUT, self.read(&reference)).await {
            Ok(result) => result,
            Err(_) => Err(RegistryError::Transient(format!(
                "reading {repository}@{digest} from {} took over {TOTAL_TIMEOUT:?}",
                self.host
            ))),
        }
    }

    /// The digest the tag `repository:tag` names now, from a `HEAD` of the
    /// manifest (oci-client sends the manifest media types as `Accept`, and
    /// does the token handshake first). A push whose payload named no digest
    /// (Quay, Docker Hub, Nexus) is resolved with this.
    #[tracing::instrument(
        name = "registry.resolve_tag",
        skip_all,
        fields(registry.host = %self.host, image.repository = repository, image.tag = %tag)
    )]
    pub async fn resolve_tag(
        &self,
        repository: &str,
        tag: &crate::domain::Tag,
    ) -> Result<Digest, RegistryError> {
        let reference =
            Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_string());
        let read = async {
            self.client
                .auth(&reference, &self.auth, RegistryOperation::Pull)
                .await
                .map_err(|e| self.error("authenticating", e))?;
            self.client
                .fetch_manifest_digest(&reference, &self.auth)
                .await
                .map_err(|e| self.error("resolving the tag", e))
        };
        let digest = match tokio::time::timeout(TOTAL_TIMEOUT, read).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RegistryError::Transient(format!(
                    "resolving {repository}:{tag} at {} took over {TOTAL_TIMEOUT:?}",
                    self.host
                )))
            }
        };
        Digest::parse(&digest).map_err(|e| {
            RegistryError::Permanent(format!(
                "the registry answered {repository}:{tag} with an invalid digest: {e}"
            ))
        })
    }

    async fn read(&self, reference: &Reference) -> Result<ImageSource, RegistryError> {
        // Authenticate first and explicitly: oci-client would otherwise do it
        // lazily and swallow a failure (an unreachable token service, refused
        // credentials), leaving only the registry's bare 401 to report.
        self.client
            .auth(reference, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.error("authenticating", e))?;

        let (manifest, _) = self
            .client
            .pull_manifest(reference, &self.auth)
            .await
            .map_err(|e| self.error("reading the manifest", e))?;
        let (image, entry, index) = match manifest {
            OciManifest::Image(image) => (image, None, None),
            OciManifest::ImageIndex(index) => {
                let entry = pick_manifest(&index)
                    .ok_or_else(|| {
                        RegistryError::Permanent("the image index lists no manifests".into())
                    })?
                    .clone();
                tracing::debug!(manifest.digest = %entry.digest, "following the image index");
                let image = self.pull_image_manifest(reference, &entry.digest).await?;
                (image, Some(entry), Some(index))
            }
        };

        let mut found = ImageSource::default();
        for annotations in [
            image.annotations.as_ref(),
            entry.as_ref().and_then(|e| e.annotations.as_ref()),
            index.as_ref().and_then(|i| i.annotations.as_ref()),
        ] {
            found.fill_from(annotations);
        }
        if found.revision.is_none() || found.source.is_none() {
            if let Some(labels) = self.config_labels(reference, &image).await? {
                found.fill_from(Some(&labels));
            }
        }
        Ok(found)
    }

    /// The image manifest an index entry points at; an index inside an
    /// index is refused rather than followed further.
    async fn pull_image_manifest(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<OciImageManifest, RegistryError> {
        let child = reference.clone_with_digest(digest.to_owned());
        let (manifest, _) = self
            .client
            .pull_manifest(&child, &self.auth)
            .await
            .map_err(|e| self.error("reading the platform manifest", e))?;
        match manifest {
            OciManifest::Image(image) => Ok(image),
            OciManifest::ImageIndex(_) => Err(RegistryError::Permanent(format!(
                "the image index entry {digest} is itself an index"
            ))),
        }
    }

    /// The config's `config.Labels`, when the config is an image config
    /// (an artifact's config, e.g. a Helm chart's, has no labels).
    async fn config_labels(
        &self,
        reference: &Reference,
        image: &OciImageManifest,
    ) -> Result<Option<BTreeMap<String, String>>, RegistryError> {
        let descriptor = &image.config;
        if ![IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_CONFIG_MEDIA_TYPE]
            .contains(&descriptor.media_type.as_str())
        {
            tracing::debug!(config.media_type = %descriptor.media_type, "not an image config");
            return Ok(None);
        }
        if usize::try_from(descriptor.size).map_or(true, |size| size > MAX_CONFIG_BYTES) {
            return Err(RegistryError::Permanent(format!(
                "the config blob's size {} is not between 0 and {MAX_CONFIG_BYTES} bytes",
                descriptor.size
            )));
        }
        let mut out = CappedBuffer::default();
        self.client
            .pull_blob(reference, descriptor, &mut out)
            .await
            .map_err(|e| self.error("reading the config blob", e))?;
        config_labels(&out.bytes).map(Some)
    }

    /// Classifies an oci-client error and words it, without the password.
    fn error(&self, step: &str, error: OciDistributionError) -> RegistryError {
        let transient = is_transient(&error);
        let message = self.scrub(format!("{step} at {}: {}", self.host, error_chain(&error)));
        if transient {
            RegistryError::Transient(message)
        } else {
            RegistryError::Permanent(message)
        }
    }

    /// `message` without the password, in case a registry or token service
    /// echoed it back.
    fn scrub(&self, mut message: String) -> String {
        if let Some(password) = &self.password {
            let password = password.expose_secret();
            if !password.is_empty() {
                message = message.replace(password, "[REDACTED]");
            }
        }
        message
    }
}

/// `http://host[:port]` → (`Http`, `host[:port]`); the same for https.
fn split_api_url(url: &str) -> Result<(ClientProtocol, String), RegistryError> {
    let (protocol, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (ClientProtocol::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (ClientProtocol::Http, rest)
    } else {
        return Err(RegistryError::Permanent(format!(
            "api_url {url:?} is not an http:// or https:// URL"
        )));
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok((protocol, host.to_owned()))
    } else {
        // Never echo it: a URL with user info may hold a password.
        Err(RegistryError::Permanent(
            "api_url must be http(s)://host[:port], without a path, query or user info".into(),
        ))
    }
}

/// The manifest to read in an index: the first `linux/amd64` entry, else
/// the first entry that is not a build attestation (BuildKit lists those
/// as `unknown/unknown` entries), else the first entry.
fn pick_manifest(index: &OciImageIndex) -> Option<&ImageIndexEntry> {
    let entries = &index.manifests;
    let is_linux_amd64 = |entry: &&ImageIndexEntry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os.to_string() == "linux" && p.architecture.to_string() == "amd64")
    };
    let is_attestation = |entry: &&ImageIndexEntry| {
        entry
            .annotations
            .as_ref()
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .is_some_and(|kind| kind == "attestation-manifest")
    };
    entries
        .iter()
        .find(is_linux_amd64)
        .or_else(|| entries.iter().find(|e| !is_attestation(e)))
        .or_else(|| entries.first())
}

impl ImageSource {
    /// Takes from `values` whatever is still missing; blank values count as
    /// missing.
    fn fill_from(&mut self, values: Option<&BTreeMap<String, String>>) {
        let Some(values) = values else { return };
        let get = |key: &str| {
            values
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if self.revision.is_none() {
            self.revision = get(REVISION_KEY);
        }
        if self.source.is_none() {
            self.source = get(SOURCE_KEY);
        }
    }
}

/// The labels of an image config (`{"config": {"Labels": {…}}}`); either
/// level may be missing or null.
fn config_labels(json: &[u8]) -> Result<BTreeMap<String, String>, RegistryError> {
    #[derive(Deserialize)]
    struct ImageConfig {
        config: Option<ContainerConfig>,
    }
    #[derive(Deserialize)]
    struct ContainerConfig {
        #[serde(rename = "Labels")]
        labels: Option<BTreeMap<String, String>>,
    }
    let config: ImageConfig = serde_json::from_slice(json).map_err(|e| {
        RegistryError::Permanent(format!("the config blob is not an image config: {e}"))
    })?;
    Ok(config.config.and_then(|c| c.labels).unwrap_or_default())
}

/// Whether trying again can help. oci-client folds a 4xx answer with an
/// OCI error body into `RegistryError` (status lost, codes kept) and any
/// other non-2xx answer into `ServerError` (status kept).
fn is_transient(error: &OciDistributionError) -> bool {
    use OciDistributionError as E;
    match error {
        // Connecting, timing out, a connection cut while reading. A builder
        // error is a URL oci-client could not form, a redirect error a loop:
        // neither goes away.
        E::RequestError(e) => !(e.is_builder() || e.is_redirect()),
        E::ServerError { code, .. } => *code >= 500 || *code == 429 || *code == 408,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        // Only the config buffer writes, and it refuses oversized blobs.
        E::IoError(e) => e.kind() != io::ErrorKind::FileTooLarge,
        // 401 after authenticating, a token service refusing the
        // credentials, undecodable tokens, malformed or unexpected manifests,
        // digest mismatches, spec violations.
        _ => false,
    }
}

/// An error and its sources, `: `-separated, cut to a readable length (a
/// registry's error page may be a whole HTML document).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    const MAX_CHARS: usize = 500;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // reqwest's and hyper's messages often repeat their source's.
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    if text.chars().count() > MAX_CHARS {
        text = text.chars().take(MAX_CHARS).collect::<String>() + "…";
    }
    text
}

/// An in-memory sink for a blob that refuses to grow past
/// [`MAX_CONFIG_BYTES`], whatever size the registry announced.
#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
}

impl tokio::io::AsyncWrite for CappedBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() + data.len() > MAX_CONFIG_BYTES {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("the config blob is larger than {MAX_CONFIG_BYTES} bytes"),
            )));
        }
        this.bytes.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(json: &str) -> OciImageIndex {
        serde_json::from_str(json).expect("a valid index")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

    fn entry(digest_byte: char, platform: &str, extra: &str) -> String {
        let (os, arch) = platform.split_once('/').unwrap();
        format!(
            r#"{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:{}", "size": 500,
                "platform": {{"os": "{os}", "architecture": "{arch}"}}{extra}}}"#,
            digest_byte.to_string().repeat(64)
        )
    }

    fn picked(entries: &[String]) -> Option<char> {
        let json = format!(
            r#"{{"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{}]}}"#,
            entries.join(",")
        );
        pick_manifest(&index(&json)).map(|e| e.digest.chars().last().unwrap())
    }

    #[test]
    fn an_index_is_read_through_its_linux_amd64_entry() {
        let entries = [
            entry('a', "linux/arm64", r#", "variant": "v8""#),
            entry('b', "windows/amd64", ""),
            entry('c', "linux/amd64", ""),
            entry('d', "linux/amd64", r#", "variant": "v3""#),
        ];
        assert_eq!(picked(&entries), Some('c'));
    }

    #[test]
    fn without_linux_amd64_the_first_entry_that_is_not_an_attestation_is_read() {
        let attestation =
            r#", "annotations": {"vnd.docker.reference.type": "attestation-manifest"}"#;
        let entries = [
            entry('a', "unknown/unknown", attestation),
            entry('b', "linux/arm64", ""),
            entry('c', "linux/s390x", ""),
        ];
        assert_eq!(picked(&entries), Some('b'));
        assert_eq!(
            picked(&[entry('a', "unknown/unknown", attestation)]),
            Some('a')
        );
        assert_eq!(picked(&[]), None);
    }

    #[test]
    fn a_docker_manifest_list_without_platforms_is_read_through_its_first_entry() {
        let list = index(
            r#"{"schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [
                  {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                   "size": 1},
                  {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                   "size": 1}]}"#,
        );
        assert!(pick_manifest(&list).unwrap().digest.ends_with("1111"));
    }

    #[test]
    fn annotations_win_over_labels_field_by_field() {
        let manifest: OciImageManifest = serde_json::from_str(&format!(
            r#"{{"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {{"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": "sha256:{z}", "size": 2}},
                "layers": [],
                "annotations": {{"{REVISION_KEY}": "  {SHA}\n"}}}}"#,
            z = "0".repeat(64)
        ))
        .unwrap();
        let labels = config_labels(
            br#"{"architecture": "amd64", "os": "linux",
                 "config": {"Env": ["PATH=/bin"], "Labels": {
                    "org.opencontainers.image.revision": "0000000000000000000000000000000000000000",
                    "org.opencontainers.image.source": "https://github.com/octo-org/hello-world"}},
                 "rootfs": {"type": "layers", "diff_ids": []}}"#,
        )
        .unwrap();

        let mut found = ImageSource::default();
        found.fill_from(manifest.annotations.as_ref());
        found.fill_from(Some(&labels));
        assert_eq!(
            found,
            ImageSource {
                revision: Some(SHA.to_owned()),
                source: Some("https://github.com/octo-org/hello-world".to_owned()),
            }
        );
    }

    #[test]
    fn blank_values_are_missing_and_later_places_fill_them() {
        let mut found = ImageSource::default();
        found.fill_from(Some(&map(&[(REVISION_KEY, "   "), (SOURCE_KEY, "")])));
        assert_eq!(found, ImageSource::default());
        found.fill_from(None);
        found.fill_from(Some(&map(&[(REVISION_KEY, "not-a-sha")])));
        found.fill_from(Some(&map(&[(REVISION_KEY, SHA), (SOURCE_KEY, " x ")])));
        assert_eq!(
            found,
            ImageSource {
                // Not validated here: the caller decides what a revision is.
                revision: Some("not-a-sha".to_owned()),
                source: Some("x".to_owned()),
            }
        );
    }

    #[test]
    fn configs_without_labels_have_none_and_malformed_ones_are_permanent_errors() {
        for json in [
            r#"{}"#,
            r#"{"config": null}"#,
            r#"{"config": {}}"#,
            r#"{"config": {"Labels": null}}"#,
        ] {
            assert_eq!(
                config_labels(json.as_bytes()),
                Ok(BTreeMap::new()),
                "{json}"
            );
        }
        for json in ["", "[]", r#"{"config": {"Labels": {"a": 1}}}"#, "not json"] {
            let error = config_labels(json.as_bytes()).unwrap_err();
            assert!(!error.is_transient(), "{json}: {error}");
        }
    }

    #[test]
    fn api_urls_give_the_protocol_and_the_host_to_address() {
        let cases = [
            (
                "http://127.0.0.1:5000",
                ClientProtocol::Http,
                "127.0.0.1:5000",
            ),
            (
                "https://registry.example.com",
                ClientProtocol::Https,
                "registry.example.com",
            ),
            ("https://[::1]:5000/", ClientProtocol::Https, "[::1]:5000"),
        ];
        for (url, protocol, host) in cases {
            assert_eq!(split_api_url(url), Ok((protocol, host.to_owned())), "{url}");
        }
        for bad in [
            "ftp://registry.example.com",
            "registry.example.com",
            "https://",
            "https://registry.example.com/v2",
            "https://user:hunter2@registry.example.com",
            "https://registry.example.com?x=1",
        ] {
            let error = split_api_url(bad).unwrap_err();
            assert!(!error.is_transient(), "{bad}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    fn envelope(code: &str) -> oci_client::errors::OciEnvelope {
        serde_json::from_str(&format!(
            r#"{{"errors": [{{"code": "{code}", "message": "m"}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn server_trouble_is_transient_and_refusals_are_permanent() {
        use OciDistributionError as E;
        let server = |code| E::ServerError {
            code,
            url: "http://r/v2/".into(),
            message: String::new(),
        };
        let registry = |code| E::RegistryError {
            envelope: envelope(code),
            url: "http://r/v2/".into(),
        };
        let transient = [
            server(500),
            server(502),
            server(503),
            server(429),
            server(408),
            registry("TOOMANYREQUESTS"),
            E::IoError(io::Error::from(io::ErrorKind::ConnectionReset)),
        ];
        for error in transient {
            assert!(is_transient(&error), "{error}");
        }
        let permanent = [
            server(404),
            server(403),
            server(400),
            registry("MANIFEST_UNKNOWN"),
            registry("NAME_UNKNOWN"),
            registry("DENIED"),
            registry("UNAUTHORIZED"),
            E::UnauthorizedError {
                url: "http://r/v2/".into(),
            },
            E::AuthenticationFailure("bad credentials".into()),
            E::ManifestParsingError("expected value".into()),
            E::UnsupportedSchemaVersionError(1),
            E::IoError(io::Error::from(io::ErrorKind::FileTooLarge)),
        ];
        for error in permanent {
            assert!(!is_transient(&error), "{error}");
        }
    }

    #[test]
    fn error_messages_never_show_the_password_and_debug_hides_it() {
        let reader = RegistryReader::new(&RegistryApi {
            url: "https://registry.example.com".into(),
            username: Some(SecretString::from("reader")),
            password: Some(SecretString::from("hunter2")),
        })
        .unwrap();
        let error = reader.error(
            "authenticating",
            OciDistributionError::AuthenticationFailure(
                "invalid credentials reader:hunter2".into(),
            ),
        );
        assert_eq!(
            error,
            RegistryError::Permanent(
                "authenticating at registry.example.com: Authentication failure: \
                 invalid credentials reader:[REDACTED]"
                    .into()
            )
        );
        let debug = format!("{reader:?}");
        assert!(
            debug.contains("reader") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn long_answers_are_cut_in_messages() {
        let error = OciDistributionError::ServerError {
            code: 502,
            url: "http://r/v2/".into(),
            message: "<html>".repeat(1000),
        };
        assert!(error_chain(&error).chars().count() <= 501);
    }
}
