//! Soak benchmark: a release build of `portcall serve` under a steady,
//! open-loop load for minutes, watching its memory, its inbox lag and its
//! outbox. `scripts/soak.sh` builds and runs it.
//!
//!     target/release/examples/soak [SECONDS=600] [RATE=2000]
//!
//! - GitHub is a wiremock server in this process answering the App's calls
//!   with the documented bodies (`fixtures/github-api/`): installation
//!   lookup, installation token, commit statuses, check runs, the look-ups
//!   before a retry (none there yet) and the pull requests of a commit
//!   (none open). Requests are counted by endpoint, not recorded.
//! - portcall is the real binary (`target/release/portcall`, or
//!   `PORTCALL_BIN`) as its own process, `RUST_LOG=warn`, on a SQLite file in
//!   a temporary directory, worker and dispatcher enabled with their
//!   defaults (`PORTCALL__…` variables reach it and override them).
//! - The load is open-loop: request `k` is due at `start + k / RATE`,
//!   whatever became of the earlier ones (each runs in its own task, up to
//!   `MAX_IN_FLIGHT` at once). A request sent more than `LATE_AFTER` behind
//!   its time counts as late. Nine in ten are the signed GitHub push fixture
//!   with a unique `X-GitHub-Delivery`; one in ten a Distribution envelope
//!   pushing `registry.example.com/octo-org/hello-world` tagged with a new
//!   40-hex commit sha, which makes a commit status, a check run and a
//!   comment job (a pull-request look-up) that the dispatcher posts to the
//!   mock.
//! - Every `SAMPLE_EVERY` it samples portcall's RSS (`VmRSS`), the inbox
//!   lag (age of the oldest pending delivery) and the outbox, read from the
//!   SQLite file through a read-only connection, and the answers so far.
//!
//! It exits non-zero when a request failed (not 2xx, or no answer) or a
//! target was missed: RSS flat (the last sample within +10% of the
//! baseline: the sample after `RSS_WARM_UP` of load, when the allocator and
//! the connection pools have reached their working size, or the first in a
//! shorter run) and an inbox lag under 1 s at every sample.

#[path = "support/calls.rs"]
mod calls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use calls::{Calls, Counted};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::Semaphore;
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How often portcall is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Load before the RSS baseline is taken.
const RSS_WARM_UP: Duration = Duration::from_secs(60);
/// A request sent later than this behind its scheduled time is late.
const LATE_AFTER: Duration = Duration::from_millis(10);
/// Requests awaiting their answer at most; past it the schedule slips (and
/// the sends count as late).
const MAX_IN_FLIGHT: usize = 4096;
/// A request without an answer after this long failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Targets: the last RSS sample at most this much above the first, and the
/// inbox lag below this at every sample.
const RSS_GROWTH_LIMIT: f64 = 0.10;
const INBOX_LAG_LIMIT: Duration = Duration::from_secs(1);
/// One request in `REGISTRY_EVERY` is a Distribution push, the rest GitHub pushes.
const REGISTRY_EVERY: u64 = 10;

const REPO: &str = "octo-org/hello-world";
const REGISTRY_HOST: &str = "registry.example.com";
const APP_ID: u64 = 4242;
const GITHUB_SECRET: &str = "soak-github-webhook-secret";
const REGISTRY_TOKEN: &str = "soak-registry-hook-token";
const ADMIN_TOKEN: &str = "soak-admin-token";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The whole run; `Ok(false)` when a request failed or a target was missed.
async fn run() -> anyhow::Result<bool> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = parse_arg(args.next(), 600, "SECONDS")?;
    let rate: u64 = parse_arg(args.next(), 2000, "RATE")?;
    ensure!(
        seconds >= SAMPLE_EVERY.as_secs(),
        "SECONDS must be at least {} (one sample)",
        SAMPLE_EVERY.as_secs()
    );
    ensure!(rate > 0, "RATE must be at least 1");

    let calls = Calls::default();
    let github = github_mock(&calls).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let database = dir.path().join("portcall.db");
    let config = write_config(dir.path(), &database, port, &github.uri())?;
    let log_path = dir.path().join("portcall.log");
    let mut portcall = spawn_portcall(&config, &log_path)?;
    let pid = portcall.id().context("portcall exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    wait_ready(&client, &base, &mut portcall).await?;
    let db = open_read_only(&database).await?;

    println!(
        "soak: {seconds} s at {rate} requests/s ({} in {REGISTRY_EVERY} signed GitHub pushes, 1 in {REGISTRY_EVERY} a Distribution push of a new commit), {} cores, portcall pid {pid}",
        REGISTRY_EVERY - 1,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "targets: RSS at the end within +{:.0}% of the sample after {} s; inbox lag < {} s at every sample; every request answered 2xx",
        RSS_GROWTH_LIMIT * 100.0,
        SAMPLE_EVERY.as_secs(),
        INBOX_LAG_LIMIT.as_secs_f64(),
    );

    let tally = Arc::new(Tally::default());
    let load = Load::new(client.clone(), &base);
    let start = Instant::now();
    let sampler = tokio::spawn(sample_loop(start, seconds, pid, db.clone(), tally.clone()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total = seconds * rate;
    for k in 0..total {
        let due = start + Duration::from_nanos(scheduled_nanos(k, rate));
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = in_flight.clone().acquire_owned().await?;
        tally.sent_one(Instant::now().saturating_duration_since(due));
        let (load, tally) = (load.clone(), tally.clone());
        tokio::spawn(async move {
            let answer = load.send(k).await;
            tally.answered(answer);
            drop(permit);
        });
    }
    let sent_for = start.elapsed();
    // The last answers (each request times out on its own).
    let drained = tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(5),
        in_flight.acquire_many(MAX_IN_FLIGHT as u32),
    )
    .await;
    let samples = sampler.await.context("the sampler panicked")??;
    let outbox = read_db(&db).await?;
    let exited = portcall.try_wait()?;
    stop_portcall(&mut portcall, pid).await;

    // The report.
    let answers = tally.answers();
    let sent = tally.sent.load(Ordering::Relaxed);
    let ok: u64 = answers
        .iter()
        .filter(|(status, _)| status.starts_with('2'))
        .map(|(_, n)| n)
        .sum();
    let answered: u64 = answers.values().sum();
    let late = tally.late.load(Ordering::Relaxed);
    let max_behind = Duration::from_micros(tally.max_behind_us.load(Ordering::Relaxed));
    let first = samples
        .iter()
        .find(|s| s.at >= RSS_WARM_UP)
        .or(samples.first())
        .context("no sample was taken")?;
    let last = samples.last().context("no sample was taken")?;
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let growth = last.rss_kib as f64 / first.rss_kib.max(1) as f64 - 1.0;
    let mut lags: Vec<Duration> = samples.iter().map(|s| s.inbox_lag).collect();
    lags.sort();
    let lag_max = lags.last().copied().unwrap_or_default();
    let lag_p99 = percentile(&lags, 0.99);

    println!();
    println!("summary:");
    println!(
        "  requests sent {sent} in {:.1} s ({} GitHub pushes, {} Distribution pushes), {:.0}/s",
        sent_for.as_secs_f64(),
        sent - sent / REGISTRY_EVERY,
        sent / REGISTRY_EVERY,
        sent as f64 / sent_for.as_secs_f64(),
    );
    let by_status: Vec<String> = answers.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
    println!(
        "  answers: {}; 2xx {ok}, other {}{}",
        if by_status.is_empty() {
            "none".to_owned()
        } else {
            by_status.join(", ")
        },
        answered - ok,
        if answered < sent {
            format!(", still unanswered {}", sent - answered)
        } else {
            String::new()
        },
    );
    println!(
        "  late sends (more than {} ms behind schedule): {late}; furthest behind {:.1} ms",
        LATE_AFTER.as_millis(),
        max_behind.as_secs_f64() * 1000.0,
    );
    println!(
        "  RSS: start {} (t={} s), end {} (t={} s, {:+.1}%), peak {}",
        mib(first.rss_kib),
        first.at.as_secs(),
        mib(last.rss_kib),
        last.at.as_secs(),
        growth * 100.0,
        mib(peak),
    );
    println!(
        "  inbox lag: max {:.3} s, p99 of {} samples {:.3} s; {} deliveries pending at the end",
        lag_max.as_secs_f64(),
        lags.len(),
        lag_p99.as_secs_f64(),
        outbox.inbox_pending,
    );
    println!(
        "  jobs at the end: {} done, {} pending, {} dead, {} skipped",
        outbox.jobs_done, outbox.jobs_pending, outbox.jobs_dead, outbox.jobs_skipped,
    );
    println!("  GitHub mock calls: {}", summary(&calls));

    let mut problems = Vec::new();
    if ok < sent {
        problems.push(format!("{} requests not answered 2xx", sent - ok));
    }
    if drained.is_err() {
        problems.push("requests still in flight after the load ended".to_owned());
    }
    if let Some(status) = exited {
        problems.push(format!("portcall exited during the run ({status})"));
    }
    let rss_flat = growth <= RSS_GROWTH_LIMIT;
    let lag_held = lag_max < INBOX_LAG_LIMIT;
    println!(
        "  targets: RSS flat (end within +{:.0}% of start): {}; inbox lag < {} s at every sample: {}",
        RSS_GROWTH_LIMIT * 100.0,
        if rss_flat { "held" } else { "MISSED" },
        INBOX_LAG_LIMIT.as_secs_f64(),
        if lag_held { "held" } else { "MISSED" },
    );
    if !rss_flat {
        problems.push(format!("RSS grew {:+.1}%", growth * 100.0));
    }
    if !lag_held {
        problems.push(format!("inbox lag reached {:.3} s", lag_max.as_secs_f64()));
    }
    report_log(&log_path);
    if problems.is_empty() {
        println!("soak: PASS");
        Ok(true)
    } else {
        println!("soak: FAIL: {}", problems.join("; "));
        Ok(false)
    }
}

fn parse_arg(arg: Option<String>, default: u64, name: &str) -> anyhow::Result<u64> {
    arg.map_or(Ok(default), |a| {
        a.parse()
            .with_context(|| format!("{name} must be a whole number, got {a:?}"))
    })
}

/// Nanoseconds after the start at which request `k` is due.
fn scheduled_nanos(k: u64, rate: u64) -> u64 {
    u64::try_from(u128::from(k) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX)
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------
// The load.

/// What was sent and what came back, shared by the senders.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    late: AtomicU64,
    max_behind_us: AtomicU64,
    /// Answers by HTTP status, or `error (…)` for a request without one.
    answers: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn sent_one(&self, behind: Duration) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if behind > LATE_AFTER {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(behind.as_micros()).unwrap_or(u64::MAX);
        self.max_behind_us.fetch_max(us, Ordering::Relaxed);
    }

    fn answered(&self, answer: String) {
        *self.lock().entry(answer).or_insert(0) += 1;
    }

    fn answers(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    /// `(2xx, other)` so far.
    fn split(&self) -> (u64, u64) {
        self.lock().iter().fold((0, 0), |(ok, other), (status, n)| {
            if status.starts_with('2') {
                (ok + n, other)
            } else {
                (ok, other + n)
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // Nothing panics while holding it; a poisoned map is still right.
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds and sends request `k`.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    github_url: Arc<str>,
    registry_url: Arc<str>,
    push: Bytes,
    push_signature: Arc<str>,
    /// Makes the delivery ids and commits of this run its own.
    run: Arc<str>,
}

impl Load {
    fn new(client: reqwest::Client, base: &str) -> Self {
        let push = Bytes::from_static(include_bytes!("../fixtures/github/push.json"));
        let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(&push);
        Self {
            client,
            github_url: format!("{base}/webhooks/github").into(),
            registry_url: format!("{base}/webhooks/registry").into(),
            push_signature: format!("sha256={}", hex::encode(mac.finalize().into_bytes())).into(),
            push,
            run: uuid::Uuid::new_v4().simple().to_string()[..8].into(),
        }
    }

    /// Sends request `k` and says what came back: the HTTP status, or the
    /// kind of error.
    async fn send(&self, k: u64) -> String {
        let request = if k % REGISTRY_EVERY == REGISTRY_EVERY - 1 {
            self.client
                .post(&*self.registry_url)
                .bearer_auth(REGISTRY_TOKEN)
                .header(
                    "Content-Type",
                    "application/vnd.docker.distribution.events.v1+json",
                )
                .body(self.distribution_push(k))
        } else {
            self.client
                .post(&*self.github_url)
                .header("X-Hub-Signature-256", &*self.push_signature)
                .header("X-GitHub-Event", "push")
                .header("X-GitHub-Delivery", format!("soak-{}-{k}", self.run))
                .header("Content-Type", "application/json")
                .header("User-Agent", "GitHub-Hookshot/044aadd")
                .body(self.push.clone())
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16().to_string();
                // Read the answer so the connection goes back to the pool.
                match response.bytes().await {
                    Ok(_) => status,
                    Err(e) => format!("error ({}) after {status}", error_kind(&e)),
                }
            }
            Err(e) => format!("error ({})", error_kind(&e)),
        }
    }

    /// A Distribution envelope with one manifest push of the component's
    /// image, tagged with a commit sha of its own (so the commit is known
    /// from the tag, and each push posts its own status and check run).
    fn distribution_push(&self, k: u64) -> Vec<u8> {
        let sha = hex::encode(&Sha256::digest(format!("soak {} {k}", self.run))[..20]);
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&sha)));
        let envelope = json!({"events": [{
            "id": format!("soak-{}-{k}", self.run),
            "timestamp": "2026-12-01T10:00:00.000000000Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 594, "length": 594, "digest": digest,
                "repository": REPO,
                "url": format!("https://{REGISTRY_HOST}/v2/{REPO}/manifests/{digest}"),
                "tag": sha
            },
            "request": {"id": format!("r-{k}"), "addr": "10.0.0.7:41234",
                        "host": REGISTRY_HOST, "method": "PUT", "useragent": "skopeo/1.9.3"},
            "actor": {},
            "source": {"addr": "registry:5000", "instanceID": "soak"}
        }]});
        serde_json::to_vec(&envelope).expect("JSON values serialize")
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

// ---------------------------------------------------------------------------
// Sampling.

struct Sample {
    /// Since the load started.
    at: Duration,
    sent: u64,
    ok: u64,
    other: u64,
    late: u64,
    rss_kib: u64,
    inbox_lag: Duration,
    db: DbReading,
}

/// What the database says.
#[derive(Default)]
struct DbReading {
    inbox_pending: i64,
    /// How long the oldest pending delivery had waited when it was read,
    /// in ms (taken then, so the reads after it do not count).
    oldest_pending_age_ms: Option<i64>,
    jobs_pending: i64,
    jobs_done: i64,
    jobs_dead: i64,
    jobs_skipped: i64,
}

/// Samples at every `SAMPLE_EVERY` of the load and at its end, printing a
/// line per sample.
async fn sample_loop(
    start: Instant,
    seconds: u64,
    pid: u32,
    db: SqlitePool,
    tally: Arc<Tally>,
) -> anyhow::Result<Vec<Sample>> {
    let step = SAMPLE_EVERY.as_secs();
    let mut marks: Vec<u64> = (1..=seconds / step).map(|i| i * step).collect();
    if seconds % step != 0 {
        marks.push(seconds);
    }
    println!(
        "{:>6} {:>9} {:>9} {:>6} {:>6} {:>10} {:>8} {:>10} {:>9} {:>9} {:>5}",
        "t",
        "sent",
        "2xx",
        "other",
        "late",
        "rss",
        "inbox",
        "inbox_lag",
        "jobs_pend",
        "jobs_done",
        "dead"
    );
    let mut samples = Vec::with_capacity(marks.len());
    for mark in marks {
        let at = Duration::from_secs(mark);
        tokio::time::sleep_until((start + at).into()).await;
        // The counters and RSS first, at the mark; the database reads after.
        let (sent, late, (ok, other)) = (
            tally.sent.load(Ordering::Relaxed),
            tally.late.load(Ordering::Relaxed),
            tally.split(),
        );
        let rss_kib = rss_kib(pid).with_context(|| format!("reading /proc/{pid}/status"))?;
        let reading = read_db(&db).await?;
        let inbox_lag = reading.oldest_pending_age_ms.map_or(Duration::ZERO, |age| {
            Duration::from_millis(u64::try_from(age).unwrap_or(0))
        });
        let sample = Sample {
            at,
            sent,
            ok,
            other,
            late,
            rss_kib,
            inbox_lag,
            db: reading,
        };
        println!(
            "{:>5}s {:>9} {:>9} {:>6} {:>6} {:>10} {:>8} {:>9.3}s {:>9} {:>9} {:>5}",
            sample.at.as_secs(),
            sample.sent,
            sample.ok,
            sample.other,
            sample.late,
            mib(sample.rss_kib),
            sample.db.inbox_pending,
            sample.inbox_lag.as_secs_f64(),
            sample.db.jobs_pending,
            sample.db.jobs_done,
            sample.db.jobs_dead,
        );
        samples.push(sample);
    }
    Ok(samples)
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?;
    let kib = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("VmRSS {line:?}"))?;
    Ok(kib)
}

/// A read-only connection to portcall's SQLite file (WAL: it reads beside
/// portcall's writer without blocking it).
async fn open_read_only(database: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", database.display()))?
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("opening portcall's database read-only")
}

async fn read_db(db: &SqlitePool) -> anyhow::Result<DbReading> {
    let mut reading = DbReading {
        inbox_pending: sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'",
        )
        .fetch_one(db)
        .await?,
        oldest_pending_age_ms: sqlx::query_scalar::<_, i64>(
            "SELECT received_at FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(db)
        .await?
        .map(|received| now_ms() - received),
        ..DbReading::default()
    };
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(db)
            .await?;
    for (state, n) in states {
        match state.as_str() {
            "pending" => reading.jobs_pending = n,
            "done" => reading.jobs_done = n,
            "dead" => reading.jobs_dead = n,
            "skipped" => reading.jobs_skipped = n,
            _ => {}
        }
    }
    Ok(reading)
}

// ---------------------------------------------------------------------------
// portcall, the process.

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `target/release/portcall` beside this example (`target/release/examples/soak`),
/// or `PORTCALL_BIN`.
fn portcall_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PORTCALL_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("where is this example?")?
        .join("portcall");
    ensure!(
        bin.exists(),
        "{} is missing: cargo build --release --bin portcall (or set PORTCALL_BIN)",
        bin.display()
    );
    Ok(bin)
}

fn spawn_portcall(config: &Path, log: &Path) -> anyhow::Result<tokio::process::Child> {
    let bin = portcall_bin()?;
    tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("PORTCALL_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    portcall: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = portcall.try_wait()? {
            bail!("portcall exited before it was ready ({status})");
        }
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "portcall was not ready after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM (a graceful stop), then SIGKILL if it takes too long.
async fn stop_portcall(portcall: &mut tokio::process::Child, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(40), portcall.wait())
        .await
        .is_err()
    {
        eprintln!("soak: portcall did not stop within 40 s of SIGTERM; killing it");
        let _ = portcall.kill().await;
    }
}

/// portcall's own warnings and errors (`RUST_LOG=warn`), if it logged any.
fn report_log(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        println!("  portcall logged nothing at warn or above");
        return;
    }
    println!(
        "  portcall logged {} lines at warn or above; the last ones:",
        lines.len()
    );
    for line in &lines[lines.len().saturating_sub(10)..] {
        println!("    {line}");
    }
}

/// The configuration in `dir`: SQLite at `database`, a `github` source and
/// a Distribution `registry` source, one component, GitHub at the mock.
fn write_config(
    dir: &Path,
    database: &Path,
    port: u16,
    github_api: &str,
) -> anyhow::Result<PathBuf> {
    let secret = |name: &str, value: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, value)?;
        Ok(format!("file:{}", path.display()))
    };
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github/test-app-key.pem");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[database]
url = "sqlite://{database}"

[admin]
token = "{admin}"

[worker]
enabled = true

[dispatcher]
enabled = true

[[sources]]
name = "github"
kind = "github"
secrets = ["{github_secret}"]

[[sources]]
name = "registry"
kind = "distribution"
secrets = ["{registry_secret}"]
registry = "{REGISTRY_HOST}"

[github]
app_id = {APP_ID}
private_key = "file:{key}"
api_url = "{github_api}"
recovery = false

[[components]]
name = "hello-world"
image = "{REGISTRY_HOST}/{REPO}"
repository = "github:{REPO}"
"#,
        database = database.display(),
        admin = secret("admin-token", ADMIN_TOKEN)?,
        github_secret = secret("github-webhook-secret", GITHUB_SECRET)?,
        registry_secret = secret("registry-hook-token", REGISTRY_TOKEN)?,
        key = key.display(),
    );
    let path = dir.join("portcall.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

// ---------------------------------------------------------------------------
// The GitHub mock.

/// The calls a mock received, as `endpoint n, endpoint n`.
fn summary(calls: &Calls) -> String {
    let calls = calls.snapshot();
    if calls.is_empty() {
        return "none".to_owned();
    }
    calls
        .iter()
        .map(|(endpoint, n)| format!("{endpoint} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn documented(path: &str) -> anyhow::Result<Value> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    let bytes = std::fs::read(&full).with_context(|| full.display().to_string())?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// GitHub as documented, for the App on `REPO`: its installation (id 1), an
/// installation token valid for an hour, statuses and check runs created,
/// none there before (the look-ups a retry makes), and no open pull
/// request. Anything else is counted as `unexpected` and answered 404.
/// Requests are not recorded: over ten minutes that would be hundreds of
/// thousands kept in this process.
async fn github_mock(calls: &Calls) -> anyhow::Result<MockServer> {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    let counted = |endpoint, status: u16, body: Value| Counted {
        endpoint,
        calls: calls.clone(),
        response: ResponseTemplate::new(status).set_body_json(body),
    };
    let mut token = documented("github-api/apps/create-installation-access-token.json")?;
    token["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut no_checks = documented("github-api/checks/list-for-ref.json")?;
    no_checks["total_count"] = json!(0);
    no_checks["check_runs"] = json!([]);
    let sha = "[0-9a-f]{40}";
    let mocks = [
        Mock::given(method("GET"))
            .and(path(format!("/repos/{REPO}/installation")))
            .respond_with(counted(
                "installation",
                200,
                documented("github-api/apps/get-repo-installation.json")?,
            )),
        Mock::given(method("POST"))
            .and(path("/app/installations/1/access_tokens"))
            .respond_with(counted("access_tokens", 201, token)),
        Mock::given(method("POST"))
            .and(path_regex(format!("^/repos/{REPO}/statuses/{sha}$")))
            .respond_with(counted(
                "statuses",
                201,
                documented("github-api/repos/create-commit-status.json")?,
            )),
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/check-runs")))
            .respond_with(counted(
                "check-runs",
                201,
                documented("github-api/checks/create.json")?,
            )),
        Mock::given(method("GET"))
            .and(path_regex(format!("^/repos/{REPO}/commits/{sha}/pulls$")))
            .respond_with(counted("pulls", 200, json!([]))),
        Mock::given(method("GET"))
            .and(path_regex(format!("^/repos/{REPO}/commits/{sha}/statuses$")))
            .respond_with(counted("list statuses", 200, json!([]))),
        Mock::given(method("GET"))
            .and(path_regex(format!("^/repos/{REPO}/commits/{sha}/check-runs$")))
            .respond_with(counted("list check-runs", 200, no_checks)),
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
    Ok(server)
}
