//! Configuration: defaults in code, then one TOML file, then environment
//! variables `PORTCALL__SECTION__KEY`.
//!
//! Loading happens in two steps. [`RawSettings`] is what serde reads, with
//! secrets still as references; [`Settings::from_raw`] then checks every
//! field and resolves every secret, collecting *all* problems so that
//! `portcall check-config` can list them at once. A secret is always a
//! reference (`env:NAME` or `file:/path`); a literal is refused, and the
//! refusal never repeats the value.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::{Component, Components, RepoSlug};
use crate::ingest::{HookSecret, RegistryApi, Source, SourceKind};

pub mod catalog;

/// Prefix of environment variables that override file settings.
pub const ENV_PREFIX: &str = "PORTCALL__";

/// The validated, resolved configuration of one portcall process.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub admin: AdminSettings,
    pub worker: WorkerSettings,
    pub dispatcher: DispatcherSettings,
    pub sources: Vec<Source>,
    pub github: Option<GithubSettings>,
    pub gitlab: Option<GitlabSettings>,
    pub components: Components,
    pub integrations: IntegrationSettings,
    pub setup: SetupSettings,
    pub dashboard: DashboardSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Base URL for links in statuses and comments.
    pub public_url: Option<String>,
    /// Largest webhook body accepted; larger ones get 413 while still reading.
    pub max_body_bytes: usize,
    /// How long a client may take to send its headers and body.
    pub client_timeout: Duration,
    /// Most concurrent connections per worker thread.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads.
    pub workers: usize,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// How long a query waits for a connection or a lock before failing,
    /// after which webhooks answer 503 and senders retry.
    pub acquire_timeout: Duration,
    /// `database.group_commit_max`: most webhook requests committed in one
    /// transaction; 1 commits each request alone.
    pub group_commit_max: usize,
}

#[derive(Debug)]
pub struct AdminSettings {
    /// Bearer token for the `/api/v1` admin calls; `None` disables them.
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Whether this process processes the inbox (an ingest-only replica
    /// turns it off).
    pub enabled: bool,
    /// Deliveries claimed per round.
    pub batch_size: u32,
    /// How long a claim lasts; a crashed worker's deliveries are picked up
    /// again after this.
    pub lease: Duration,
    /// How often to look for work when not woken by a new delivery.
    pub poll_interval: Duration,
    /// Attempts before a delivery that keeps failing is marked failed.
    pub max_attempts: u32,
}

/// The outbox dispatcher: provider calls and registry reads.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Whether this process dispatches jobs.
    pub enabled: bool,
    /// Jobs claimed per round.
    pub batch_size: u32,
    /// How long a claim lasts; a crashed dispatcher's jobs are taken over
    /// after this.
    pub lease: Duration,
    /// How often to look for due jobs when not woken by a new one.
    pub poll_interval: Duration,
    /// Attempts before a job that keeps failing transiently goes `dead`.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub backoff_base: Duration,
    /// No retry waits longer than this (a provider's `Retry-After` still wins).
    pub backoff_max: Duration,
    /// Jobs run at once, in all.
    pub concurrency: usize,
    /// Jobs run at once against one GitHub App installation or GitLab
    /// project, so a burst cannot trip secondary rate limits.
    pub per_installation: usize,
}

/// The integrations health monitor (`GET /api/v1/integrations`).
#[derive(Debug, Clone)]
pub struct IntegrationSettings {
    /// How often the providers and registries are checked, and the sources'
    /// health recomputed.
    pub health_interval: Duration,
}

/// `[setup]`: the one-click GitHub App setup at `/setup/github` (the
/// manifest flow), with its defaults already resolved.
#[derive(Debug, Clone)]
pub struct SetupSettings {
    /// `setup.enabled`: `false` answers 404 on both setup routes.
    pub enabled: bool,
    /// `setup.dir`: where the new app's credential files are written
    /// (relative paths from the working directory).
    pub dir: PathBuf,
    /// `setup.github_url`: GitHub's web address, where the manifest is
    /// posted (default: from `github.api_url`, else `https://github.com`).
    pub github_url: String,
    /// `setup.github_api_url`: where the one-time code is exchanged
    /// (default: `github.api_url`, else the API of `setup.github_url`).
    pub github_api_url: String,
}

/// `[dashboard]`: the web dashboard at `/`.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// `dashboard.enabled`: `false` serves no dashboard (404).
    pub enabled: bool,
    /// `dashboard.session_hours`: how long a sign-in lasts.
    pub session_lifetime: Duration,
}

#[derive(Debug)]
pub struct GithubSettings {
    pub app_id: u64,
    pub private_key: SecretString,
    pub api_url: String,
    /// `github.request_timeout_secs`: how long one API call may take, answer
    /// included, before it counts as a transient failure.
    pub request_timeout: Duration,
    /// Missed-delivery recovery through the app webhook's delivery log.
    pub recovery: RecoverySettings,
}

/// `[github] recovery*`: how often portcall reads the GitHub App's webhook
/// delivery log and how many redeliveries it asks for per round.
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// `github.recovery`: `false` turns recovery off.
    pub enabled: bool,
    /// `github.recovery_interval_secs`: time between rounds (the first runs
    /// at start).
    pub interval: Duration,
    /// `github.recovery_max_per_run`: redelivery requests per round at most;
    /// the rest wait for the next round.
    pub max_per_run: u32,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(300),
            max_per_run: 20,
        }
    }
}

#[derive(Debug)]
pub struct GitlabSettings {
    pub url: String,
    pub token: SecretString,
    /// `gitlab.request_timeout_secs`: as for GitHub.
    pub request_timeout: Duration,
}

/// How long one GitHub API call may take by default.
pub const GITHUB_REQUEST_TIMEOUT_SECS: u64 = 60;
/// How long one GitLab API call may take by default.
pub const GITLAB_REQUEST_TIMEOUT_SECS: u64 = 30;

// ---------------------------------------------------------------------------
// The raw layer, as serde reads it.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSettings {
    server: RawServer,
    database: RawDatabase,
    admin: RawAdmin,
    worker: RawWorker,
    dispatcher: RawDispatcher,
    sources: Vec<RawSource>,
    github: Option<RawGithub>,
    gitlab: Option<RawGitlab>,
    components: Vec<RawComponent>,
    integrations: RawIntegrations,
    setup: RawSetup,
    dashboard: RawDashboard,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: String,
    public_url: Option<String>,
    max_body_bytes: u64,
    client_timeout_secs: u64,
    max_connections: u64,
    shutdown_timeout_secs: u64,
    workers: Option<u64>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            max_body_bytes: 25 * 1024 * 1024,
            client_timeout_secs: 10,
            max_connections: 25_000,
            shutdown_timeout_secs: 30,
            workers: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawDatabase {
    url: String,
    max_connections: u32,
    acquire_timeout_secs: f64,
    group_commit_max: usize,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://portcall.db".into(),
            max_connections: 10,
            acquire_timeout_secs: 5.0,
            group_commit_max: 128,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAdmin {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawWorker {
    enabled: bool,
    batch_size: u32,
    lease_secs: u64,
    poll_interval_ms: u64,
    max_attempts: u32,
}

impl Default for RawWorker {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 64,
            lease_secs: 60,
            poll_interval_ms: 1000,
            max_attempts: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawDispatcher {
    enabled: bool,
    batch_size: u32,
    lease_secs: u64,
    poll_interval_ms: u64,
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    concurrency: usize,
    per_installation: usize,
}

impl Default for RawDispatcher {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 32,
            lease_secs: 60,
            poll_interval_ms: 1000,
            max_attempts: 8,
            backoff_base_ms: 1000,
            backoff_max_secs: 900,
            concurrency: 8,
            per_installation: 2,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawIntegrations {
    health_interval_secs: u64,
}

impl Default for RawIntegrations {
    fn default() -> Self {
        Self {
            health_interval_secs: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawSetup {
    enabled: bool,
    dir: String,
    github_url: Option<String>,
    github_api_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawDashboard {
    enabled: bool,
    session_hours: u64,
}

impl Default for RawDashboard {
    fn default() -> Self {
        Self {
            enabled: true,
            session_hours: 12,
        }
    }
}

impl Default for RawSetup {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: "github-app".into(),
            github_url: None,
            github_api_url: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSource {
    name: String,
    kind: String,
    secrets: Vec<String>,
    registry: Option<String>,
    api_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// `gar`: the audience the Pub/Sub push subscription's OIDC token names.
    audience: Option<String>,
    /// `gar`: the service account the Pub/Sub push subscription signs as.
    service_account: Option<String>,
    /// `gar`: Google's public keys as a JWKS file, read at start.
    jwks_file: Option<String>,
    signed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawGithub {
    app_id: u64,
    private_key: String,
    api_url: Option<String>,
    request_timeout_secs: Option<u64>,
    recovery: Option<bool>,
    recovery_interval_secs: Option<u64>,
    recovery_max_per_run: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawGitlab {
    url: Option<String>,
    token: String,
    request_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawComponent {
    name: String,
    image: String,
    repository: String,
    release_tags: Vec<String>,
    offline: bool,
}

// ---------------------------------------------------------------------------
// Problems.

/// One thing wrong with the configuration, and the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problems):",
            self.problems.len()
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

// ---------------------------------------------------------------------------
// Secrets.

/// Where secret references are looked up; tests substitute their own.
pub trait SecretEnv {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
}

/// The process environment and file system.
pub struct ProcessEnv;

impl SecretEnv for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Resolves an `env:NAME` or `file:/path` reference. Error messages name the
/// variable or file, never the value.
pub fn resolve_secret(reference: &str, env: &dyn SecretEnv) -> Result<SecretString, String> {
    let value = if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err("env: needs a variable name, e.g. env:GH_HOOK_SECRET".into());
        }
        env.var(name)
            .ok_or_else(|| format!("environment variable {name} is not set"))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        env.read_file(Path::new(path))
            .map_err(|e| format!("file {path} cannot be read: {e}"))?
            .trim()
            .to_owned()
    } else {
        return Err(
            "a secret must be a reference, env:NAME or file:/path; literal values are not accepted"
                .into(),
        );
    };
    if value.is_empty() {
        return Err(format!("{reference} is empty"));
    }
    Ok(SecretString::from(value))
}

impl Problems {
    fn secret(
        &mut self,
        key: String,
        reference: &str,
        env: &dyn SecretEnv,
    ) -> Option<SecretString> {
        resolve_secret(reference, env)
            .map_err(|message| self.add(key, message))
            .ok()
    }

    fn http_url(&mut self, key: String, url: &str) -> Option<String> {
        let trimmed = url.trim_end_matches('/');
        let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
            && trimmed.len() > "https://".len()
            && !trimmed.contains(char::is_whitespace);
        if ok {
            Some(trimmed.to_owned())
        } else {
            self.add(key, "expected an http:// or https:// URL");
            None
        }
    }

    /// A provider's `request_timeout_secs`: 1 to 300 seconds.
    fn request_timeout(&mut self, key: &str, secs: Option<u64>, default: u64) -> Duration {
        let secs = secs.unwrap_or(default);
        if !(1..=300).contains(&secs) {
            self.add(key, "must be between 1 and 300 seconds");
        }
        Duration::from_secs(secs)
    }
}

// ---------------------------------------------------------------------------
// Loading.

impl Settings {
    /// Reads `path` (if any) and the `PORTCALL__` environment, and validates
    /// the result against the process environment.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with(path, Env::prefixed(ENV_PREFIX).split("__"), &ProcessEnv)
    }

    /// [`Settings::load`] with the override layer and secret lookup given.
    pub fn load_with(
        path: Option<&Path>,
        overrides: Env,
        env: &dyn SecretEnv,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError {
                    problems: vec![Problem {
                        key: "--config".into(),
                        message: format!("{} is not a readable file", path.display()),
                    }],
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        let figment = figment.merge(overrides);
        let raw = Self::extract(&figment)?;
        Self::from_raw(raw, env)
    }

    fn extract(figment: &Figment) -> Result<RawSettings, ConfigError> {
        let mut problems = Problems(Vec::new());
        // Unknown keys are reported, not ignored: a typo must not silently
        // fall back to a default.
        let value: serde_json::Value = figment.extract().map_err(figment_problems)?;
        let raw = serde_ignored::deserialize(value, |path| {
            problems.add(path.to_string(), "unknown key");
        });
        match raw {
            Ok(raw) if problems.0.is_empty() => Ok(raw),
            Ok(_) => Err(ConfigError {
                problems: problems.0,
            }),
            Err(_) => {
                // Let figment say which key has the wrong type, and where from.
                let typed = figment.extract::<RawSettings>().err();
                problems.0.extend(
                    typed
                        .map(figment_problems)
                        .into_iter()
                        .flat_map(|e| e.problems),
                );
                Err(ConfigError {
                    problems: problems.0,
                })
            }
        }
    }

    /// Validates every field and resolves every secret reference.
    pub fn from_raw(raw: RawSettings, env: &dyn SecretEnv) -> Result<Settings, ConfigError> {
        let mut p = Problems(Vec::new());

        let listen = raw.server.listen.parse().unwrap_or_else(|_| {
            p.add("server.listen", "expected IP:port, e.g. 127.0.0.1:8080");
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let public_url = raw
            .server
            .public_url
            .as_deref()
            .and_then(|url| p.http_url("server.public_url".into(), url));
        if raw.server.max_body_bytes == 0 {
            p.add("server.max_body_bytes", "must be greater than 0");
        }
        if raw.server.client_timeout_secs == 0 {
            p.add("server.client_timeout_secs", "must be greater than 0");
        }
        if raw.server.workers == Some(0) {
            p.add("server.workers", "must be at least 1");
        }
        if raw.server.max_connections == 0 {
            p.add("server.max_connections", "must be greater than 0");
        }
        let server = ServerSettings {
            listen,
            public_url,
            max_body_bytes: usize::try_from(raw.server.max_body_bytes).unwrap_or(usize::MAX),
            client_timeout: Duration::from_secs(raw.server.client_timeout_secs),
            max_connections: usize::try_from(raw.server.max_connections).unwrap_or(usize::MAX),
            shutdown_timeout: Duration::from_secs(raw.server.shutdown_timeout_secs),
            workers: raw
                .server
                .workers
                .map_or_else(default_workers, |w| usize::try_from(w).unwrap_or(1)),
        };

        let url = raw.database.url.trim().to_owned();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            p.add(
                "database.url",
                "expected sqlite://FILE or postgres://USER@HOST/DB",
            );
        }
        if raw.database.max_connections == 0 {
            p.add("database.max_connections", "must be greater than 0");
        }
        if !(raw.database.acquire_timeout_secs > 0.0 && raw.database.acquire_timeout_secs < 3600.0)
        {
            p.add(
                "database.acquire_timeout_secs",
                "must be between 0 and 3600 seconds",
            );
        }
        if !(1..=1024).contains(&raw.database.group_commit_max) {
            p.add("database.group_commit_max", "must be between 1 and 1024");
        }
        let database = DatabaseSettings {
            url,
            max_connections: raw.database.max_connections,
            group_commit_max: raw.database.group_commit_max.clamp(1, 1024),
            acquire_timeout: Duration::from_secs_f64(
                raw.database.acquire_timeout_secs.clamp(0.001, 3600.0),
            ),
        };

        let admin = AdminSettings {
            token: raw
                .admin
                .token
                .as_deref()
                .and_then(|r| p.secret("admin.token".into(), r, env)),
        };

        let w = &raw.worker;
        if !(1..=256).contains(&w.batch_size) {
            p.add("worker.batch_size", "must be between 1 and 256");
        }
        if w.lease_secs < 5 {
            p.add("worker.lease_secs", "must be at least 5 seconds");
        }
        if w.poll_interval_ms == 0 {
            p.add("worker.poll_interval_ms", "must be greater than 0");
        }
        if w.max_attempts == 0 {
            p.add("worker.max_attempts", "must be at least 1");
        }
        let worker = WorkerSettings {
            enabled: w.enabled,
            batch_size: w.batch_size,
            lease: Duration::from_secs(w.lease_secs),
            poll_interval: Duration::from_millis(w.poll_interval_ms),
            max_attempts: w.max_attempts,
        };

        let d = &raw.dispatcher;
        if !(1..=256).contains(&d.batch_size) {
            p.add("dispatcher.batch_size", "must be between 1 and 256");
        }
        if d.lease_secs < 5 {
            p.add("dispatcher.lease_secs", "must be at least 5 seconds");
        }
        if d.poll_interval_ms == 0 {
            p.add("dispatcher.poll_interval_ms", "must be greater than 0");
        }
        if d.max_attempts == 0 {
            p.add("dispatcher.max_attempts", "must be at least 1");
        }
        if d.concurrency == 0 {
            p.add("dispatcher.concurrency", "must be at least 1");
        }
        if d.per_installation == 0 {
            p.add("dispatcher.per_installation", "must be at least 1");
        }
        let dispatcher = DispatcherSettings {
            enabled: d.enabled,
            batch_size: d.batch_size,
            lease: Duration::from_secs(d.lease_secs),
            poll_interval: Duration::from_millis(d.poll_interval_ms),
            max_attempts: d.max_attempts,
            backoff_base: Duration::from_millis(d.backoff_base_ms),
            backoff_max: Duration::from_secs(d.backoff_max_secs),
            concurrency: d.concurrency,
            per_installation: d.per_installation,
        };

        let sources = sources(raw.sources, env, &mut p);

        let github = raw.github.map(|g| {
            if g.app_id == 0 {
                p.add("github.app_id", "must be the GitHub App's numeric id");
            }
            let private_key = p.secret("github.private_key".into(), &g.private_key, env);
            let api_url = p.http_url(
                "github.api_url".into(),
                g.api_url.as_deref().unwrap_or("https://api.github.com"),
            );
            let defaults = RecoverySettings::default();
            let interval_secs = g
                .recovery_interval_secs
                .unwrap_or(defaults.interval.as_secs());
            if !(10..=86_400).contains(&interval_secs) {
                p.add(
                    "github.recovery_interval_secs",
                    "must be between 10 and 86400 seconds",
                );
            }
            let max_per_run = g.recovery_max_per_run.unwrap_or(defaults.max_per_run);
            if !(1..=1000).contains(&max_per_run) {
                p.add("github.recovery_max_per_run", "must be between 1 and 1000");
            }
            GithubSettings {
                app_id: g.app_id,
                private_key: private_key.unwrap_or_default(),
                api_url: api_url.unwrap_or_default(),
                request_timeout: p.request_timeout(
                    "github.request_timeout_secs",
                    g.request_timeout_secs,
                    GITHUB_REQUEST_TIMEOUT_SECS,
                ),
                recovery: RecoverySettings {
                    enabled: g.recovery.unwrap_or(defaults.enabled),
                    interval: Duration::from_secs(interval_secs),
                    max_per_run,
                },
            }
        });
        let gitlab = raw.gitlab.map(|g| {
            let url = p.http_url(
                "gitlab.url".into(),
                g.url.as_deref().unwrap_or("https://gitlab.com"),
            );
            let token = p.secret("gitlab.token".into(), &g.token, env);
            GitlabSettings {
                url: url.unwrap_or_default(),
                token: token.unwrap_or_default(),
                request_timeout: p.request_timeout(
                    "gitlab.request_timeout_secs",
                    g.request_timeout_secs,
                    GITLAB_REQUEST_TIMEOUT_SECS,
                ),
            }
        });

        let components = components(raw.components, &mut p);

        let interval = raw.integrations.health_interval_secs;
        if !(1..=86_400).contains(&interval) {
            p.add(
                "integrations.health_interval_secs",
                "must be between 1 and 86400 seconds",
            );
        }
        let integrations = IntegrationSettings {
            health_interval: Duration::from_secs(interval.clamp(1, 86_400)),
        };

        let setup = setup(raw.setup, github.as_ref(), &mut p);

        let hours = raw.dashboard.session_hours;
        if !(1..=720).contains(&hours) {
            p.add(
                "dashboard.session_hours",
                "must be between 1 and 720 hours (30 days)",
            );
        }
        let dashboard = DashboardSettings {
            enabled: raw.dashboard.enabled,
            session_lifetime: Duration::from_secs(hours.clamp(1, 720) * 3600),
        };

        if p.0.is_empty() {
            Ok(Settings {
                server,
                database,
                admin,
                worker,
                dispatcher,
                sources,
                github,
                gitlab,
                components,
                integrations,
                setup,
                dashboard,
            })
        } else {
            Err(ConfigError { problems: p.0 })
        }
    }

    /// The configured source called `name`.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// One HTTP worker per available core.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Source names become URL path segments: keep them plain.
fn valid_source_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.len() <= 63
}

fn sources(raw: Vec<RawSource>, env: &dyn SecretEnv, p: &mut Problems) -> Vec<Source> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("sources[{i}].{field}");
        if !valid_source_name(&s.name) {
            p.add(
                key("name"),
                "expected 1 to 63 of [a-z0-9_-], starting with a letter or digit",
            );
        } else if !seen.insert(s.name.clone()) {
            p.add(key("name"), format!("duplicate source name {:?}", s.name));
        }
        let kind = s.kind.parse::<SourceKind>().ok();
        if kind.is_none() {
            let known: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
            p.add(
                key("kind"),
                format!(
                    "unknown source kind {:?}; expected one of {}",
                    s.kind,
                    known.join(", ")
                ),
            );
        }
        let oidc = google_oidc(&s, kind, env, p, &key);
        if s.secrets.is_empty() && kind == Some(SourceKind::Gar) {
            if oidc.is_none()
                && s.audience.is_none()
                && s.service_account.is_none()
                && s.jwks_file.is_none()
            {
                p.add(
                    key("secrets"),
                    "a gar source needs secrets (the ?token= form) or audience, service_account and jwks_file (Pub/Sub OIDC tokens); verification never falls back to accepting unsigned requests",
                );
            }
        } else if s.secrets.is_empty() {
            p.add(
                key("secrets"),
                "at least one secret is required: verification never falls back to accepting unsigned requests",
            );
        }
        let secrets: Vec<HookSecret> = s
            .secrets
            .iter()
            .enumerate()
            .filter_map(|(j, r)| {
                let secret = HookSecret::new(p.secret(key(&format!("secrets[{j}]")), r, env)?);
                if kind == Some(SourceKind::Standard) && !secret.is_standard_webhooks_secret() {
                    p.add(
                        key(&format!("secrets[{j}]")),
                        "a Standard Webhooks secret is whsec_ followed by base64",
                    );
                }
                Some(secret)
            })
            .collect();
        let registry = s.registry.as_deref().map(str::to_ascii_lowercase);
        if let Some(host) = &registry {
            if crate::domain::ImageName::new(host, "x").is_err() || host.contains('/') {
                p.add(
                    key("registry"),
                    "expected a registry host name, e.g. registry.example.com",
                );
            }
        }
        let username = s
            .username
            .as_deref()
            .and_then(|r| p.secret(key("username"), r, env));
        let password = s
            .password
            .as_deref()
            .and_then(|r| p.secret(key("password"), r, env));
        if s.username.is_some() != s.password.is_some() {
            p.add(key("username"), "username and password go together");
        }
        let registry_api = s.api_url.as_deref().and_then(|url| {
            let url = p.http_url(key("api_url"), url)?;
            // The v2 API lives at the root of the registry's host.
            let host = url.split_once("://").map_or("", |(_, rest)| rest);
            if host.contains(['/', '?', '#', '@']) {
                p.add(
                    key("api_url"),
                    "expected the registry's base URL without a path, e.g. https://registry.example.com",
                );
                return None;
            }
            Some(RegistryApi {
                url,
                username,
                password,
            })
        });
        if s.signed.is_some() && kind != Some(SourceKind::Jfrog) {
            p.add(key("signed"), "only a jfrog source is signed");
        }
        // These payloads name no registry host: the source must.
        if matches!(kind, Some(SourceKind::Jfrog | SourceKind::Nexus)) && registry.is_none() {
            p.add(
                key("registry"),
                format!(
                    "a {} source needs registry: its payloads name no host",
                    s.kind
                ),
            );
        }
        if let Some(kind) = kind {
            out.push(Source {
                name: s.name,
                kind,
                secrets,
                registry,
                registry_api,
                oidc,
                signed: s.signed.unwrap_or(false),
            });
        }
    }
    out
}

/// The OIDC check of a `gar` source: `audience`, `service_account` and
/// `jwks_file` go together, and only on `gar` sources.
fn google_oidc(
    s: &RawSource,
    kind: Option<SourceKind>,
    env: &dyn SecretEnv,
    p: &mut Problems,
    key: &dyn Fn(&str) -> String,
) -> Option<crate::ingest::gar::GoogleOidc> {
    let given = [
        ("audience", s.audience.as_deref()),
        ("service_account", s.service_account.as_deref()),
        ("jwks_file", s.jwks_file.as_deref()),
    ];
    if given.iter().all(|(_, v)| v.is_none()) {
        return None;
    }
    if kind.is_some() && kind != Some(SourceKind::Gar) {
        for (name, _) in given.iter().filter(|(_, v)| v.is_some()) {
            p.add(key(name), "only gar sources verify OIDC tokens");
        }
        return None;
    }
    for (name, _) in given.iter().filter(|(_, v)| v.is_none()) {
        p.add(
            key(name),
            "audience, service_account and jwks_file go together (the Pub/Sub OIDC check)",
        );
    }
    let [(_, Some(audience)), (_, Some(account)), (_, Some(jwks_file))] = given else {
        return None;
    };
    let mut ok = true;
    if audience.trim().is_empty() {
        p.add(key("audience"), "expected the audience set on the push subscription, e.g. https://portcall.example.com/webhooks/gar");
        ok = false;
    }
    let (user, domain) = account.split_once('@').unwrap_or_default();
    if user.is_empty() || domain.is_empty() || account.contains(char::is_whitespace) {
        p.add(
            key("service_account"),
            "expected a service account email, e.g. pubsub-push@my-project.iam.gserviceaccount.com",
        );
        ok = false;
    }
    let jwks = match env.read_file(Path::new(jwks_file)) {
        Ok(text) => Some(text),
        Err(e) => {
            p.add(
                key("jwks_file"),
                format!("file {jwks_file} cannot be read: {e}"),
            );
            None
        }
    }?;
    match crate::ingest::gar::GoogleOidc::new(audience, account, &jwks) {
        Ok(oidc) if ok => Some(oidc.reloading_from(jwks_file)),
        Ok(_) => None,
        Err(e) => {
            p.add(key("jwks_file"), format!("{jwks_file}: {e}"));
            None
        }
    }
}

/// `[setup]`, its URLs defaulting to the configured App's GitHub.
fn setup(raw: RawSetup, github: Option<&GithubSettings>, p: &mut Problems) -> SetupSettings {
    if raw.dir.trim().is_empty() {
        p.add(
            "setup.dir",
            "expected the directory for the GitHub App's credential files, e.g. github-app or /var/lib/portcall/github-app",
        );
    }
    let configured_api = github
        .map(|g| g.api_url.as_str())
        .filter(|url| !url.is_empty());
    let github_url = match raw.github_url.as_deref() {
        Some(url) => p.http_url("setup.github_url".into(), url),
        None => Some(
            configured_api
                .and_then(crate::setup::web_url_for_api_url)
                .unwrap_or_else(|| "https://github.com".to_owned()),
        ),
    };
    let github_api_url = match raw.github_api_url.as_deref() {
        Some(url) => p.http_url("setup.github_api_url".into(), url),
        None => Some(match (configured_api, github_url.as_deref()) {
            (Some(api), _) => api.to_owned(),
            // GitHub Enterprise Server's API is under /api/v3 of its web address.
            (None, Some(web)) if web != "https://github.com" => format!("{web}/api/v3"),
            (None, _) => "https://api.github.com".to_owned(),
        }),
    };
    SetupSettings {
        enabled: raw.enabled,
        dir: PathBuf::from(raw.dir.trim()),
        github_url: github_url.unwrap_or_default(),
        github_api_url: github_api_url.unwrap_or_default(),
    }
}

fn components(raw: Vec<RawComponent>, p: &mut Problems) -> Components {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("components[{i}].{field}");
        if c.name.is_empty()
            || c.name.len() > 100
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            p.add(key("name"), "expected 1 to 100 of [A-Za-z0-9._-]");
        } else if !seen.insert(c.name.clone()) {
            p.add(
                key("name"),
                format!("duplicate component name {:?}", c.name),
            );
        }
        if !c.image.contains('/') {
            p.add(
                key("image"),
                "expected registry/path, e.g. registry.example.com/org/app",
            );
        }
        let repository = RepoSlug::parse(&c.repository)
            .map_err(|e| p.add(key("repository"), e.to_string()))
            .ok();
        for (j, pattern) in c.release_tags.iter().enumerate() {
            if let Err(error) = globset::Glob::new(pattern) {
                p.add(
                    key(&format!("release_tags[{j}]")),
                    format!("not a valid glob: {}", error.kind()),
                );
            }
        }
        if let Some(repository) = repository {
            if let Ok(component) =
                Component::new(&c.name, &c.image, repository, &c.release_tags, c.offline)
            {
                out.push(component);
            }
        }
    }
    Components::new(out)
}

fn figment_problems(error: figment::Error) -> ConfigError {
    ConfigError {
        problems: error
            .into_iter()
            .map(|e| Problem {
                key: if e.path.is_empty() {
                    "(file)".into()
                } else {
                    e.path.join(".")
                },
                message: e.kind.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    struct FakeEnv(HashMap<&'static str, &'static str>);

    impl SecretEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }

        fn read_file(&self, path: &Path) -> std::io::Result<String> {
            std::fs::read_to_string(path)
        }
    }

    fn env() -> FakeEnv {
        FakeEnv(HashMap::from([
            ("GH_SECRET", "gh-secret-value"),
            ("EMPTY", ""),
        ]))
    }

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        let figment = Figment::new().merge(Toml::string(toml));
        let raw = Settings::extract(&figment)?;
        Settings::from_raw(raw, &env())
    }

    fn keys(err: ConfigError) -> Vec<String> {
        err.problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let s = load("").unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://portcall.db");
        assert_eq!(s.server.max_body_bytes, 26_214_400);
        assert!(s.sources.is_empty());
    }

    #[test]
    fn recovery_settings_default_and_out_of_range_values_name_their_key() {
        let github = "[github]\napp_id = 1\nprivate_key = \"env:GH_SECRET\"\n";
        let s = load(github).unwrap();
        let recovery = &s.github.unwrap().recovery;
        assert!(recovery.enabled);
        assert_eq!(recovery.interval, Duration::from_secs(300));
        assert_eq!(recovery.max_per_run, 20);

        let bad = format!("{github}recovery_interval_secs = 1\nrecovery_max_per_run = 0\n");
        assert_eq!(
            keys(load(&bad).unwrap_err()),
            [
                "github.recovery_interval_secs",
                "github.recovery_max_per_run"
            ]
        );
        let off = load(&format!("{github}recovery = false\n")).unwrap();
        assert!(!off.github.unwrap().recovery.enabled);
    }

    #[test]
    fn group_commit_max_defaults_to_128_and_1_commits_alone() {
        assert_eq!(load("").unwrap().database.group_commit_max, 128);
        let alone = load("[database]\ngroup_commit_max = 1\n").unwrap();
        assert_eq!(alone.database.group_commit_max, 1);
        for bad in ["0", "1025"] {
            let text = format!("[database]\ngroup_commit_max = {bad}\n");
            assert_eq!(
                keys(load(&text).unwrap_err()),
                ["database.group_commit_max"]
            );
        }
    }

    #[test]
    fn provider_request_timeouts_default_and_out_of_range_values_name_their_key() {
        let github = "[github]\napp_id = 1\nprivate_key = \"env:GH_SECRET\"\n";
        let gitlab = "[gitlab]\ntoken = \"env:GH_SECRET\"\n";
        let s = load(&format!("{github}{gitlab}")).unwrap();
        assert_eq!(s.github.unwrap().request_timeout, Duration::from_secs(60));
        assert_eq!(s.gitlab.unwrap().request_timeout, Duration::from_secs(30));

        let set = format!("{github}request_timeout_secs = 5\n{gitlab}request_timeout_secs = 300\n");
        let s = load(&set).unwrap();
        assert_eq!(s.github.unwrap().request_timeout, Duration::from_secs(5));
        assert_eq!(s.gitlab.unwrap().request_timeout, Duration::from_secs(300));

        let bad = format!("{github}request_timeout_secs = 0\n{gitlab}request_timeout_secs = 301\n");
        assert_eq!(
            keys(load(&bad).unwrap_err()),
            ["github.request_timeout_secs", "gitlab.request_timeout_secs"]
        );
    }

    #[test]
    fn setup_settings_default_from_the_github_app_and_bad_urls_name_their_key() {
        let fresh = load("").unwrap().setup;
        assert!(fresh.enabled);
        assert_eq!(fresh.dir, PathBuf::from("github-app"));
        assert_eq!(fresh.github_url, "https://github.com");
        assert_eq!(fresh.github_api_url, "https://api.github.com");

        let ghes = load(
            "[github]\napp_id = 1\nprivate_key = \"env:GH_SECRET\"\napi_url = \"https://ghe.example.com/api/v3/\"\n",
        )
        .unwrap()
        .setup;
        assert_eq!(ghes.github_url, "https://ghe.example.com");
        assert_eq!(ghes.github_api_url, "https://ghe.example.com/api/v3");

        let web_only = load("[setup]\ngithub_url = \"https://ghe.example.com/\"\n")
            .unwrap()
            .setup;
        assert_eq!(web_only.github_url, "https://ghe.example.com");
        assert_eq!(web_only.github_api_url, "https://ghe.example.com/api/v3");

        let set = load(
            "[setup]\nenabled = false\ndir = \"/var/lib/portcall/app\"\ngithub_url = \"http://127.0.0.1:1\"\ngithub_api_url = \"http://127.0.0.1:2\"\n",
        )
        .unwrap()
        .setup;
        assert!(!set.enabled);
        assert_eq!(set.dir, PathBuf::from("/var/lib/portcall/app"));
        assert_eq!(set.github_api_url, "http://127.0.0.1:2");

        let err = load("[setup]\nenabled = \"yes please\"\n").unwrap_err();
        assert_eq!(keys(err), ["setup.enabled"]);
        let err = load(
            "[setup]\ndir = \" \"\ngithub_url = \"github.com\"\ngithub_api_url = \"ftp://api.github.com\"\nurl = \"x\"\n",
        )
        .unwrap_err();
        assert_eq!(keys(err), ["setup.url"]);
        let err = load(
            "[setup]\ndir = \" \"\ngithub_url = \"github.com\"\ngithub_api_url = \"ftp://api.github.com\"\n",
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            ["setup.dir", "setup.github_url", "setup.github_api_url"]
        );
    }

    #[test]
    fn secrets_resolve_from_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let s = load(&format!(
            r#"
            [[sources]]
            name = "github"
            kind = "github"
            secrets = ["env:GH_SECRET", "file:{}"]
            "#,
            file.display()
        ))
        .unwrap();
        assert_eq!(s.sources[0].secrets.len(), 2);
        assert!(!format!("{s:?}").contains("gh-secret-value"));
        assert!(!format!("{s:?}").contains("from-file"));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let err = load(
            r#"
            [server]
            listen = "localhost"
            [database]
            url = "mysql://x"
            [admin]
            token = "literal-admin-token"
            [[sources]]
            name = "a"
            kind = "github"
            secrets = ["literal-secret", "env:MISSING", "file:/nonexistent/x", "env:EMPTY"]
            [[sources]]
            name = "a"
            kind = "bitbucket"
            secrets = ["env:GH_SECRET"]
            [[sources]]
            name = "../etc"
            kind = "gitlab"
            [[sources]]
            name = "std"
            kind = "standard"
            secrets = ["env:GH_SECRET"]
            "#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("literal-secret") && !text.contains("literal-admin-token"));
        assert_eq!(
            keys(err),
            [
                "server.listen",
                "database.url",
                "admin.token",
                "sources[0].secrets[0]",
                "sources[0].secrets[1]",
                "sources[0].secrets[2]",
                "sources[0].secrets[3]",
                "sources[1].name",
                "sources[1].kind",
                "sources[2].name",
                "sources[2].secrets",
                "sources[3].secrets[0]",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_problems_not_silently_ignored() {
        let err =
            load("[server]\nlisten_addr = \"0.0.0.0:1\"\n[databse]\nurl = \"x\"\n").unwrap_err();
        assert_eq!(keys(err), ["databse", "server.listen_addr"]);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = load("[server]\nmax_body_bytes = \"big\"\n").unwrap_err();
        assert_eq!(keys(err), ["server.max_body_bytes"]);
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn environment_variables_override_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("portcall.toml", "[server]\nlisten = \"127.0.0.1:1\"\n")?;
            jail.set_env("PORTCALL__SERVER__LISTEN", "127.0.0.1:2");
            jail.set_env("PORTCALL__DATABASE__URL", "postgres://localhost/x");
            jail.set_env("PORTCALL__ADMIN__TOKEN", "env:GH_SECRET");
            let s = Settings::load_with(
                Some(Path::new("portcall.toml")),
                Env::prefixed(ENV_PREFIX).split("__"),
                &env(),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(s.server.listen.to_string(), "127.0.0.1:2");
            assert_eq!(s.database.url, "postgres://localhost/x");
            assert_eq!(s.admin.token.unwrap().expose_secret(), "gh-secret-value");
            Ok(())
        });
    }

    #[test]
    fn bad_release_globs_and_dispatcher_limits_name_their_keys() {
        let err = load(
            r#"
            [dispatcher]
            concurrency = 0
            per_installation = 0
            [[components]]
            name = "hello"
            image = "registry.example.com/octo/hello"
            repository = "github:octo/hello"
            release_tags = ["v*", "v[1"]
            [[components]]
            name = "hello"
            image = "registry.example.com/octo/other"
            repository = "gitlab:group/sub/other"
            "#,
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            [
                "dispatcher.concurrency",
                "dispatcher.per_installation",
                "components[0].release_tags[1]",
                "components[1].name",
            ]
        );
    }

    #[test]
    fn components_are_matched_with_their_rules_and_offline_flag() {
        let s = load(
            r#"
            [[components]]
            name = "hello"
            image = "Registry.Example.com/octo/hello/"
            repository = "github:octo/hello"
            release_tags = ["v*"]
            offline = true
            "#,
        )
        .unwrap();
        let hello = s.components.get("hello").unwrap();
        assert_eq!(hello.image, "registry.example.com/octo/hello");
        assert!(hello.offline);
        assert!(hello.is_release_tag(&crate::domain::Tag::parse("v2").unwrap()));
        assert_eq!(s.dispatcher.max_attempts, 8);
    }

    #[test]
    fn a_gar_source_takes_oidc_keys_or_token_secrets_and_names_what_is_missing() {
        let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gar/test-jwks.json");
        let oidc = load(&format!(
            r#"
            [[sources]]
            name = "gar"
            kind = "gar"
            audience = "https://portcall.example.com/webhooks/gar"
            service_account = "push@p.iam.gserviceaccount.com"
            jwks_file = "{jwks}"
            "#
        ))
        .unwrap();
        assert!(oidc.sources[0].oidc.is_some());
        assert!(oidc.sources[0].secrets.is_empty());
        let token = load(
            r#"
            [[sources]]
            name = "gar"
            kind = "gar"
            secrets = ["env:GH_SECRET"]
            "#,
        )
        .unwrap();
        assert!(token.sources[0].oidc.is_none());

        let neither = load(
            r#"
            [[sources]]
            name = "gar"
            kind = "gar"
            "#,
        )
        .unwrap_err();
        assert_eq!(keys(neither), ["sources[0].secrets"]);
        let err = load(&format!(
            r#"
            [[sources]]
            name = "gar"
            kind = "gar"
            audience = "https://portcall.example.com/webhooks/gar"
            jwks_file = "{jwks}"

            [[sources]]
            name = "gar2"
            kind = "gar"
            audience = ""
            service_account = "not-an-email"
            jwks_file = "/nonexistent/jwks.json"

            [[sources]]
            name = "gar3"
            kind = "gar"
            audience = "a"
            service_account = "push@p.iam.gserviceaccount.com"
            jwks_file = "{manifest}"

            [[sources]]
            name = "acr"
            kind = "acr"
            secrets = ["env:GH_SECRET"]
            audience = "a"
            "#,
            manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ))
        .unwrap_err();
        assert_eq!(
            keys(err),
            [
                "sources[0].service_account",
                "sources[1].audience",
                "sources[1].service_account",
                "sources[1].jwks_file",
                "sources[2].jwks_file",
                "sources[3].audience",
            ]
        );
    }

    #[test]
    fn a_registry_api_url_is_a_bare_base_url() {
        let err = load(
            r#"
            [[sources]]
            name = "registry"
            kind = "distribution"
            secrets = ["env:GH_SECRET"]
            api_url = "https://registry.example.com/v2/"
            "#,
        )
        .unwrap_err();
        assert_eq!(keys(err), ["sources[0].api_url"]);
        let ok = load(
            r#"
            [[sources]]
            name = "registry"
            kind = "distribution"
            secrets = ["env:GH_SECRET"]
            api_url = "http://127.0.0.1:5000/"
            "#,
        )
        .unwrap();
        assert_eq!(
            ok.sources[0].registry_api.as_ref().unwrap().url,
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn jfrog_and_nexus_sources_need_a_registry_and_only_jfrog_is_signed() {
        let err = load(
            r#"
            [[sources]]
            name = "jfrog"
            kind = "jfrog"
            secrets = ["env:GH_SECRET"]

            [[sources]]
            name = "nexus"
            kind = "nexus"
            secrets = ["env:GH_SECRET"]

            [[sources]]
            name = "quay"
            kind = "quay"
            secrets = ["env:GH_SECRET"]
            signed = true
            "#,
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            [
                "sources[0].registry",
                "sources[1].registry",
                "sources[2].signed"
            ]
        );
        let ok = load(
            r#"
            [[sources]]
            name = "jfrog"
            kind = "jfrog"
            secrets = ["env:GH_SECRET"]
            registry = "example.jfrog.io"
            signed = true
            "#,
        )
        .unwrap();
        assert!(ok.sources[0].signed);
        assert_eq!(ok.sources[0].kind, SourceKind::Jfrog);
    }

    #[test]
    fn components_need_a_provider_repository() {
        let err = load(
            r#"
            [[components]]
            name = "hello"
            image = "registry.example.com/octo/hello"
            repository = "octo/hello"
            "#,
        )
        .unwrap_err();
        assert_eq!(keys(err), ["components[0].repository"]);
    }
}
