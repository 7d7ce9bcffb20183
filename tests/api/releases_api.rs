//! `/api/v1/releases` and `/api/v1/jobs`: what operators read, and how the
//! API refuses what it cannot serve.

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

const REPOSITORY: &str = "octo-org/hello-world";

fn digest(seed: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

fn tags(releases: &Value) -> Vec<&str> {
    releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tag"].as_str().unwrap())
        .collect()
}

on_both_backends! {
    async fn release_tags_make_releases_listed_newest_first_filtered_and_paginated(db: TestDb) {
        let app = TestApp::spawn(db).await;
        for (i, tag) in ["v1.0.0", "latest", "v1.1.0", "v1.2.0"].iter().enumerate() {
            let id = format!("ev-{i}");
            app.post_image_push(&id, REPOSITORY, tag, &digest(tag)).await;
            // One at a time, so ids follow the push order.
            app.wait_until_settled(20).await;
        }
        // The tag v1.2.0 moves to a new digest: a second release, the first kept.
        app.post_image_push("ev-moved", REPOSITORY, "v1.2.0", &digest("v1.2.0 rebuilt")).await;
        app.wait_until_settled(20).await;

        let (code, all) = app.get_api("/api/v1/releases").await;
        assert_eq!(code, 200, "{all:#}");
        assert_eq!(tags(&all), ["v1.2.0", "v1.2.0", "v1.1.0", "v1.0.0"]);
        assert_eq!(all["next_before"], Value::Null);
        let newest = &all["releases"][0];
        assert_eq!(newest["name"], "hello-world-v1.2.0");
        assert_eq!(newest["component"], "hello-world");
        assert_eq!(newest["image"], "registry.example.com/octo-org/hello-world");
        assert_eq!(newest["digest"], digest("v1.2.0 rebuilt"));
        assert_eq!(newest["repository"], "github:octo-org/hello-world");
        assert_eq!(newest["commit"], Value::Null, "no label, no sha tag, no build event");

        let (_, page) = app.get_api("/api/v1/releases?limit=3").await;
        assert_eq!(tags(&page), ["v1.2.0", "v1.2.0", "v1.1.0"]);
        let before = page["next_before"].as_i64().expect("a full page has a next cursor");
        let (_, rest) = app.get_api(&format!("/api/v1/releases?limit=3&before={before}")).await;
        assert_eq!(tags(&rest), ["v1.0.0"]);
        assert_eq!(rest["next_before"], Value::Null);

        let (_, filtered) = app.get_api("/api/v1/releases?component=hello-world").await;
        assert_eq!(tags(&filtered).len(), 4);
        let (_, none) = app.get_api("/api/v1/releases?component=other").await;
        assert!(tags(&none).is_empty());

        let id = newest["id"].as_i64().unwrap();
        let (code, mut one) = app.get_api(&format!("/api/v1/releases/{id}")).await;
        // One release is shown with its deployments (none reported here).
        let deployments = one.as_object_mut().and_then(|o| o.remove("deployments"));
        assert_eq!(deployments, Some(Value::Array(Vec::new())), "{one:#}");
        assert_eq!((code, &one), (200, newest));

        // The version map keeps every push, the moved tag included.
        let pushes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_pushes WHERE tag = 'v1.2.0'")
            .fetch_one(&app.sql().await)
            .await
            .unwrap();
        assert_eq!(pushes, 2);
        app.finish().await;
    }

    async fn the_api_refuses_bad_requests_with_a_code_and_never_a_500(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
            ("GET", "/api/v1/releases", None, 401, "unauthorized"),
            ("GET", "/api/v1/releases", Some("wrong-token"), 401, "unauthorized"),
            ("GET", "/api/v1/releases/1", None, 401, "unauthorized"),
            ("GET", "/api/v1/jobs", Some("wrong-token"), 401, "unauthorized"),
            ("POST", "/api/v1/jobs/1/retry", None, 401, "unauthorized"),
            ("GET", "/api/v1/releases/424242", Some(ADMIN_TOKEN), 404, "not_found"),
            ("GET", "/api/v1/releases/abc", Some(ADMIN_TOKEN), 404, "not_found"),
            ("POST", "/api/v1/jobs/abc/retry", Some(ADMIN_TOKEN), 404, "not_found"),
            ("GET", "/api/v1/jobs/424242", Some(ADMIN_TOKEN), 404, "not_found"),
            ("POST", "/api/v1/jobs/424242/retry", Some(ADMIN_TOKEN), 404, "not_found"),
            ("GET", "/api/v1/nothing-here", Some(ADMIN_TOKEN), 404, "not_found"),
            ("GET", "/api/v1/releases?limit=0", Some(ADMIN_TOKEN), 400, "invalid_request"),
            ("GET", "/api/v1/releases?limit=501", Some(ADMIN_TOKEN), 400, "invalid_request"),
            ("GET", "/api/v1/releases?limit=abc", Some(ADMIN_TOKEN), 400, "invalid_request"),
            ("GET", "/api/v1/releases?colour=blue", Some(ADMIN_TOKEN), 400, "invalid_request"),
            ("GET", "/api/v1/jobs?state=exploded", Some(ADMIN_TOKEN), 400, "invalid_request"),
        ];
        for (verb, path, token, status, code) in cases {
            let mut request = app.client.request(verb.parse().unwrap(), app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (*status, Some(*code)),
                "{verb} {path} with {token:?}: {body}"
            );
            assert!(!body["error"]["message"].as_str().unwrap_or_default().contains(ADMIN_TOKEN));
        }
        app.finish().await;
    }
}
