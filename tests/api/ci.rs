//! What CI pipelines post: releases, build events and artefact versions,
//! through HTTP, with the statuses they lead to on a GitHub mock.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn digest(seed: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

fn release_body(tag: &str, digest: &str) -> Value {
    json!({
        "name": format!("hello-world-{tag}"),
        "components": [{"component": "hello-world", "digest": digest, "tag": tag}],
        "sourceRef": {"type": "git", "repository": "https://github.com/octo-org/hello-world",
                      "commit": SHA, "tag": tag, "branch": "main"},
        "metadata": {"buildId": "12345", "buildUrl": "https://ci.example.com/builds/12345"}
    })
}

async fn spawn(db: TestDb, github: &GithubMock) -> TestApp {
    github.mount_app_auth(REPO).await;
    github.mount_posting(REPO, SHA, &[]).await;
    TestApp::spawn_with(
        db,
        Spawn {
            extra_config: github.config(),
            ..Spawn::default()
        },
    )
    .await
}

async fn statuses(github: &GithubMock) -> Vec<Value> {
    github
        .requests("POST", &format!("/repos/{REPO}/statuses/{SHA}"))
        .await
        .iter()
        .map(json_body)
        .collect()
}

on_both_backends! {
    async fn a_release_posted_by_ci_is_created_once_and_reported(db: TestDb) {
        let github = GithubMock::start().await;
        let app = spawn(db, &github).await;
        let image = digest("ci build");
        let (code, release) = app.post_api("/api/v1/releases", release_body("v1.2.0", &image)).await;
        assert_eq!(code, 201, "{release:#}");
        assert_eq!(release["name"], "hello-world-v1.2.0");
        assert_eq!(release["commit"], SHA);
        assert_eq!(release["digest"], image);
        assert_eq!(release["metadata"]["metadata"]["buildId"], "12345");
        let (code, again) = app.post_api("/api/v1/releases", release_body("v1.2.0", &image)).await;
        assert_eq!((code, &again["id"]), (200, &release["id"]));
        let mut clash = release_body("v1.2.0", &digest("another build"));
        clash["components"][0]["tag"] = json!("v1.2.1");
        let (code, error) = app.post_api("/api/v1/releases", clash).await;
        assert_eq!((code, error["error"]["code"].as_str()), (409, Some("conflict")), "{error}");

        app.wait_until_settled(20).await;
        let posted = statuses(&github).await;
        assert_eq!(posted.len(), 1, "{posted:#?}");
        assert_eq!(posted[0]["description"], "Release hello-world-v1.2.0: registry.example.com/octo-org/hello-world:v1.2.0");
        app.finish().await;
    }

    async fn a_build_event_before_the_push_gives_the_image_its_commit(db: TestDb) {
        let github = GithubMock::start().await;
        let app = spawn(db, &github).await;
        let image = digest("built first");
        let (code, answer) = app.post_api("/api/v1/ci-events/build-complete", json!({
            "integrationId": "gitlab-ci", "buildId": "77", "status": "success", "commit": SHA,
            "artifacts": [{"name": "hello-world", "digest": image, "repository": "registry.example.com/octo-org/hello-world"}]
        })).await;
        assert_eq!((code, answer["status"].as_str()), (202, Some("accepted")), "{answer}");
        app.post_image_push("ev-1", REPO, "v2.0.0", &image).await;
        app.wait_until_settled(20).await;
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"][0]["commit"], SHA, "{releases:#}");
        assert_eq!(statuses(&github).await.len(), 1);
        app.finish().await;
    }

    async fn a_build_event_after_the_push_resolves_the_waiting_release(db: TestDb) {
        let github = GithubMock::start().await;
        let app = spawn(db, &github).await;
        let image = digest("pushed first");
        app.post_image_push("ev-1", REPO, "v3.0.0", &image).await;
        app.wait_until_settled(20).await;
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"][0]["commit"], Value::Null);
        assert!(statuses(&github).await.is_empty());

        let build = json!({"buildId": "78", "status": "success", "commit": SHA,
                           "artifacts": [{"name": "hello-world", "digest": image}]});
        app.post_api("/api/v1/ci-events/build-complete", build.clone()).await;
        app.wait_until_settled(20).await;
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"][0]["commit"], SHA, "{releases:#}");
        assert_eq!(statuses(&github).await.len(), 1);
        // The same build again changes nothing.
        let (code, answer) = app.post_api("/api/v1/ci-events/build-complete", build).await;
        assert_eq!((code, answer["status"].as_str()), (202, Some("duplicate")));
        app.wait_until_settled(20).await;
        assert_eq!(statuses(&github).await.len(), 1);
        app.finish().await;
    }

    async fn a_failed_build_naming_a_component_posts_a_failure_status(db: TestDb) {
        let github = GithubMock::start().await;
        let app = spawn(db, &github).await;
        let (code, answer) = app.post_api("/api/v1/ci-events/build-complete", json!({
            "buildId": "79", "status": "failed", "commit": SHA, "buildUrl": "https://ci.example.com/builds/79",
            "artifacts": [{"name": "hello-world", "repository": "registry.example.com/octo-org/hello-world:v4.0.0"}]
        })).await;
        assert_eq!((code, answer["failure_statuses"].as_u64()), (202, Some(1)), "{answer}");
        app.wait_until_settled(20).await;
        assert_eq!(statuses(&github).await, [json!({
            "state": "failure", "context": "portcall/build", "description": "Build 79 failed",
            "target_url": "https://ci.example.com/builds/79"
        })]);
        app.finish().await;
    }

    async fn an_artefact_version_links_an_image_tag_to_its_commit(db: TestDb) {
        let github = GithubMock::start().await;
        let app = spawn(db, &github).await;
        let (code, _) = app.post_api("/api/v1/artefact-versions", json!({
            "name": "registry.example.com/octo-org/hello-world", "version": "v5.0.0",
            "type": "container", "commit": SHA, "ref": "refs/heads/main"
        })).await;
        assert_eq!(code, 202);
        app.post_image_push("ev-1", REPO, "v5.0.0", &digest("humanitec")).await;
        app.wait_until_settled(20).await;
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"][0]["commit"], SHA, "{releases:#}");
        app.finish().await;
    }
}
