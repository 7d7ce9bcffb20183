//! `POST /api/v1/releases/{id}/deployments`: CD reports a release's
//! deployment. GitHub gets one deployment per release and environment and a
//! deployment status per report, in report order; GitLab a commit status
//! `portcall/{environment}` per report; the release lists its reports.
//! Releases come from image pushes tagged with their commit sha, matched by
//! a component whose every tag is a release.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const GITHUB_REPO: &str = "octo-org/api";
const GITLAB_PROJECT: &str = "group/sub/api";
/// The documented deployment's id.
const DEPLOYMENT_ID: u64 = 1;

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// A component `api` whose every pushed tag is a release, on `repository`
/// (`github:…` or `gitlab:…`), imaged at `registry.example.com/{image}`.
fn api_component(image: &str, repository: &str) -> String {
    format!(
        "\n[[components]]\nname = \"api\"\nimage = \"registry.example.com/{image}\"\nrepository = \"{repository}\"\nrelease_tags = [\"*\"]\n"
    )
}

/// Pushes `image` tagged with [`SHA`] and returns the id of the release it
/// makes, whose commit is [`SHA`].
async fn release_of_push(app: &TestApp, image: &str) -> i64 {
    let pushed = app
        .post_image_push("ev-release", image, SHA, &digest("api build"))
        .await;
    assert_eq!(pushed.status().as_u16(), 202);
    app.wait_until_settled(20).await;
    let (_, listed) = app.get_api("/api/v1/releases?component=api").await;
    let release = &listed["releases"][0];
    assert_eq!(release["commit"], SHA, "{listed:#}");
    release["id"].as_i64().expect("a release id")
}

fn deployments_path(release: i64) -> String {
    format!("/api/v1/releases/{release}/deployments")
}

fn deployment_jobs(jobs: &[Value]) -> Vec<&Value> {
    jobs.iter().filter(|j| j["kind"] == "deployment").collect()
}

/// The listed deployments of a release as `(environment, state,
/// provider_deployment_id)`, newest first.
async fn listed(app: &TestApp, release: i64) -> Vec<(String, String, Value)> {
    let (code, release) = app.get_api(&format!("/api/v1/releases/{release}")).await;
    assert_eq!(code, 200, "{release:#}");
    release["deployments"]
        .as_array()
        .expect("a release lists its deployments")
        .iter()
        .map(|d| {
            (
                d["environment"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
                d["provider_deployment_id"].clone(),
            )
        })
        .collect()
}

/// A refused request: path, bearer token, body, then the expected status,
/// error code and what the message names.
type Refused<'a> = (String, Option<&'a str>, String, u16, &'a str, &'a str);

async fn spawn_with(db: TestDb, extra_config: String) -> TestApp {
    TestApp::spawn_with(
        db,
        Spawn {
            extra_config,
            ..Spawn::default()
        },
    )
    .await
}

on_both_backends! {
    async fn in_progress_then_success_on_github_make_one_deployment_with_two_statuses_in_order(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(GITHUB_REPO).await;
        github.mount_posting(GITHUB_REPO, SHA, &[]).await;
        // GitHub takes its time creating the deployment: the second report
        // arrives meanwhile and must wait for it, not create another.
        Mock::given(method("POST"))
            .and(path(format!("/repos/{GITHUB_REPO}/deployments")))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(body("github-api/repos/create-deployment.json"))
                    .set_delay(Duration::from_millis(700)),
            )
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_deployments(GITHUB_REPO).await;
        let app = spawn_with(
            db,
            github.config() + &api_component(GITHUB_REPO, &format!("github:{GITHUB_REPO}")),
        )
        .await;
        let release = release_of_push(&app, GITHUB_REPO).await;

        let (code, first) = app
            .post_api(
                &deployments_path(release),
                json!({"environment": "production", "state": "in_progress",
                       "logUrl": "https://ci.example.com/deploys/9"}),
            )
            .await;
        assert_eq!(code, 202, "{first:#}");
        let reported = &first["deployment"];
        assert_eq!(reported["release_id"], release);
        assert_eq!(reported["environment"], "production");
        assert_eq!(reported["state"], "in_progress");
        assert_eq!(reported["url"], Value::Null);
        assert_eq!(reported["log_url"], "https://ci.example.com/deploys/9");
        assert!(reported["id"].is_i64() && reported["reported_at"].is_i64(), "{reported:#}");
        assert_eq!(reported["provider_deployment_id"], Value::Null, "not posted yet");
        let (code, second) = app
            .post_api(
                &deployments_path(release),
                json!({"environment": "production", "state": "success",
                       "url": "https://api.example.com",
                       "logUrl": "https://ci.example.com/deploys/9"}),
            )
            .await;
        assert_eq!(code, 202, "{second:#}");

        let jobs = app.wait_until_settled(20).await;
        let posted = deployment_jobs(&jobs);
        assert_eq!(posted.len(), 2, "{jobs:#?}");
        assert!(posted.iter().all(|j| j["state"] == "done" && j["attempts"] == 1), "{posted:#?}");

        let created = github.requests("POST", &format!("/repos/{GITHUB_REPO}/deployments")).await;
        assert_eq!(created.len(), 1, "one deployment per release and environment: {:?}", github.calls().await);
        assert_eq!(
            json_body(&created[0]),
            json!({
                "ref": SHA,
                "environment": "production",
                "auto_merge": false,
                "required_contexts": [],
                "description": format!("Release api-{SHA}"),
                "payload": {"release_id": release, "release": format!("api-{SHA}")},
            })
        );
        let statuses = github
            .requests("POST", &format!("/repos/{GITHUB_REPO}/deployments/{DEPLOYMENT_ID}/statuses"))
            .await;
        let bodies: Vec<Value> = statuses.iter().map(json_body).collect();
        assert_eq!(
            bodies,
            [
                json!({"state": "in_progress",
                       "log_url": "https://ci.example.com/deploys/9",
                       "description": format!("api-{SHA} to production: in progress")}),
                json!({"state": "success",
                       "environment_url": "https://api.example.com",
                       "log_url": "https://ci.example.com/deploys/9",
                       "description": format!("api-{SHA} to production: success")}),
            ]
        );

        assert_eq!(
            listed(&app, release).await,
            [
                ("production".to_owned(), "success".to_owned(), json!(DEPLOYMENT_ID)),
                ("production".to_owned(), "in_progress".to_owned(), json!(DEPLOYMENT_ID)),
            ]
        );
        app.finish().await;
    }

    async fn a_status_that_failed_after_github_made_the_deployment_is_retried_on_that_deployment(db: TestDb) {
        let github = GithubMock::start().await;
        github.mount_app_auth(GITHUB_REPO).await;
        github.mount_posting(GITHUB_REPO, SHA, &[]).await;
        Mock::given(method("POST"))
            .and(path_regex(format!("^/repos/{GITHUB_REPO}/deployments/[0-9]+/statuses$")))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&github.server)
            .await;
        github.mount_deployments(GITHUB_REPO).await;
        let app = spawn_with(
            db,
            github.config() + &api_component(GITHUB_REPO, &format!("github:{GITHUB_REPO}")),
        )
        .await;
        let release = release_of_push(&app, GITHUB_REPO).await;

        for state in ["in_progress", "success"] {
            let (code, answer) = app
                .post_api(&deployments_path(release), json!({"environment": "eu/prod", "state": state}))
                .await;
            assert_eq!(code, 202, "{answer:#}");
        }
        let jobs = app.wait_until_settled(20).await;
        let posted = deployment_jobs(&jobs);
        let attempts: Vec<(&Value, &Value)> = posted.iter().rev().map(|j| (&j["state"], &j["attempts"])).collect();
        assert_eq!(attempts, [(&json!("done"), &json!(2)), (&json!("done"), &json!(1))], "{posted:#?}");

        assert_eq!(
            github.requests("POST", &format!("/repos/{GITHUB_REPO}/deployments")).await.len(),
            1,
            "the retry reused the deployment"
        );
        let states: Vec<Value> = github
            .requests("POST", &format!("/repos/{GITHUB_REPO}/deployments/{DEPLOYMENT_ID}/statuses"))
            .await
            .iter()
            .map(|r| json_body(r)["state"].clone())
            .collect();
        assert_eq!(states, ["in_progress", "in_progress", "success"], "success waited for the retry");
        app.finish().await;
    }

    async fn in_progress_then_success_on_gitlab_are_two_commit_statuses_named_after_the_environment(db: TestDb) {
        let gitlab = GitlabMock::start().await;
        gitlab.mount_posting(GITLAB_PROJECT, SHA, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_with(
            db,
            gitlab.config(dir.path()) + &api_component(GITLAB_PROJECT, &format!("gitlab:{GITLAB_PROJECT}")),
        )
        .await;
        let release = release_of_push(&app, GITLAB_PROJECT).await;

        for (state, url) in [("in_progress", "https://api.example.com"), ("success", "https://api.example.com/v2")] {
            let (code, answer) = app
                .post_api(&deployments_path(release), json!({"environment": "production", "state": state, "url": url}))
                .await;
            assert_eq!(code, 202, "{answer:#}");
        }
        let jobs = app.wait_until_settled(20).await;
        let posted = deployment_jobs(&jobs);
        assert_eq!(posted.len(), 2, "{jobs:#?}");
        assert!(posted.iter().all(|j| j["state"] == "done"), "{posted:#?}");

        let deployment_statuses: Vec<Vec<(String, String)>> = gitlab
            .requests("POST", &format!("/api/v4/projects/group%2Fsub%2Fapi/statuses/{SHA}"))
            .await
            .iter()
            .map(form)
            .filter(|f| f.contains(&("name".into(), "portcall/production".into())))
            .collect();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            deployment_statuses,
            [
                vec![
                    pair("description", &format!("api-{SHA} to production: in progress")),
                    pair("name", "portcall/production"),
                    pair("state", "running"),
                    pair("target_url", "https://api.example.com"),
                ],
                vec![
                    pair("description", &format!("api-{SHA} to production: success")),
                    pair("name", "portcall/production"),
                    pair("state", "success"),
                    pair("target_url", "https://api.example.com/v2"),
                ],
            ]
        );
        assert!(
            !gitlab.calls().await.iter().any(|(_, p)| p.contains("/deployments")),
            "no GitLab deployment objects"
        );
        assert_eq!(
            listed(&app, release).await,
            [
                ("production".to_owned(), "success".to_owned(), Value::Null),
                ("production".to_owned(), "in_progress".to_owned(), Value::Null),
            ]
        );
        app.finish().await;
    }

    async fn without_a_provider_a_report_is_recorded_and_its_job_skipped(db: TestDb) {
        let app = spawn_with(db, api_component(GITHUB_REPO, &format!("github:{GITHUB_REPO}"))).await;
        let release = release_of_push(&app, GITHUB_REPO).await;

        let (code, answer) = app
            .post_api(&deployments_path(release), json!({"environment": "staging", "state": "failure"}))
            .await;
        assert_eq!(code, 202, "{answer:#}");
        let jobs = app.wait_until_settled(20).await;
        let skipped = deployment_jobs(&jobs);
        assert_eq!(skipped.len(), 1, "{jobs:#?}");
        assert_eq!(skipped[0]["state"], "skipped");
        assert_eq!(skipped[0]["result"], "no [github] provider is configured");
        assert_eq!(skipped[0]["payload"]["report"]["state"], "failure");
        assert_eq!(
            listed(&app, release).await,
            [("staging".to_owned(), "failure".to_owned(), Value::Null)]
        );
        app.finish().await;
    }

    async fn a_release_without_a_source_commit_cannot_be_deployed(db: TestDb) {
        let app = TestApp::spawn(db).await;
        // A v* tag of hello-world: a release, but no label and no sha tag.
        app.post_image_push("ev-1", "octo-org/hello-world", "v1.0.0", &digest("v1")).await;
        app.wait_until_settled(20).await;
        let (_, listed_releases) = app.get_api("/api/v1/releases").await;
        let release = &listed_releases["releases"][0];
        assert_eq!(release["commit"], Value::Null);
        let id = release["id"].as_i64().unwrap();

        let (code, answer) = app
            .post_api(&deployments_path(id), json!({"environment": "production", "state": "success"}))
            .await;
        assert_eq!(
            (code, answer["error"]["code"].as_str(), answer["error"]["message"].as_str()),
            (409, Some("conflict"), Some("release has no source commit"))
        );
        assert!(listed(&app, id).await.is_empty());
        app.finish().await;
    }

    async fn bad_deployment_reports_are_refused_with_a_json_error_naming_what_was_wrong(db: TestDb) {
        let app = spawn_with(db, api_component(GITHUB_REPO, &format!("github:{GITHUB_REPO}"))).await;
        let release = release_of_push(&app, GITHUB_REPO).await;
        let here = deployments_path(release);
        let good = r#"{"environment":"production","state":"success"}"#;
        let long_environment = format!(r#"{{"environment":"{}","state":"success"}}"#, "e".repeat(256));
        let cases: Vec<Refused> = vec![
            (deployments_path(424242), Some(ADMIN_TOKEN), good.into(), 404, "not_found", "no release 424242"),
            ("/api/v1/releases/abc/deployments".into(), Some(ADMIN_TOKEN), good.into(), 404, "not_found", "no release \"abc\""),
            (here.clone(), None, good.into(), 401, "unauthorized", "Authorization"),
            (here.clone(), Some("wrong-token"), good.into(), 401, "unauthorized", "not valid"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"exploded"}"#.into(), 400, "invalid_request", "state: unknown variant `exploded`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"pending"}"#.into(), 400, "invalid_request", "state: unknown variant `pending`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":5}"#.into(), 400, "invalid_request", "state: invalid type: integer `5`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"prod uction","state":"success"}"#.into(), 400, "invalid_request", "environment: invalid environment"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"","state":"success"}"#.into(), 400, "invalid_request", "environment: invalid environment"),
            (here.clone(), Some(ADMIN_TOKEN), long_environment, 400, "invalid_request", "environment: invalid environment: 1 to 255"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":["production"],"state":"success"}"#.into(), 400, "invalid_request", "environment: invalid type: sequence"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"success","url":"ftp://api.example.com"}"#.into(), 400, "invalid_request", "url: invalid URL"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"success","url":"api.example.com"}"#.into(), 400, "invalid_request", "url: invalid URL"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"success","logUrl":"https://user:secret@ci.example.com/"}"#.into(), 400, "invalid_request", "logUrl: invalid URL"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"success","logUrl":7}"#.into(), 400, "invalid_request", "logUrl: invalid type: integer `7`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"state":"success"}"#.into(), 400, "invalid_request", "missing field `environment`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production"}"#.into(), 400, "invalid_request", "missing field `state`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"success","log_url":"https://ci.example.com/"}"#.into(), 400, "invalid_request", "unknown field `log_url`"),
            (here.clone(), Some(ADMIN_TOKEN), r#"{"environment":"production","state":"#.into(), 400, "invalid_request", "not valid JSON"),
            (here.clone(), Some(ADMIN_TOKEN), "".into(), 400, "invalid_request", "not valid JSON"),
            (here.clone(), Some(ADMIN_TOKEN), r#"["production","success",null,null]"#.into(), 400, "invalid_request", "the body must be a JSON object"),
            (here.clone(), Some(ADMIN_TOKEN), r#""production""#.into(), 400, "invalid_request", "the body must be a JSON object"),
            (here.clone(), Some(ADMIN_TOKEN), format!(r#"{{"environment":"production","state":"success","pad":"{}"}}"#, "x".repeat(1 << 20)), 413, "payload_too_large", "limit of 1048576 bytes"),
        ];
        for (at, token, body, status, code, names) in cases {
            let mut request = app.client.post(app.url(&at)).body(body.clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request = request.header("Content-Type", "application/json");
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let answer: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{at} {body:?}: not a JSON answer: {text:?}"));
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{at} {body:?}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(names), "{at} {body:?}: {message:?} should name {names:?}");
            assert!(!message.contains("secret"), "{message}");
        }

        // Nothing refused was recorded or enqueued.
        assert!(listed(&app, release).await.is_empty());
        let jobs = app.wait_until_settled(20).await;
        assert!(deployment_jobs(&jobs).is_empty(), "{jobs:#?}");

        // A JSON body is read as JSON however it is labelled, or if it is
        // not: `curl -d '{…}'` without `-H` sends it as a form.
        for content_type in [None, Some("application/x-www-form-urlencoded")] {
            let mut request = app.client.post(app.url(&here)).bearer_auth(ADMIN_TOKEN).body(good);
            if let Some(content_type) = content_type {
                request = request.header("Content-Type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 202, "{content_type:?}");
        }
        assert_eq!(listed(&app, release).await.len(), 2);
        app.finish().await;
    }
}
