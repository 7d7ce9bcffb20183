//! The whole path with a real registry: `skopeo` pushes an OCI image whose
//! config carries the `org.opencontainers.image.revision` and `.source`
//! labels to Debian's `docker-registry`; the registry notifies portcall;
//! portcall reads the labels back through the registry's v2 API, creates
//! the release and posts a commit status, a check run and one sticky
//! comment to mock GitHub and GitLab servers (documented response bodies).
//! No network, no Docker daemon.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;
use crate::providers::*;
use crate::support_registry::*;

/// The image name portcall reports: the source's canonical host, not the
/// `127.0.0.1:PORT` the image was pushed to.
const IMAGE: &str = "registry.example.com/octo-org/hello-world";
const MARKER: &str = "<!-- portcall:hello-world -->";
const PUBLIC_URL: &str = "https://portcall.example.com";

const GITLAB_PROJECT: &str = "group/sub/hello";
const GITLAB_IMAGE: &str = "registry.example.com/group/sub/hello";
const GITLAB_SOURCE_URL: &str = "https://gitlab.example.com/group/sub/hello";
const GITLAB_MARKER: &str = "<!-- portcall:hello-gitlab -->";
/// The project path as GitLab's API addresses it.
const GITLAB_ENCODED: &str = "group%2Fsub%2Fhello";

on_both_backends! {
    async fn a_real_push_with_a_revision_label_becomes_a_release_posted_to_github(db: TestDb) {
        if !registry_tools_installed() {
            return;
        }
        let github = GithubMock::start().await;
        github.mount_app_auth(REPOSITORY).await;
        github.mount_posting(REPOSITORY, REVISION, &[7]).await;
        github.mount_comments(REPOSITORY, 7, MARKER).await;
        let (app, registry) = start(db, || Spawn {
            extra_config: github.config(),
            public_url: Some(PUBLIC_URL.to_owned()),
            ..Spawn::default()
        })
        .await;

        // v1.2.0, labelled with REVISION and SOURCE_URL.
        let since = now_ms();
        let first = OciImage::build();
        registry.push(&first).await;
        let jobs = settle(&app, &registry, 1).await;
        assert_job_kinds(&jobs, 1, 1);

        let (code, listed) = app.get_api("/api/v1/releases").await;
        assert_eq!(code, 200, "{listed:#}");
        let releases = listed["releases"].as_array().unwrap().clone();
        assert_eq!(releases.len(), 1, "{releases:#?}");
        let first_release = releases[0].clone();
        assert_eq!(
            shape(&first_release, since),
            json!({
                "name": "hello-world-v1.2.0",
                "component": "hello-world",
                "image": IMAGE,
                "tag": "v1.2.0",
                "digest": first.manifest().manifest_digest,
                "repository": "github:octo-org/hello-world",
                "commit": REVISION,
                "source_url": SOURCE_URL,
            })
        );
        let first_id = first_release["id"].as_i64().unwrap();
        // One release is shown with its deployments: none reported yet.
        let mut one = first_release.clone();
        one["deployments"] = json!([]);
        assert_eq!(
            app.get_api(&format!("/api/v1/releases/{first_id}")).await,
            (200, one)
        );
        let (_, filtered) = app.get_api("/api/v1/releases?component=hello-world").await;
        assert_eq!(filtered["releases"], json!([first_release]));
        let (_, other) = app.get_api("/api/v1/releases?component=hello-gitlab").await;
        assert_eq!(other["releases"], json!([]));

        // One installation token, minted with a JWT that verifies against
        // the App's public key.
        let minted = github
            .requests("POST", &format!("/app/installations/{INSTALLATION_ID}/access_tokens"))
            .await;
        assert_eq!(minted.len(), 1);
        assert_app_jwt(&minted[0]);

        let first_headline = "Release hello-world-v1.2.0: registry.example.com/octo-org/hello-world:v1.2.0";
        let first_link = format!("{PUBLIC_URL}/api/v1/releases/{first_id}");
        let statuses = github.requests("POST", &format!("/repos/{REPOSITORY}/statuses/{REVISION}")).await;
        assert_eq!(statuses.len(), 1);
        assert_eq!(
            json_body(&statuses[0]),
            json!({
                "state": "success",
                "context": "portcall/release",
                "description": first_headline,
                "target_url": first_link,
            })
        );
        assert_eq!(
            statuses[0].headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {}", installation_token()),
            "posted with the installation token"
        );

        let checks = github.requests("POST", &format!("/repos/{REPOSITORY}/check-runs")).await;
        assert_eq!(checks.len(), 1);
        assert_check_run(
            &checks[0],
            first_headline,
            &first_link,
            &format!("release-{first_id}"),
            &["v1.2.0", &first.manifest().manifest_digest],
        );

        let created = github.requests("POST", &format!("/repos/{REPOSITORY}/issues/7/comments")).await;
        assert_eq!(created.len(), 1, "one comment");
        assert_comment(
            &json_body(&created[0]),
            MARKER,
            first_headline,
            &first.manifest().manifest_digest,
            Some(&first_link),
        );

        // A second build of the same commit, v1.2.1: a second release, and
        // the comment edited in place.
        let since = now_ms();
        let second = OciImage::build();
        assert_ne!(second.digest(), first.digest());
        registry.push_to(&second, REPOSITORY, "v1.2.1").await;
        let jobs = settle(&app, &registry, 2).await;
        assert_job_kinds(&jobs, 2, 2);

        let (_, listed) = app.get_api("/api/v1/releases").await;
        let releases = listed["releases"].as_array().unwrap().clone();
        assert_eq!(releases.len(), 2, "{releases:#?}");
        assert_eq!(releases[1], first_release, "newest first; the first is unchanged");
        let second_release = releases[0].clone();
        assert_eq!(
            shape(&second_release, since),
            json!({
                "name": "hello-world-v1.2.1",
                "component": "hello-world",
                "image": IMAGE,
                "tag": "v1.2.1",
                "digest": second.manifest().manifest_digest,
                "repository": "github:octo-org/hello-world",
                "commit": REVISION,
                "source_url": SOURCE_URL,
            })
        );
        let second_id = second_release["id"].as_i64().unwrap();
        assert_ne!(second_id, first_id);
        let mut one = second_release.clone();
        one["deployments"] = json!([]);
        assert_eq!(
            app.get_api(&format!("/api/v1/releases/{second_id}")).await,
            (200, one)
        );

        let second_headline = "Release hello-world-v1.2.1: registry.example.com/octo-org/hello-world:v1.2.1";
        let second_link = format!("{PUBLIC_URL}/api/v1/releases/{second_id}");
        let statuses = github.requests("POST", &format!("/repos/{REPOSITORY}/statuses/{REVISION}")).await;
        assert_eq!(statuses.len(), 2);
        assert_eq!(
            json_body(&statuses[1]),
            json!({
                "state": "success",
                "context": "portcall/release",
                "description": second_headline,
                "target_url": second_link,
            })
        );
        let checks = github.requests("POST", &format!("/repos/{REPOSITORY}/check-runs")).await;
        assert_eq!(checks.len(), 2);
        assert_check_run(
            &checks[1],
            second_headline,
            &second_link,
            &format!("release-{second_id}"),
            &["v1.2.1", &second.manifest().manifest_digest],
        );

        assert_eq!(
            github.requests("POST", &format!("/repos/{REPOSITORY}/issues/7/comments")).await.len(),
            1,
            "never a second comment"
        );
        let existing = body("github-api/issues/list-comments.json")[0]["id"].as_u64().unwrap();
        let edits = github
            .requests("PATCH", &format!("/repos/{REPOSITORY}/issues/comments/{existing}"))
            .await;
        assert_eq!(edits.len(), 1, "the sticky comment is edited once");
        let edited = json_body(&edits[0]);
        assert_comment(
            &edited,
            MARKER,
            second_headline,
            &second.manifest().manifest_digest,
            Some(&second_link),
        );
        assert!(
            !edited["body"].as_str().unwrap().contains(&first.manifest().manifest_digest),
            "the edit describes the new release only: {edited:#}"
        );

        // Nothing else was asked of GitHub, and the token was minted once.
        // (How often the installation is looked up is left open: jobs run
        // concurrently and the lookup is cached, not single-flight.)
        let mut calls: Vec<(String, String)> = github
            .calls()
            .await
            .into_iter()
            .filter(|(verb, path)| !(verb == "GET" && path == &format!("/repos/{REPOSITORY}/installation")))
            .collect();
        calls.sort();
        let mut expected = vec![
            call("POST", &format!("/app/installations/{INSTALLATION_ID}/access_tokens")),
            call("POST", &format!("/repos/{REPOSITORY}/statuses/{REVISION}")),
            call("POST", &format!("/repos/{REPOSITORY}/statuses/{REVISION}")),
            call("POST", &format!("/repos/{REPOSITORY}/check-runs")),
            call("POST", &format!("/repos/{REPOSITORY}/check-runs")),
            call("GET", &format!("/repos/{REPOSITORY}/commits/{REVISION}/pulls")),
            call("GET", &format!("/repos/{REPOSITORY}/commits/{REVISION}/pulls")),
            call("GET", &format!("/repos/{REPOSITORY}/issues/7/comments")),
            call("GET", &format!("/repos/{REPOSITORY}/issues/7/comments")),
            call("POST", &format!("/repos/{REPOSITORY}/issues/7/comments")),
            call("PATCH", &format!("/repos/{REPOSITORY}/issues/comments/{existing}")),
        ];
        expected.sort();
        assert_eq!(calls, expected);

        registry.stop().await;
        app.finish().await;
    }

    async fn pushing_the_same_image_again_creates_no_second_release(db: TestDb) {
        if !registry_tools_installed() {
            return;
        }
        let github = GithubMock::start().await;
        github.mount_app_auth(REPOSITORY).await;
        github.mount_posting(REPOSITORY, REVISION, &[7]).await;
        github.mount_comments(REPOSITORY, 7, MARKER).await;
        let (app, registry) = start(db, || Spawn {
            extra_config: github.config(),
            ..Spawn::default()
        })
        .await;

        let since = now_ms();
        let image = OciImage::build();
        registry.push(&image).await;
        settle(&app, &registry, 1).await;
        // The registry notifies the second push under new event ids.
        registry.push(&image).await;
        let jobs = settle(&app, &registry, 2).await;

        let pushes: Vec<String> = app
            .deliveries()
            .await
            .into_iter()
            .filter(|d| d.event_kind.as_deref() == Some("image_pushed"))
            .map(|d| d.delivery_id)
            .collect();
        assert_eq!(pushes.len(), 2);
        assert_ne!(pushes[0], pushes[1], "two events, two deliveries");
        assert_job_kinds(&jobs, 2, 1);

        let (_, listed) = app.get_api("/api/v1/releases").await;
        let releases = listed["releases"].as_array().unwrap().clone();
        assert_eq!(releases.len(), 1, "{releases:#?}");
        assert_eq!(
            shape(&releases[0], since),
            json!({
                "name": "hello-world-v1.2.0",
                "component": "hello-world",
                "image": IMAGE,
                "tag": "v1.2.0",
                "digest": image.manifest().manifest_digest,
                "repository": "github:octo-org/hello-world",
                "commit": REVISION,
                "source_url": SOURCE_URL,
            })
        );

        let statuses = github.requests("POST", &format!("/repos/{REPOSITORY}/statuses/{REVISION}")).await;
        assert_eq!(statuses.len(), 1);
        // Without `server.public_url` there is no link.
        assert_eq!(
            json_body(&statuses[0]),
            json!({
                "state": "success",
                "context": "portcall/release",
                "description": "Release hello-world-v1.2.0: registry.example.com/octo-org/hello-world:v1.2.0",
            })
        );
        assert_eq!(github.requests("POST", &format!("/repos/{REPOSITORY}/check-runs")).await.len(), 1);
        let created = github.requests("POST", &format!("/repos/{REPOSITORY}/issues/7/comments")).await;
        assert_eq!(created.len(), 1);
        assert_comment(
            &json_body(&created[0]),
            MARKER,
            "Release hello-world-v1.2.0: registry.example.com/octo-org/hello-world:v1.2.0",
            &image.manifest().manifest_digest,
            None,
        );
        assert!(
            github.calls().await.iter().all(|(verb, _)| verb != "PATCH" && verb != "DELETE"),
            "{:#?}",
            github.calls().await
        );
        registry.stop().await;
        app.finish().await;
    }

    async fn a_gitlab_component_release_is_posted_to_gitlab(db: TestDb) {
        if !registry_tools_installed() {
            return;
        }
        let gitlab = GitlabMock::start().await;
        gitlab.mount_posting(GITLAB_PROJECT, REVISION, &[11]).await;
        let dir = tempfile::tempdir().unwrap();
        let extra_config = format!(
            "{}\n[[components]]\nname = \"hello-gitlab\"\nimage = \"{GITLAB_IMAGE}\"\nrepository = \"gitlab:{GITLAB_PROJECT}\"\nrelease_tags = [\"v*\"]\n",
            gitlab.config(dir.path())
        );
        let (app, registry) = start(db, || Spawn {
            extra_config: extra_config.clone(),
            ..Spawn::default()
        })
        .await;

        let since = now_ms();
        let image = OciImage::with_labels(&[
            (REVISION_LABEL, REVISION),
            (SOURCE_LABEL, GITLAB_SOURCE_URL),
        ]);
        registry.push_to(&image, GITLAB_PROJECT, "v2.0.0").await;
        let jobs = settle(&app, &registry, 1).await;
        assert_job_kinds(&jobs, 1, 1);
        let digest = &image.manifest().manifest_digest;

        let (_, listed) = app.get_api("/api/v1/releases").await;
        let releases = listed["releases"].as_array().unwrap().clone();
        assert_eq!(releases.len(), 1, "{releases:#?}");
        assert_eq!(
            shape(&releases[0], since),
            json!({
                "name": "hello-gitlab-v2.0.0",
                "component": "hello-gitlab",
                "image": GITLAB_IMAGE,
                "tag": "v2.0.0",
                "digest": digest,
                "repository": "gitlab:group/sub/hello",
                "commit": REVISION,
                "source_url": GITLAB_SOURCE_URL,
            })
        );
        let id = releases[0]["id"].as_i64().unwrap();
        let mut one = releases[0].clone();
        one["deployments"] = json!([]);
        assert_eq!(
            app.get_api(&format!("/api/v1/releases/{id}")).await,
            (200, one)
        );

        // The release status and the emulated check's status, posted
        // concurrently, form-encoded, with the token.
        let headline = "Release hello-gitlab-v2.0.0: registry.example.com/group/sub/hello:v2.0.0";
        let statuses = gitlab
            .requests("POST", &format!("/api/v4/projects/{GITLAB_ENCODED}/statuses/{REVISION}"))
            .await;
        assert_eq!(statuses.len(), 2, "the release status and the emulated check");
        let mut forms: Vec<Vec<(String, String)>> = statuses.iter().map(form).collect();
        forms.sort();
        let pairs = |name: &str| {
            vec![
                ("description".to_owned(), headline.to_owned()),
                ("name".to_owned(), name.to_owned()),
                ("state".to_owned(), "success".to_owned()),
            ]
        };
        assert_eq!(forms, vec![pairs("portcall / release"), pairs("portcall/release")]);
        for request in &statuses {
            assert_form_with_token(request);
        }

        let discussions = gitlab
            .requests("POST", &format!("/api/v4/projects/{GITLAB_ENCODED}/merge_requests/11/discussions"))
            .await;
        assert_eq!(discussions.len(), 1, "the emulated check run's discussion");
        assert_form_with_token(&discussions[0]);
        let discussion = single_body(&discussions[0]);
        assert!(discussion.starts_with(&format!("### {headline}\n")), "{discussion}");
        assert_names(&discussion, "hello-gitlab", &[GITLAB_IMAGE, "v2.0.0", digest, REVISION]);

        let notes = gitlab
            .requests("POST", &format!("/api/v4/projects/{GITLAB_ENCODED}/merge_requests/11/notes"))
            .await;
        assert_eq!(notes.len(), 1, "one sticky note");
        assert_form_with_token(&notes[0]);
        assert_comment(
            &json!({"body": single_body(&notes[0])}),
            GITLAB_MARKER,
            headline,
            digest,
            None,
        );

        // Nothing else was asked of GitLab.
        let mut calls = gitlab.calls().await;
        calls.sort();
        let project = format!("/api/v4/projects/{GITLAB_ENCODED}");
        let mut expected = vec![
            call("GET", "/api/v4/user"),
            call("POST", &format!("{project}/statuses/{REVISION}")),
            call("POST", &format!("{project}/statuses/{REVISION}")),
            // Once for the emulated check, once for the comment.
            call("GET", &format!("{project}/repository/commits/{REVISION}/merge_requests")),
            call("GET", &format!("{project}/repository/commits/{REVISION}/merge_requests")),
            call("POST", &format!("{project}/merge_requests/11/discussions")),
            call("GET", &format!("{project}/merge_requests/11/notes")),
            call("POST", &format!("{project}/merge_requests/11/notes")),
        ];
        expected.sort();
        assert_eq!(calls, expected);

        registry.stop().await;
        app.finish().await;
    }
}

// ---------------------------------------------------------------------------
// Starting and pushing.

/// portcall reading labels from a registry that notifies it. Each names the
/// other: the registry's port is picked first and written into portcall's
/// configuration (the `registry` source's `api_url`), then the registry
/// starts on it with portcall's webhook URL. If another process takes the
/// port in between, both start again on a new one.
async fn start(mut db: TestDb, spawn: impl Fn() -> Spawn) -> (TestApp, Registry) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let api_url = format!("http://127.0.0.1:{port}");
        let app = TestApp::spawn_with(
            db,
            Spawn {
                registry_api_url: Some(api_url.clone()),
                ..spawn()
            },
        )
        .await;
        let options = RegistryOptions {
            notify: Some(app.url("/webhooks/registry")),
            port: Some(port),
            ..RegistryOptions::default()
        };
        match Registry::try_start_with(&options).await {
            Ok(registry) => {
                assert_eq!(registry.api_url(), api_url);
                return (app, registry);
            }
            Err(failure) => {
                failures.push(failure);
                db = app.into_db().await;
            }
        }
    }
    panic!(
        "docker-registry did not start:\n{}",
        failures.join("\n---\n")
    );
}

/// Waits until the registry's notifications made `pushes` image pushes in
/// all and everything they caused is finished; every job must be done.
async fn settle(app: &TestApp, registry: &Registry, pushes: usize) -> Vec<Value> {
    registry
        .wait_for(app, "the manifest push", |rows| {
            rows.iter()
                .filter(|r| r.event_kind.as_deref() == Some("image_pushed"))
                .count()
                == pushes
        })
        .await;
    let jobs = app.wait_until_settled(20).await;
    assert!(
        jobs.iter().all(|j| j["state"] == "done"),
        "{jobs:#?}\nregistry log:\n{}",
        registry.log()
    );
    jobs
}

// ---------------------------------------------------------------------------
// What was stored and sent.

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A release as the API shows it, less `id` (a positive integer) and
/// `created_at` (milliseconds, between `since` and now).
fn shape(release: &Value, since: i64) -> Value {
    let mut fields = release.as_object().expect("a release is an object").clone();
    let id = fields.remove("id").and_then(|v| v.as_i64());
    assert!(id.is_some_and(|id| id > 0), "{release:#}");
    let created = fields
        .remove("created_at")
        .and_then(|v| v.as_i64())
        .expect("created_at in milliseconds");
    assert!(
        (since..=now_ms()).contains(&created),
        "created_at {created} is not between {since} and now"
    );
    Value::Object(fields)
}

/// `resolve_image` once per push, and a status, a check run and a comment
/// per release, nothing else; the comment job finds the one open pull
/// request and enqueues the upsert on it, a `pr_comment` of its own.
fn assert_job_kinds(jobs: &[Value], pushes: usize, releases: usize) {
    let mut kinds: Vec<&str> = jobs.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    let mut expected = vec!["resolve_image"; pushes];
    for _ in 0..releases {
        expected.extend(["commit_status", "check_run", "pr_comment", "pr_comment"]);
    }
    expected.sort_unstable();
    assert_eq!(kinds, expected, "{jobs:#?}");
}

fn installation_token() -> String {
    body("github-api/apps/create-installation-access-token.json")["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn call(verb: &str, path: &str) -> (String, String) {
    (verb.to_owned(), path.to_owned())
}

/// A completed, successful `portcall / release` check run on [`REVISION`],
/// titled with the release, linking to it, whose summary names the
/// component, the image, and `more` (tag, digest).
fn assert_check_run(
    request: &wiremock::Request,
    title: &str,
    details_url: &str,
    external_id: &str,
    more: &[&str],
) {
    let mut check = json_body(request);
    let completed_at = check
        .as_object_mut()
        .unwrap()
        .remove("completed_at")
        .expect("completed_at");
    let completed_at = chrono::DateTime::parse_from_rfc3339(completed_at.as_str().unwrap())
        .expect("completed_at is RFC 3339");
    let age = chrono::Utc::now()
        .signed_duration_since(completed_at)
        .num_seconds();
    assert!(
        (-1..60).contains(&age),
        "completed_at {completed_at} is not now"
    );
    let summary = check["output"]["summary"].as_str().unwrap().to_owned();
    let mut names = vec![IMAGE, REVISION];
    names.extend_from_slice(more);
    assert_names(&summary, "hello-world", &names);
    check["output"]["summary"] = json!("(checked above)");
    assert_eq!(
        check,
        json!({
            "name": "portcall / release",
            "head_sha": REVISION,
            "status": "completed",
            "conclusion": "success",
            "details_url": details_url,
            "external_id": external_id,
            "output": {"title": title, "summary": "(checked above)"},
        })
    );
}

/// `text` names `component` on a line of its own (not only inside the
/// image name) and each of `values`.
fn assert_names(text: &str, component: &str, values: &[&str]) {
    assert!(
        text.lines()
            .any(|line| line.contains(component) && !line.contains("registry.example.com")),
        "{text}\nshould name the component {component}"
    );
    for value in values {
        assert!(text.contains(value), "{text}\nshould name {value}");
    }
}

/// A sticky comment body (`{"body": …}` and nothing else): the marker
/// first, the headline, the digest and the commit, and the link when
/// `server.public_url` is set.
fn assert_comment(sent: &Value, marker: &str, headline: &str, digest: &str, link: Option<&str>) {
    let fields = sent.as_object().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["body"], "{sent:#}");
    let text = sent["body"].as_str().unwrap();
    assert!(text.starts_with(&format!("{marker}\n")), "{text}");
    assert_eq!(text.matches(marker).count(), 1, "{text}");
    for expected in [headline, digest, REVISION] {
        assert!(text.contains(expected), "{text}\nshould name {expected}");
    }
    match link {
        Some(link) => assert!(
            text.contains(&format!("({link})")),
            "{text}\nshould link {link}"
        ),
        None => assert!(!text.contains("/api/v1/releases"), "{text}\nhas no link"),
    }
}

/// A GitLab API call: form-encoded, with the `PRIVATE-TOKEN`.
fn assert_form_with_token(request: &wiremock::Request) {
    assert_eq!(
        request
            .headers
            .get("private-token")
            .map(|v| v.to_str().unwrap()),
        Some(GITLAB_API_TOKEN)
    );
    assert_eq!(
        request
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/x-www-form-urlencoded")
    );
}

/// The `body` of a form whose only field it is.
fn single_body(request: &wiremock::Request) -> String {
    match form(request).as_slice() {
        [(key, value)] if key == "body" => value.clone(),
        other => panic!("expected only a body: {other:?}"),
    }
}
