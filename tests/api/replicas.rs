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
use crate::providers::{body, GithubMock};

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

fn deliveries() -> Vec<Delivery> {
    let push = fixture("github/push.json");
    let mut all = Vec::new();
    for n in 0..IMAGE_PUSHES {
        let envelope = json!({"events": [{
            "id": format!("image-{n}"),
            "timestamp": "2026-12-01T10:00:00.000000000Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 594, "length": 594, "digest": digest(n),
                "repository": REPO,
                "url": format!("http://127.0.0.1:5000/v2/{REPO}/manifests/{}", digest(n)),
                "tag": sha(n)
            },
            "request": {"id": "r-1", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000",
                        "method": "PUT", "useragent": "skopeo/1.9.3"},
            "actor": {},
            "source": {"addr": "registry:5000", "instanceID": "i-1"}
        }]});
        all.push(Delivery {
            source: "registry",
            headers: vec![
                ("Authorization", format!("Bearer {REGISTRY_TOKEN}")),
                (
                    "Content-Type",
                    "application/vnd.docker.distribution.events.v1+json".into(),
                ),
            ],
            body: serde_json::to_vec(&envelope).unwrap(),
        });
    }
    for n in 0..GITHUB_PUSHES {
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
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    // Statuses and check runs are kept, and listed back, as GitHub does.
    let github_state = Posted::default();
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

    // Each delivery twice, to two different replicas, at once; 32 in
    // flight. Halfway through, the third replica is killed.
    let client = reqwest::Client::new();
    let all = Arc::new(deliveries());
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
    let survivor = ports[0];
    let store = {
        let settings = portcall::config::Settings::load(Some(&config)).unwrap();
        portcall::store::Db::connect(&settings.database)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let (rows, jobs) = loop {
        let rows = portcall::store::deliveries::all(&store).await.unwrap();
        let (_, answer) =
            admin_get(&client, survivor, "/api/v1/jobs?limit=200&state=pending").await;
        let pending_jobs = answer["jobs"].as_array().map_or(0, Vec::len);
        let settled = rows.len() == all.len()
            && rows
                .iter()
                .all(|r| r.status != portcall::store::deliveries::Status::Pending)
            && pending_jobs == 0;
        if settled {
            break (rows, all_jobs(&client, survivor).await);
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
    assert_eq!(ids.len(), all.len(), "a delivery stored twice or lost");
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
    let statuses = per_commit(&github, "statuses").await;
    let checks = per_commit(&github, "check-runs").await;
    for n in 0..IMAGE_PUSHES {
        let commit = sha(n);
        assert_eq!(statuses.get(&commit), Some(&1), "statuses on {commit}");
        assert_eq!(checks.get(&commit), Some(&1), "check runs on {commit}");
    }
    eprintln!(
        "replicas: killed after {killed_at} of {} deliveries; {reprocessed} deliveries processed again after the kill; {} jobs",
        all.len(),
        jobs.len()
    );
    for mut replica in replicas {
        replica.start_kill().unwrap();
        replica.wait().await.unwrap();
    }
    store.close().await;
    db.drop_database().await;
}

/// GitHub's statuses and check runs as far as the test needs them: what
/// was created is listed on its commit afterwards (statuses newest first),
/// as GitHub lists it.
#[derive(Clone, Default)]
struct Posted(Arc<std::sync::Mutex<BTreeMap<Key, Vec<Value>>>>);

/// `("status" | "check", commit)`.
type Key = (&'static str, String);

impl wiremock::Respond for Posted {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let mut posted = self.0.lock().unwrap();
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let asked = || -> Value { serde_json::from_slice(&request.body).unwrap() };
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", [.., "statuses", sha]) => {
                let asked = asked();
                let mut status = body("github-api/repos/create-commit-status.json");
                for field in ["state", "description", "target_url", "context"] {
                    status[field] = asked[field].clone();
                }
                let list = posted.entry(("status", (*sha).to_owned())).or_default();
                list.insert(0, status.clone());
                ResponseTemplate::new(201).set_body_json(status)
            }
            ("GET", [.., sha, "statuses"]) => {
                let list = posted.get(&("status", (*sha).to_owned())).cloned();
                ResponseTemplate::new(200).set_body_json(list.unwrap_or_default())
            }
            ("POST", [.., "check-runs"]) => {
                let asked = asked();
                let mut run = body("github-api/checks/create.json");
                for field in [
                    "name",
                    "head_sha",
                    "external_id",
                    "conclusion",
                    "details_url",
                ] {
                    run[field] = asked[field].clone();
                }
                let sha = asked["head_sha"].as_str().unwrap().to_owned();
                posted.entry(("check", sha)).or_default().push(run.clone());
                ResponseTemplate::new(201).set_body_json(run)
            }
            ("GET", [.., sha, "check-runs"]) => {
                let name = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "check_name")
                    .map(|(_, v)| v.into_owned());
                let listed: Vec<Value> = posted
                    .get(&("check", (*sha).to_owned()))
                    .into_iter()
                    .flatten()
                    .filter(|run| name.as_deref().is_none_or(|n| run["name"] == n))
                    .cloned()
                    .collect();
                let mut list = body("github-api/checks/list-for-ref.json");
                list["total_count"] = json!(listed.len());
                list["check_runs"] = json!(listed);
                ResponseTemplate::new(200).set_body_json(list)
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

async fn admin_get(client: &reqwest::Client, port: u16, path: &str) -> (u16, Value) {
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
async fn all_jobs(client: &reqwest::Client, port: u16) -> Vec<Value> {
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
