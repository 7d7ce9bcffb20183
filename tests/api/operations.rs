//! The operator API: the inbox (`/api/v1/deliveries`, replay), the
//! integrations and their health (`/api/v1/integrations`, tests against
//! mock GitHub, GitLab and registry servers), and the catalog of
//! integration types. Nothing an operator reads ever shows a credential.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

fn gitlab_headers(delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Gitlab-Token", GITLAB_TOKEN.to_owned()),
        ("X-Gitlab-Event", "Push Hook".to_owned()),
        ("X-Gitlab-Event-UUID", uuid::Uuid::new_v4().to_string()),
        ("Idempotency-Key", delivery.to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ]
}

fn delivery_ids(answer: &Value) -> Vec<&str> {
    answer["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {answer}"))
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect()
}

/// Fails if `text` contains any credential the tests configure or send.
fn assert_no_credentials(text: &str, extra: &[&str]) {
    let mut credentials = vec![
        GITHUB_SECRET,
        GITHUB_PREVIOUS_SECRET,
        GITLAB_TOKEN,
        REGISTRY_TOKEN,
        STANDARD_SECRET,
        ADMIN_TOKEN,
        GITLAB_API_TOKEN,
        "PRIVATE KEY",
        "sha256=",
    ];
    credentials.extend_from_slice(extra);
    for credential in credentials {
        assert!(
            !text.contains(credential),
            "{credential:?} shown in: {text}"
        );
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `POST /api/v1/integrations/{name}/test`.
async fn test_integration(app: &TestApp, name: &str) -> (u16, Value) {
    app.post_api(&format!("/api/v1/integrations/{name}/test"), json!({}))
        .await
}

/// The integration called `name` in `GET /api/v1/integrations`.
async fn integration(app: &TestApp, name: &str) -> Value {
    let (code, answer) = app.get_api("/api/v1/integrations").await;
    assert_eq!(code, 200, "{answer}");
    answer["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
        .clone()
}

/// Waits (monitor rounds are one second apart in these tests) until
/// integration `name` reports `health`.
async fn wait_for_health(app: &TestApp, name: &str, health: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = integration(app, name).await;
        if found["health"] == health {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {health}: {found}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A registry's v2 API that answers anonymously, with a catalog.
async fn open_registry() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/_catalog"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"repositories": ["octo-org/hello-world"]})),
        )
        .mount(&server)
        .await;
    server
}

/// An app with both providers and a registry reader, its monitor checking
/// every second.
async fn spawn_connected(
    db: TestDb,
    github: &GithubMock,
    gitlab: &GitlabMock,
    registry_url: &str,
    dir: &tempfile::TempDir,
) -> TestApp {
    TestApp::spawn_with(
        db,
        Spawn {
            extra_config: format!(
                "{}{}\n[integrations]\nhealth_interval_secs = 1\n",
                github.config(),
                gitlab.config(dir.path())
            ),
            registry_api_url: Some(registry_url.to_owned()),
            ..Spawn::default()
        },
    )
    .await
}

on_both_backends! {
    async fn deliveries_are_listed_newest_first_filtered_paginated_and_shown_without_credentials(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let push = fixture("github/push.json");
        assert_eq!(app.post_github("push", "gh-push-1", &push).await.status().as_u16(), 202);
        let gitlab_push = fixture("gitlab/push.json");
        let response = app.post_webhook("gitlab", &gitlab_headers("gl-push-1"), gitlab_push.clone()).await;
        assert_eq!(response.status().as_u16(), 202);
        let ping = fixture("github/ping.json");
        assert_eq!(app.post_github("ping", "gh-ping-1", &ping).await.status().as_u16(), 202);
        app.wait_until_processed().await;

        let (code, all) = app.get_api("/api/v1/deliveries").await;
        assert_eq!(code, 200, "{all}");
        assert_eq!(delivery_ids(&all), ["gh-ping-1", "gl-push-1", "gh-push-1"]);
        assert_eq!(all["next_before"], Value::Null);
        for listed in all["deliveries"].as_array().unwrap() {
            assert!(listed.get("body").is_none() && listed.get("headers").is_none(), "{listed}");
            assert_eq!(listed["status"], "processed");
        }

        let ids = |query: &'static str| {
            let app = &app;
            async move {
                let (code, answer) = app.get_api(&format!("/api/v1/deliveries?{query}")).await;
                assert_eq!(code, 200, "{query}: {answer}");
                delivery_ids(&answer).into_iter().map(str::to_owned).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids("source=github").await, ["gh-ping-1", "gh-push-1"]);
        assert_eq!(ids("source=gitlab&status=processed").await, ["gl-push-1"]);
        assert!(ids("status=failed").await.is_empty());
        // The sender's event name, or the normalized kind both pushes share.
        assert_eq!(ids("event=Push%20Hook").await, ["gl-push-1"]);
        assert_eq!(ids("event=push").await, ["gl-push-1", "gh-push-1"]);
        assert_eq!(ids("event=ping&source=github").await, ["gh-ping-1"]);

        let (_, page) = app.get_api("/api/v1/deliveries?limit=2").await;
        assert_eq!(delivery_ids(&page), ["gh-ping-1", "gl-push-1"]);
        let before = page["next_before"].as_i64().expect("a full page has a cursor");
        let (_, rest) = app.get_api(&format!("/api/v1/deliveries?limit=2&before={before}")).await;
        assert_eq!(delivery_ids(&rest), ["gh-push-1"]);
        assert_eq!(rest["next_before"], Value::Null);

        // One delivery in full: the headers worth keeping, never the
        // signature, and the body as the JSON it was.
        let row = |id: &str| {
            all["deliveries"].as_array().unwrap().iter().find(|d| d["delivery_id"] == id).unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let (code, github) = app.get_api(&format!("/api/v1/deliveries/{}", row("gh-push-1"))).await;
        assert_eq!(code, 200, "{github}");
        assert_eq!(github["headers"]["x-github-event"], "push");
        assert_eq!(github["headers"]["x-github-delivery"], "gh-push-1");
        assert!(github["headers"].get("x-hub-signature-256").is_none(), "{}", github["headers"]);
        assert_eq!(github["body_format"], "json");
        assert_eq!(github["body"], serde_json::from_slice::<Value>(&push).unwrap());
        assert_eq!(github["event_kind"], "push");
        let (_, gitlab) = app.get_api(&format!("/api/v1/deliveries/{}", row("gl-push-1"))).await;
        assert_eq!(gitlab["headers"]["x-gitlab-event"], "Push Hook");
        assert!(gitlab["headers"].get("x-gitlab-token").is_none(), "{}", gitlab["headers"]);
        assert_eq!(gitlab["body"], serde_json::from_slice::<Value>(&gitlab_push).unwrap());

        let signature = github_signature(GITHUB_SECRET, &push);
        for answer in [&all, &page, &rest, &github, &gitlab] {
            assert_no_credentials(&answer.to_string(), &[&signature]);
        }

        // The second guard: credentials that reached the stored headers
        // anyway (an older version, a hand-made row) are shown redacted.
        let stored = json!({
            "authorization": format!("Bearer {REGISTRY_TOKEN}"),
            "x-hub-signature-256": signature,
            "x-gitlab-token": GITLAB_TOKEN,
            "x-custom-secret": STANDARD_SECRET,
            "x-github-event": "push",
        });
        sqlx::query(&format!(
            "UPDATE deliveries SET headers = '{stored}' WHERE id = {}",
            row("gh-push-1")
        ))
        .execute(&app.sql().await)
        .await
        .unwrap();
        let (_, redacted) = app.get_api(&format!("/api/v1/deliveries/{}", row("gh-push-1"))).await;
        assert_eq!(
            redacted["headers"],
            json!({
                "authorization": "[redacted]",
                "x-custom-secret": "[redacted]",
                "x-github-event": "push",
                "x-gitlab-token": "[redacted]",
                "x-hub-signature-256": "[redacted]",
            })
        );
        assert_no_credentials(&redacted.to_string(), &[&signature]);
        app.finish().await;
    }

    async fn a_replayed_delivery_is_processed_again_and_changes_nothing_else(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.mount_posting(REPO, SHA, &[]).await;
        let app = TestApp::spawn_with(
            db,
            Spawn { extra_config: github.config(), ..Spawn::default() },
        )
        .await;
        // A sha tag (its commit is known: a status and a check run) and a
        // release tag (a release).
        assert_eq!(app.post_image_push("ev-sha", REPO, SHA, &digest("build")).await.status().as_u16(), 202);
        assert_eq!(app.post_image_push("ev-tag", REPO, "v1.0.0", &digest("build")).await.status().as_u16(), 202);
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().any(|j| j["kind"] == "commit_status"), "{jobs:#?}");
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"].as_array().unwrap().len(), 1, "{releases}");
        let github_calls = github.calls().await;
        let (_, before) = app.get_api("/api/v1/deliveries").await;

        for listed in before["deliveries"].as_array().unwrap() {
            let id = listed["id"].as_i64().unwrap();
            let (code, replayed) = app.post_api(&format!("/api/v1/deliveries/{id}/replay"), json!({})).await;
            assert_eq!(code, 202, "{replayed}");
            assert_eq!(replayed["id"], id);
        }
        let after = app.wait_until_processed().await;
        let jobs_after = app.wait_until_settled(20).await;

        // Processed again: a fresh attempt and outcome...
        assert_eq!(after.len(), 2);
        for (row, listed) in after.iter().zip(before["deliveries"].as_array().unwrap().iter().rev()) {
            assert_eq!(row.status.to_string(), "processed");
            assert_eq!(row.attempts, 1);
            assert_eq!(row.outcome.as_deref(), listed["outcome"].as_str());
            assert!(row.processed_at.unwrap() >= listed["processed_at"].as_i64().unwrap());
        }
        // ...and nothing else: the same release, the same jobs untouched,
        // no second call to GitHub.
        assert_eq!(jobs_after, jobs);
        let (_, releases_after) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases_after, releases);
        assert_eq!(github.calls().await, github_calls);
        app.finish().await;
    }

    async fn replay_refuses_unknown_and_in_flight_deliveries_and_bad_queries(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("ping", "gh-ping-1", &fixture("github/ping.json")).await;
        let id = app.deliveries().await[0].id;
        // Pending and not leased (an ingest-only app): replay makes it due now.
        let (code, pending) = app.post_api(&format!("/api/v1/deliveries/{id}/replay"), json!({})).await;
        assert_eq!((code, pending["status"].as_str()), (202, Some("pending")), "{pending}");
        // Leased by a live worker: its outcome is about to be written.
        let far = portcall::store::now_ms() + 3_600_000;
        sqlx::query(&format!(
            "UPDATE deliveries SET lease_owner = 'worker-x', lease_expires_at = {far} WHERE id = {id}"
        ))
        .execute(&app.sql().await)
        .await
        .unwrap();
        let cases: &[(&str, String, u16, &str)] = &[
            ("POST", format!("/api/v1/deliveries/{id}/replay"), 409, "conflict"),
            ("POST", "/api/v1/deliveries/424242/replay".into(), 404, "not_found"),
            ("POST", "/api/v1/deliveries/abc/replay".into(), 404, "not_found"),
            ("GET", "/api/v1/deliveries/424242".into(), 404, "not_found"),
            ("GET", "/api/v1/deliveries/abc".into(), 404, "not_found"),
            ("GET", "/api/v1/deliveries?status=exploded".into(), 400, "invalid_request"),
            ("GET", "/api/v1/deliveries?limit=0".into(), 400, "invalid_request"),
            ("GET", "/api/v1/deliveries?before=x".into(), 400, "invalid_request"),
            ("GET", "/api/v1/deliveries?colour=blue".into(), 400, "invalid_request"),
            ("POST", "/api/v1/integrations/nothing-here/test".into(), 404, "not_found"),
            ("POST", "/api/v1/integrations/provider:bitbucket/test".into(), 404, "not_found"),
        ];
        for (verb, path, status, code) in cases {
            let response = app
                .client
                .request(verb.parse().unwrap(), app.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let got = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            assert_eq!((got, body["error"]["code"].as_str()), (*status, Some(*code)), "{verb} {path}: {body}");
        }
        for path in ["/api/v1/deliveries", "/api/v1/deliveries/1", "/api/v1/integrations", "/api/v1/integration-types"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{path} without a token");
        }
        let response = app.client.post(app.url(&format!("/api/v1/deliveries/{id}/replay"))).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        app.finish().await;
    }

    async fn integrations_are_listed_with_the_health_the_monitor_found(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app().await;
        let gitlab = GitlabMock::start().await;
        let registry = open_registry().await;
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_connected(db, &github, &gitlab, &registry.uri(), &dir).await;

        // Verified deliveries make a source healthy; refused ones outnumbering
        // them make it degraded.
        app.post_github("ping", "gh-ping-1", &fixture("github/ping.json")).await;
        let body = br#"{"type":"contact.created"}"#.to_vec();
        for i in 0..2 {
            let headers = standard_headers("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &format!("msg_{i}"), now_unix(), &body);
            assert_eq!(app.post_webhook("ci", &headers, body.clone()).await.status().as_u16(), 401);
        }

        let provider = wait_for_health(&app, "provider:github", "healthy").await;
        assert_eq!(provider["kind"], "provider:github");
        assert_eq!(provider["message"], "authenticated as the GitHub App octoapp (id 1)");
        assert!(provider["checked_at"].as_i64().is_some(), "{provider}");
        let gitlab_provider = wait_for_health(&app, "provider:gitlab", "healthy").await;
        assert_eq!(gitlab_provider["message"], "authenticated as @john_smith");
        let reader = wait_for_health(&app, "registry:registry", "healthy").await;
        assert_eq!(reader["kind"], "registry");
        let source = wait_for_health(&app, "github", "healthy").await;
        assert_eq!(source["kind"], "source:github");
        let refusing = wait_for_health(&app, "ci", "degraded").await;
        assert!(refusing["message"].as_str().unwrap().starts_with("more requests refused than verified"), "{refusing}");

        let (_, answer) = app.get_api("/api/v1/integrations").await;
        let listed: Vec<(&str, &str, &str)> = answer["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap(), i["kind"].as_str().unwrap(), i["health"].as_str().unwrap()))
            .collect();
        assert_eq!(
            listed,
            [
                ("github", "source:github", "healthy"),
                ("gitlab", "source:gitlab", "unknown"),
                ("registry", "source:distribution", "unknown"),
                ("ci", "source:standard", "degraded"),
                ("provider:github", "provider:github", "healthy"),
                ("provider:gitlab", "provider:gitlab", "healthy"),
                ("registry:registry", "registry", "healthy"),
            ]
        );
        // The monitor only checks: it lists no installations and no projects.
        assert!(github.calls().await.iter().all(|(_, p)| p == "/app"), "{:?}", github.calls().await);
        assert_no_credentials(&answer.to_string(), &[]);
        app.finish().await;
    }

    async fn testing_an_integration_checks_connectivity_authentication_and_functionality(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app().await;
        let gitlab = GitlabMock::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("X-Total", "1")
                    .set_body_json(json!([body("gitlab-api/get-project.json")])),
            )
            .mount(&gitlab.server)
            .await;
        let registry = open_registry().await;
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_connected(db, &github, &gitlab, &registry.uri(), &dir).await;

        let (code, report) = test_integration(&app, "provider:github").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["name"], "provider:github");
        assert_eq!(report["health"], "healthy");
        assert_eq!(report["connectivity"]["status"], "ok");
        assert!(report["connectivity"]["latencyMs"].is_u64(), "{report}");
        assert_eq!(
            report["authentication"],
            json!({"status": "ok", "message": "authenticated as the GitHub App octoapp (id 1)"})
        );
        assert_eq!(
            report["functionality"],
            json!({"status": "ok", "message": "the App is installed on 1 account"})
        );
        // GitHub was asked with the App's JWT.
        let asked = github.requests("GET", "/app/installations").await;
        assert_eq!(asked.len(), 1);
        assert_app_jwt(&asked[0]);
        assert_app_jwt(&github.requests("GET", "/app").await[0]);

        let (code, report) = test_integration(&app, "provider:gitlab").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["authentication"]["message"], "authenticated as @john_smith");
        assert_eq!(report["functionality"]["message"], "the token can reach 1 project");
        let asked = gitlab.requests("GET", "/api/v4/projects").await;
        let mut query: Vec<(String, String)> = asked[0].url.query_pairs().into_owned().collect();
        query.sort();
        assert_eq!(query, [("membership".into(), "true".into()), ("simple".into(), "true".into())]);

        let (code, report) = test_integration(&app, "registry:registry").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["health"], "healthy");
        assert_eq!(report["functionality"]["status"], "ok");

        // A webhook source has nothing to reach: the inbox tells.
        app.post_github("ping", "gh-ping-1", &fixture("github/ping.json")).await;
        let (code, report) = test_integration(&app, "github").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["health"], "healthy");
        assert_eq!(report["connectivity"]["status"], "skipped");
        assert_eq!(report["authentication"]["status"], "ok");
        assert_eq!(report["functionality"]["status"], "ok");

        let (code, missing) = test_integration(&app, "provider:bitbucket").await;
        assert_eq!((code, missing["error"]["code"].as_str()), (404, Some("not_found")));
        assert_no_credentials(&report.to_string(), &[]);
        app.finish().await;
    }

    async fn a_refused_key_fails_authentication_and_a_closed_port_fails_connectivity(db: TestDb) {
        let github = GithubMock::start().await;
        Mock::given(method("GET"))
            .and(path("/app"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "message": "A JSON web token could not be decoded",
                "documentation_url": "https://docs.github.com/rest",
            })))
            .mount(&github.server)
            .await;
        // GitLab refusing the token, its 401 as GitLab words it.
        let refusing_gitlab = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/user"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})))
            .mount(&refusing_gitlab)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("gitlab-api-token");
        std::fs::write(&token, GITLAB_API_TOKEN).unwrap();
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!(
                    "{}\n[gitlab]\nurl = \"{}\"\ntoken = \"file:{}\"\n\n[integrations]\nhealth_interval_secs = 1\n",
                    github.config(),
                    refusing_gitlab.uri(),
                    token.display()
                ),
                registry_api_url: Some(format!("http://127.0.0.1:{}", closed_port())),
                ..Spawn::default()
            },
        )
        .await;

        let (code, report) = test_integration(&app, "provider:github").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["health"], "unhealthy");
        assert_eq!(report["connectivity"]["status"], "ok");
        assert_eq!(
            report["authentication"],
            json!({"status": "failed", "message": "GitHub answered 401: A JSON web token could not be decoded"})
        );
        assert_eq!(report["functionality"]["status"], "skipped");
        assert_eq!(report["message"], "GitHub answered 401: A JSON web token could not be decoded");

        let (_, report) = test_integration(&app, "provider:gitlab").await;
        assert_eq!(report["health"], "unhealthy");
        assert_eq!(
            report["authentication"],
            json!({"status": "failed", "message": "GitLab refused the token (401): 401 Unauthorized"})
        );

        let (_, report) = test_integration(&app, "registry:registry").await;
        assert_eq!(report["health"], "unhealthy");
        assert_eq!(report["connectivity"]["status"], "failed");
        assert!(report["connectivity"]["latencyMs"].is_u64());
        assert!(report["connectivity"]["message"].as_str().unwrap().starts_with("GET /v2/ at 127.0.0.1:"), "{report}");
        assert_eq!(report["authentication"]["status"], "skipped");

        // The monitor comes to the same conclusions.
        wait_for_health(&app, "provider:github", "unhealthy").await;
        wait_for_health(&app, "provider:gitlab", "unhealthy").await;
        let (_, answer) = app.get_api("/api/v1/integrations").await;
        assert_no_credentials(&answer.to_string(), &[]);
        app.finish().await;
    }

    async fn a_github_that_cannot_be_reached_fails_connectivity(db: TestDb) {
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!(
                    "\n[github]\napp_id = {APP_ID}\nprivate_key = \"file:{}\"\napi_url = \"http://127.0.0.1:{}\"\n",
                    test_key_path().display(),
                    closed_port()
                ),
                ..Spawn::default()
            },
        )
        .await;
        let (code, report) = test_integration(&app, "provider:github").await;
        assert_eq!(code, 200, "{report}");
        assert_eq!(report["health"], "unhealthy");
        assert_eq!(report["connectivity"]["status"], "failed");
        assert!(report["connectivity"]["message"].as_str().unwrap().starts_with("could not reach GitHub"), "{report}");
        assert_eq!(report["authentication"]["status"], "skipped");
        assert_eq!(integration(&app, "provider:github").await["health"], "unhealthy");
        app.finish().await;
    }

    async fn the_integration_types_catalog_lists_every_kind_with_its_inputs(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (code, answer) = app.get_api("/api/v1/integration-types").await;
        assert_eq!(code, 200, "{answer}");
        let types = answer["types"].as_array().unwrap();
        let kinds: Vec<&str> = types.iter().map(|t| t["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "source:github", "source:gitlab", "source:distribution", "source:standard",
                "source:acr", "source:ecr", "source:gar",
                "source:harbor", "source:quay", "source:dockerhub", "source:jfrog", "source:nexus",
                "provider:github", "provider:gitlab", "setup:github"
            ]
        );
        let fields = |kind: &str| -> Vec<String> {
            types.iter().find(|t| t["kind"] == kind).unwrap()["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["field"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(fields("source:github"), ["name", "kind", "secrets"]);
        assert_eq!(
            fields("source:distribution"),
            ["name", "kind", "secrets", "registry", "api_url", "username", "password"]
        );
        assert_eq!(
            fields("source:jfrog"),
            ["name", "kind", "secrets", "registry", "api_url", "username", "password", "signed"]
        );
        let jfrog = types.iter().find(|t| t["kind"] == "source:jfrog").unwrap();
        assert_eq!(jfrog["inputs"][7]["type"], "boolean");
        assert_eq!(jfrog["inputs"][3]["required"], true);
        assert_eq!(
            fields("provider:github"),
            [
                "app_id", "private_key", "api_url", "request_timeout_secs", "recovery",
                "recovery_interval_secs", "recovery_max_per_run"
            ]
        );
        assert_eq!(fields("provider:gitlab"), ["url", "token", "request_timeout_secs"]);
        assert_eq!(fields("setup:github"), ["enabled", "dir", "github_url", "github_api_url"]);
        assert_eq!(fields("source:acr"), ["name", "kind", "secrets", "registry"]);
        assert_eq!(fields("source:ecr"), ["name", "kind", "secrets", "registry"]);
        assert_eq!(
            fields("source:gar"),
            ["name", "kind", "secrets", "registry", "audience", "service_account", "jwks_file"]
        );
        let of_kind = |kind: &str| types.iter().find(|t| t["kind"] == kind).unwrap();
        let private_key = &of_kind("provider:github")["inputs"][1];
        assert_eq!(
            private_key,
            &json!({
                "field": "private_key", "type": "string", "required": true, "secret": true,
                "description": "the App's private key, PEM"
            })
        );
        assert_eq!(types[0]["inputs"][1]["value"], "github");
        assert_eq!(of_kind("provider:gitlab")["inputs"][0]["default"], "https://gitlab.com");
        app.finish().await;
    }
}
