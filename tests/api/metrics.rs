//! `GET /metrics`: after a delivery, a refused delivery, a release from a
//! pushed image, its jobs posted to GitHub and a live integration test, every
//! metric of the contract is there with its labels and a `# HELP` line.

use serde_json::json;
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const REPO: &str = "octo-org/api";

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The sample of `name` whose labels include every `labels` pair, e.g.
/// `portcall_jobs{state="done"} 3`.
fn sample<'a>(text: &'a str, name: &str, labels: &[(&str, &str)]) -> Option<&'a str> {
    text.lines().find(|line| {
        let Some(rest) = line.strip_prefix(name) else {
            return false;
        };
        (rest.starts_with('{') || rest.starts_with(' '))
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
    })
}

on_both_backends! {
    async fn every_contract_metric_is_exported_with_its_labels_after_real_work(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        // The commit status answers with GitHub's rate-limit headers.
        Mock::given(method("POST"))
            .and(path(format!("/repos/{REPO}/statuses/{SHA}")))
            .respond_with(
                ResponseTemplate::new(201)
                    .insert_header("x-ratelimit-remaining", "4321")
                    .set_body_json(body("github-api/repos/create-commit-status.json")),
            )
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_posting(REPO, SHA, &[]).await;
        let component = format!(
            "\n[[components]]\nname = \"api\"\nimage = \"registry.example.com/{REPO}\"\nrepository = \"github:{REPO}\"\nrelease_tags = [\"*\"]\n"
        );
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: github.config() + &component,
                ..Spawn::default()
            },
        )
        .await;

        // A delivery, and one refused for its signature.
        let ping = br#"{"zen":"Keep it logically awesome."}"#;
        assert_eq!(app.post_github("ping", "m-1", ping).await.status().as_u16(), 202);
        let mut forged = github_headers(GITHUB_SECRET, "ping", "m-2", ping);
        forged[0].1 = format!("sha256={}", "0".repeat(64));
        let refused = app.post_webhook("github", &forged, ping.to_vec()).await;
        assert_eq!(refused.status().as_u16(), 401);

        // A pushed image tagged with its commit: a release and its jobs.
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(b"api build")));
        let pushed = app.post_image_push("ev-1", REPO, SHA, &digest).await;
        assert_eq!(pushed.status().as_u16(), 202);
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().any(|j| j["kind"] == "commit_status" && j["state"] == "done"), "{jobs:#?}");

        // A live test of the GitHub integration (healthy or not, it is counted).
        let (code, report) = app
            .post_api("/api/v1/integrations/provider:github/test", json!({}))
            .await;
        assert_eq!(code, 200, "{report}");

        let text = scrape(&app).await;
        let expected: &[(&str, &[(&str, &str)])] = &[
            ("portcall_webhook_deliveries_total", &[("source", "github"), ("kind", "github"), ("outcome", "accepted")]),
            ("portcall_webhook_verify_failures_total", &[("source", "github"), ("reason", "signature_mismatch")]),
            ("portcall_ingest_duration_seconds_count", &[("source", "github")]),
            ("portcall_inbox_pending", &[]),
            ("portcall_jobs", &[("state", "done")]),
            ("portcall_jobs", &[("state", "dead")]),
            ("portcall_job_attempts_total", &[("provider", "github"), ("operation", "commit_status"), ("result", "done")]),
            ("portcall_job_attempts_total", &[("provider", "registry"), ("operation", "resolve_image"), ("result", "done")]),
            ("portcall_releases_created_total", &[("component", "api")]),
            ("portcall_github_ratelimit_remaining", &[("installation", "1")]),
            ("scm_annotation_total", &[("provider", "github"), ("operation", "commit_status"), ("status", "success")]),
            ("scm_annotation_total", &[("provider", "github"), ("operation", "check_run"), ("status", "success")]),
            ("scm_annotation_duration_seconds_count", &[("provider", "github"), ("operation", "commit_status")]),
            ("integrations_health_check_total", &[("provider", "provider:github")]),
            ("integrations_test_connection_duration_seconds_count", &[("provider", "provider:github")]),
        ];
        for (name, labels) in expected {
            assert!(sample(&text, name, labels).is_some(), "no {name} with {labels:?} in:\n{text}");
            let family = name.trim_end_matches("_count");
            assert!(text.contains(&format!("# HELP {family} ")), "no # HELP for {family}");
        }
        assert_eq!(
            sample(&text, "portcall_github_ratelimit_remaining", &[("installation", "1")]),
            Some("portcall_github_ratelimit_remaining{installation=\"1\"} 4321")
        );
        assert_eq!(
            sample(&text, "portcall_releases_created_total", &[("component", "api")]),
            Some("portcall_releases_created_total{component=\"api\"} 1")
        );
        app.finish().await;
    }
}
