//! Several `portcall serve` processes on one PostgreSQL database, no
//! balancer: the test spreads the requests itself.
//!
//! Three replicas get 1,000 distinct deliveries, each sent twice to two
//! different replicas at once: GitHub pushes, pull requests opened on
//! commits that have images, Distribution pushes of builds and of release
//! tags (their source commit read from the registry), and GitLab merge
//! requests opened and then updated with a new commit. One replica is
//! killed with SIGKILL midway, while it holds claimed deliveries and jobs,
//! and is not restarted. Every delivery is stored and processed once,
//! every release created once, every status, check run and discussion
//! reaches the GitHub or GitLab mock once and each pull or merge request
//! has one sticky comment, created once and edited after; the survivors
//! finish what the dead replica had claimed once its leases expire, and
//! nothing is left claimed.
//!
//! Two replicas restarted in turn under load lose nothing either.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::Child;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::providers::{form, json_body, GithubMock, GithubState, GitlabMock, GitlabState};

const REPO: &str = "octo-org/hello-world";
const GITHUB_COMPONENT: &str = "hello-world";
const GITHUB_IMAGE: &str = "registry.example.com/octo-org/hello-world";
const PROJECT: &str = "group/sub/hello";
/// The project as GitLab's API paths name it.
const PROJECT_ENCODED: &str = "group%2Fsub%2Fhello";
const GITLAB_COMPONENT: &str = "hello-gitlab";
const GITLAB_IMAGE: &str = "registry.example.com/group/sub/hello";
const PUBLIC_URL: &str = "https://portcall.example.com";

/// GitHub pull requests: each opened on a commit that has a build and a
/// release (three deliveries).
const PULL_REQUESTS: usize = 50;
/// GitLab merge requests: each opened on a commit with a build, then
/// updated with a commit that has a build and a release (five deliveries).
const MERGE_REQUESTS: usize = 50;
/// GitHub releases on commits no pull request has as its head.
const RELEASES: usize = 150;
/// GitHub builds (tagged with their commit) no pull request has as its head.
const BUILDS: usize = 200;
/// GitHub pushes: stored and processed, no effect.
const GITHUB_PUSHES: usize = 250;
const DELIVERIES: usize =
    PULL_REQUESTS * 3 + MERGE_REQUESTS * 5 + RELEASES + BUILDS + GITHUB_PUSHES;

fn commit(what: &str, n: usize) -> String {
    hex::encode(Sha256::digest(format!("{what}-{n}").as_bytes()))[..40].to_owned()
}

/// A pushed image: a build (tagged with its commit) or a release (`v…`).
#[derive(Debug, Clone)]
struct Image {
    component: &'static str,
    /// The image name portcall reports: `registry.example.com/…`.
    image: &'static str,
    /// The repository within the registry.
    repository: &'static str,
    tag: String,
    commit: String,
    /// What the registry serves for the digest: annotated with the commit,
    /// so a build and a release of one commit are one image, tagged twice.
    manifest: Vec<u8>,
    digest: String,
}

impl Image {
    fn github(tag: &str, commit: &str) -> Self {
        Self::new(
            GITHUB_COMPONENT,
            GITHUB_IMAGE,
            REPO,
            "https://github.com/octo-org/hello-world",
            tag,
            commit,
        )
    }

    fn gitlab(tag: &str, commit: &str) -> Self {
        Self::new(
            GITLAB_COMPONENT,
            GITLAB_IMAGE,
            PROJECT,
            "https://gitlab.example.com/group/sub/hello",
            tag,
            commit,
        )
    }

    fn new(
        component: &'static str,
        image: &'static str,
        repository: &'static str,
        source: &str,
        tag: &str,
        commit: &str,
    ) -> Self {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{}", hex::encode(Sha256::digest(b"{}"))),
                "size": 2
            },
            "layers": [],
            "annotations": {
                "org.opencontainers.image.revision": commit,
                "org.opencontainers.image.source": source
            }
        }))
        .unwrap();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
        Self {
            component,
            image,
            repository,
            tag: tag.to_owned(),
            commit: commit.to_owned(),
            manifest,
            digest,
        }
    }

    /// The release it makes: its tag matches `v*`.
    fn release(&self) -> Option<String> {
        self.tag
            .starts_with('v')
            .then(|| format!("{}-{}", self.component, self.tag))
    }

    /// What its status, check run and comment say.
    fn headline(&self) -> String {
        match self.release() {
            Some(name) => format!("Release {name}: {}:{}", self.image, self.tag),
            None => format!("Image pushed: {}:{}", self.image, self.tag),
        }
    }

    /// Where its status and check run link to, given the releases' ids.
    fn link(&self, releases: &BTreeMap<String, i64>) -> String {
        match self.release() {
            Some(name) => format!("{PUBLIC_URL}/api/v1/releases/{}", releases[&name]),
            None => format!("{PUBLIC_URL}/api/v1/releases?component={}", self.component),
        }
    }
}

/// One delivery as the test sends it: where to, which headers, which body.
struct Delivery {
    /// Unique; orders the deliveries.
    key: String,
    source: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A GitHub pull request: its number and head.
struct PullRequest {
    number: u64,
    head: String,
}

/// A GitLab merge request: opened on `first`, updated with `second`.
struct MergeRequest {
    iid: u64,
    first: String,
    second: String,
}

/// What the three-replica test sends, and what it should cause.
struct Plan {
    images: Vec<Image>,
    pulls: Vec<PullRequest>,
    merge_requests: Vec<MergeRequest>,
    deliveries: Vec<Delivery>,
}

fn plan() -> Plan {
    let mut images = Vec::new();
    let mut deliveries = Vec::new();
    let mut pulls = Vec::new();
    let mut merge_requests = Vec::new();

    for p in 0..PULL_REQUESTS {
        let number = 1000 + p as u64;
        let head = commit("pull", p);
        images.push(Image::github(&head, &head));
        images.push(Image::github(&format!("v1.{p}.0"), &head));
        let mut event: Value = serde_json::from_slice(&fixture("github/pull_request.opened.json"))
            .expect("the fixture is JSON");
        event["number"] = json!(number);
        event["pull_request"]["number"] = json!(number);
        event["pull_request"]["head"]["sha"] = json!(head);
        event["repository"]["full_name"] = json!(REPO);
        let body = serde_json::to_vec(&event).unwrap();
        let id = format!("gh-pull-{number}");
        deliveries.push(Delivery {
            headers: github_headers(GITHUB_SECRET, "pull_request", &id, &body),
            key: id,
            source: "github",
            body,
        });
        pulls.push(PullRequest { number, head });
    }

    for m in 0..MERGE_REQUESTS {
        let iid = 1 + m as u64;
        let (first, second) = (commit("mr-first", m), commit("mr-second", m));
        images.push(Image::gitlab(&first, &first));
        images.push(Image::gitlab(&second, &second));
        images.push(Image::gitlab(&format!("v2.{m}.0"), &second));
        for (fixture_name, head, oldrev) in [
            ("gitlab/merge_request.open.json", &first, None),
            ("gitlab/merge_request.update.json", &second, Some(&first)),
        ] {
            let mut event: Value =
                serde_json::from_slice(&fixture(fixture_name)).expect("the fixture is JSON");
            event["project"]["path_with_namespace"] = json!(PROJECT);
            event["object_attributes"]["iid"] = json!(iid);
            event["object_attributes"]["last_commit"]["id"] = json!(head);
            if let Some(oldrev) = oldrev {
                event["object_attributes"]["oldrev"] = json!(oldrev);
            }
            let body = serde_json::to_vec(&event).unwrap();
            let id = format!("gl-mr-{iid}-{}", head);
            deliveries.push(Delivery {
                headers: vec![
                    ("X-Gitlab-Token", GITLAB_TOKEN.to_owned()),
                    ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
                    ("X-Gitlab-Event-UUID", id.clone()),
                    ("Content-Type", "application/json".to_owned()),
                ],
                key: id,
                source: "gitlab",
                body,
            });
        }
        merge_requests.push(MergeRequest { iid, first, second });
    }

    for n in 0..RELEASES {
        images.push(Image::github(&format!("v0.{n}.0"), &commit("release", n)));
    }
    for n in 0..BUILDS {
        let sha = commit("build", n);
        images.push(Image::github(&sha, &sha));
    }
    for (i, image) in images.iter().enumerate() {
        let id = format!("image-{i}");
        deliveries.push(Delivery {
            body: distribution_push(image.repository, &image.digest, &image.tag, &id),
            key: id,
            source: "registry",
            headers: distribution_headers(),
        });
    }

    let push = fixture("github/push.json");
    for n in 0..GITHUB_PUSHES {
        let id = format!("gh-push-{n}");
        deliveries.push(Delivery {
            headers: github_headers(GITHUB_SECRET, "push", &id, &push),
            key: id,
            source: "github",
            body: push.clone(),
        });
    }

    // Mixed evenly, in an order that is the same on every run.
    deliveries.sort_by_cached_key(|d| Sha256::digest(d.key.as_bytes()));
    assert_eq!(deliveries.len(), DELIVERIES);
    Plan {
        images,
        pulls,
        merge_requests,
        deliveries,
    }
}

/// An open registry's v2 API as portcall reads it: `GET /v2/`, and each
/// pushed image's manifest by digest (with the headers Distribution sends).
#[derive(Clone)]
struct Manifests(Arc<BTreeMap<String, Vec<u8>>>);

impl Respond for Manifests {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self.0.get(request.url.path()) {
            Some(manifest) => {
                let digest = request.url.path().rsplit('/').next().unwrap_or_default();
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .insert_header("docker-content-digest", digest)
                    .set_body_bytes(manifest.clone())
            }
            None => ResponseTemplate::new(404).set_body_json(json!({"errors": [
                {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}}
            ]})),
        }
    }
}

async fn registry_serving(images: &[Image]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let manifests = images
        .iter()
        .map(|i| {
            (
                format!("/v2/{}/manifests/{}", i.repository, i.digest),
                i.manifest.clone(),
            )
        })
        .collect();
    Mock::given(method("GET"))
        .and(path_regex("^/v2/.+/manifests/sha256:[0-9a-f]{64}$"))
        .respond_with(Manifests(Arc::new(manifests)))
        .mount(&server)
        .await;
    server
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

/// A replica whose log (`log`) names its inbox worker and dispatcher.
async fn replica_logging_owners(
    config: &std::path::Path,
    port: u16,
    log: &std::path::Path,
) -> Child {
    let file = std::fs::File::create(log).unwrap();
    portcall_command(config)
        .arg("serve")
        .env(
            "RUST_LOG",
            "warn,portcall::worker::inbox=info,portcall::worker::dispatcher=info",
        )
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("portcall starts")
}

/// The lease owners a replica's log names: its worker's and dispatcher's.
fn owners_in(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut owners = BTreeSet::new();
    for prefix in ["worker-", "dispatcher-"] {
        for (at, _) in text.match_indices(prefix) {
            let Some(candidate) = text.get(at..at + prefix.len() + 36) else {
                continue;
            };
            if uuid::Uuid::parse_str(&candidate[prefix.len()..]).is_ok() {
                owners.insert(candidate.to_owned());
            }
        }
    }
    owners.into_iter().collect()
}

/// The deliveries and jobs leased to `owners`, by id.
async fn claimed_by(pool: &sqlx::PgPool, owners: &[String]) -> (Vec<i64>, Vec<i64>) {
    let ids =
        |table: &str| format!("SELECT id FROM {table} WHERE lease_owner = ANY($1) ORDER BY id");
    let deliveries = sqlx::query_scalar(&ids("deliveries"))
        .bind(owners)
        .fetch_all(pool)
        .await
        .unwrap();
    let jobs = sqlx::query_scalar(&ids("jobs"))
        .bind(owners)
        .fetch_all(pool)
        .await
        .unwrap();
    (deliveries, jobs)
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
    let started = Instant::now();
    let plan = plan();
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    let github_state = GithubState::default();
    github_state.mount(&github.server, REPO).await;
    for pull in &plan.pulls {
        github_state.open_pull_request(pull.number, &pull.head);
    }
    let gitlab = GitlabMock::start().await;
    let gitlab_state = GitlabState::default();
    gitlab_state.mount(&gitlab.server, PROJECT).await;
    for mr in &plan.merge_requests {
        gitlab_state.open_merge_request(mr.iid, &[&mr.first, &mr.second]);
    }
    let registry = registry_serving(&plan.images).await;

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}{}\n[[components]]\nname = \"{GITLAB_COMPONENT}\"\nimage = \"{GITLAB_IMAGE}\"\nrepository = \"gitlab:{PROJECT}\"\nrelease_tags = [\"v*\"]\n",
        github.config(),
        gitlab.config(dir.path()),
    );
    let registry_url = registry.uri();
    let config = write_config_with(
        dir.path(),
        &db.url,
        true,
        true,
        &extra,
        ConfigUrls {
            public_url: Some(PUBLIC_URL),
            registry_api_url: Some(&registry_url),
        },
    );
    // All three start at once: migrations run once, under the advisory
    // lock. The third, the one to be killed, logs its lease owners.
    let ports = [free_port(), free_port(), free_port()];
    let victim_log = dir.path().join("victim.log");
    let mut replicas = vec![
        replica(&config, ports[0]).await,
        replica(&config, ports[1]).await,
        replica_logging_owners(&config, ports[2], &victim_log).await,
    ];
    for port in ports {
        wait_until_serving(port).await;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (applied, succeeded): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE success) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(
        (applied, succeeded),
        (files as i64, files as i64),
        "every migration once"
    );
    let victim_owners = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let owners = owners_in(&victim_log);
            if owners.len() == 2 {
                break owners;
            }
            assert!(
                Instant::now() < deadline,
                "the victim's log names {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    // Each delivery twice, to two different replicas, at once; 32 in
    // flight. Halfway through, the third replica is killed.
    let client = reqwest::Client::new();
    let all = Arc::new(plan.deliveries);
    let done = Arc::new(AtomicUsize::new(0));
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
                        done.fetch_add(1, Ordering::Relaxed);
                        (i, [x, y])
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    while done.load(Ordering::Relaxed) < all.len() / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Killed while it holds work: deliveries and jobs it claimed (or,
    // failing both within a few seconds, either).
    let patience = Instant::now() + Duration::from_secs(3);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (deliveries, jobs) = claimed_by(&pool, &victim_owners).await;
        let both = !deliveries.is_empty() && !jobs.is_empty();
        let either = !deliveries.is_empty() || !jobs.is_empty();
        if both || (either && Instant::now() > patience) {
            break;
        }
        assert!(Instant::now() < deadline, "the victim never held a claim");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut dead = replicas.pop().unwrap();
    dead.start_kill().unwrap();
    dead.wait().await.unwrap();
    let killed_at = done.load(Ordering::Relaxed);
    let killed_after = started.elapsed();
    // What it left claimed, once PostgreSQL has run what the dead process
    // had already sent (a commit of finished work may still land): the
    // survivors take it over when the leases expire.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (left_deliveries, left_jobs) = claimed_by(&pool, &victim_owners).await;
    assert!(
        !left_deliveries.is_empty() || !left_jobs.is_empty(),
        "the victim died holding nothing"
    );
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
    let settled = settle(&config, &client, ports[0], all.len()).await;
    // Everything it held is finished (every delivery processed, every job
    // done: `settle` checked), by a survivor that claimed it again.
    let rows: BTreeMap<i64, &portcall::store::deliveries::DeliveryRecord> =
        settled.deliveries.iter().map(|r| (r.id, r)).collect();
    let jobs: BTreeMap<i64, &Value> = settled
        .jobs
        .iter()
        .map(|j| (j["id"].as_i64().unwrap(), j))
        .collect();
    let not_taken_over: Vec<String> = left_deliveries
        .iter()
        .filter(|id| rows[*id].attempts < 2)
        .map(|id| format!("{:?}", rows[id]))
        .chain(
            left_jobs
                .iter()
                .filter(|id| jobs[*id]["attempts"].as_i64() < Some(2))
                .map(|id| jobs[id].to_string()),
        )
        .collect();
    assert!(
        not_taken_over.is_empty(),
        "held by the dead replica, finished without being claimed again: {not_taken_over:#?}"
    );
    let still_claimed: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL), \
                (SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        still_claimed,
        (0, 0),
        "claims left after every lease expired"
    );

    // Every release once, from the commit its image was built from.
    let releases = releases_by_name(&client, ports[0], &plan.images).await;
    let gh = |i: &&Image| i.component == GITHUB_COMPONENT;
    let gl = |i: &&Image| i.component == GITLAB_COMPONENT;
    let github_images: Vec<&Image> = plan.images.iter().filter(gh).collect();
    let gitlab_images: Vec<&Image> = plan.images.iter().filter(gl).collect();

    // GitHub: a status and a check run per image, once each; one comment
    // per pull request, created once and then edited.
    let received = github.server.received_requests().await.unwrap();
    let expected_statuses: BTreeMap<(String, String, String), usize> = github_images
        .iter()
        .map(|i| ((i.commit.clone(), i.headline(), i.link(&releases)), 1))
        .collect();
    let mut statuses = BTreeMap::new();
    let mut checks = BTreeMap::new();
    for request in posted(&received, format!("/repos/{REPO}/statuses/")) {
        let status = json_body(request);
        assert_eq!(
            (&status["context"], &status["state"]),
            (&json!("portcall/release"), &json!("success")),
            "{status}"
        );
        let sha = request.url.path().rsplit('/').next().unwrap().to_owned();
        let key = (
            sha,
            status["description"].as_str().unwrap().to_owned(),
            status["target_url"].as_str().unwrap().to_owned(),
        );
        *statuses.entry(key).or_insert(0) += 1;
    }
    assert_same(&statuses, &expected_statuses, "GitHub commit statuses");
    let expected_checks: BTreeMap<(String, String, Option<String>), usize> = github_images
        .iter()
        .map(|i| {
            let external_id = i
                .release()
                .map(|name| format!("release-{}", releases[&name]));
            ((i.commit.clone(), i.headline(), external_id), 1)
        })
        .collect();
    for request in posted(&received, format!("/repos/{REPO}/check-runs")) {
        let check = json_body(request);
        assert_eq!(check["name"], "portcall / release", "{check}");
        let key = (
            check["head_sha"].as_str().unwrap().to_owned(),
            check["output"]["title"].as_str().unwrap().to_owned(),
            check["external_id"].as_str().map(str::to_owned),
        );
        *checks.entry(key).or_insert(0) += 1;
    }
    assert_same(&checks, &expected_checks, "GitHub check runs");

    let marker = format!("<!-- portcall:{GITHUB_COMPONENT} -->");
    let deleted = received
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .count();
    assert_eq!(
        deleted, 0,
        "a duplicate GitHub comment was made (and deleted)"
    );
    let (mut comments_created, mut comments_edited) = (0, 0);
    let commented: BTreeSet<u64> = posted(&received, format!("/repos/{REPO}/issues/"))
        .map(|r| {
            let number = r.url.path().split('/').nth(5).unwrap();
            number.parse().unwrap()
        })
        .collect();
    let numbers: BTreeSet<u64> = plan.pulls.iter().map(|p| p.number).collect();
    assert_eq!(
        commented, numbers,
        "comments only on the open pull requests"
    );
    for pull in &plan.pulls {
        let created: Vec<&Request> = posted(
            &received,
            format!("/repos/{REPO}/issues/{}/comments", pull.number),
        )
        .collect();
        assert_eq!(created.len(), 1, "comments created on #{}", pull.number);
        let thread = github_state.comments(pull.number);
        assert_eq!(thread.len(), 1, "#{}: {thread:#?}", pull.number);
        let edits: Vec<&Request> = received
            .iter()
            .filter(|r| {
                r.method.as_str() == "PATCH"
                    && r.url.path() == format!("/repos/{REPO}/issues/comments/{}", thread[0]["id"])
            })
            .collect();
        assert!(
            !edits.is_empty(),
            "the comment on #{} was never edited",
            pull.number
        );
        // Each says one of the head's two images.
        let tags = [pull.head.clone(), format!("v1.{}.0", pull.number - 1000)];
        for text in created
            .iter()
            .chain(&edits)
            .map(|r| json_body(r)["body"].clone())
        {
            let text = text.as_str().unwrap();
            assert!(text.starts_with(&marker), "{text}");
            assert!(
                text.contains(&format!("| Commit | `{}` |", pull.head)),
                "{text}"
            );
            assert!(
                tags.iter()
                    .any(|t| text.contains(&format!("| Tag | `{t}` |"))),
                "{text}"
            );
        }
        comments_created += created.len();
        comments_edited += edits.len();
    }
    let patched = received
        .iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .count();
    assert_eq!(patched, comments_edited, "edits of other comments");

    // GitLab: the release status and the emulated check's status per
    // image, once each; the emulated check's discussion on the merge
    // request whose head the image's commit is, once; one sticky note per
    // merge request, created once and then edited.
    let received = gitlab.server.received_requests().await.unwrap();
    let project = format!("/api/v4/projects/{PROJECT_ENCODED}");
    let mut expected_statuses = BTreeMap::new();
    for image in &gitlab_images {
        for name in ["portcall/release", "portcall / release"] {
            let key = (
                image.commit.clone(),
                name.to_owned(),
                image.headline(),
                image.link(&releases),
            );
            expected_statuses.insert(key, 1);
        }
    }
    let mut statuses = BTreeMap::new();
    for request in posted(&received, format!("{project}/statuses/")) {
        let fields: BTreeMap<String, String> = form(request).into_iter().collect();
        assert_eq!(fields["state"], "success", "{fields:?}");
        let sha = request.url.path().rsplit('/').next().unwrap().to_owned();
        let key = (
            sha,
            fields["name"].clone(),
            fields["description"].clone(),
            fields["target_url"].clone(),
        );
        *statuses.entry(key).or_insert(0) += 1;
    }
    assert_same(&statuses, &expected_statuses, "GitLab commit statuses");

    let gitlab_marker = format!("<!-- portcall:{GITLAB_COMPONENT} -->");
    let deleted = received
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .count();
    assert_eq!(deleted, 0, "a duplicate GitLab note was made (and deleted)");
    let (mut notes_created, mut notes_edited, mut discussions_opened) = (0, 0, 0);
    for mr in &plan.merge_requests {
        let base = format!("{project}/merge_requests/{}", mr.iid);
        // The emulated check runs of the images of its head.
        let mut discussions: BTreeMap<String, usize> = BTreeMap::new();
        for request in posted(&received, format!("{base}/discussions")) {
            let text = form(request)
                .into_iter()
                .find(|(k, _)| k == "body")
                .map(|(_, v)| v)
                .unwrap();
            let title = text.lines().next().unwrap().to_owned();
            *discussions.entry(title).or_insert(0) += 1;
        }
        let expected: BTreeMap<String, usize> = gitlab_images
            .iter()
            .filter(|i| i.commit == mr.second)
            .map(|i| (format!("### {}", i.headline()), 1))
            .collect();
        assert_eq!(discussions, expected, "discussions on !{}", mr.iid);
        discussions_opened += discussions.len();

        let created: Vec<&Request> = posted(&received, format!("{base}/notes")).collect();
        assert_eq!(created.len(), 1, "notes created on !{}", mr.iid);
        let sticky: Vec<Value> = gitlab_state
            .notes(mr.iid)
            .into_iter()
            .filter(|n| n["body"].as_str().unwrap().contains(&gitlab_marker))
            .collect();
        assert_eq!(sticky.len(), 1, "!{}: {sticky:#?}", mr.iid);
        let edit_path = format!("{base}/notes/{}", sticky[0]["id"]);
        let edits: Vec<&Request> = received
            .iter()
            .filter(|r| r.method.as_str() == "PUT" && r.url.path() == edit_path)
            .collect();
        assert!(
            !edits.is_empty(),
            "the note on !{} was never edited",
            mr.iid
        );
        let tags = [
            mr.first.clone(),
            mr.second.clone(),
            format!("v2.{}.0", mr.iid - 1),
        ];
        for request in created.iter().chain(&edits) {
            let text = form(request)
                .into_iter()
                .find(|(k, _)| k == "body")
                .map(|(_, v)| v)
                .unwrap();
            assert!(text.starts_with(&gitlab_marker), "{text}");
            assert!(
                tags.iter()
                    .any(|t| text.contains(&format!("| Tag | `{t}` |"))),
                "{text}"
            );
        }
        notes_created += created.len();
        notes_edited += edits.len();
    }
    let put = received
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count();
    assert_eq!(put, notes_edited, "edits of other notes");
    let discussions_posted = received
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/discussions"))
        .count();
    assert_eq!(
        discussions_posted, discussions_opened,
        "discussions elsewhere"
    );

    let retried_jobs = settled
        .jobs
        .iter()
        .filter(|j| j["attempts"].as_i64() > Some(1))
        .count();
    // Retries that found their effect there already (an attempt of the
    // dead replica's had made it), and did not make it again.
    let found_posted = settled
        .jobs
        .iter()
        .filter(|j| j["attempts"].as_i64() > Some(1))
        .filter(|j| {
            j["result"].as_str().is_some_and(|r| {
                r.contains("an earlier attempt") || r.starts_with("comment unchanged")
            })
        })
        .count();
    eprintln!(
        "replicas: {} deliveries ({} images, {} releases, {} pull requests, {} merge requests); \
         killed after {killed_at} sent, at {:.1} s, leaving {} deliveries and {} jobs claimed; \
         {} deliveries processed again and {retried_jobs} of {} jobs run again \
         ({found_posted} finding their effect already there); \
         GitHub: {} statuses, {} check runs, {comments_created} comments created and {comments_edited} edits; \
         GitLab: {} statuses, {discussions_opened} discussions, {notes_created} notes created and {notes_edited} edits; \
         {:.1} s in all",
        all.len(),
        plan.images.len(),
        releases.len(),
        plan.pulls.len(),
        plan.merge_requests.len(),
        killed_after.as_secs_f64(),
        left_deliveries.len(),
        left_jobs.len(),
        settled.reprocessed,
        settled.jobs.len(),
        github_images.len(),
        github_images.len(),
        gitlab_images.len() * 2,
        started.elapsed().as_secs_f64(),
    );
    pool.close().await;
    for mut replica in replicas {
        replica.start_kill().unwrap();
        replica.wait().await.unwrap();
    }
    db.drop_database().await;
}

/// `got` is `expected`, else a panic naming only the entries that differ:
/// how often each thing was posted, and how often it should have been.
fn assert_same<K: Ord + std::fmt::Debug>(
    got: &BTreeMap<K, usize>,
    expected: &BTreeMap<K, usize>,
    what: &str,
) {
    let differing: Vec<String> = got
        .keys()
        .chain(expected.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(k) != expected.get(k))
        .map(|k| {
            format!(
                "{k:?}: posted {} times, expected {}",
                got.get(k).unwrap_or(&0),
                expected.get(k).unwrap_or(&0)
            )
        })
        .collect();
    assert!(differing.is_empty(), "{what}: {differing:#?}");
}

/// The POST requests whose path starts with `prefix`.
fn posted(received: &[Request], prefix: String) -> impl Iterator<Item = &Request> {
    received
        .iter()
        .filter(move |r| r.method.as_str() == "POST" && r.url.path().starts_with(&prefix))
}

/// Every release, by name, read through `GET /api/v1/releases` page by
/// page; each of `images`' releases once, with its image, tag, digest and
/// commit, and no other.
async fn releases_by_name(
    client: &reqwest::Client,
    port: u16,
    images: &[Image],
) -> BTreeMap<String, i64> {
    let mut listed = Vec::new();
    let mut page = "/api/v1/releases?limit=100".to_owned();
    loop {
        let (status, answer) = admin_get(client, port, &page).await;
        assert_eq!(status, 200, "{answer}");
        listed.extend(answer["releases"].as_array().unwrap().iter().cloned());
        match answer["next_before"].as_i64() {
            Some(before) => page = format!("/api/v1/releases?limit=100&before={before}"),
            None => break,
        }
    }
    let shape = |r: &Value| {
        json!({
            "name": r["name"], "component": r["component"], "image": r["image"],
            "tag": r["tag"], "digest": r["digest"], "commit": r["commit"],
        })
    };
    let mut got: Vec<Value> = listed.iter().map(shape).collect();
    got.sort_by_key(|r| r["name"].as_str().unwrap().to_owned());
    let mut expected: Vec<Value> = images
        .iter()
        .filter_map(|i| {
            Some(json!({
                "name": i.release()?, "component": i.component, "image": i.image,
                "tag": i.tag, "digest": i.digest, "commit": i.commit,
            }))
        })
        .collect();
    expected.sort_by_key(|r| r["name"].as_str().unwrap().to_owned());
    assert_eq!(got, expected, "every release once");
    listed
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Image pushes (each tagged with its own commit, so each posts a status
/// and a check run) and GitHub pushes (stored and processed, no effect),
/// for a registry source that reads no labels.
fn builds_and_pushes(images: usize, pushes: usize) -> Vec<Delivery> {
    let push = fixture("github/push.json");
    let mut all = Vec::new();
    for n in 0..images {
        let sha = commit("commit", n);
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("image-{n}").as_bytes()))
        );
        all.push(Delivery {
            key: format!("image-{n}"),
            source: "registry",
            headers: distribution_headers(),
            body: distribution_push(REPO, &digest, &sha, &format!("image-{n}")),
        });
    }
    for n in 0..pushes {
        let id = format!("gh-push-{n}");
        all.push(Delivery {
            headers: github_headers(GITHUB_SECRET, "push", &id, &push),
            key: id,
            source: "github",
            body: push.clone(),
        });
    }
    all
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
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    // No pull request is open.
    GithubState::default().mount(&github.server, REPO).await;
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
    let all = Arc::new(builds_and_pushes(IMAGES, PUSHES));
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

    let settled = settle(&config, &client, ports[0], all.len()).await;
    // On GitHub: one status and one check run per pushed commit.
    let statuses = per_commit(&github, "statuses").await;
    let checks = per_commit(&github, "check-runs").await;
    for n in 0..IMAGES {
        let sha = commit("commit", n);
        assert_eq!(statuses.get(&sha), Some(&1), "statuses on {sha}");
        assert_eq!(checks.get(&sha), Some(&1), "check runs on {sha}");
    }
    eprintln!(
        "rolling restart: {restarts} restarts; {retried} deliveries sent again to the other replica; {} processed more than once; {} jobs",
        settled.reprocessed,
        settled.jobs.len()
    );
    for mut replica in replicas {
        replica.start_kill().unwrap();
        replica.wait().await.unwrap();
    }
    db.drop_database().await;
}

/// What the replicas left once they were done.
struct Settled {
    deliveries: Vec<portcall::store::deliveries::DeliveryRecord>,
    jobs: Vec<Value>,
    /// Deliveries processed more than once.
    reprocessed: usize,
}

/// Waits (90 s at most) until every delivery is processed and no job is
/// pending, then checks that each delivery was stored once, processed and
/// left unclaimed, and that every job is done.
async fn settle(
    config: &std::path::Path,
    client: &reqwest::Client,
    port: u16,
    total: usize,
) -> Settled {
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

    // Every job done; none left claimed.
    assert!(
        jobs.iter().all(|j| j["state"] == "done"),
        "{:?}",
        jobs.iter().find(|j| j["state"] != "done")
    );
    store.close().await;
    Settled {
        deliveries: rows,
        jobs,
        reprocessed,
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
