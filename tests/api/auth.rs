//! Service accounts and the scope every `/api/v1` route requires.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;

async fn create_account(app: &TestApp, scopes: &[&str], expires_in: Option<&str>) -> Value {
    let mut body = json!({"name": "ci", "description": "the pipeline", "scopes": scopes});
    if let Some(expires_in) = expires_in {
        body["expiresIn"] = json!(expires_in);
    }
    let (code, answer) = app.post_api("/api/v1/service-accounts", body).await;
    assert_eq!(code, 201, "{answer:#}");
    answer
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

on_both_backends! {
    async fn a_service_account_token_is_shown_once_stored_hashed_and_revocable(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let created = create_account(&app, &["release:read", "release:read"], Some("365d")).await;
        let token = created["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("pc_sa_") && token.len() == 6 + 64, "{token}");
        assert_eq!(created["scopes"], json!(["release:read"]));
        assert_eq!(created["name"], "ci");
        let year = 365 * 86_400_000_i64;
        let expires = created["expires_at"].as_i64().unwrap() - created["created_at"].as_i64().unwrap();
        assert_eq!(expires, year);

        // Listed without the token; the database holds only a hash.
        let (_, listed) = app.get_api("/api/v1/service-accounts").await;
        assert_eq!(listed["service_accounts"][0]["id"], created["id"]);
        assert!(!listed.to_string().contains(&token));
        let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM service_accounts")
            .fetch_all(&app.sql().await)
            .await
            .unwrap();
        assert!(stored.iter().all(|h| h.len() == 64 && !h.contains(&token[6..])));

        assert_eq!(call(&app, "GET", "/api/v1/releases", Some(&token), None).await.0, 200);
        let (code, error) = call(&app, "GET", "/api/v1/jobs", Some(&token), None).await;
        assert_eq!((code, error["error"]["code"].as_str()), (403, Some("forbidden")));
        assert_eq!(error["error"]["message"], "this token lacks the scope admin");

        let id = created["id"].as_str().unwrap();
        assert_eq!(call(&app, "DELETE", &format!("/api/v1/service-accounts/{id}"), Some(ADMIN_TOKEN), None).await.0, 204);
        let (code, error) = call(&app, "GET", "/api/v1/releases", Some(&token), None).await;
        assert_eq!((code, error["error"]["message"].as_str()), (401, Some("the token has been revoked")));
        let (code, _) = call(&app, "DELETE", &format!("/api/v1/service-accounts/{id}"), Some(ADMIN_TOKEN), None).await;
        assert_eq!(code, 409);
        let (code, _) = call(&app, "DELETE", "/api/v1/service-accounts/sa_nope", Some(ADMIN_TOKEN), None).await;
        assert_eq!(code, 404);
        app.finish().await;
    }

    async fn an_expired_token_is_refused(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let created = create_account(&app, &["admin"], Some("1s")).await;
        let token = created["token"].as_str().unwrap().to_owned();
        assert_eq!(call(&app, "GET", "/api/v1/jobs", Some(&token), None).await.0, 200);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (code, error) = call(&app, "GET", "/api/v1/jobs", Some(&token), None).await;
        assert_eq!((code, error["error"]["message"].as_str()), (401, Some("the token has expired")));
        app.finish().await;
    }

    async fn every_route_answers_401_without_or_with_a_wrong_token_403_without_its_scope_and_2xx_with_it(db: TestDb) {
        let app = TestApp::spawn(db).await;
        // Something for the routes that read one thing to find.
        app.post_image_push("ev-1", "octo-org/hello-world", "latest", &format!("sha256:{}", "a".repeat(64))).await;
        let jobs = app.wait_until_settled(20).await;
        let job = jobs[0]["id"].as_i64().unwrap();
        let mut release = sample_body("/api/v1/releases");
        release["name"] = json!("hello-world-v1.0.0");
        release["components"][0]["tag"] = json!("v1.0.0");
        let (code, release) = app.post_api("/api/v1/releases", release).await;
        assert_eq!(code, 201, "{release}");
        let release = release["id"].as_i64().unwrap();
        let delivery = app.deliveries().await[0].id;

        for route in portcall::http::api::ROUTES {
            let Some(scope) = route.scope else { continue };
            let method = route.method.as_str();
            // A fresh account per route, for DELETE to revoke.
            let target = create_account(&app, &["release:read"], None).await;
            let path = route
                .path
                .replace("{name}", "ci")
                .replace("{id}", &match route.path {
                    p if p.starts_with("/api/v1/releases") => release.to_string(),
                    p if p.starts_with("/api/v1/jobs") => job.to_string(),
                    p if p.starts_with("/api/v1/deliveries") => delivery.to_string(),
                    _ => target["id"].as_str().unwrap().to_owned(),
                });
            let body = (method == "POST").then(|| sample_body(route.path));
            let with_scope = create_account(&app, &[scope.as_str()], None).await;
            let other = if scope.as_str() == "ci-event:create" { "release:read" } else { "ci-event:create" };
            let without_scope = create_account(&app, &[other], None).await;
            let token = |a: &Value| a["token"].as_str().unwrap().to_owned();

            let cases = [
                (None, 401),
                (Some("pc_sa_0000000000000000000000000000000000000000000000000000000000000000".to_owned()), 401),
                (Some(token(&without_scope)), 403),
            ];
            for (presented, expected) in cases {
                let (code, answer) = call(&app, method, &path, presented.as_deref(), body.clone()).await;
                assert_eq!(code, expected, "{method} {path}: {answer}");
            }
            let (code, answer) = call(&app, method, &path, Some(&token(&with_scope)), body.clone()).await;
            assert!((200..300).contains(&code), "{method} {path} with {scope}: {code} {answer}");
        }
        app.finish().await;
    }
}

/// A valid body for each `POST` route.
fn sample_body(path: &str) -> Value {
    match path {
        "/api/v1/service-accounts" => json!({"name": "made-by-test", "scopes": ["release:read"]}),
        "/api/v1/releases" => json!({
            "name": "hello-world-v9.9.9",
            "components": [{"component": "hello-world", "digest": format!("sha256:{}", "9".repeat(64)), "tag": "v9.9.9"}],
            "sourceRef": {"type": "git", "repository": "https://github.com/octo-org/hello-world",
                          "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}
        }),
        "/api/v1/releases/{id}/deployments" => {
            json!({"environment": "production", "state": "success"})
        }
        "/api/v1/ci-events/build-complete" => json!({
            "buildId": "1", "status": "success", "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "artifacts": [{"name": "hello-world", "digest": format!("sha256:{}", "8".repeat(64))}]
        }),
        "/api/v1/artefact-versions" => json!({
            "name": "registry.example.com/octo-org/hello-world", "version": "v7.0.0", "type": "container",
            "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "ref": "refs/heads/main"
        }),
        _ => json!({}),
    }
}
