//! GitHub failing at random on 30% of portcall's calls: 5xx, 429 and 403
//! secondary rate limits with `Retry-After`, timeouts, connections reset
//! before and after GitHub acted, and answers that take 20 seconds. A TCP
//! proxy between `portcall serve` and the GitHub mock decides each call's
//! fault, resets connections itself and tells the mock the rest in an
//! `x-fault` header; the mock keeps what was created and lists it back, as
//! GitHub does, and keeps a ledger of what it told portcall.
//!
//! Every status and check run ends on GitHub exactly once, no call comes
//! before the `Retry-After` of the one it repeats, never more than
//! `dispatcher.per_installation` calls are in flight, and a refused status
//! (422) is never tried again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{header_exists, path_regex};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::providers::{GithubMock, GithubState};

const REPO: &str = "octo-org/hello-world";
/// Image pushes, each tagged with its own commit: a status, a check run
/// and a comment job (no pull request is open) per commit.
const COMMITS: usize = 40;
const FAULT_RATE: f64 = 0.3;
const PER_INSTALLATION: usize = 2;
const REQUEST_TIMEOUT_SECS: u64 = 25;
/// A slow answer: portcall waits for it.
const SLOW: Duration = Duration::from_secs(20);
/// Longer than `github.request_timeout_secs`: portcall gives up.
const HUNG: Duration = Duration::from_secs(REQUEST_TIMEOUT_SECS + 5);
/// When a hung call stops counting as in flight: just before portcall
/// gives up on it.
const HUNG_GIVEN_UP: Duration = Duration::from_millis(REQUEST_TIMEOUT_SECS * 1000 - 200);
/// Slow and hung answers each, at most: they hold an installation slot.
const LONG_FAULTS: usize = 3;
const RATE_LIMIT_RETRY_AFTER: u64 = 2;
const SECONDARY_LIMIT_RETRY_AFTER: u64 = 3;

fn sha(n: usize) -> String {
    hex::encode(Sha256::digest(format!("faulty-commit-{n}").as_bytes()))[..40].to_owned()
}

/// Every eighth commit's status is refused (422): permanent.
fn refused(n: usize) -> bool {
    n % 8 == 7
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Fault {
    ServerError,
    RateLimited,
    SecondaryLimit,
    Slow,
    Hung,
    /// The connection is reset before the request reaches GitHub.
    ResetBefore,
    /// GitHub acts, then the connection is reset before the answer.
    ResetAfter,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::ServerError,
        Fault::RateLimited,
        Fault::SecondaryLimit,
        Fault::Slow,
        Fault::Hung,
        Fault::ResetBefore,
        Fault::ResetAfter,
    ];

    fn header(self) -> &'static str {
        match self {
            Fault::ServerError => "503",
            Fault::RateLimited => "429",
            Fault::SecondaryLimit => "403",
            Fault::Slow => "slow",
            Fault::Hung => "hung",
            Fault::ResetBefore => "reset-before",
            Fault::ResetAfter => "reset-after",
        }
    }

    fn parse(text: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.header() == text)
    }
}

/// Which call a request is, for the ledger: `("status" | "check" |
/// "comment", commit)`.
type Key = (&'static str, String);

fn key_of(request: &Request) -> Option<Key> {
    let segments: Vec<&str> = request.url.path().split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", [.., "statuses", sha]) | ("GET", [.., sha, "statuses"]) => {
            Some(("status", (*sha).to_owned()))
        }
        ("GET", [.., sha, "check-runs"]) => Some(("check", (*sha).to_owned())),
        ("POST", [.., "check-runs"]) => {
            let body: Value = serde_json::from_slice(&request.body).ok()?;
            Some(("check", body["head_sha"].as_str()?.to_owned()))
        }
        ("GET", [.., sha, "pulls"]) => Some(("comment", (*sha).to_owned())),
        _ => None,
    }
}

/// Whether a path is one the stateful mock answers (and so can be slow).
fn per_commit_call(path: &str) -> bool {
    path.starts_with(&format!("/repos/{REPO}/")) && !path.ends_with("/installation")
}

/// Each call's fault: 30% of calls at random (seeded), the kinds in turn
/// so that every kind occurs.
struct Plan {
    rng: fastrand::Rng,
    turn: usize,
    long_left: HashMap<Fault, usize>,
    injected: BTreeMap<Fault, usize>,
    calls: usize,
}

impl Plan {
    fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            turn: 0,
            long_left: HashMap::from([(Fault::Slow, LONG_FAULTS), (Fault::Hung, LONG_FAULTS)]),
            injected: BTreeMap::new(),
            calls: 0,
        }
    }

    fn decide(&mut self, path: &str) -> Option<Fault> {
        self.calls += 1;
        if self.rng.f64() >= FAULT_RATE {
            return None;
        }
        for _ in 0..Fault::ALL.len() {
            let fault = Fault::ALL[self.turn % Fault::ALL.len()];
            self.turn += 1;
            if let Some(left) = self.long_left.get_mut(&fault) {
                if *left == 0 || !per_commit_call(path) {
                    continue;
                }
                *left -= 1;
            }
            *self.injected.entry(fault).or_default() += 1;
            return Some(fault);
        }
        None
    }
}

/// Installation calls between the request and the first byte of its answer
/// (or the connection's end).
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    fn start(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn end(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Listens on a free port and relays every connection to `upstream`,
/// applying the plan to each request.
async fn fault_proxy(upstream: String, plan: Arc<Mutex<Plan>>, in_flight: Arc<InFlight>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(
                client,
                upstream.clone(),
                plan.clone(),
                in_flight.clone(),
            ));
        }
    });
    url
}

/// One connection, one request at a time (HTTP/1.1 without pipelining,
/// as portcall's clients speak): a chunk from the client that starts with
/// a request line begins a request.
async fn relay(
    mut client: TcpStream,
    upstream: String,
    plan: Arc<Mutex<Plan>>,
    in_flight: Arc<InFlight>,
) {
    // Dropping the socket now sends RST: the reset faults.
    client.set_zero_linger().unwrap();
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut from_server) = (vec![0u8; 65536], vec![0u8; 65536]);
    // The request awaiting its answer: whether it is counted in flight,
    // and whether its answer is to be replaced by a reset.
    let mut awaiting: Option<(bool, bool)> = None;
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(n) = read else { break };
                if n == 0 {
                    break;
                }
                let chunk = &from_client[..n];
                let Some((path, line_end)) = request_line(chunk) else {
                    // The rest of a request's body.
                    if server.write_all(chunk).await.is_err() {
                        break;
                    }
                    continue;
                };
                let fault = plan.lock().unwrap().decide(&path);
                if fault == Some(Fault::ResetBefore) {
                    return;
                }
                let mut tagged = chunk[..line_end].to_vec();
                if let Some(fault) = fault {
                    tagged.extend_from_slice(format!("x-fault: {}\r\n", fault.header()).as_bytes());
                }
                tagged.extend_from_slice(&chunk[line_end..]);
                if server.write_all(&tagged).await.is_err() {
                    break;
                }
                // The installation's calls; not the App's own (`GET /app`).
                let counted = path.starts_with("/repos/") || path.ends_with("/access_tokens");
                if counted {
                    in_flight.start();
                }
                if counted && fault == Some(Fault::Hung) {
                    // portcall gives up at its request timeout, but its
                    // connection may close here only after its next call
                    // has begun: the call ends, for the count, just before.
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HUNG_GIVEN_UP).await;
                        in_flight.end();
                    });
                    awaiting = Some((false, false));
                } else {
                    awaiting = Some((counted, fault == Some(Fault::ResetAfter)));
                }
            }
            read = server.read(&mut from_server) => {
                let Ok(n) = read else { break };
                if n == 0 {
                    break;
                }
                if let Some((counted, reset)) = awaiting.take() {
                    if counted {
                        in_flight.end();
                    }
                    if reset {
                        return;
                    }
                }
                if client.write_all(&from_server[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some((true, _)) = awaiting {
        in_flight.end();
    }
}

/// The path of the request a chunk starts, and where its request line ends.
fn request_line(chunk: &[u8]) -> Option<(String, usize)> {
    let end = chunk.windows(2).position(|w| w == b"\r\n")? + 2;
    let line = std::str::from_utf8(&chunk[..end]).ok()?;
    let mut words = line.split(' ');
    let method = words.next()?;
    if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
        return None;
    }
    Some((words.next()?.split('?').next()?.to_owned(), end))
}

/// What the mock told portcall, and every call that broke the rules.
#[derive(Default)]
struct Ledger {
    /// Calls not to be repeated before the time given.
    not_before: HashMap<Key, SystemTime>,
    /// Calls refused for good.
    refused: BTreeSet<Key>,
    /// Repeats of a rate-limited call that came after its wait.
    waited: usize,
    violations: Vec<String>,
}

impl Ledger {
    fn arrived(&mut self, key: &Key, now: SystemTime) {
        if let Some(not_before) = self.not_before.remove(key) {
            match not_before.duration_since(now) {
                Ok(early) => self
                    .violations
                    .push(format!("{key:?} repeated {early:?} before its Retry-After")),
                Err(_) => self.waited += 1,
            }
        }
        if self.refused.contains(key) {
            self.violations
                .push(format!("{key:?} tried again after a permanent refusal"));
        }
    }
}

/// The GitHub mock's answers: faults as the proxy asked, else GitHub's
/// documented answers from the kept state.
#[derive(Clone)]
struct FaultyGithub {
    state: GithubState,
    ledger: Arc<Mutex<Ledger>>,
    refused_commits: Arc<BTreeSet<String>>,
}

fn github_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest"
    }))
}

impl FaultyGithub {
    /// What GitHub does and answers, fault aside; `seen` when the answer
    /// will reach portcall.
    fn act(&self, request: &Request, key: Option<&Key>, seen: bool) -> ResponseTemplate {
        if let Some(("status", sha)) = key.map(|(what, sha)| (*what, sha.as_str())) {
            if request.method.as_str() == "POST" && self.refused_commits.contains(sha) {
                if seen {
                    let mut ledger = self.ledger.lock().unwrap();
                    ledger.refused.insert(("status", sha.to_owned()));
                }
                return github_error(422, "Validation Failed");
            }
        }
        if request.url.path().ends_with("/pulls") {
            return ResponseTemplate::new(200).set_body_json(json!([]));
        }
        self.state.respond(request)
    }
}

impl Respond for FaultyGithub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = SystemTime::now();
        let key = key_of(request);
        if let Some(key) = &key {
            self.ledger.lock().unwrap().arrived(key, now);
        }
        let fault = request
            .headers
            .get("x-fault")
            .and_then(|v| v.to_str().ok())
            .and_then(Fault::parse);
        let limited = |secs: u64, template: ResponseTemplate| {
            if let Some(key) = &key {
                self.ledger
                    .lock()
                    .unwrap()
                    .not_before
                    .insert(key.clone(), now + Duration::from_secs(secs));
            }
            template.insert_header("retry-after", secs.to_string().as_str())
        };
        match fault {
            Some(Fault::ServerError) => github_error(503, "Service Unavailable"),
            Some(Fault::RateLimited) => limited(
                RATE_LIMIT_RETRY_AFTER,
                github_error(429, "API rate limit exceeded for installation ID 1."),
            ),
            Some(Fault::SecondaryLimit) => limited(
                SECONDARY_LIMIT_RETRY_AFTER,
                github_error(
                    403,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                ),
            ),
            Some(Fault::Slow) => self.act(request, key.as_ref(), true).set_delay(SLOW),
            Some(Fault::Hung) => self.act(request, key.as_ref(), false).set_delay(HUNG),
            Some(Fault::ResetAfter) => self.act(request, key.as_ref(), false),
            Some(Fault::ResetBefore) | None => self.act(request, key.as_ref(), true),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_github_faults_on_30_percent_of_calls_still_post_every_effect_exactly_once() {
    let seed = std::env::var("PORTCALL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261203);
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    let mock = FaultyGithub {
        state: GithubState::default(),
        ledger: Arc::default(),
        refused_commits: Arc::new((0..COMMITS).filter(|n| refused(*n)).map(sha).collect()),
    };
    // The per-commit calls, faults included; and the faults on the App's
    // own calls (installation, token), ahead of their documented answers.
    Mock::given(path_regex(format!(
        "^/repos/{REPO}/(statuses|commits|check-runs)"
    )))
    .respond_with(mock.clone())
    .mount(&github.server)
    .await;
    Mock::given(header_exists("x-fault"))
        .respond_with(mock.clone())
        .with_priority(1)
        .mount(&github.server)
        .await;

    let plan = Arc::new(Mutex::new(Plan::new(seed)));
    let in_flight = Arc::new(InFlight::default());
    let upstream = github.server.address().to_string();
    let proxy = fault_proxy(upstream, plan.clone(), in_flight.clone()).await;

    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let github_config = github.config().replace(&github.server.uri(), &proxy);
    let config = write_config(dir.path(), &db.url, true, true, &github_config);
    let port = free_port();
    let mut server = portcall_command(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCALL__DISPATCHER__MAX_ATTEMPTS", "20")
        .env(
            "PORTCALL__DISPATCHER__PER_INSTALLATION",
            PER_INSTALLATION.to_string(),
        )
        .env(
            "PORTCALL__GITHUB__REQUEST_TIMEOUT_SECS",
            REQUEST_TIMEOUT_SECS.to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_serving(port).await;

    let client = reqwest::Client::new();
    for n in 0..COMMITS {
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("faulty-image-{n}")))
        );
        let body = distribution_push(REPO, &digest, &sha(n), &format!("faulty-{n}"));
        let mut request = client.post(format!("http://127.0.0.1:{port}/webhooks/registry"));
        for (name, value) in distribution_headers() {
            request = request.header(name, value);
        }
        let status = request.body(body).send().await.unwrap().status().as_u16();
        assert_eq!(status, 202, "push {n}");
    }

    // Three effect jobs per commit, after the resolution job of each push.
    let started = Instant::now();
    let jobs = loop {
        let jobs = all_jobs(&client, port).await;
        let effects = jobs.iter().filter(|j| j["kind"] != "resolve_image").count();
        if effects == 3 * COMMITS && jobs.iter().all(|j| j["state"] != "pending") {
            break jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not settled: {} effect jobs, {} pending",
            effects,
            jobs.iter().filter(|j| j["state"] == "pending").count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = started.elapsed();

    let injected = plan.lock().unwrap().injected.clone();
    let calls = plan.lock().unwrap().calls;
    let ledger = std::mem::take(&mut *mock.ledger.lock().unwrap());
    eprintln!(
        "provider faults: {calls} calls, {injected:?} injected, {} repeats waited out a Retry-After, at most {} in flight, settled in {took:.1?}",
        ledger.waited,
        in_flight.max.load(Ordering::SeqCst)
    );

    // Every kind of fault happened, and at least one rate limit was
    // waited out: the rules were tested, not assumed.
    for fault in Fault::ALL {
        assert!(
            injected.contains_key(&fault),
            "{fault:?} never injected: {injected:?}"
        );
    }
    assert!(ledger.waited > 0, "no rate-limited call was repeated");
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    assert_eq!(
        in_flight.max.load(Ordering::SeqCst),
        PER_INSTALLATION,
        "calls in flight at most"
    );

    // Every effect exactly once; the refused statuses dead after one try.
    for n in 0..COMMITS {
        let commit = sha(n);
        let statuses = if refused(n) { 0 } else { 1 };
        assert_eq!(
            mock.state.created("status", &commit),
            statuses,
            "statuses on {n}"
        );
        assert_eq!(mock.state.created("check", &commit), 1, "check runs on {n}");
    }
    for job in &jobs {
        let refused_status = job["kind"] == "commit_status"
            && (0..COMMITS)
                .filter(|n| refused(*n))
                .any(|n| job["payload"]["sha"] == sha(n));
        let expected = if refused_status { "dead" } else { "done" };
        assert_eq!(job["state"], expected, "{job}");
    }

    server.start_kill().unwrap();
    server.wait().await.unwrap();
}

/// GitHub answering every status and check run after `delay`, as the
/// kept state says.
#[derive(Clone)]
struct SlowGithub {
    state: GithubState,
    delay: Duration,
}

impl Respond for SlowGithub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let answer = self.state.respond(request);
        if request.method.as_str() == "POST" {
            answer.set_delay(self.delay)
        } else {
            answer
        }
    }
}

/// Jobs waiting for their installation's turn longer than a lease (5 s in
/// the test configuration) keep it: none is claimed a second time, so each
/// runs in one attempt. Unrenewed, a waiting job's lease expired, the
/// dispatcher claimed it again and it ran twice (posting twice when both
/// runs looked before either posted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_longer_than_a_lease_for_their_installation_are_not_claimed_again() {
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    let slow = SlowGithub {
        state: GithubState::default(),
        delay: Duration::from_secs(4),
    };
    Mock::given(path_regex(format!(
        "^/repos/{REPO}/(statuses|commits/[0-9a-f]{{40}}/(statuses|check-runs)|check-runs)"
    )))
    .respond_with(slow.clone())
    .mount(&github.server)
    .await;
    Mock::given(path_regex(format!(
        "^/repos/{REPO}/commits/[0-9a-f]{{40}}/pulls$"
    )))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
    .mount(&github.server)
    .await;
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        Spawn {
            extra_config: github.config(),
            ..Spawn::default()
        },
    )
    .await;

    // Three commits: six slow calls through two slots, 12 s; the last
    // jobs wait 8 s for their turn.
    for n in 0..3 {
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("slow-{n}")))
        );
        let answer = app
            .post_image_push(&format!("slow-{n}"), REPO, &sha(n), &digest)
            .await;
        assert_eq!(answer.status(), 202);
    }
    let jobs = app.wait_until_settled(60).await;
    assert_eq!(jobs.len(), 3 * 4, "{jobs:#?}");
    for job in &jobs {
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["attempts"], 1, "claimed again while it waited: {job}");
    }
    for n in 0..3 {
        assert_eq!(slow.state.created("status", &sha(n)), 1);
        assert_eq!(slow.state.created("check", &sha(n)), 1);
    }
    app.finish().await;
}
