//! The cloud registries (ACR, ECR via EventBridge, Artifact Registry/GCR via
//! Pub/Sub push) and GHCR (GitHub `package` events), through HTTP. Each
//! source is configured with the README's own `[[sources]]` block (read
//! from between `<!-- registry-example:KIND -->` markers, its `env:`
//! references pointed at files), then sent the registry's documented
//! payload with that registry's credential.

use base64::Engine as _;
use portcall::store::deliveries::{DeliveryRecord, Status};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;

const README: &str = include_str!("../../README.md");

const ACR_TOKEN: &str = "acr-hook-token";
const ECR_TOKEN: &str = "ecr-hook-token";
const GAR_TOKEN: &str = "gar-hook-token";
const AUDIENCE: &str = "https://portcall.example.com/webhooks/gar";
const SERVICE_ACCOUNT: &str = "pubsub-push@my-project.iam.gserviceaccount.com";

/// The vendors' placeholder digests, and a well-formed one put in their
/// place where a push should go through.
const ACR_DOCS_DIGEST: &str =
    "sha256:xxxxd5c8786bb9e621a45ece0dbxxxx1cdc624ad20da9fe62e9d25490f33xxxx";
const ECR_DOCS_DIGEST: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234";
const GAR_DOCS_DIGEST: &str = "sha256:6ec128e26cd5...";
const DIGEST: &str = "sha256:3c1f8f6e1bd5c8786bb9e621a45ece0db7ac1cdc624ad20da9fe62e9d25490f3";
/// The digest of fixtures/github/package.published.json.
const GHCR_DIGEST: &str = "sha256:103dbadba2499628b536b96b2fe6333202c4af3f2b721b3609ed150978572708";

/// The headers a sender sends.
type Sent = Vec<(&'static str, String)>;

/// The TOML block of the README example `name`.
fn readme_block(name: &str) -> &'static str {
    let start = format!("<!-- registry-example:{name} -->");
    let at = README
        .find(&start)
        .unwrap_or_else(|| panic!("the README has no {start}"));
    let rest = &README[at + start.len()..];
    let end = rest
        .find("<!-- /registry-example -->")
        .unwrap_or_else(|| panic!("{start} is not closed"));
    rest[..end]
        .trim()
        .strip_prefix("```toml\n")
        .and_then(|b| b.strip_suffix("```"))
        .unwrap_or_else(|| panic!("{start}: expected one ```toml block"))
}

/// A running portcall configured as the README says, with the files its
/// configuration refers to.
struct Cloud {
    app: TestApp,
    _files: tempfile::TempDir,
}

async fn spawn(db: TestDb) -> Cloud {
    let files = tempfile::tempdir().unwrap();
    let mut sources = String::new();
    for kind in ["acr", "ecr", "gar"] {
        sources.push_str(readme_block(kind));
        sources.push('\n');
    }
    for (name, value) in [
        ("ACR_HOOK_TOKEN", ACR_TOKEN),
        ("ECR_HOOK_TOKEN", ECR_TOKEN),
        ("GAR_HOOK_TOKEN", GAR_TOKEN),
    ] {
        let path = files.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        sources = sources.replace(&format!("env:{name}"), &format!("file:{}", path.display()));
    }
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gar/test-jwks.json");
    let sources = sources.replace("/etc/portcall/google-jwks.json", jwks);
    // The README's ?token= form, as a second endpoint.
    let token_path = files.path().join("GAR_HOOK_TOKEN");
    let extra = format!(
        r#"
{sources}
[[sources]]
name = "gar-token"
kind = "gar"
secrets = ["file:{token}"]

[[components]]
name = "acr-app"
image = "myregistry.azurecr.io/hello-world"
repository = "github:octo-org/acr-app"
release_tags = ["v*"]

[[components]]
name = "ecr-app"
image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name"
repository = "github:octo-org/ecr-app"
release_tags = ["latest"]

[[components]]
name = "gar-app"
image = "us-east1-docker.pkg.dev/my-project/my-repo/hello-world"
repository = "github:octo-org/gar-app"
release_tags = ["1.*"]

[[components]]
name = "gcr-app"
image = "gcr.io/my-project/hello-world"
repository = "github:octo-org/gcr-app"
release_tags = ["1.*"]

{ghcr}
"#,
        token = token_path.display(),
        ghcr = readme_block("ghcr"),
    );
    let app = TestApp::spawn_with(
        db,
        Spawn {
            extra_config: extra,
            ..Spawn::default()
        },
    )
    .await;
    Cloud { app, _files: files }
}

fn text(path: &str) -> String {
    String::from_utf8(fixture(path)).unwrap()
}

/// A documented payload with its placeholder digest replaced.
fn real(path: &str, placeholder: &str) -> Vec<u8> {
    let body = text(path);
    assert!(body.contains(placeholder), "{path}");
    body.replace(placeholder, DIGEST).into_bytes()
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".into()),
    ]
}

/// A Pub/Sub push envelope around `data`, as the subscription sends it.
fn pubsub(message_id: &str, data: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    serde_json::to_vec(&json!({
        "message": {
            "attributes": {},
            "data": data,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-12-01T10:00:00.000Z",
            "publish_time": "2026-12-01T10:00:00.000Z"
        },
        "subscription": "projects/my-project/subscriptions/portcall"
    }))
    .unwrap()
}

/// A Google-style OIDC token signed by the test key the JWKS fixture holds.
fn oidc_token(edit: impl FnOnce(&mut Value)) -> String {
    let now = now_unix();
    let mut claims = json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": SERVICE_ACCOUNT,
        "email_verified": true,
        "iat": now - 5,
        "exp": now + 3595,
    });
    edit(&mut claims);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("portcall-test-key".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&fixture("github/test-app-key.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn oidc_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".into()),
        (
            "User-Agent",
            "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)".into(),
        ),
    ]
}

async fn releases(app: &TestApp) -> Vec<Value> {
    let (code, answer) = app.get_api("/api/v1/releases").await;
    assert_eq!(code, 200, "{answer}");
    answer["releases"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [DeliveryRecord], source: &str, id: &str) -> &'a DeliveryRecord {
    rows.iter()
        .find(|r| r.source == source && r.delivery_id == id)
        .unwrap_or_else(|| panic!("no delivery {source}/{id}: {rows:#?}"))
}

on_both_backends! {
    async fn each_registrys_documented_push_with_its_credential_creates_the_release_once(db: TestDb) {
        let Cloud { app, _files } = spawn(db).await;
        let gar_insert = pubsub("2070443601311540", &real("gar/insert.json", GAR_DOCS_DIGEST));
        let gcr_insert = pubsub("2070443601311541", &real("gar/gcr.insert.json", GAR_DOCS_DIGEST));
        let github_package = fixture("github/package.published.json");
        let sends: Vec<(&str, Sent, Vec<u8>)> = vec![
            ("acr", bearer(ACR_TOKEN), real("acr/push.json", ACR_DOCS_DIGEST)),
            ("ecr", bearer(ECR_TOKEN), real("ecr/image-action.push.json", ECR_DOCS_DIGEST)),
            ("gar", oidc_headers(&oidc_token(|_| {})), gar_insert.clone()),
            ("gar-token", vec![("Content-Type", "application/json".into())], gcr_insert.clone()),
            ("github", github_headers(GITHUB_SECRET, "package", "ghcr-1", &github_package), github_package.clone()),
        ];
        for (source, headers, body) in &sends {
            let path = if *source == "gar-token" { format!("gar-token?token={GAR_TOKEN}") } else { source.to_string() };
            let response = app.post_webhook(&path, headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 202, "{source}: {}", response.text().await.unwrap());
        }
        app.wait_until_settled(20).await;

        let mut found: Vec<(String, String, String, String)> = releases(&app)
            .await
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (s("name"), s("image"), s("tag"), s("digest"))
            })
            .collect();
        found.sort();
        let expected = |name: &str, image: &str, tag: &str, digest: &str| {
            (name.to_owned(), image.to_owned(), tag.to_owned(), digest.to_owned())
        };
        assert_eq!(
            found,
            [
                expected("acr-app-v1", "myregistry.azurecr.io/hello-world", "v1", DIGEST),
                expected("ecr-app-latest", "123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name", "latest", DIGEST),
                expected("gar-app-1.1", "us-east1-docker.pkg.dev/my-project/my-repo/hello-world", "1.1", DIGEST),
                expected("gcr-app-1.1", "gcr.io/my-project/hello-world", "1.1", DIGEST),
                expected("hello-world-ghcr-v1.2.0", "ghcr.io/octo-org/hello-world", "v1.2.0", GHCR_DIGEST),
            ]
        );
        let rows = app.deliveries().await;
        assert_eq!(row(&rows, "acr", "cb8c3971-9adc-488b-xxxx-43cbb4974ff5").event, "push");
        assert_eq!(row(&rows, "ecr", "13cde686-328b-6117-af20-0e5566167482").event, "ECR Image Action");
        assert_eq!(row(&rows, "gar", "2070443601311540").status, Status::Processed);
        assert_eq!(row(&rows, "gar-token", "2070443601311541").status, Status::Processed);

        // Sent again (the registries retry): duplicates, and no second release.
        for (source, headers, body) in &sends {
            let path = if *source == "gar-token" { format!("gar-token?token={GAR_TOKEN}") } else { source.to_string() };
            let response = app.post_webhook(&path, headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 200, "{source}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["status"], "duplicate", "{source}");
        }
        app.wait_until_settled(20).await;
        assert_eq!(releases(&app).await.len(), 5);
        assert_eq!(app.deliveries().await.len(), rows.len());
        app.finish().await;
    }

    async fn a_wrong_or_missing_credential_is_401_and_stores_nothing(db: TestDb) {
        let Cloud { app, _files } = spawn(db).await;
        let acr = real("acr/push.json", ACR_DOCS_DIGEST);
        let ecr = real("ecr/image-action.push.json", ECR_DOCS_DIGEST);
        let gar = pubsub("1", &real("gar/insert.json", GAR_DOCS_DIGEST));
        let package = fixture("github/package.published.json");
        let json_only = vec![("Content-Type", "application/json".to_owned())];
        let gar_with_token = format!("gar?token={GAR_TOKEN}");
        let cases: Vec<(&str, &str, Sent, &Vec<u8>)> = vec![
            ("acr: wrong token", "acr", bearer("wrong-token"), &acr),
            ("acr: another source's token", "acr", bearer(ECR_TOKEN), &acr),
            ("acr: no header", "acr", json_only.clone(), &acr),
            ("acr: not bearer", "acr", vec![("Authorization", ACR_TOKEN.into())], &acr),
            ("ecr: wrong token", "ecr", bearer("wrong-token"), &ecr),
            ("ecr: no header", "ecr", json_only.clone(), &ecr),
            ("gar: no token", "gar", json_only.clone(), &gar),
            ("gar: wrong audience", "gar", oidc_headers(&oidc_token(|c| c["aud"] = json!("https://elsewhere.example.com"))), &gar),
            ("gar: another account", "gar", oidc_headers(&oidc_token(|c| c["email"] = json!("attacker@evil.iam.gserviceaccount.com"))), &gar),
            ("gar: expired", "gar", oidc_headers(&oidc_token(|c| c["exp"] = json!(now_unix() - 3600))), &gar),
            ("gar: another issuer", "gar", oidc_headers(&oidc_token(|c| c["iss"] = json!("https://evil.example.com"))), &gar),
            ("gar: the shared token where OIDC is configured", &gar_with_token, json_only.clone(), &gar),
            ("gar-token: wrong token", "gar-token?token=wrong-token", json_only.clone(), &gar),
            ("gar-token: no token", "gar-token", json_only.clone(), &gar),
            ("gar-token: a bearer token instead", "gar-token", bearer(GAR_TOKEN), &gar),
            ("github package: bad signature", "github", github_headers("not the secret", "package", "ghcr-x", &package), &package),
        ];
        for (case, path, headers, body) in cases {
            let response = app.post_webhook(path, &headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 401, "{case}");
            let answer = response.text().await.unwrap();
            assert!(answer.contains("\"unauthorized\""), "{case}: {answer}");
            for secret in ["wrong-token", GAR_TOKEN, ACR_TOKEN, "attacker@evil"] {
                assert!(!answer.contains(secret), "{case} echoed a credential: {answer}");
            }
        }
        assert!(app.deliveries().await.is_empty(), "{:#?}", app.deliveries().await);
        app.finish().await;
    }

    async fn ignored_actions_are_recorded_with_the_reason(db: TestDb) {
        let Cloud { app, _files } = spawn(db).await;
        let failed_push = text("ecr/image-action.push.json")
            .replace(ECR_DOCS_DIGEST, DIGEST)
            .replace("\"SUCCESS\"", "\"FAILURE\"")
            .replace("13cde686-328b-6117-af20-0e5566167482", "13cde686-328b-6117-af20-0e5566167499");
        let npm = text("github/package.published.json")
            .replace("\"package_type\": \"CONTAINER\"", "\"package_type\": \"npm\"")
            .replace("\"type\": \"CONTAINER\"", "\"type\": \"npm\"");
        let updated = text("github/registry_package.published.json").replace("\"published\"", "\"updated\"");
        let sends: Vec<(&str, Sent, Vec<u8>, &str, &str)> = vec![
            ("acr", bearer(ACR_TOKEN), fixture("acr/delete.json"), "afc359ce-df7f-4e32-xxxx-1ff8aa80927b", "acr delete (an image deleted is not a release)"),
            ("acr", bearer(ACR_TOKEN), fixture("acr/chart_push.json"), "6356e9e0-627f-4fed-xxxx-d9059b5143ac", "acr chart_push (Helm charts are not images)"),
            ("ecr", bearer(ECR_TOKEN), fixture("ecr/image-action.delete.json"), "dd3b46cb-2c74-f49e-393b-28286b67279d", "ecr DELETE (only PUSH creates images)"),
            ("ecr", bearer(ECR_TOKEN), failed_push.into_bytes(), "13cde686-328b-6117-af20-0e5566167499", "ecr PUSH FAILURE (the push did not succeed)"),
            ("gar", oidc_headers(&oidc_token(|_| {})), pubsub("77", &fixture("gar/delete.json")), "77", "gar DELETE (an image deleted is not a release)"),
            ("github", github_headers(GITHUB_SECRET, "package", "npm-1", npm.as_bytes()), npm.clone().into_bytes(), "npm-1", "github package published of a npm package (not a container)"),
            ("github", github_headers(GITHUB_SECRET, "registry_package", "upd-1", updated.as_bytes()), updated.clone().into_bytes(), "upd-1", "github registry_package updated"),
        ];
        for (source, headers, body, _, _) in &sends {
            let response = app.post_webhook(source, headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 202, "{source}");
        }
        let rows = app.wait_until_processed().await;
        for (source, _, _, id, reason) in &sends {
            let r = row(&rows, source, id);
            assert_eq!(r.status, Status::Ignored, "{r:#?}");
            assert_eq!(r.outcome.as_deref(), Some(format!("{reason}: not acted on").as_str()), "{r:#?}");
        }
        assert!(releases(&app).await.is_empty());
        app.finish().await;
    }

    async fn the_documented_placeholder_digests_are_readable_failures_not_releases(db: TestDb) {
        let Cloud { app, _files } = spawn(db).await;
        let sends: Vec<(&str, Sent, Vec<u8>, &str, &str)> = vec![
            ("acr", bearer(ACR_TOKEN), fixture("acr/push.json"), "cb8c3971-9adc-488b-xxxx-43cbb4974ff5", "field target.digest"),
            ("ecr", bearer(ECR_TOKEN), fixture("ecr/image-action.push.json"), "13cde686-328b-6117-af20-0e5566167482", "field detail.image-digest"),
            ("gar", oidc_headers(&oidc_token(|_| {})), pubsub("88", &fixture("gar/insert.json")), "88", "field digest"),
        ];
        for (source, headers, body, _, _) in &sends {
            let response = app.post_webhook(source, headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 202, "{source}");
        }
        let rows = app.wait_until_processed().await;
        for (source, _, _, id, reason) in &sends {
            let r = row(&rows, source, id);
            assert_eq!(r.status, Status::Failed, "{r:#?}");
            let error = r.last_error.as_deref().unwrap_or_default();
            assert!(error.contains(reason) && error.contains("digest"), "{source}: {error}");
        }
        assert!(releases(&app).await.is_empty());
        app.finish().await;
    }

    async fn a_digest_only_insert_records_the_image_without_a_tag(db: TestDb) {
        let Cloud { app, _files } = spawn(db).await;
        let body = pubsub("99", &real("gar/insert.digest-only.json", GAR_DOCS_DIGEST));
        let response = app.post_webhook("gar", &oidc_headers(&oidc_token(|_| {})), body).await;
        assert_eq!(response.status().as_u16(), 202);
        app.wait_until_settled(20).await;
        let rows = app.deliveries().await;
        let r = row(&rows, "gar", "99");
        assert_eq!(r.status, Status::Processed, "{r:#?}");
        let outcome = r.outcome.as_deref().unwrap_or_default();
        assert!(
            outcome.contains(&format!("us-east1-docker.pkg.dev/my-project/my-repo/hello-world@{DIGEST}")),
            "{outcome}"
        );
        assert!(releases(&app).await.is_empty(), "no tag, no release");
        app.finish().await;
    }
}

#[tokio::test]
async fn malformed_json_from_each_registry_is_400_and_stores_nothing() {
    let Cloud { app, _files } = spawn(TestDb::sqlite().await).await;
    let truncated = |path: &str| {
        let body = fixture(path);
        body[..body.len() / 2].to_vec()
    };
    let package = truncated("github/package.published.json");
    let gar_with_token = format!("gar-token?token={GAR_TOKEN}");
    let cases: Vec<(&str, Sent, Vec<u8>)> = vec![
        ("acr", bearer(ACR_TOKEN), truncated("acr/push.json")),
        (
            "ecr",
            bearer(ECR_TOKEN),
            truncated("ecr/image-action.push.json"),
        ),
        (
            "gar",
            oidc_headers(&oidc_token(|_| {})),
            truncated("gar/insert.json"),
        ),
        (&gar_with_token, bearer("x"), b"{\"message\":".to_vec()),
        (
            "github",
            github_headers(GITHUB_SECRET, "package", "bad-1", &package),
            package.clone(),
        ),
    ];
    for (path, headers, body) in cases {
        let response = app.post_webhook(path, &headers, body).await;
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "{path}: {answer}"
        );
        assert!(!answer.to_string().contains(GAR_TOKEN), "{answer}");
    }
    assert!(app.deliveries().await.is_empty());
    app.finish().await;
}
