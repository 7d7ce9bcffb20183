//! The registry source kinds harbor, quay, dockerhub, jfrog and nexus,
//! through HTTP: each posts its vendor's documented payload (fixtures/…)
//! with that vendor's credential, as the README's "Registries" section
//! configures it, and sees the release; wrong or missing credentials are
//! 401 and store nothing; ignored actions are recorded with a reason; a
//! redelivery is a duplicate; malformed JSON is 400. The kinds whose
//! payloads carry no digest (quay, dockerhub, nexus) are resolved against a
//! real `docker-registry` that demands basic auth, holding the pushed image
//! under the fixture's repository and tag.

use hmac::{Hmac, Mac};
use portcall::store::deliveries::Status;
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;
use crate::support_registry::*;

const HARBOR_AUTH: &str = "Bearer harbor-hook-s3cret";
const QUAY_TOKEN: &str = "quay-url-s3cret-7f1c";
const HUB_TOKEN: &str = "hub-url-s3cret-93ab";
const JFROG_SECRET: &str = "jfrog-hook-s3cret";
const NEXUS_SECRET: &str = "nexus-hook-s3cret";
const READ_USER: &str = "portcall-reader";
const READ_PASSWORD: &str = "reader-pa55";

const HARBOR_DIGEST: &str =
    "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8";
const JFROG_DIGEST: &str =
    "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce";

/// The five sources exactly as the README's "Registries" section writes
/// them, and one component per fixture's image. Each `env:NAME` becomes a
/// `file:` reference holding the test's value; `api_url` points at the test
/// registry, or is dropped when there is none.
fn sources(dir: &std::path::Path, api_url: Option<&str>) -> String {
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, value).unwrap();
        format!("file:{}", path.display())
    };
    let value_of = |name: &str| match name {
        "HARBOR_HOOK_AUTH" => HARBOR_AUTH,
        "QUAY_HOOK_TOKEN" => QUAY_TOKEN,
        "DOCKERHUB_HOOK_TOKEN" => HUB_TOKEN,
        "JFROG_HOOK_SECRET" => JFROG_SECRET,
        "NEXUS_HOOK_SECRET" => NEXUS_SECRET,
        n if n.ends_with("_USER") || n.ends_with("_NAME") => READ_USER,
        _ => READ_PASSWORD,
    };
    let mut toml = String::new();
    for block in readme_registry_blocks() {
        for line in block.lines() {
            if line.starts_with("api_url") {
                if let Some(url) = api_url {
                    toml.push_str(&format!("api_url = \"{url}\"\n"));
                }
                continue;
            }
            let mut line = line.to_owned();
            while let Some(at) = line.find("\"env:") {
                let rest = &line[at + 5..];
                let end = rest.find('"').unwrap();
                let name = rest[..end].to_owned();
                let reference = secret(&name, value_of(&name));
                line = format!("{}\"{reference}{}", &line[..at], &rest[end..]);
            }
            toml.push_str(&line);
            toml.push('\n');
        }
        toml.push('\n');
    }
    let component = |name: &str, image: &str| {
        format!(
            "[[components]]\nname = \"{name}\"\nimage = \"{image}\"\nrepository = \"github:octo-org/{name}\"\nrelease_tags = [\"latest\", \"v*\"]\n"
        )
    };
    for (name, image) in [
        ("harbor-debian", HARBOR_IMAGE),
        ("quay-repo", "quay.io/mynamespace/repository"),
        ("hub-testhook", "docker.io/svendowideit/testhook"),
        (
            "jfrog-ubuntu",
            "example.jfrog.io/docker-remote-cache/library/ubuntu",
        ),
        ("nexus-hello", "nexus.example.com:8082/octo-org/hello-world"),
    ] {
        toml.push_str(&component(name, image));
    }
    toml
}

/// The image the Harbor fixture names under the README's `registry`.
const HARBOR_IMAGE: &str = "harbor.example.com/test-webhook/debian";

/// The ```toml blocks of the README's "Registries" section, one per kind.
fn readme_registry_blocks() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("\n### Registries\n")
        .expect("README has a Registries section");
    let section = &readme[start + 1..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    // The cloud registries' blocks (tests/api/registries_cloud.rs) follow.
    const KINDS: [&str; 5] = ["harbor", "quay", "dockerhub", "jfrog", "nexus"];
    let blocks: Vec<String> = section
        .split("```toml\n")
        .skip(1)
        .map(|b| b[..b.find("```").unwrap()].to_owned())
        .filter(|b| KINDS.iter().any(|k| b.contains(&format!("kind = \"{k}\""))))
        .collect();
    let kinds: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b.lines().find(|l| l.starts_with("kind = ")))
        .collect();
    assert_eq!(
        kinds,
        [
            "kind = \"harbor\"",
            "kind = \"quay\"",
            "kind = \"dockerhub\"",
            "kind = \"jfrog\"",
            "kind = \"nexus\""
        ]
    );
    blocks
}

struct Kit {
    app: TestApp,
    _dir: tempfile::TempDir,
}

async fn spawn(db: TestDb, api_url: Option<&str>) -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(
        db,
        Spawn {
            extra_config: sources(dir.path(), api_url),
            ..Spawn::default()
        },
    )
    .await;
    Kit { app, _dir: dir }
}

fn hex_hmac_sha1(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One request as its sender makes it.
struct Post {
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn harbor(body: Vec<u8>, auth: Option<&str>) -> Post {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    headers.extend(auth.map(|a| ("Authorization", a.to_owned())));
    Post {
        path: "/webhooks/harbor".into(),
        headers,
        body,
    }
}

fn by_token(source: &str, body: Vec<u8>, token: Option<&str>) -> Post {
    Post {
        path: match token {
            Some(t) => format!("/webhooks/{source}?token={t}"),
            None => format!("/webhooks/{source}"),
        },
        headers: vec![("Content-Type", "application/json".to_owned())],
        body,
    }
}

fn jfrog(body: Vec<u8>, key: Option<&str>) -> Post {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    headers.extend(key.map(|k| {
        (
            "X-JFrog-Event-Auth",
            hex::encode(hmac_sha256(k.as_bytes(), &[&body])),
        )
    }));
    Post {
        path: "/webhooks/jfrog".into(),
        headers,
        body,
    }
}

fn nexus(body: Vec<u8>, key: Option<&str>, delivery: &str) -> Post {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-Nexus-Webhook-ID", "rm:repository:component".to_owned()),
        ("X-Nexus-Webhook-Delivery", delivery.to_owned()),
    ];
    headers.extend(key.map(|k| ("X-Nexus-Webhook-Signature", hex_hmac_sha1(k, &body))));
    Post {
        path: "/webhooks/nexus".into(),
        headers,
        body,
    }
}

async fn send(app: &TestApp, post: &Post) -> (u16, Value) {
    let mut request = app.client.post(app.url(&post.path));
    for (name, value) in &post.headers {
        request = request.header(*name, value);
    }
    let response = request.body(post.body.clone()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn releases_of(app: &TestApp, component: &str) -> Vec<Value> {
    let (code, answer) = app
        .get_api(&format!("/api/v1/releases?component={component}"))
        .await;
    assert_eq!(code, 200, "{answer:#}");
    answer["releases"].as_array().cloned().unwrap_or_default()
}

fn edited(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = std::str::from_utf8(body).unwrap();
    assert!(s.contains(from), "{from:?} not in the fixture");
    s.replacen(from, to, 1).into_bytes()
}

on_both_backends! {
    async fn harbor_and_jfrog_pushes_with_their_digest_create_releases(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        for body in [
            fixture("harbor/PUSH_ARTIFACT.json"),
            fixture("harbor/pushImage.v1.json"),
        ] {
            let (code, answer) = send(app, &harbor(body, Some(HARBOR_AUTH))).await;
            assert_eq!(code, 202, "{answer:#}");
        }
        let cloud = Post {
            headers: vec![("Content-Type", "application/cloudevents+json".into()), ("Authorization", HARBOR_AUTH.into())],
            ..harbor(fixture("harbor/cloudevents.artifact.pushed.json"), None)
        };
        let (code, answer) = send(app, &cloud).await;
        assert_eq!(code, 202, "{answer:#}");
        assert_eq!(answer["delivery"], "4b2f89a4-d5ad-4f4b-9b4f-1a5c2a3c9f10");
        let (code, answer) = send(app, &jfrog(fixture("jfrog/docker.pushed.json"), Some(JFROG_SECRET))).await;
        assert_eq!(code, 202, "{answer:#}");
        app.wait_until_settled(20).await;

        // Three Harbor formats, one image and digest: one release.
        let harbor = releases_of(app, "harbor-debian").await;
        assert_eq!(harbor.len(), 1, "{harbor:#?}");
        assert_eq!(harbor[0]["digest"], HARBOR_DIGEST);
        assert_eq!(harbor[0]["tag"], "latest");
        assert_eq!(harbor[0]["image"], HARBOR_IMAGE);
        let jfrog = releases_of(app, "jfrog-ubuntu").await;
        assert_eq!(jfrog.len(), 1, "{jfrog:#?}");
        assert_eq!(jfrog[0]["digest"], JFROG_DIGEST);
        assert!(app.deliveries().await.iter().all(|d| d.status == Status::Processed));
        kit.app.finish().await;
    }

    async fn wrong_or_missing_credentials_are_401_and_store_nothing(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let posts = [
            harbor(fixture("harbor/PUSH_ARTIFACT.json"), Some("Bearer wrong")),
            harbor(fixture("harbor/PUSH_ARTIFACT.json"), Some("harbor-hook-s3cret")),
            harbor(fixture("harbor/PUSH_ARTIFACT.json"), None),
            by_token("quay", fixture("quay/repo_push.json"), Some("wrong-token")),
            by_token("quay", fixture("quay/repo_push.json"), None),
            by_token("dockerhub", fixture("dockerhub/push.json"), Some(QUAY_TOKEN)),
            by_token("dockerhub", fixture("dockerhub/push.json"), None),
            jfrog(fixture("jfrog/docker.pushed.json"), Some("wrong")),
            jfrog(fixture("jfrog/docker.pushed.json"), None),
            // A signed source no longer takes the plain secret.
            Post {
                headers: vec![("X-JFrog-Event-Auth", JFROG_SECRET.into())],
                ..jfrog(fixture("jfrog/docker.pushed.json"), None)
            },
            nexus(fixture("nexus/component.created.docker.json"), Some("wrong"), "d-1"),
            nexus(fixture("nexus/component.created.docker.json"), None, "d-2"),
        ];
        for post in &posts {
            let (code, answer) = send(app, post).await;
            assert_eq!(code, 401, "{} {:?}: {answer:#}", post.path, post.headers);
            let text = answer.to_string();
            for secret in ["wrong-token", HARBOR_AUTH, QUAY_TOKEN, JFROG_SECRET] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        assert!(app.deliveries().await.is_empty());
        kit.app.finish().await;
    }

    async fn ignored_actions_are_recorded_with_a_reason(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let posts = [
            (harbor(edited(&fixture("harbor/PUSH_ARTIFACT.json"), "PUSH_ARTIFACT", "DELETE_ARTIFACT"), Some(HARBOR_AUTH)), "harbor DELETE_ARTIFACT"),
            (harbor(edited(&fixture("harbor/PUSH_ARTIFACT.json"), "PUSH_ARTIFACT", "PULL_ARTIFACT"), Some(HARBOR_AUTH)), "harbor PULL_ARTIFACT"),
            (by_token("quay", fixture("quay/build_success.json"), Some(QUAY_TOKEN)), "quay build"),
            (jfrog(fixture("jfrog/docker.deleted.json"), Some(JFROG_SECRET)), "jfrog docker.deleted"),
            (nexus(fixture("nexus/component.created.npm.json"), Some(NEXUS_SECRET), "n-npm"), "nexus component CREATED npm"),
            (nexus(edited(&fixture("nexus/component.created.docker.json"), "CREATED", "DELETED"), Some(NEXUS_SECRET), "n-del"), "nexus component DELETED docker"),
        ];
        for (post, _) in &posts {
            let (code, answer) = send(app, post).await;
            assert_eq!(code, 202, "{}: {answer:#}", post.path);
        }
        let rows = app.wait_until_processed().await;
        assert_eq!(rows.len(), posts.len());
        for (_, what) in &posts {
            let row = rows
                .iter()
                .find(|r| r.outcome.as_deref().is_some_and(|o| o.starts_with(what)))
                .unwrap_or_or_panic(what, &rows);
            assert_eq!(row.status, Status::Ignored, "{row:#?}");
            assert!(row.outcome.as_deref().unwrap().contains("not acted on"), "{row:#?}");
        }
        kit.app.finish().await;
    }

    async fn a_redelivery_is_a_duplicate_and_malformed_json_is_400(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let posts = [
            harbor(fixture("harbor/PUSH_ARTIFACT.json"), Some(HARBOR_AUTH)),
            by_token("quay", fixture("quay/repo_push.json"), Some(QUAY_TOKEN)),
            by_token("dockerhub", fixture("dockerhub/push.json"), Some(HUB_TOKEN)),
            jfrog(fixture("jfrog/docker.pushed.json"), Some(JFROG_SECRET)),
            nexus(fixture("nexus/component.created.docker.json"), Some(NEXUS_SECRET), "n-dup"),
        ];
        for post in &posts {
            let (first, answer) = send(app, post).await;
            assert_eq!(first, 202, "{}: {answer:#}", post.path);
            let (again, answer) = send(app, post).await;
            assert_eq!(again, 200, "{}: {answer:#}", post.path);
            assert_eq!(answer["status"], "duplicate");
        }
        assert_eq!(app.deliveries().await.len(), posts.len());

        let broken = b"{\"type\": \"PUSH_ARTIFACT\", ".to_vec();
        let malformed = [
            harbor(broken.clone(), Some(HARBOR_AUTH)),
            by_token("quay", broken.clone(), Some(QUAY_TOKEN)),
            by_token("dockerhub", broken.clone(), Some(HUB_TOKEN)),
            jfrog(broken.clone(), Some(JFROG_SECRET)),
            nexus(broken.clone(), Some(NEXUS_SECRET), "n-broken"),
        ];
        for post in &malformed {
            let (code, answer) = send(app, post).await;
            assert_eq!(code, 400, "{}: {answer:#}", post.path);
        }
        assert_eq!(app.deliveries().await.len(), posts.len());
        kit.app.finish().await;
    }

    async fn a_placeholder_digest_fails_the_delivery_naming_the_field(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let body = edited(&fixture("harbor/PUSH_ARTIFACT.json"), HARBOR_DIGEST, "sha256:xxxx");
        assert_eq!(send(app, &harbor(body, Some(HARBOR_AUTH))).await.0, 202);
        let body = edited(&fixture("jfrog/docker.pushed.json"), "35c4a2c15539", "xxxx");
        assert_eq!(send(app, &jfrog(body, Some(JFROG_SECRET))).await.0, 202);
        let rows = app.wait_until_processed().await;
        for (source, field) in [("harbor", "event_data.resources[0].digest"), ("jfrog", "data.sha256")] {
            let row = rows.iter().find(|r| r.source == source).unwrap();
            assert_eq!(row.status, Status::Failed, "{row:#?}");
            assert!(row.last_error.as_deref().unwrap_or_default().contains(field), "{row:#?}");
        }
        assert!(releases_of(app, "harbor-debian").await.is_empty());
        kit.app.finish().await;
    }

    async fn the_url_token_is_never_stored_or_shown(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        for post in [
            by_token("quay", fixture("quay/repo_push.json"), Some(QUAY_TOKEN)),
            by_token("dockerhub", fixture("dockerhub/push.json"), Some(HUB_TOKEN)),
        ] {
            let (code, answer) = send(app, &post).await;
            assert_eq!(code, 202, "{answer:#}");
        }
        app.wait_until_settled(20).await;
        let pool = app.sql().await;
        for table in ["deliveries", "image_pushes", "jobs"] {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {table}"
            ))
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(!rows.is_empty());
        }
        let headers: Vec<String> = sqlx::query_scalar("SELECT headers FROM deliveries")
            .fetch_all(&pool)
            .await
            .unwrap();
        for h in &headers {
            assert!(!h.contains(QUAY_TOKEN) && !h.contains(HUB_TOKEN), "{h}");
        }
        let (_, listed) = app.get_api("/api/v1/deliveries").await;
        let (_, jobs) = app.get_api("/api/v1/jobs").await;
        for shown in [listed.to_string(), jobs.to_string()] {
            assert!(!shown.contains(QUAY_TOKEN) && !shown.contains(HUB_TOKEN), "{shown}");
        }
        for d in listed["deliveries"].as_array().unwrap() {
            let id = d["id"].as_i64().unwrap();
            let (_, one) = app.get_api(&format!("/api/v1/deliveries/{id}")).await;
            let one = one.to_string();
            assert!(!one.contains(QUAY_TOKEN) && !one.contains(HUB_TOKEN), "{one}");
        }
        kit.app.finish().await;
    }

    async fn a_push_without_a_digest_and_no_api_url_ends_with_a_clear_reason(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let (code, _) = send(app, &by_token("quay", fixture("quay/repo_push.json"), Some(QUAY_TOKEN))).await;
        assert_eq!(code, 202);
        let jobs = app.wait_until_settled(20).await;
        let resolve = jobs.iter().find(|j| j["kind"] == "resolve_image").unwrap();
        assert_eq!(resolve["state"], "dead", "{resolve:#}");
        assert!(resolve["last_error"].as_str().unwrap_or_default().contains("no api_url"), "{resolve:#}");
        assert_eq!(app.deliveries().await[0].status, Status::Processed);
        assert!(releases_of(app, "quay-repo").await.is_empty());
        kit.app.finish().await;
    }

    async fn a_quay_push_of_several_tags_releases_each_matching_tag(db: TestDb) {
        if !registry_tools_installed() || !tools_installed(&["htpasswd"]) {
            return;
        }
        let registry = Registry::start_with(RegistryOptions {
            basic_auth: Some((READ_USER.into(), READ_PASSWORD.into())),
            ..RegistryOptions::default()
        })
        .await;
        let image = OciImage::with_labels(&[(REVISION_LABEL, REVISION)]);
        for tag in ["latest", "v1.2.0", "main"] {
            registry.push_to(&image, "mynamespace/repository", tag).await;
        }
        let kit = spawn(db, Some(&registry.api_url())).await;
        let app = &kit.app;
        let body = edited(
            &fixture("quay/repo_push.json"),
            "\"latest\"\n",
            "\"main\", \"v1.2.0\", \"latest\"\n",
        );
        let (code, answer) = send(app, &by_token("quay", body.clone(), Some(QUAY_TOKEN))).await;
        assert_eq!(code, 202, "{answer:#}");
        let (again, _) = send(app, &by_token("quay", body, Some(QUAY_TOKEN))).await;
        assert_eq!(again, 200, "a redelivery is a duplicate, tag by tag");
        app.wait_until_settled(30).await;
        let mut tags: Vec<String> = releases_of(app, "quay-repo")
            .await
            .iter()
            .map(|r| r["tag"].as_str().unwrap().to_owned())
            .collect();
        tags.sort();
        // `main` matches no release rule: recorded, not released.
        assert_eq!(tags, ["latest", "v1.2.0"]);
        assert_eq!(app.deliveries().await.len(), 3);
        kit.app.finish().await;
        registry.stop().await;
    }

    async fn a_harbor_push_by_digest_is_no_tag_and_docker_hubs_callback_is_never_called(db: TestDb) {
        let kit = spawn(db, None).await;
        let app = &kit.app;
        let by_digest = edited(
            &fixture("harbor/PUSH_ARTIFACT.json"),
            "\"tag\": \"latest\"",
            &format!("\"tag\": \"{HARBOR_DIGEST}\""),
        );
        assert_eq!(send(app, &harbor(by_digest, Some(HARBOR_AUTH))).await.0, 202);
        let callback = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200))
            .expect(0)
            .named("Docker Hub's callback_url")
            .mount(&callback)
            .await;
        let hub = edited(
            &fixture("dockerhub/push.json"),
            "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
            &format!("{}/hook", callback.uri()),
        );
        assert_eq!(send(app, &by_token("dockerhub", hub, Some(HUB_TOKEN))).await.0, 202);
        app.wait_until_settled(20).await;
        let rows = app.deliveries().await;
        let harbor_row = rows.iter().find(|r| r.source == "harbor").unwrap();
        assert_eq!(harbor_row.status, Status::Processed, "{harbor_row:#?}");
        let outcome = harbor_row.outcome.as_deref().unwrap();
        assert!(outcome.contains(&format!("{HARBOR_IMAGE}@{HARBOR_DIGEST}")), "{outcome}");
        let jobs = app.get_api("/api/v1/jobs").await.1.to_string();
        assert!(jobs.contains("no release tag matched"), "{jobs}");
        assert!(releases_of(app, "harbor-debian").await.is_empty());
        callback.verify().await;
        kit.app.finish().await;
    }

    async fn an_unreachable_registry_makes_the_resolution_retry_and_never_drops_the_push(db: TestDb) {
        let url = format!("http://127.0.0.1:{}", free_port());
        let kit = spawn(db, Some(&url)).await;
        let app = &kit.app;
        let (code, _) = send(app, &by_token("dockerhub", fixture("dockerhub/push.json"), Some(HUB_TOKEN))).await;
        assert_eq!(code, 202);
        // The test dispatcher allows 4 attempts, 200 ms apart and doubling.
        let jobs = app.wait_until_settled(30).await;
        let resolve = jobs.iter().find(|j| j["kind"] == "resolve_image").unwrap();
        assert_eq!(resolve["attempts"], 4, "{resolve:#}");
        let error = resolve["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("gave up after 4 attempts") && error.contains("resolving"), "{error}");
        // The push stays recorded, without a digest, for a retry by hand.
        let pool = app.sql().await;
        let pushes: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT image, digest FROM image_pushes")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(pushes, vec![("docker.io/svendowideit/testhook".to_owned(), None)]);
        kit.app.finish().await;
    }

    async fn quay_dockerhub_and_nexus_tags_are_resolved_from_a_registry_behind_basic_auth(db: TestDb) {
        if !registry_tools_installed() || !tools_installed(&["htpasswd"]) {
            return;
        }
        let registry = Registry::start_with(RegistryOptions {
            basic_auth: Some((READ_USER.into(), READ_PASSWORD.into())),
            ..RegistryOptions::default()
        })
        .await;
        // The fixtures' repositories and tags, pushed to the real registry.
        let quay = OciImage::with_labels(&[(REVISION_LABEL, REVISION)]);
        registry.push_to(&quay, "mynamespace/repository", "latest").await;
        let hub = OciImage::with_labels(&[(REVISION_LABEL, REVISION), ("variant", "hub")]);
        registry.push_to(&hub, "svendowideit/testhook", "latest").await;
        let nexus_image = OciImage::with_labels(&[(REVISION_LABEL, REVISION), ("variant", "nexus")]);
        registry.push_to(&nexus_image, "octo-org/hello-world", "v1.2.0").await;

        let kit = spawn(db, Some(&registry.api_url())).await;
        let app = &kit.app;
        for post in [
            by_token("quay", fixture("quay/repo_push.json"), Some(QUAY_TOKEN)),
            by_token("dockerhub", fixture("dockerhub/push.json"), Some(HUB_TOKEN)),
            nexus(fixture("nexus/component.created.docker.json"), Some(NEXUS_SECRET), "n-1"),
        ] {
            let (code, answer) = send(app, &post).await;
            assert_eq!(code, 202, "{}: {answer:#}", post.path);
        }
        app.wait_until_settled(30).await;
        for (component, image, tag) in [
            ("quay-repo", &quay, "latest"),
            ("hub-testhook", &hub, "latest"),
            ("nexus-hello", &nexus_image, "v1.2.0"),
        ] {
            let releases = releases_of(app, component).await;
            assert_eq!(releases.len(), 1, "{component}: {releases:#?}\n{}", registry.log());
            assert_eq!(releases[0]["digest"], image.digest(), "{component}");
            assert_eq!(releases[0]["tag"], tag);
            assert_eq!(releases[0]["commit"], REVISION, "{component}: labels read");
        }
        kit.app.finish().await;
        registry.stop().await;
    }
}

/// `Option::unwrap` with the rows in the message.
trait UnwrapOrPanic<'a, T> {
    fn unwrap_or_or_panic(self, what: &str, rows: &[T]) -> &'a T;
}

impl<'a, T: std::fmt::Debug> UnwrapOrPanic<'a, T> for Option<&'a T> {
    fn unwrap_or_or_panic(self, what: &str, rows: &[T]) -> &'a T {
        self.unwrap_or_else(|| panic!("no delivery recorded as {what:?}: {rows:#?}"))
    }
}
