//! Three `portcall serve` processes on one PostgreSQL database, no balancer:
//! the test spreads the requests itself, sends every delivery twice to two
//! different replicas at once, and kills one replica with SIGKILL midway
//! (it is not restarted). Every delivery is stored and processed once,
//! every effect reaches the GitHub mock once, and the survivors finish what
//! the dead replica had claimed once its leases expire.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::Child;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::providers::{GithubMock, GithubState};

const REPO: &str = "octo-org/hello-world";
/// Image pushes (each tagged with its own commit, so each posts a status
/// and a check run) and GitHub pushes (stored and processed, no effect).
const IMAGE_PUSHES: usize = 500;
const GITHUB_PUSHES: usize = 500;

fn sha(n: usize) -> String {
    hex::encode(Sha256::digest(format!("commit-{n}").as_bytes()))[..40].to_owned()
}

fn digest(n: usize) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("image-{n}").as_bytes()))
    )
}

async fn replica(config: &std::path::Path, port: u16) -> Child {
    portcall_command(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("portcall starts")
}

/// One delivery as the test sends it: where to, which headers, which body.
struct Delivery {
    source: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn deliveries(image_pushes: usize, github_pushes: usize) -> Vec<Delivery> {
    let push = fixture("github/push.json");
    let mut all = Vec::new();
    for n in 0..image_pushes {
        let envelope = distribution_push(REPO, &digest(n), &sha(n), &format!("image-{n}"));
        all.push(Delivery {
            source: "registry",
            headers: distribution_headers(),
            body: envelope,
        });
    }
    for n in 0..github_pushes {
        all.push(Delivery {
            source: "github",
            headers: github_headers(GITHUB_SECRET, "push", &format!("gh-push-{n}"), &push),
            body: push.clone(),
        });
    }
    all
}

async fn send(client: &reqwest::Client, port: u16, delivery: &Delivery) -> u16 {
    let mut request = client.post(format!(
        "http://127.0.0.1:{port}/webhooks/{}",
        delivery.source
    ));
    for (name, value) in &delivery.headers {
        request = request.header(*name, value);
    }
    match request.body(delivery.body.clone()).send().await {
        Ok(response) => response.status().as_u16(),
        // The killed replica: the connection is refused or reset.
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_lose_nothing_and_post_nothing_twice_when_one_is_killed() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let github = github_keeping_state().await;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url, true, true, &github.config());
    // All three start at once: migrations run once, under the advisory lock.
    let ports = [free_port(), free_port(), free_port()];
    let mut replicas = Vec::new();
    for port in ports {
        replicas.push(replica(&config, port).await);
    }
    for port in ports {
        wait_until_serving(port).await;
    }
    let migrated = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (applied, succeeded): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE success) FROM _sqlx_migrations")
            .fetch_one(&migrated)
            .await
            .unwrap();
    migrated.close().await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(
        (applied, succeeded),
        (files as i64, files as i64),
        "every migration once"
    );

    // Each delivery twice, to two different replicas, at once; 32 in
    // flight. Halfway through, the third replica is killed.
    let client = reqwest::Client::new();
    let all = Arc::new(deliveries(IMAGE_PUSHES, GITHUB_PUSHES));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = {
        let (client, all, done) = (client.clone(), all.clone(), done.clone());
        tokio::spawn(async move {
            stream::iter(0..all.len())
                .map(|i| {
                    let (client, all, done) = (client.clone(), all.clone(), done.clone());
                    async move {
                        let (a, b) = (ports[i % 3], ports[(i + 1) % 3]);
                        let (x, y) =
                            tokio::join!(send(&client, a, &all[i]), send(&client, b, &all[i]));
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        (i, [x, y])
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    while done.load(std::sync::atomic::Ordering::Relaxed) < all.len() / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut dead = replicas.pop().unwrap();
    dead.start_kill().unwrap();
    dead.wait().await.unwrap();
    let killed_at = done.load(std::sync::atomic::Ordering::Relaxed);
    let answers = sending.await.unwrap();

    // Every delivery was accepted by a replica that lived (or stored by the
    // dead one before it died: then the survivor said duplicate).
    for (i, pair) in &answers {
        assert!(
            pair.iter().any(|s| [200, 202].contains(s)),
            "delivery {i} was never accepted: {pair:?}"
        );
        assert!(
            pair.iter().all(|s| [0, 200, 202].contains(s)),
            "delivery {i}: {pair:?}"
        );
    }

    // The survivors finish everything, the dead replica's claims included.
    let (reprocessed, jobs) =
        settled_once(&config, &client, ports[0], &github, IMAGE_PUSHES, all.len()).await;
    eprintln!(
        "replicas: killed after {killed_at} of {} deliveries; {reprocessed} deliveries processed again after the kill; {} jobs",
        all.len(),
        jobs
    );
    for mut replica in replicas {
        replica.start_kill().unwrap();
        replica.wait().await.unwrap();
    }
    db.drop_database().await;
}

/// A GitHub mock for the App's repository that keeps statuses and check
/// runs and lists them back, as GitHub does; no pull request is open.
async fn github_keeping_state() -> GithubMock {
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    let github_state = GithubState::default();
    for (verb, route) in [
        ("POST", "statuses/[0-9a-f]{40}"),
        ("GET", "commits/[0-9a-f]{40}/statuses"),
        ("POST", "check-runs"),
        ("GET", "commits/[0-9a-f]{40}/check-runs"),
    ] {
        Mock::given(method(verb))
            .and(path_regex(format!("^/repos/{REPO}/{route}$")))
            .respond_with(github_state.clone())
            .mount(&github.server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex(format!(
            "^/repos/{REPO}/commits/[0-9a-f]{{40}}/pulls$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&github.server)
        .await;
    github
}

/// Two replicas restarted in turn, twice each (SIGTERM, wait, start a new
/// process on the same port), while deliveries keep coming: a sender whose
/// replica is down (refused, or 503 while it drains) tries the other. Every
/// delivery is accepted, stored once, processed; every effect posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_and_posts_nothing_twice() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const IMAGES: usize = 500;
    const PUSHES: usize = 500;
    let github = github_keeping_state().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url, true, true, &github.config());
    let ports = [free_port(), free_port()];
    let mut replicas = Vec::new();
    for port in ports {
        replicas.push(replica(&config, port).await);
    }
    for port in ports {
        wait_until_serving(port).await;
    }

    let client = reqwest::Client::new();
    let all = Arc::new(deliveries(IMAGES, PUSHES));
    let sending = {
        let (client, all) = (client.clone(), all.clone());
        tokio::spawn(async move {
            stream::iter(0..all.len())
                .map(|i| {
                    let (client, all) = (client.clone(), all.clone());
                    async move {
                        // Paced, so the load outlasts the restarts.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let started = Instant::now();
                        for attempt in 0.. {
                            let status = send(&client, ports[(i + attempt) % 2], &all[i]).await;
                            if [200, 202].contains(&status) {
                                return (i, status, attempt);
                            }
                            assert!(
                                [0, 503].contains(&status),
                                "delivery {i}: answered {status}"
                            );
                            assert!(
                                started.elapsed() < Duration::from_secs(60),
                                "delivery {i} never accepted"
                            );
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        unreachable!()
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };

    // Two rounds: stop each replica in turn and start a new process.
    let mut restarts = 0;
    for _round in 0..2 {
        for (r, port) in ports.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let pid = replicas[r].id().expect("running");
            let term = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            assert!(term.success());
            let exit = replicas[r].wait().await.unwrap();
            assert!(exit.success(), "replica {r} stopped with {exit}");
            replicas[r] = replica(&config, *port).await;
            wait_until_serving(*port).await;
            restarts += 1;
        }
    }
    assert!(!sending.is_finished(), "the load ended before the restarts");
    let answers = sending.await.unwrap();
    let retried = answers
        .iter()
        .filter(|(_, _, attempt)| *attempt > 0)
        .count();

    let (reprocessed, jobs) =
        settled_once(&config, &client, ports[0], &github, IMAGES, all.len()).await;
    eprintln!(
        "rolling restart: {restarts} restarts; {retried} deliveries sent again to the other replica; {reprocessed} processed more than once; {jobs} jobs"
    );
    for mut replica in replicas {
        replica.start_kill().unwrap();
        replica.wait().await.unwrap();
    }
    db.drop_database().await;
}

/// Waits (90 s at most) until every delivery is processed and no job is
/// pending, then checks that each delivery was stored once, processed and
/// left unclaimed, that every job is done, and that GitHub got one status
/// and one check run per pushed commit. Returns how many deliveries were
/// processed more than once and how many jobs there are.
async fn settled_once(
    config: &std::path::Path,
    client: &reqwest::Client,
    port: u16,
    github: &GithubMock,
    image_pushes: usize,
    total: usize,
) -> (usize, usize) {
    let store = {
        let settings = portcall::config::Settings::load(Some(config)).unwrap();
        portcall::store::Db::connect(&settings.database)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let (rows, jobs) = loop {
        let rows = portcall::store::deliveries::all(&store).await.unwrap();
        let (_, answer) = admin_get(client, port, "/api/v1/jobs?limit=200&state=pending").await;
        let pending_jobs = answer["jobs"].as_array().map_or(0, Vec::len);
        let settled = rows.len() == total
            && rows
                .iter()
                .all(|r| r.status != portcall::store::deliveries::Status::Pending)
            && pending_jobs == 0;
        if settled {
            break (rows, all_jobs(client, port).await);
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} rows, {} pending, {pending_jobs} jobs pending",
            rows.len(),
            rows.iter()
                .filter(|r| r.status == portcall::store::deliveries::Status::Pending)
                .count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Stored once, processed.
    let mut ids: Vec<&str> = rows.iter().map(|r| r.delivery_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "a delivery stored twice or lost");
    assert!(
        rows.iter()
            .all(|r| r.status == portcall::store::deliveries::Status::Processed),
        "{:?}",
        rows.iter()
            .find(|r| r.status != portcall::store::deliveries::Status::Processed)
    );
    let reprocessed = rows.iter().filter(|r| r.attempts > 1).count();
    assert!(
        rows.iter().all(|r| r.lease_owner.is_none()),
        "a delivery still claimed"
    );

    // Every job done once; none left claimed.
    assert!(
        jobs.iter().all(|j| j["state"] == "done"),
        "{:?}",
        jobs.iter().find(|j| j["state"] != "done")
    );

    // On GitHub: one status and one check run per pushed commit.
    let statuses = per_commit(github, "statuses").await;
    let checks = per_commit(github, "check-runs").await;
    for n in 0..image_pushes {
        let commit = sha(n);
        assert_eq!(statuses.get(&commit), Some(&1), "statuses on {commit}");
        assert_eq!(checks.get(&commit), Some(&1), "check runs on {commit}");
    }
    store.close().await;
    (reprocessed, jobs.len())
}

/// How many statuses or check runs the mock received, per commit.
async fn per_commit(github: &GithubMock, what: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in github.server.received_requests().await.unwrap_or_default() {
        if request.method.as_str() != "POST" {
            continue;
        }
        let path = request.url.path();
        let commit = match what {
            "statuses" => path
                .strip_prefix(&format!("/repos/{REPO}/statuses/"))
                .map(str::to_owned),
            _ if path == format!("/repos/{REPO}/check-runs") => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                body["head_sha"].as_str().map(str::to_owned)
            }
            _ => None,
        };
        if let Some(commit) = commit {
            *counts.entry(commit).or_insert(0) += 1;
        }
    }
    counts
}
