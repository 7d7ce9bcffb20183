//! Source-control events that act on what portcall already knows: a pull
//! request whose head has an image gets its comment, and "Re-run" on
//! portcall's check (or the whole suite) posts it again.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

fn digest(seed: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// The fixtures' repository, declared as a component.
fn component(name: &str, image: &str, repo: &str) -> String {
    format!(
        "\n[[components]]\nname = \"{name}\"\nimage = \"registry.example.com/{image}\"\nrepository = \"github:{repo}\"\nrelease_tags = [\"v*\"]\n"
    )
}

on_both_backends! {
    async fn a_pull_request_opened_on_a_commit_with_an_image_gets_the_sticky_comment(db: TestDb) {
        const REPO: &str = "Codertocat/Hello-World";
        // The head of pull_request.opened.json.
        const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
        let github = GithubMock::start().await;
        github.mount_app_auth(REPO).await;
        github.mount_posting(REPO, HEAD, &[]).await;
        github.mount_comments(REPO, 2, "<!-- portcall:pr-app -->").await;
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!("{}{}", github.config(), component("pr-app", "codertocat/hello-world", REPO)),
                ..Spawn::default()
            },
        )
        .await;

        // The image is built before the pull request is opened: no PR yet.
        app.post_image_push("ev-1", "codertocat/hello-world", HEAD, &digest("pr")).await;
        let jobs = app.wait_until_settled(20).await;
        let comment = jobs.iter().find(|j| j["kind"] == "pr_comment").unwrap();
        assert_eq!(comment["result"], format!("no open pull request has head {HEAD}"));

        let body = fixture("github/pull_request.opened.json");
        assert_eq!(app.post_github("pull_request", "pr-opened-1", &body).await.status().as_u16(), 202);
        let jobs = app.wait_until_settled(20).await;
        assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
        let posted = github.requests("POST", &format!("/repos/{REPO}/issues/2/comments")).await;
        assert_eq!(posted.len(), 1);
        let text = json_body(&posted[0])["body"].as_str().unwrap().to_owned();
        assert!(text.starts_with("<!-- portcall:pr-app -->"), "{text}");
        assert!(text.contains(HEAD), "{text}");

        // Redelivered: nothing new.
        assert_eq!(app.post_github("pull_request", "pr-opened-1", &body).await.status().as_u16(), 200);
        app.wait_until_settled(20).await;
        assert_eq!(github.requests("POST", &format!("/repos/{REPO}/issues/2/comments")).await.len(), 1);
        app.finish().await;
    }

    async fn rerunning_portcalls_check_or_the_suite_posts_it_again_and_other_checks_are_ignored(db: TestDb) {
        const REPO: &str = "github/hello-world";
        // The head of check_run.rerequested.json.
        const HEAD: &str = "d6fde92930d4715a2b49857d24b940956b26d2d3";
        let github = GithubMock::start().await;
        github.mount_token().await;
        github.mount_posting(REPO, HEAD, &[]).await;
        let app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!("{}{}", github.config(), component("checked", "github/hello-world", REPO)),
                ..Spawn::default()
            },
        )
        .await;

        // Someone else's check re-run first: it also tells portcall the
        // repository's installation, so no lookup is ever needed.
        let theirs = fixture("github/check_run.rerequested.json");
        app.post_github("check_run", "rerun-0", &theirs).await;
        let rows = app.wait_until_processed().await;
        assert_eq!(rows[0].status, portcall::store::deliveries::Status::Ignored, "{rows:#?}");

        app.post_image_push("ev-1", "github/hello-world", HEAD, &digest("checked")).await;
        app.wait_until_settled(20).await;
        let check_runs = format!("/repos/{REPO}/check-runs");
        let checks = || github.requests("POST", &check_runs);
        assert_eq!(checks().await.len(), 1);

        let mut ours: Value = serde_json::from_slice(&theirs).unwrap();
        ours["check_run"]["name"] = json!("portcall / release");
        app.post_github("check_run", "rerun-1", &serde_json::to_vec(&ours).unwrap()).await;
        app.wait_until_settled(20).await;
        assert_eq!(checks().await.len(), 2);

        let suite = json!({
            "action": "rerequested",
            "check_suite": {"id": 5, "head_sha": HEAD},
            "repository": ours["repository"],
            "installation": {"id": INSTALLATION_ID}
        });
        app.post_github("check_suite", "rerun-2", &serde_json::to_vec(&suite).unwrap()).await;
        app.wait_until_settled(20).await;
        let all = checks().await;
        assert_eq!(all.len(), 3);
        let without_time = |request: &wiremock::Request| {
            let mut body = json_body(request);
            body.as_object_mut().unwrap().remove("completed_at");
            body
        };
        assert_eq!(without_time(&all[2]), without_time(&all[0]), "the same check, posted again");
        assert!(
            github.requests("GET", &format!("/repos/{REPO}/installation")).await.is_empty(),
            "the installation came with the webhooks"
        );
        app.finish().await;
    }
}
