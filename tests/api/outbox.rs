//! From an image push to what developers see: statuses, check runs and
//! sticky comments posted to mock GitHub and GitLab servers (documented
//! response bodies), with retries, rate limits, permanent failures and
//! restarts. Image pushes arrive as Distribution notifications whose tag is
//! the commit sha (the real-registry path, with labels, is in
//! `release_e2e.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const IMAGE: &str = "registry.example.com/octo-org/hello-world";
const MARKER: &str = "<!-- portcall:hello-world -->";

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

async fn spawn_with_github(db: TestDb, github: &GithubMock) -> TestApp {
    TestApp::spawn_with(
        db,
        Spawn {
            extra_config: github.config(),
            ..Spawn::default()
        },
    )
    .await
}

fn jobs_of<'a>(jobs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    jobs.iter().filter(|j| j["kind"] == kind).collect()
}

on_both_backends! {
    async fn an_image_whose_tag_is_a_commit_gets_a_status_a_check_run_and_one_sticky_comment(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.mount_posting(REPO, SHA, &[7]).await;
        github.mount_comments(REPO, 7, MARKER).await;
        let app = spawn_with_github(db, &github).await;

        let first = digest("first build");
        assert_eq!(app.post_image_push("ev-1", REPO, SHA, &first).await.status().as_u16(), 202);
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");

        // The token was minted with an app JWT that verifies against the
        // App's public key.
        let minted = github
            .requests("POST", &format!("/app/installations/{INSTALLATION_ID}/access_tokens"))
            .await;
        assert_eq!(minted.len(), 1);
        assert_app_jwt(&minted[0]);

        let statuses = github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await;
        assert_eq!(statuses.len(), 1);
        assert_eq!(
            json_body(&statuses[0]),
            json!({
                "state": "success",
                "context": "portcall/release",
                "description": format!("Image pushed: {IMAGE}:{SHA}"),
            })
        );
        let installation_token = body("github-api/apps/create-installation-access-token.json")["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let auth = statuses[0].headers.get("authorization").unwrap().to_str().unwrap();
        assert!(auth.ends_with(&installation_token), "posted with the installation token");

        let checks = github.requests("POST", &format!("/repos/{REPO}/check-runs")).await;
        assert_eq!(checks.len(), 1);
        let check = json_body(&checks[0]);
        assert_eq!(check["name"], "portcall / release");
        assert_eq!(check["head_sha"], SHA);
        assert_eq!(check["status"], "completed");
        assert_eq!(check["conclusion"], "success");
        let summary = check["output"]["summary"].as_str().unwrap();
        for expected in ["hello-world", IMAGE, &first, SHA] {
            assert!(summary.contains(expected), "{summary} should name {expected}");
        }

        let created = github.requests("POST", &format!("/repos/{REPO}/issues/7/comments")).await;
        assert_eq!(created.len(), 1);
        let comment = json_body(&created[0])["body"].as_str().unwrap().to_owned();
        assert!(comment.starts_with(MARKER), "{comment}");
        assert!(comment.contains(&first));

        // A second build of the same commit: the comment is edited in place.
        let second = digest("second build");
        app.post_image_push("ev-2", REPO, SHA, &second).await;
        app.wait_until_settled(20).await;
        assert_eq!(
            github.requests("POST", &format!("/repos/{REPO}/issues/7/comments")).await.len(),
            1,
            "never a second comment: {:?}",
            github.calls().await
        );
        let edits: Vec<_> = github
            .server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "PATCH" && r.url.path().starts_with(&format!("/repos/{REPO}/issues/comments/")))
            .collect();
        assert_eq!(edits.len(), 1);
        assert!(json_body(&edits[0])["body"].as_str().unwrap().contains(&second));
        // The token was cached: still one minted.
        assert_eq!(
            github.requests("POST", &format!("/app/installations/{INSTALLATION_ID}/access_tokens")).await.len(),
            1
        );
        app.finish().await;
    }

    async fn the_same_push_delivered_three_times_and_replayed_posts_once(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.mount_posting(REPO, SHA, &[7]).await;
        github.mount_comments(REPO, 7, MARKER).await;
        let app = spawn_with_github(db, &github).await;

        let image = digest("one build");
        // One event redelivered (a duplicate at the door) and the same push
        // notified under other ids (several endpoints, a re-push).
        for id in ["ev-1", "ev-1", "ev-2", "ev-3"] {
            app.post_image_push(id, REPO, SHA, &image).await;
        }
        app.wait_until_settled(20).await;
        // Replay every delivery.
        sqlx::query("UPDATE deliveries SET status = 'pending', attempts = 0")
            .execute(&app.sql().await)
            .await
            .unwrap();
        let jobs = app.wait_until_settled(20).await;

        assert_eq!(app.deliveries().await.len(), 3);
        assert_eq!(jobs_of(&jobs, "resolve_image").len(), 3, "{jobs:#?}");
        for kind in ["commit_status", "check_run"] {
            assert_eq!(jobs_of(&jobs, kind).len(), 1, "{kind}: {jobs:#?}");
        }
        // The comment's: finding the open pull request, and upserting on it.
        let comments: Vec<&Value> = jobs_of(&jobs, "pr_comment");
        let mut results: Vec<&str> = comments.iter().map(|j| j["result"].as_str().unwrap()).collect();
        results.sort_unstable();
        assert_eq!(results, ["comment created on #7", "comment queued for #7"], "{jobs:#?}");
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 1);
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/check-runs")).await.len(), 1);
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/issues/7/comments")).await.len(), 1);
        app.finish().await;
    }

    async fn two_images_of_a_commit_upserting_its_pull_requests_comment_at_once_make_one_comment(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        let state = GithubState::default();
        state.open_pull_request(7, SHA);
        // GitHub is slow to list the comments: two upserts at once would
        // both find none and both create one.
        Mock::given(method("GET"))
            .and(path(format!("/repos/{REPO}/issues/7/comments")))
            .respond_with(Slowly(state.clone(), Duration::from_millis(300)))
            .with_priority(1)
            .mount(&github.server)
            .await;
        state.mount(&github.server, REPO).await;
        let app = spawn_with_github(db, &github).await;

        // Two builds of the commit, told at once.
        let (first, second) = (digest("first build"), digest("second build"));
        let (a, b) = tokio::join!(
            app.post_image_push("ev-1", REPO, SHA, &first),
            app.post_image_push("ev-2", REPO, SHA, &second),
        );
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");

        let created = github.requests("POST", &format!("/repos/{REPO}/issues/7/comments")).await;
        assert_eq!(created.len(), 1, "one comment");
        let thread = state.comments(7);
        assert_eq!(thread.len(), 1, "{thread:#?}");
        let edits = github
            .requests("PATCH", &format!("/repos/{REPO}/issues/comments/{}", thread[0]["id"]))
            .await;
        assert_eq!(edits.len(), 1, "then edited in place");
        assert!(github.calls().await.iter().all(|(verb, _)| verb != "DELETE"), "no duplicate to delete");
        // Each build said once, one after the other.
        let mut said: Vec<String> = [&created[0], &edits[0]]
            .iter()
            .map(|r| json_body(r)["body"].as_str().unwrap().to_owned())
            .map(|text| {
                assert!(text.starts_with(MARKER), "{text}");
                [&first, &second].into_iter().find(|d| text.contains(d.as_str())).unwrap().clone()
            })
            .collect();
        said.sort();
        let mut both = vec![first.clone(), second.clone()];
        both.sort();
        assert_eq!(said, both);
        app.finish().await;
    }

    async fn a_502_is_retried_and_then_posted(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/statuses/{SHA}")))
            .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = spawn_with_github(db, &github).await;

        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        let jobs = app.wait_until_settled(20).await;
        let status = jobs_of(&jobs, "commit_status")[0];
        assert_eq!(status["state"], "done", "{status:#}");
        assert_eq!(status["attempts"], 2);
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 2);
        app.finish().await;
    }

    async fn a_job_that_keeps_failing_goes_dead_after_the_attempt_limit(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/statuses/{SHA}")))
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({
                "message": "Service Unavailable", "documentation_url": "https://docs.github.com/rest"
            })))
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = spawn_with_github(db, &github).await;

        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        let jobs = app.wait_until_settled(30).await;
        let status = jobs_of(&jobs, "commit_status")[0];
        assert_eq!(status["state"], "dead", "{status:#}");
        // dispatcher.max_attempts = 4 in the test configuration.
        assert_eq!(status["attempts"], 4);
        let error = status["last_error"].as_str().unwrap();
        assert!(error.starts_with("gave up after 4 attempts"), "{error}");
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 4);
        app.finish().await;
    }

    async fn a_429_with_retry_after_is_not_retried_sooner(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        let checks = Timed::new(vec![
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "3")
                .set_body_json(json!({"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest"})),
            ResponseTemplate::new(201).set_body_json(body("github-api/checks/create.json")),
        ]);
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/check-runs")))
            .respond_with(checks.clone())
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = spawn_with_github(db, &github).await;

        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        let jobs = app.wait_until_settled(30).await;
        assert_eq!(jobs_of(&jobs, "check_run")[0]["state"], "done");
        let times = checks.times();
        assert_eq!(times.len(), 2);
        // The schedule is persisted in wall-clock milliseconds, so the wait
        // is measured on the wall clock too: a VM's clock may be slewed
        // against the monotonic one by several milliseconds a second.
        let waited = times[1].duration_since(times[0]).unwrap();
        assert!(waited >= Duration::from_secs(3), "retried after {waited:?}");
        app.finish().await;
    }

    async fn a_404_kills_the_job_at_once_and_an_operator_sees_and_retries_it(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.refuse_status_once(REPO, SHA).await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = spawn_with_github(db, &github).await;

        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        app.wait_until_settled(20).await;
        let (code, dead) = app.get_api("/api/v1/jobs?state=dead").await;
        assert_eq!(code, 200);
        let dead = dead["jobs"].as_array().unwrap().clone();
        assert_eq!(dead.len(), 1, "{dead:#?}");
        assert_eq!(dead[0]["kind"], "commit_status");
        assert_eq!(dead[0]["attempts"], 1);
        assert!(dead[0]["last_error"].as_str().unwrap().contains("Not Found"), "{:#}", dead[0]);
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 1);

        // The operator retries it by hand; this time GitHub accepts.
        let id = dead[0]["id"].as_i64().unwrap();
        let (code, job) = app.post_api(&format!("/api/v1/jobs/{id}/retry"), json!({})).await;
        assert_eq!(code, 202, "{job:#}");
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 2);
        // Retrying it once more re-runs it, but an identical status is not
        // posted twice.
        let (code, job) = app.post_api(&format!("/api/v1/jobs/{id}/retry"), json!({})).await;
        assert_eq!(code, 202, "{job:#}");
        let jobs = app.wait_until_settled(20).await;
        let again = jobs.iter().find(|j| j["id"] == id).unwrap();
        assert_eq!(again["result"], format!("status portcall/release already success on {SHA}"));
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 2);
        let (code, error) = app.post_api("/api/v1/jobs/999999/retry", json!({})).await;
        assert_eq!((code, error["error"]["code"].as_str()), (404, Some("not_found")));
        app.finish().await;
    }

    async fn a_401_mints_a_new_token_once_and_posts(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/statuses/{SHA}")))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"
            })))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = spawn_with_github(db, &github).await;

        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
        assert_eq!(
            github.requests("POST", &format!("/app/installations/{INSTALLATION_ID}/access_tokens")).await.len(),
            2,
            "minted, then minted again after the 401"
        );
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 2);
        app.finish().await;
    }

    async fn jobs_pending_when_the_process_stops_are_posted_after_restart(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.mount_posting(REPO, SHA, &[]).await;
        // The first process stores and processes the push, then stops before
        // any job is dispatched (its dispatcher is off).
        let mut first = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: github.config(),
                dispatcher: false,
                ..Spawn::default()
            },
        )
        .await;
        first.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        first.wait_until_processed().await;
        // As if a dispatcher had claimed the job and died: it is leased
        // for another second, with an attempt counted.
        sqlx::query(&format!(
            "UPDATE jobs SET lease_owner = 'dispatcher-crashed', attempts = 1, \
             lease_expires_at = {}",
            now_unix() * 1000 + 1000
        ))
        .execute(&first.sql().await)
        .await
        .unwrap();
        first.stop().await;
        assert!(github.calls().await.is_empty(), "{:?}", github.calls().await);

        let app = TestApp::spawn_with(
            first.into_db().await,
            Spawn {
                extra_config: github.config(),
                ..Spawn::default()
            },
        )
        .await;
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
        // The resolution job (the only one when the first process stopped)
        // counts the crashed attempt; what it enqueued ran once.
        let resolve = jobs_of(&jobs, "resolve_image");
        assert_eq!(resolve[0]["attempts"], 2, "{jobs:#?}");
        assert!(jobs.iter().filter(|j| j["kind"] != "resolve_image").all(|j| j["attempts"] == 1));
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/statuses/{SHA}")).await.len(), 1);
        app.finish().await;
    }

    async fn without_a_configured_provider_effects_are_skipped_with_their_payload(db: TestDb) {
        let app = TestApp::spawn(db).await;
        app.post_image_push("ev-1", REPO, SHA, &digest("x")).await;
        let jobs = app.wait_until_settled(20).await;
        let skipped: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "skipped").collect();
        assert_eq!(skipped.len(), 3, "{jobs:#?}");
        for job in skipped {
            assert_eq!(job["result"], "no [github] provider is configured");
            assert_eq!(job["payload"]["repo"], "github:octo-org/hello-world");
        }
        let (_, listed) = app.get_api("/api/v1/jobs?state=skipped").await;
        assert_eq!(listed["jobs"].as_array().unwrap().len(), 3);
        app.finish().await;
    }

    async fn an_offline_component_records_its_effects_as_skipped_and_posts_nothing(db: TestDb) {
        let github = GithubMock::start().await;
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!(
                    "{}\n[[components]]\nname = \"quiet\"\nimage = \"registry.example.com/octo-org/quiet\"\nrepository = \"github:octo-org/quiet\"\noffline = true\n",
                    github.config()
                ),
                ..Spawn::default()
            },
        )
        .await;
        app.post_image_push("ev-1", "octo-org/quiet", SHA, &digest("q")).await;
        let jobs = app.wait_until_settled(20).await;
        let skipped: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "skipped").collect();
        assert_eq!(skipped.len(), 3, "{jobs:#?}");
        assert!(skipped.iter().all(|j| j["result"] == "component quiet is offline"));
        assert!(github.calls().await.is_empty());
        app.finish().await;
    }

    async fn a_gitlab_component_gets_a_status_an_emulated_check_and_an_mr_note(db: TestDb) {
        let gitlab = GitlabMock::start().await;
        let project = "group/sub/hello";
        gitlab.mount_posting(project, SHA, &[11]).await;
        // A repeated identical status is refused by GitLab; that is done.
        let dir = tempfile::tempdir().unwrap();
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!(
                    "{}\n[[components]]\nname = \"hello-gitlab\"\nimage = \"registry.example.com/group/sub/hello\"\nrepository = \"gitlab:{project}\"\nrelease_tags = [\"v*\"]\n",
                    gitlab.config(dir.path())
                ),
                ..Spawn::default()
            },
        )
        .await;
        app.post_image_push("ev-1", project, SHA, &digest("gl")).await;
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");

        let statuses = gitlab
            .requests("POST", &format!("/api/v4/projects/group%2Fsub%2Fhello/statuses/{SHA}"))
            .await;
        assert_eq!(statuses.len(), 2, "the release status and the emulated check");
        let forms: Vec<Vec<(String, String)>> = statuses.iter().map(form).collect();
        assert!(forms.iter().any(|f| f.contains(&("name".into(), "portcall/release".into()))
            && f.contains(&("state".into(), "success".into()))), "{forms:#?}");
        for request in &statuses {
            assert_eq!(
                request.headers.get("private-token").unwrap().to_str().unwrap(),
                GITLAB_API_TOKEN
            );
        }
        let notes = gitlab
            .requests("POST", "/api/v4/projects/group%2Fsub%2Fhello/merge_requests/11/notes")
            .await;
        assert_eq!(notes.len(), 1);
        let note = form(&notes[0]);
        assert!(note.iter().any(|(k, v)| k == "body" && v.starts_with("<!-- portcall:hello-gitlab -->")), "{note:?}");
        let discussions = gitlab
            .requests("POST", "/api/v4/projects/group%2Fsub%2Fhello/merge_requests/11/discussions")
            .await;
        assert_eq!(discussions.len(), 1, "the emulated check run's discussion");
        app.finish().await;
    }

    async fn gitlab_refusing_a_repeated_status_counts_as_done(db: TestDb) {
        let gitlab = GitlabMock::start().await;
        let project = "group/sub/hello";
        Mock::given(method("POST"))
            .and(path(format!("/api/v4/projects/group%2Fsub%2Fhello/statuses/{SHA}")))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "message": "Cannot transition status via :run from :success (Reason(s): Status cannot transition via \"run\")"
            })))
            .with_priority(1)
            .mount(&gitlab.server)
            .await;
        gitlab.mount_posting(project, SHA, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!(
                    "{}\n[[components]]\nname = \"hello-gitlab\"\nimage = \"registry.example.com/group/sub/hello\"\nrepository = \"gitlab:{project}\"\nrelease_tags = [\"v*\"]\n",
                    gitlab.config(dir.path())
                ),
                ..Spawn::default()
            },
        )
        .await;
        app.post_image_push("ev-1", project, SHA, &digest("gl")).await;
        let jobs = app.wait_until_settled(20).await;
        let status = jobs_of(&jobs, "commit_status")[0];
        assert_eq!(status["state"], "done", "{status:#}");
        assert_eq!(status["attempts"], 1);
        app.finish().await;
    }
}

/// Answers as `.0` does, `.1` later: what it answers is read when the
/// request arrives.
struct Slowly<R>(R, Duration);

impl<R: wiremock::Respond> wiremock::Respond for Slowly<R> {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(self.1)
    }
}

/// Answers the n-th request with the n-th response (the last one after
/// that) and notes when each request arrived.
#[derive(Clone)]
struct Timed {
    responses: Vec<ResponseTemplate>,
    times: Arc<Mutex<Vec<SystemTime>>>,
}

impl Timed {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        Self {
            responses,
            times: Arc::default(),
        }
    }

    fn times(&self) -> Vec<SystemTime> {
        self.times.lock().unwrap().clone()
    }
}

impl wiremock::Respond for Timed {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let mut times = self.times.lock().unwrap();
        times.push(SystemTime::now());
        let index = (times.len() - 1).min(self.responses.len() - 1);
        self.responses[index].clone()
    }
}
