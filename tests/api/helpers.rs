//! Spawning the real application on port 0 against a fresh database, and
//! signing requests the way each provider does.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use portcall::clock::Clock;
use portcall::config::Settings;
use portcall::startup::{Application, BuildOptions};
use portcall::store::deliveries::{self, DeliveryRecord, Status};
use portcall::store::Db;
use sha2::Sha256;
use sqlx::Connection as _;
use std::collections::HashMap;
use std::sync::Arc;

use portcall::telemetry::Metrics;
use portcall::worker::inbox::SourceInfo;
use portcall::worker::{EventHandler, InboxWorker, Recorder};
use tokio::sync::{oneshot, Notify};

/// The `portcall` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portcall");

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `portcall --config CONFIG`, ready for a subcommand: no `PORTCALL_CONFIG`
/// from the environment, `info` logs, no stdin, killed with the test.
pub fn portcall_command(config: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .env_remove("PORTCALL_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Posts the GitHub push fixture, signed, to a `portcall serve` on `port`.
pub async fn post_push(port: u16, delivery: &str) -> u16 {
    let body = fixture("github/push.json");
    let mut request =
        reqwest::Client::new().post(format!("http://127.0.0.1:{port}/webhooks/github"));
    for (name, value) in github_headers(GITHUB_SECRET, "push", delivery, &body) {
        request = request.header(name, value);
    }
    request.body(body).send().await.unwrap().status().as_u16()
}

/// A Distribution notification envelope: one push of `repository` at
/// `digest` tagged `tag`, as the `registry` source receives it.
pub fn distribution_push(repository: &str, digest: &str, tag: &str, event_id: &str) -> Vec<u8> {
    let envelope = serde_json::json!({"events": [{
        "id": event_id,
        "timestamp": "2026-12-01T10:00:00.000000000Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 594, "length": 594, "digest": digest,
            "repository": repository,
            "url": format!("http://127.0.0.1:5000/v2/{repository}/manifests/{digest}"),
            "tag": tag
        },
        "request": {"id": "r-1", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000",
                    "method": "PUT", "useragent": "skopeo/1.9.3"},
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "i-1"}
    }]});
    serde_json::to_vec(&envelope).unwrap()
}

/// The headers the `registry` source expects on a Distribution envelope.
pub fn distribution_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {REGISTRY_TOKEN}")),
        (
            "Content-Type",
            "application/vnd.docker.distribution.events.v1+json".into(),
        ),
    ]
}

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITHUB_PREVIOUS_SECRET: &str = "previous-github-secret";
pub const GITLAB_TOKEN: &str = "gitlab-hook-token";
pub const REGISTRY_TOKEN: &str = "registry-hook-token";
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The environment variable naming a PostgreSQL server for the tests; each
/// test creates its own database there.
pub const POSTGRES_ENV: &str = "PORTCALL_TEST_POSTGRES_URL";

pub fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// A fresh, empty database of one backend.
pub struct TestDb {
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("portcall.db").display());
        Self {
            url,
            _dir: dir,
            postgres: None,
        }
    }

    /// A SQLite database in `dir` (which the caller may have prepared, e.g.
    /// as a small filesystem of its own).
    pub fn sqlite_in(dir: tempfile::TempDir) -> Self {
        let url = format!("sqlite://{}", dir.path().join("portcall.db").display());
        Self {
            url,
            _dir: dir,
            postgres: None,
        }
    }

    /// A new database on the server named by [`POSTGRES_ENV`], or `None`
    /// (with a notice on the terminal) when it is not set.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to the terminal: the test harness captures println!.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nnote: {POSTGRES_ENV} is not set: the PostgreSQL variants of the tests are SKIPPED (SQLite only)\n"
                );
            });
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("portcall_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL test server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Some(Self {
            url: format!("{base}/{name}"),
            _dir: tempfile::tempdir().unwrap(),
            postgres: Some((admin_url, name)),
        })
    }

    /// Runs a statement on the server's maintenance database (PostgreSQL).
    pub async fn admin(&self, sql: &str) {
        let (admin_url, _) = self.postgres.as_ref().expect("a PostgreSQL test database");
        let mut conn = sqlx::AnyConnection::connect(admin_url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }

    /// A PostgreSQL outage as the app sees it: the test database refuses
    /// new connections and every open one is cut.
    pub async fn refuse_connections(&self) {
        let name = self.postgres_name().expect("a PostgreSQL test database");
        self.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .await;
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
    }

    /// Ends [`Self::refuse_connections`].
    pub async fn allow_connections(&self) {
        let name = self.postgres_name().expect("a PostgreSQL test database");
        self.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .await;
    }

    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres.as_ref().map(|(_, name)| name.as_str())
    }

    /// Drops a PostgreSQL test database; SQLite files go with the tempdir.
    pub async fn drop_database(&self) {
        if let Some((_, name)) = &self.postgres {
            self.admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Addresses the fixed sections of the test configuration may carry; `extra`
/// TOML cannot add keys to tables `write_config` already wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigUrls<'a> {
    /// `server.public_url`: links in statuses, check runs and comments.
    pub public_url: Option<&'a str>,
    /// The `registry` source's `api_url`: where image labels are read.
    pub registry_api_url: Option<&'a str>,
}

/// Builds the test configuration: every source kind, secrets as `file:`
/// references written into `dir`, plus `extra` TOML appended.
pub fn write_config(
    dir: &std::path::Path,
    database_url: &str,
    worker_enabled: bool,
    dispatcher_enabled: bool,
    extra: &str,
) -> PathBuf {
    write_config_with(
        dir,
        database_url,
        worker_enabled,
        dispatcher_enabled,
        extra,
        ConfigUrls::default(),
    )
}

/// [`write_config`] with the addresses in `urls`.
pub fn write_config_with(
    dir: &std::path::Path,
    database_url: &str,
    worker_enabled: bool,
    dispatcher_enabled: bool,
    extra: &str,
    urls: ConfigUrls<'_>,
) -> PathBuf {
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        format!("file:{}", path.display())
    };
    let line = |key: &str, value: Option<&str>| {
        value.map_or_else(String::new, |v| format!("{key} = \"{v}\"\n"))
    };
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
client_timeout_secs = 5
{public_url}

[admin]
token = "{admin}"

[database]
url = "{database_url}"
acquire_timeout_secs = 1.0

[worker]
enabled = {worker_enabled}
poll_interval_ms = 50
lease_secs = 5
max_attempts = 3

[dispatcher]
enabled = {dispatcher_enabled}
poll_interval_ms = 50
lease_secs = 5
max_attempts = 4
backoff_base_ms = 200
backoff_max_secs = 2

[[sources]]
name = "github"
kind = "github"
secrets = ["{gh}", "{gh_prev}"]

[[sources]]
name = "gitlab"
kind = "gitlab"
secrets = ["{gl}", "{gl_signing}"]

[[sources]]
name = "registry"
kind = "distribution"
secrets = ["{reg}"]
registry = "registry.example.com"
{registry_api_url}
[[sources]]
name = "ci"
kind = "standard"
secrets = ["{std}"]

[[components]]
name = "hello-world"
image = "registry.example.com/octo-org/hello-world"
repository = "github:octo-org/hello-world"
release_tags = ["v*"]
{extra}
"#,
        gh = secret("gh", GITHUB_SECRET),
        gh_prev = secret("gh_prev", GITHUB_PREVIOUS_SECRET),
        gl = secret("gl", GITLAB_TOKEN),
        gl_signing = secret("gl_signing", STANDARD_SECRET),
        reg = secret("reg", REGISTRY_TOKEN),
        std = secret("std", STANDARD_SECRET),
        admin = secret("admin", ADMIN_TOKEN),
        public_url = line("public_url", urls.public_url),
        registry_api_url = line("api_url", urls.registry_api_url),
    );
    let path = dir.join("portcall.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A running portcall on a random port.
pub struct TestApp {
    pub address: String,
    pub settings_path: PathBuf,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub store: Db,
    /// Missed-delivery recovery, when `[github]` is configured: tests run
    /// rounds with `run_once` (with `recovery = false`, none run by themselves).
    pub recovery: Option<std::sync::Arc<portcall::worker::recovery::Recovery>>,
    /// Keeps the configuration and secret files alive.
    _config_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct Spawn {
    pub extra_config: String,
    pub clock: Clock,
    /// `false` makes an ingest-only app: it stores but never processes.
    pub worker: bool,
    /// `false` leaves outbox jobs pending.
    pub dispatcher: bool,
    /// `server.public_url`; unset by default (statuses carry no link).
    pub public_url: Option<String>,
    /// The `registry` source's `api_url`; unset by default (no labels are
    /// read, the source commit comes from the tag).
    pub registry_api_url: Option<String>,
}

impl Default for Spawn {
    fn default() -> Self {
        Self {
            extra_config: String::new(),
            clock: Clock::system(),
            worker: true,
            dispatcher: true,
            public_url: None,
            registry_api_url: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> Self {
        Self::spawn_with(db, Spawn::default()).await
    }

    pub async fn spawn_with(db: TestDb, options: Spawn) -> Self {
        let config_dir = tempfile::tempdir().unwrap();
        let path = write_config_with(
            config_dir.path(),
            &db.url,
            options.worker,
            options.worker && options.dispatcher,
            &options.extra_config,
            ConfigUrls {
                public_url: options.public_url.as_deref(),
                registry_api_url: options.registry_api_url.as_deref(),
            },
        );
        let settings = Settings::load(Some(&path)).expect("test configuration is valid");
        let path = path.clone();
        let store = Db::connect(&settings.database).await.unwrap();
        let app = Application::build_with(
            settings,
            BuildOptions {
                clock: options.clock,
                ..BuildOptions::default()
            },
        )
        .await
        .expect("application builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let recovery = app.recovery();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            address,
            settings_path: path,
            client: reqwest::Client::new(),
            db,
            store,
            recovery,
            _config_dir: config_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts the application down gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the app and hands back its database, for a restart.
    pub async fn into_db(mut self) -> TestDb {
        self.stop().await;
        self.store.close().await;
        self.db
    }

    /// Stops the app and removes its database.
    pub async fn finish(mut self) {
        self.stop().await;
        self.store.close().await;
        self.db.drop_database().await;
    }

    /// A worker over this app's database and sources, driven by the test
    /// one round at a time with `run_once`.
    pub fn manual_worker(&self) -> InboxWorker {
        self.manual_worker_with(Arc::new(Recorder))
    }

    /// [`Self::manual_worker`] with a handler of the test's choosing.
    pub fn manual_worker_with(&self, handler: Arc<dyn EventHandler>) -> InboxWorker {
        let settings = Settings::load(Some(&self.settings_path)).unwrap();
        let sources: HashMap<String, SourceInfo> = settings
            .sources
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    SourceInfo {
                        kind: s.kind,
                        registry: s.registry.clone(),
                    },
                )
            })
            .collect();
        InboxWorker::new(
            self.store.clone(),
            sources,
            handler,
            settings.worker,
            Metrics::new(),
            Arc::new(Notify::new()),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_webhook(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(&format!("/webhooks/{source}")));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await.expect("request sent")
    }

    pub async fn post_github(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        self.post_webhook(
            "github",
            &github_headers(GITHUB_SECRET, event, delivery, body),
            body.to_vec(),
        )
        .await
    }

    /// `GET` an `/api/v1` path with the admin token; the JSON answer.
    pub async fn get_api(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// `POST` to an `/api/v1` path with the admin token; the JSON answer.
    pub async fn post_api(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Posts a Distribution notification of one manifest push, as the
    /// registry sends it.
    pub async fn post_image_push(
        &self,
        event_id: &str,
        repository: &str,
        tag: &str,
        digest: &str,
    ) -> reqwest::Response {
        self.post_webhook(
            "registry",
            &distribution_headers(),
            distribution_push(repository, digest, tag, event_id),
        )
        .await
    }

    /// Waits until no delivery and no job is pending, up to `secs` seconds;
    /// returns the jobs.
    pub async fn wait_until_settled(&self, secs: u64) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            // Deliveries first: a delivery's jobs are committed before it
            // is marked done, so this order never misses them.
            let deliveries_done = self
                .deliveries()
                .await
                .iter()
                .all(|d| d.status != Status::Pending);
            let (_, answer) = self.get_api("/api/v1/jobs?limit=500").await;
            let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
            if deliveries_done && jobs.iter().all(|j| j["state"] != "pending") {
                return jobs;
            }
            if std::time::Instant::now() > deadline {
                panic!("not settled after {secs} s: {jobs:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A separate connection pool on the app's database, for tests that
    /// inspect or adjust rows directly.
    pub async fn sql(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.db.url).await.unwrap()
    }

    /// The body of a stored delivery, decoded to the bytes received.
    pub async fn received_body(&self, source: &str, delivery_id: &str) -> Vec<u8> {
        deliveries::received_body(&self.store, source, delivery_id)
            .await
            .unwrap()
            .expect("the delivery is stored")
    }

    pub async fn deliveries(&self) -> Vec<DeliveryRecord> {
        deliveries::all(&self.store).await.unwrap()
    }

    /// Waits until no delivery is pending (the worker runs in the
    /// background), up to ten seconds.
    pub async fn wait_until_processed(&self) -> Vec<DeliveryRecord> {
        for _ in 0..200 {
            let rows = self.deliveries().await;
            if rows.iter().all(|d| d.status != Status::Pending) {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "deliveries still pending after 10 s: {:#?}",
            self.deliveries().await
        );
    }
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
    )
}

pub fn github_headers(
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("X-Hub-Signature-256", github_signature(secret, body)),
        ("X-GitHub-Event", event.into()),
        ("X-GitHub-Delivery", delivery.into()),
        ("Content-Type", "application/json".into()),
        ("User-Agent", "GitHub-Hookshot/044aadd".into()),
    ]
}

pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mac = hmac_sha256(
        &key,
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

pub fn standard_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.into()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            standard_signature(secret, id, timestamp, body),
        ),
        ("Content-Type", "application/json".into()),
    ]
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a test body once per backend: `sqlite` always, `postgres` when
/// [`POSTGRES_ENV`] is set. The test's name reads as a sentence.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($db: $crate::helpers::TestDb) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::helpers::TestDb::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::helpers::TestDb::postgres().await {
                        run(db).await;
                    }
                }
            }
        )*
    };
}

/// Waits until a `portcall serve` started as a process answers
/// `GET /healthz` on `port`; panics after 10 s.
pub async fn wait_until_serving(port: u16) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("portcall did not start within 10 s");
}

/// `GET path` with the admin token from a `portcall serve` on `port`.
pub async fn admin_get(
    client: &reqwest::Client,
    port: u16,
    path: &str,
) -> (u16, serde_json::Value) {
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Every job, following the API's pages.
pub async fn all_jobs(client: &reqwest::Client, port: u16) -> Vec<serde_json::Value> {
    let mut jobs = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let page = match before {
            Some(id) => format!("/api/v1/jobs?limit=200&before={id}"),
            None => "/api/v1/jobs?limit=200".to_owned(),
        };
        let (status, answer) = admin_get(client, port, &page).await;
        assert_eq!(status, 200, "{answer}");
        let rows = answer["jobs"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return jobs;
        }
        before = rows.last().and_then(|j| j["id"].as_i64());
        jobs.extend(rows);
    }
}
