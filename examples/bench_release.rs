//! Release benchmark: how long portcall takes from a registry notification's
//! arrival to the commit status reaching GitHub, and how many GitHub API
//! calls each push costs once the installation token is cached.
//! `scripts/bench-release.sh` builds and runs it in release mode.
//!
//!     cargo run --release --example bench_release -- [PUSHES=300] [CONCURRENCY=8]
//!
//! Everything runs in this process: a wiremock GitHub answering with the
//! documented bodies (`fixtures/github-api/`), the real `Application` on port
//! 0 with zero retry backoff, and a load generator keeping CONCURRENCY pushes
//! in flight: each sender posts a Distribution notification, waits until the
//! commit status of that push reaches the mock, then posts its next one. The
//! first `WARM_UP` pushes of a round (installation lookup, token minting,
//! connection set-up) are not counted.
//!
//! Two rounds per database backend:
//! - image pushes whose tag is the commit sha: no registry read, no release;
//! - releases: tag `v1.0.N` (matches `release_tags = ["v*"]`), the commit
//!   read from the image config's `org.opencontainers.image.revision` label,
//!   served by a second wiremock playing the registry's v2 API.
//!
//! SQLite always; PostgreSQL too when `PORTCALL_BENCH_POSTGRES_URL` names a
//! server, on which a fresh database is created and dropped afterwards.
//! `PORTCALL__DISPATCHER__…` variables override the dispatcher settings as
//! usual; `RUST_LOG` turns portcall's logs on (stderr).

#[path = "support/calls.rs"]
mod calls;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use calls::{Calls, Counted};
use portcall::config::Settings;
use portcall::startup::Application;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Pushes at the start of each round that are not counted.
const WARM_UP: usize = 20;
const POSTGRES_ENV: &str = "PORTCALL_BENCH_POSTGRES_URL";
const REPO: &str = "octo-org/hello-world";
const REGISTRY_HOST: &str = "registry.example.com";
const SOURCE_URL: &str = "https://github.com/octo-org/hello-world";
const HOOK_TOKEN: &str = "bench-registry-hook-token";
const ADMIN_TOKEN: &str = "bench-admin-token";
const APP_ID: u64 = 4242;
/// How long one push may take to get its status before it counts as lost.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the outbox may take to run its last jobs after the last status.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let pushes: usize = parse_arg(args.next(), 300, "PUSHES")?;
    let concurrency: usize = parse_arg(args.next(), 8, "CONCURRENCY")?;
    ensure!(
        pushes > WARM_UP,
        "PUSHES must be more than the {WARM_UP} warm-up pushes"
    );
    ensure!(concurrency > 0, "CONCURRENCY must be at least 1");
    if std::env::var_os("RUST_LOG").is_some() {
        portcall::telemetry::init_tracing(portcall::telemetry::LogFormat::Text);
    }

    println!(
        "{pushes} pushes per round (the first {WARM_UP} warm up and are not counted), {concurrency} in flight, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{}", dispatcher_summary()?);
    println!(
        "GitHub and the registry are wiremock servers in this process (the real docker-registry is not used)"
    );

    let mut backends = vec![Backend::Sqlite];
    if let Ok(admin_url) = std::env::var(POSTGRES_ENV) {
        backends.push(Backend::Postgres { admin_url });
    }
    let mut failures = Vec::new();
    for backend in &backends {
        for round in [Round::ImagePushes, Round::Releases] {
            let result = run_round(backend, round, pushes, concurrency)
                .await
                .with_context(|| format!("{}, {}", backend.name(), round.name()))?;
            println!();
            result.report(backend.name(), round, concurrency);
            failures.extend(
                result
                    .problems(round)
                    .map(|p| format!("{}, {}: {p}", backend.name(), round.name())),
            );
        }
    }
    if backends.len() == 1 {
        println!("\npostgres: SKIPPED ({POSTGRES_ENV} is not set)");
    }
    if !failures.is_empty() {
        bail!(
            "the figures above are not trustworthy:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}

fn parse_arg(arg: Option<String>, default: usize, name: &str) -> anyhow::Result<usize> {
    arg.map_or(Ok(default), |a| {
        a.parse()
            .with_context(|| format!("{name} must be a number, got {a:?}"))
    })
}

// ---------------------------------------------------------------------------
// Rounds.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Tag = commit sha: the commit is known without a registry read.
    ImagePushes,
    /// Tag `v1.0.N`: a release, its commit read from the image's labels.
    Releases,
}

impl Round {
    fn name(self) -> &'static str {
        match self {
            Round::ImagePushes => "image pushes (tag = commit sha)",
            Round::Releases => "releases (tag v1.0.N, commit from the image config's label)",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Round::ImagePushes => "push",
            Round::Releases => "release",
        }
    }

    fn units(self) -> &'static str {
        match self {
            Round::ImagePushes => "pushes",
            Round::Releases => "releases",
        }
    }
}

enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// One push to send: the commit it was built from, its tag and digest.
#[derive(Clone)]
struct Planned {
    sha: String,
    tag: String,
    digest: String,
}

/// What a round measured.
struct RoundResult {
    counted: usize,
    /// Notification sent → its status at the mock, for counted pushes.
    latencies: Vec<Duration>,
    /// Notification sent → portcall's 202.
    acks: Vec<Duration>,
    /// Counted pushes whose status never arrived.
    lost: usize,
    /// Counted statuses that did not name a release (release round).
    not_release: usize,
    elapsed: Duration,
    /// Calls by endpoint during the warm-up, and during the counted pushes.
    github_warm_up: BTreeMap<&'static str, u64>,
    github_steady: BTreeMap<&'static str, u64>,
    registry_steady: BTreeMap<&'static str, u64>,
    /// Job attempts by outcome over the whole round (`/metrics`).
    job_outcomes: BTreeMap<String, u64>,
}

async fn run_round(
    backend: &Backend,
    round: Round,
    pushes: usize,
    concurrency: usize,
) -> anyhow::Result<RoundResult> {
    let plan: Vec<Planned> = (0..pushes).map(|i| planned(round, i)).collect();
    let github_calls = Calls::default();
    let statuses = Arrivals::default();
    let github = github_mock(&github_calls, &statuses).await;
    let registry_calls = Calls::default();
    let registry = match round {
        Round::ImagePushes => None,
        Round::Releases => Some(registry_mock(&plan, &registry_calls).await),
    };

    let dir = tempfile::tempdir()?;
    let database = Database::create(backend, dir.path()).await?;
    let config = write_config(
        dir.path(),
        &database.url,
        &github.uri(),
        registry.as_ref().map(|r| r.uri()).as_deref(),
    )?;
    let settings = Settings::load(Some(&config)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = Application::build(settings).await?;
    let portcall = Portcall::new(app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let (warm_up, counted) = plan.split_at(WARM_UP);
    let warm_samples = drive(&portcall, &statuses, warm_up, concurrency).await?;
    if let Some(lost) = warm_samples.iter().position(|s| s.arrival.is_none()) {
        bail!(
            "warm-up push {lost} got no status within {STATUS_TIMEOUT:?}; calls so far: {:?}",
            github_calls.snapshot()
        );
    }
    portcall.settle().await?;
    let github_warm_up = github_calls.snapshot();
    let registry_warm_up = registry_calls.snapshot();

    let start = Instant::now();
    let samples = drive(&portcall, &statuses, counted, concurrency).await?;
    let elapsed = samples
        .iter()
        .filter_map(|s| s.arrival.as_ref())
        .map(|a| a.at)
        .max()
        .unwrap_or(start)
        - start;
    portcall.settle().await?;
    let github_steady = difference(&github_calls.snapshot(), &github_warm_up);
    let registry_steady = difference(&registry_calls.snapshot(), &registry_warm_up);
    let job_outcomes = portcall.job_outcomes().await?;

    let _ = stop.send(());
    server.await.context("portcall panicked")??;
    database.remove().await?;

    let mut latencies: Vec<Duration> = samples
        .iter()
        .filter_map(|s| Some(s.arrival.as_ref()?.at - s.sent))
        .collect();
    latencies.sort();
    let mut acks: Vec<Duration> = samples.iter().map(|s| s.acked - s.sent).collect();
    acks.sort();
    Ok(RoundResult {
        counted: counted.len(),
        lost: samples.iter().filter(|s| s.arrival.is_none()).count(),
        not_release: samples
            .iter()
            .filter_map(|s| s.arrival.as_ref())
            .filter(|a| !a.description.starts_with("Release "))
            .count(),
        latencies,
        acks,
        elapsed,
        github_warm_up,
        github_steady,
        registry_steady,
        job_outcomes,
    })
}

/// Push `i` of a round: a distinct commit, and a distinct digest.
fn planned(round: Round, i: usize) -> Planned {
    let sha = hex::encode(&Sha256::digest(format!("bench commit {i}"))[..20]);
    match round {
        Round::ImagePushes => Planned {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&sha))),
            tag: sha.clone(),
            sha,
        },
        Round::Releases => Planned {
            digest: sha256_digest(&image(&sha).manifest),
            tag: format!("v1.0.{i}"),
            sha,
        },
    }
}

impl RoundResult {
    fn report(&self, backend: &str, round: Round, concurrency: usize) {
        let (unit, units) = (round.unit(), round.units());
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |sorted: &[Duration], q: f64| ms(percentile(sorted, q));
        let github = Endpoints::GITHUB;
        println!(
            "{backend}, {}: {} {units}, notification→status p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms; {:.2} provider calls per {unit} ({})",
            round.name(),
            self.latencies.len(),
            at(&self.latencies, 0.50),
            at(&self.latencies, 0.90),
            at(&self.latencies, 0.99),
            at(&self.latencies, 1.0),
            per(total(&self.github_steady), self.counted),
            github.breakdown(&self.github_steady, self.counted),
        );
        println!(
            "  throughput {:.1} {units}/s with {concurrency} in flight; notification answered (202) p50 {:.1} ms p99 {:.1} ms",
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            at(&self.acks, 0.50),
            at(&self.acks, 0.99),
        );
        if round == Round::Releases {
            println!(
                "  {:.2} registry reads per {unit} ({}); {} of {} statuses name the release",
                per(total(&self.registry_steady), self.counted),
                Endpoints::REGISTRY.breakdown(&self.registry_steady, self.counted),
                self.latencies.len() - self.not_release,
                self.latencies.len(),
            );
        }
        let outcomes: Vec<String> = self
            .job_outcomes
            .iter()
            .map(|(outcome, n)| format!("{n} {outcome}"))
            .collect();
        println!(
            "  warm-up ({WARM_UP} pushes) calls: {}; job attempts over the round: {}",
            github.counts(&self.github_warm_up),
            outcomes.join(", ")
        );
    }

    /// Why the figures cannot be trusted, if they cannot.
    fn problems(&self, round: Round) -> impl Iterator<Item = String> {
        let mut problems = Vec::new();
        if self.lost > 0 {
            problems.push(format!(
                "{} statuses never arrived (timeout {STATUS_TIMEOUT:?})",
                self.lost
            ));
        }
        if round == Round::Releases && self.not_release > 0 {
            problems.push(format!(
                "{} statuses did not name a release",
                self.not_release
            ));
        }
        for outcome in ["retry", "dead"] {
            if let Some(n) = self.job_outcomes.get(outcome) {
                problems.push(format!("{n} job attempts ended {outcome}"));
            }
        }
        problems.into_iter()
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn per(count: u64, pushes: usize) -> f64 {
    count as f64 / pushes as f64
}

fn total(calls: &BTreeMap<&'static str, u64>) -> u64 {
    calls.values().sum()
}

fn difference(
    after: &BTreeMap<&'static str, u64>,
    before: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(endpoint, n)| (*endpoint, n - before.get(endpoint).unwrap_or(&0)))
        .collect()
}

/// The endpoints a mock counts, in the order they are reported.
struct Endpoints(&'static [&'static str]);

impl Endpoints {
    const GITHUB: Endpoints = Endpoints(&[
        "statuses",
        "check-runs",
        "pulls",
        "installation",
        "access_tokens",
        "unexpected",
    ]);
    const REGISTRY: Endpoints = Endpoints(&["ping", "manifests", "blobs", "unexpected"]);

    /// `statuses 1.00, check-runs 1.00, …`; endpoints never called, in any
    /// part of the round, are left out.
    fn breakdown(&self, calls: &BTreeMap<&'static str, u64>, pushes: usize) -> String {
        self.0
            .iter()
            .filter_map(|e| Some(format!("{e} {:.2}", per(*calls.get(e)?, pushes))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn counts(&self, calls: &BTreeMap<&'static str, u64>) -> String {
        self.0
            .iter()
            .filter_map(|e| Some(format!("{e} {}", calls.get(e)?)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---------------------------------------------------------------------------
// The load: CONCURRENCY senders, each with one push in flight.

struct Sample {
    sent: Instant,
    acked: Instant,
    arrival: Option<Arrival>,
}

async fn drive(
    portcall: &Portcall,
    statuses: &Arrivals,
    pushes: &[Planned],
    concurrency: usize,
) -> anyhow::Result<Vec<Sample>> {
    let pushes = Arc::new(pushes.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = JoinSet::new();
    for _ in 0..concurrency {
        let (portcall, statuses) = (portcall.clone(), statuses.clone());
        let (pushes, next) = (pushes.clone(), next.clone());
        senders.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(push) = pushes.get(i) else {
                    return anyhow::Ok(samples);
                };
                let arrived = statuses.expect(&push.sha);
                let sent = Instant::now();
                portcall.notify(&push.tag, &push.digest).await?;
                let acked = Instant::now();
                let arrival = tokio::time::timeout(STATUS_TIMEOUT, arrived)
                    .await
                    .ok()
                    .and_then(Result::ok);
                samples.push(Sample {
                    sent,
                    acked,
                    arrival,
                });
            }
        });
    }
    let mut samples = Vec::with_capacity(pushes.len());
    while let Some(sender) = senders.join_next().await {
        samples.extend(sender.context("a sender panicked")??);
    }
    Ok(samples)
}

/// The running application, as the load generator talks to it.
#[derive(Clone)]
struct Portcall {
    address: String,
    client: reqwest::Client,
}

impl Portcall {
    fn new(port: u16) -> Self {
        Self {
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// Posts the Distribution notification of one manifest push, as the
    /// registry sends it, and expects 202.
    async fn notify(&self, tag: &str, digest: &str) -> anyhow::Result<()> {
        let envelope = json!({"events": [{
            "id": uuid::Uuid::new_v4().to_string(),
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 594, "length": 594,
                "digest": digest,
                "repository": REPO,
                "url": format!("https://{REGISTRY_HOST}/v2/{REPO}/manifests/{digest}"),
                "tag": tag
            },
            "request": {"id": uuid::Uuid::new_v4().to_string(), "addr": "10.0.0.7:41234",
                        "host": REGISTRY_HOST, "method": "PUT", "useragent": "buildkit/v0.16"},
            "actor": {},
            "source": {"addr": "registry:5000", "instanceID": "bench"}
        }]});
        let response = self
            .client
            .post(format!("{}/webhooks/registry", self.address))
            .bearer_auth(HOOK_TOKEN)
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(serde_json::to_vec(&envelope)?)
            .send()
            .await?;
        let status = response.status();
        if status.as_u16() != 202 {
            bail!(
                "the notification was answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Waits until the outbox holds no pending job: every provider call the
    /// pushes so far cause has been made.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let answer: Value = self
                .client
                .get(format!(
                    "{}/api/v1/jobs?state=pending&limit=1",
                    self.address
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if answer["jobs"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "jobs still pending after {SETTLE_TIMEOUT:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `portcall_outbox_jobs_total` summed by outcome.
    async fn job_outcomes(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut outcomes = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("portcall_outbox_jobs_total{") else {
                continue;
            };
            let outcome = rest
                .split_once("outcome=\"")
                .and_then(|(_, o)| o.split_once('"'))
                .map(|(o, _)| o.to_owned());
            let value = rest
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<u64>().ok());
            if let (Some(outcome), Some(value)) = (outcome, value) {
                *outcomes.entry(outcome).or_insert(0) += value;
            }
        }
        Ok(outcomes)
    }
}

// ---------------------------------------------------------------------------
// The mocks.

/// When the status of a commit arrived, and what it said.
struct Arrival {
    at: Instant,
    description: String,
}

/// The senders waiting for the status of their commit.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, oneshot::Sender<Arrival>>>>);

impl Arrivals {
    /// Resolves when the status of `sha` arrives.
    fn expect(&self, sha: &str) -> oneshot::Receiver<Arrival> {
        let (tell, told) = oneshot::channel();
        self.lock().insert(sha.to_owned(), tell);
        told
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Arrival>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST /repos/{o}/{r}/statuses/{sha}`: notes the arrival time of the first
/// status of each commit, counts, answers as documented.
struct StatusResponder {
    arrivals: Arrivals,
    calls: Calls,
    response: ResponseTemplate,
}

impl Respond for StatusResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let at = Instant::now();
        self.calls.add("statuses");
        let sha = request.url.path().rsplit('/').next().unwrap_or_default();
        if let Some(waiting) = self.arrivals.lock().remove(sha) {
            let description = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|b| b["description"].as_str().map(str::to_owned))
                .unwrap_or_default();
            // A sender that timed out no longer listens; that is counted there.
            let _ = waiting.send(Arrival { at, description });
        }
        self.response.clone()
    }
}

fn fixture(path: &str) -> anyhow::Result<Value> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    let bytes = std::fs::read(&full).with_context(|| full.display().to_string())?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// GitHub as documented: the installation of the repository, an access
/// token valid for an hour, statuses, check runs, and no open pull request.
async fn github_mock(calls: &Calls, arrivals: &Arrivals) -> MockServer {
    let server = MockServer::start().await;
    let counted = |endpoint, status: u16, body: Value| Counted {
        endpoint,
        calls: calls.clone(),
        response: ResponseTemplate::new(status).set_body_json(body),
    };
    let documented = |path: &str| fixture(path).expect("the documented bodies are in fixtures/");
    let mut token = documented("github-api/apps/create-installation-access-token.json");
    token["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mocks = [
        Mock::given(method("GET"))
            .and(path(format!("/repos/{REPO}/installation")))
            .respond_with(counted(
                "installation",
                200,
                documented("github-api/apps/get-repo-installation.json"),
            )),
        Mock::given(method("POST"))
            .and(path_regex(r"^/app/installations/[0-9]+/access_tokens$"))
            .respond_with(counted("access_tokens", 201, token)),
        Mock::given(method("POST"))
            .and(path_regex(format!("^/repos/{REPO}/statuses/[0-9a-f]{{40}}$")))
            .respond_with(StatusResponder {
                arrivals: arrivals.clone(),
                calls: calls.clone(),
                response: ResponseTemplate::new(201)
                    .set_body_json(documented("github-api/repos/create-commit-status.json")),
            }),
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/check-runs")))
            .respond_with(counted(
                "check-runs",
                201,
                documented("github-api/checks/create.json"),
            )),
        Mock::given(method("GET"))
            .and(path_regex(format!(
                "^/repos/{REPO}/commits/[0-9a-f]{{40}}/pulls$"
            )))
            .respond_with(counted("pulls", 200, json!([]))),
        // Anything else portcall asks is a call too: counted, and refused.
        Mock::given(any())
            .respond_with(counted(
                "unexpected",
                404,
                json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
            ))
            .with_priority(100),
    ];
    for mock in mocks {
        mock.mount(&server).await;
    }
    server
}

/// A blob or manifest the mock registry serves.
struct Content {
    media_type: &'static str,
    bytes: Vec<u8>,
}

/// An image built from `sha`: its config (with the OCI labels) and the
/// manifest pointing at it.
struct Image {
    config: Vec<u8>,
    manifest: Vec<u8>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn image(sha: &str) -> Image {
    let layer = format!("sha256:{}", hex::encode(Sha256::digest(sha)));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {
            "org.opencontainers.image.revision": sha,
            "org.opencontainers.image.source": SOURCE_URL,
        }},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    }))
    .expect("JSON values serialize");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 32}],
    }))
    .expect("JSON values serialize");
    Image { config, manifest }
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An open registry's v2 API: `GET /v2/`, and each planned image's manifest
/// and config by digest.
struct RegistryResponder {
    calls: Calls,
    content: HashMap<String, Content>,
}

impl Respond for RegistryResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if path == "/v2/" {
            self.calls.add("ping");
            return ResponseTemplate::new(200)
                .insert_header("Docker-Distribution-API-Version", "registry/2.0");
        }
        let Some(found) = self.content.get(path) else {
            self.calls.add("unexpected");
            return ResponseTemplate::new(404).set_body_json(
                json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}),
            );
        };
        self.calls.add(if path.contains("/manifests/") {
            "manifests"
        } else {
            "blobs"
        });
        ResponseTemplate::new(200)
            .insert_header("Content-Type", found.media_type)
            .insert_header("Docker-Content-Digest", sha256_digest(&found.bytes))
            .set_body_raw(found.bytes.clone(), found.media_type)
    }
}

async fn registry_mock(plan: &[Planned], calls: &Calls) -> MockServer {
    let mut content = HashMap::new();
    for push in plan {
        let image = image(&push.sha);
        content.insert(
            format!("/v2/{REPO}/blobs/{}", sha256_digest(&image.config)),
            Content {
                media_type: OCI_CONFIG,
                bytes: image.config,
            },
        );
        content.insert(
            format!("/v2/{REPO}/manifests/{}", push.digest),
            Content {
                media_type: OCI_MANIFEST,
                bytes: image.manifest,
            },
        );
    }
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(RegistryResponder {
            calls: calls.clone(),
            content,
        })
        .mount(&server)
        .await;
    server
}

// ---------------------------------------------------------------------------
// The database and the configuration.

/// A fresh database: a SQLite file in the round's directory, or a new
/// PostgreSQL database dropped by [`Database::remove`].
struct Database {
    url: String,
    postgres: Option<(String, String)>,
}

impl Database {
    async fn create(backend: &Backend, dir: &Path) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join("portcall.db").display()),
                postgres: None,
            }),
            Backend::Postgres { admin_url } => {
                let name = format!("portcall_bench_{}", uuid::Uuid::new_v4().simple());
                admin(admin_url, &format!("CREATE DATABASE {name}")).await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    postgres: Some((admin_url.clone(), name)),
                })
            }
        }
    }

    async fn remove(self) -> anyhow::Result<()> {
        if let Some((admin_url, name)) = &self.postgres {
            admin(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await?;
        }
        Ok(())
    }
}

/// Runs one statement on the PostgreSQL server's maintenance database.
async fn admin(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to {POSTGRES_ENV}"))?;
    sqlx::query(sql).execute(&mut conn).await?;
    Ok(())
}

/// The benchmark's configuration in `dir`: zero retry backoff, fast polling,
/// one Distribution source (reading images from `registry_api` when given),
/// GitHub at `github_api` with the test App key, one component.
fn write_config(
    dir: &Path,
    database_url: &str,
    github_api: &str,
    registry_api: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let secret = |name: &str, value: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, value)?;
        Ok(format!("file:{}", path.display()))
    };
    let api_url = registry_api
        .map(|url| format!("api_url = \"{url}\""))
        .unwrap_or_default();
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github/test-app-key.pem");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[database]
url = "{database_url}"

[admin]
token = "{admin}"

[worker]
poll_interval_ms = 10

[dispatcher]
poll_interval_ms = 10
backoff_base_ms = 0

[[sources]]
name = "registry"
kind = "distribution"
secrets = ["{hook}"]
registry = "{REGISTRY_HOST}"
{api_url}

[github]
app_id = {APP_ID}
private_key = "file:{key}"
api_url = "{github_api}"

[[components]]
name = "bench"
image = "{REGISTRY_HOST}/{REPO}"
repository = "github:{REPO}"
release_tags = ["v*"]
"#,
        admin = secret("admin-token", ADMIN_TOKEN)?,
        hook = secret("registry-hook-token", HOOK_TOKEN)?,
        key = key.display(),
    );
    let path = dir.join("portcall.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// The dispatcher and worker settings the rounds run with (the file above
/// plus any `PORTCALL__…` overrides).
fn dispatcher_summary() -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let path = write_config(dir.path(), "sqlite://unused.db", "http://127.0.0.1:1", None)?;
    let settings = Settings::load(Some(&path)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (d, w) = (&settings.dispatcher, &settings.worker);
    Ok(format!(
        "dispatcher: concurrency {}, per_installation {}, batch_size {}, poll {} ms, backoff base {} ms; worker: batch_size {}, poll {} ms",
        d.concurrency,
        d.per_installation,
        d.batch_size,
        d.poll_interval.as_millis(),
        d.backoff_base.as_millis(),
        w.batch_size,
        w.poll_interval.as_millis(),
    ))
}
