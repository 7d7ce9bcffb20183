//! `POST /webhooks/{source}`: every verification rule both ways, and every
//! answer code of the contract. A refused request leaves no row.

use portcall::clock::Clock;
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

async fn assert_refused(app: &TestApp, response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status().as_u16(), status);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        app.deliveries().await.is_empty(),
        "a refused request left a row"
    );
}

on_both_backends! {
    async fn a_signed_github_push_is_accepted_then_reported_as_duplicate(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("github/push.json");

        let first = app.post_github("push", "delivery-1", &body).await;
        assert_eq!(first.status().as_u16(), 202);
        assert_eq!(json(first).await, serde_json::json!({"status": "accepted", "delivery": "delivery-1"}));

        let again = app.post_github("push", "delivery-1", &body).await;
        assert_eq!(again.status().as_u16(), 200);
        assert_eq!(json(again).await, serde_json::json!({"status": "duplicate", "delivery": "delivery-1"}));

        let rows = app.deliveries().await;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].source.as_str(), rows[0].delivery_id.as_str(), rows[0].event.as_str()), ("github", "delivery-1", "push"));
        app.finish().await;
    }

    async fn the_previous_github_secret_still_verifies_during_rotation(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = br#"{"zen":"Design for failure."}"#;
        let headers = github_headers(GITHUB_PREVIOUS_SECRET, "ping", "rotated", body);
        let response = app.post_webhook("github", &headers, body.to_vec()).await;
        assert_eq!(response.status().as_u16(), 202);
        app.finish().await;
    }

    async fn github_requests_without_a_valid_sha256_signature_get_401_and_leave_no_row(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("github/push.json");
        let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("wrong secret", github_headers("not the secret", "push", "d1", &body)),
            ("signature over another body", github_headers(GITHUB_SECRET, "push", "d2", b"{}")),
            ("no signature", github_headers(GITHUB_SECRET, "push", "d3", &body).into_iter().skip(1).collect()),
            ("sha1 only", {
                let mut h = github_headers(GITHUB_SECRET, "push", "d4", &body);
                h[0] = ("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59".into());
                h
            }),
            ("malformed", {
                let mut h = github_headers(GITHUB_SECRET, "push", "d5", &body);
                h[0].1 = "sha256=zz".into();
                h
            }),
        ];
        for (case, headers) in cases {
            let response = app.post_webhook("github", &headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 401, "{case}");
            let text = response.text().await.unwrap();
            assert!(text.contains("\"unauthorized\""), "{case}: {text}");
            assert!(!text.contains(GITHUB_SECRET), "{case}: the secret was echoed");
        }
        assert!(app.deliveries().await.is_empty());
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"portcall_webhook_verify_failures_total{reason="signature_mismatch",source="github"} 2"#), "{metrics}");
        assert!(metrics.contains(r#"portcall_webhook_verify_failures_total{reason="legacy_signature_only",source="github"} 1"#), "{metrics}");
        app.finish().await;
    }

    async fn github_form_encoded_payloads_are_accepted(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let json_body = fixture("github/push.json");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json_body).unwrap())
            .finish();
        let mut headers = github_headers(GITHUB_SECRET, "push", "form-1", body.as_bytes());
        headers[3].1 = "application/x-www-form-urlencoded".into();
        let response = app.post_webhook("github", &headers, body).await;
        assert_eq!(response.status().as_u16(), 202);
        let rows = app.wait_until_processed().await;
        assert_eq!(rows[0].event_kind.as_deref(), Some("push"), "{rows:?}");
        app.finish().await;
    }

    async fn github_requests_missing_event_or_delivery_headers_get_400(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = br#"{}"#;
        for missing in ["X-GitHub-Event", "X-GitHub-Delivery"] {
            let headers: Vec<_> = github_headers(GITHUB_SECRET, "push", "d", body)
                .into_iter()
                .filter(|(n, _)| *n != missing)
                .collect();
            let response = app.post_webhook("github", &headers, body.to_vec()).await;
            assert_eq!(response.status().as_u16(), 400);
            let error = json(response).await;
            assert_eq!(error["error"]["code"], "invalid_request");
            assert!(error["error"]["message"].as_str().unwrap().to_lowercase().contains(&missing.to_lowercase()), "{error}");
        }
        assert!(app.deliveries().await.is_empty());
        app.finish().await;
    }

    async fn a_verified_body_that_is_not_a_json_object_gets_400(db: TestDb) {
        let app = TestApp::spawn(db).await;
        for (i, body) in [&b"[1,2]"[..], b"{\"truncated\":", b"\xff\xfe", b"Hello, World!"].into_iter().enumerate() {
            let headers = github_headers(GITHUB_SECRET, "push", &format!("bad-{i}"), body);
            let response = app.post_webhook("github", &headers, body.to_vec()).await;
            assert_refused(&app, response, 400, "invalid_request").await;
        }
        app.finish().await;
    }

    async fn a_wrong_content_type_gets_415(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = br#"{}"#;
        let mut headers = github_headers(GITHUB_SECRET, "push", "ct", body);
        headers[3].1 = "text/plain".into();
        let response = app.post_webhook("github", &headers, body.to_vec()).await;
        assert_refused(&app, response, 415, "unsupported_media_type").await;
        app.finish().await;
    }

    async fn an_unknown_source_gets_404(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("github/push.json");
        for source in ["nope", "..%2F..%2Fetc", "<script>alert(1)</script>"] {
            let headers = github_headers(GITHUB_SECRET, "push", "x", &body);
            let response = app.post_webhook(source, &headers, body.clone()).await;
            assert_eq!(response.status().as_u16(), 404, "{source}");
            let text = response.text().await.unwrap();
            assert!(!text.contains("<script>"), "{text}");
        }
        assert!(app.deliveries().await.is_empty());
        app.finish().await;
    }

    async fn a_body_over_the_limit_gets_413_whether_declared_or_streamed(db: TestDb) {
        let app = TestApp::spawn(db).await;
        // The test config allows 64 KiB.
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000));
        let headers = github_headers(GITHUB_SECRET, "push", "big", big.as_bytes());
        let response = app.post_webhook("github", &headers, big.clone()).await;
        assert_refused(&app, response, 413, "payload_too_large").await;

        // Without Content-Length (chunked), the limit applies while reading.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.as_bytes().chunks(8192).map(|c| Ok(c.to_vec())).collect();
        let stream = futures_util::stream::iter(chunks);
        let response = app.post_webhook("github", &headers, reqwest::Body::wrap_stream(stream)).await;
        assert_refused(&app, response, 413, "payload_too_large").await;
        app.finish().await;
    }

    async fn gitlab_token_hooks_are_verified_and_keyed_by_idempotency_key(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("gitlab/push.json");
        let headers = |token: &str, key: Option<&str>| {
            let mut h = vec![
                ("X-Gitlab-Token", token.to_owned()),
                ("X-Gitlab-Event", "Push Hook".to_owned()),
                ("X-Gitlab-Event-UUID", uuid::Uuid::new_v4().to_string()),
                ("Content-Type", "application/json".to_owned()),
            ];
            if let Some(key) = key {
                h.push(("Idempotency-Key", key.to_owned()));
            }
            h
        };
        let wrong = app.post_webhook("gitlab", &headers("wrong-token", Some("k1")), body.clone()).await;
        assert_refused(&app, wrong, 401, "unauthorized").await;

        // GitLab retries with a new event UUID but the same Idempotency-Key.
        let first = app.post_webhook("gitlab", &headers(GITLAB_TOKEN, Some("k1")), body.clone()).await;
        assert_eq!(first.status().as_u16(), 202);
        let retry = app.post_webhook("gitlab", &headers(GITLAB_TOKEN, Some("k1")), body.clone()).await;
        assert_eq!(retry.status().as_u16(), 200);
        // Older GitLab: no Idempotency-Key, the event UUID is the id.
        let old = app.post_webhook("gitlab", &headers(GITLAB_TOKEN, None), body.clone()).await;
        assert_eq!(old.status().as_u16(), 202);
        assert_eq!(app.deliveries().await.len(), 2);
        let rows = app.wait_until_processed().await;
        assert!(rows.iter().all(|r| r.event_kind.as_deref() == Some("push")), "{rows:?}");
        app.finish().await;
    }

    async fn gitlab_signed_webhooks_never_fall_back_to_the_token(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("gitlab/push.json");
        let now = now_unix();
        let mut good = standard_headers(STANDARD_SECRET, "msg_gitlab_1", now, &body);
        good.push(("X-Gitlab-Event", "Push Hook".into()));
        let response = app.post_webhook("gitlab", &good, body.clone()).await;
        assert_eq!(response.status().as_u16(), 202);
        assert_eq!(json(response).await["delivery"], "msg_gitlab_1");

        let mut forged = standard_headers("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_gitlab_2", now, &body);
        forged.push(("X-Gitlab-Event", "Push Hook".into()));
        forged.push(("X-Gitlab-Token", GITLAB_TOKEN.into()));
        let response = app.post_webhook("gitlab", &forged, body.clone()).await;
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(app.deliveries().await.len(), 1);
        app.finish().await;
    }

    async fn standard_webhooks_verify_the_reference_vector_with_an_injected_clock(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { clock: Clock::fixed(1614265330), ..Spawn::default() }).await;
        let vector: Value = serde_json::from_slice(&fixture("standard-webhooks/signature_test_vector.json")).unwrap();
        let body = vector["payload"].as_str().unwrap().to_owned();
        let headers = |signature: &str| vec![
            ("webhook-id", vector["headers"]["webhook-id"].as_str().unwrap().to_owned()),
            ("webhook-timestamp", vector["headers"]["webhook-timestamp"].as_str().unwrap().to_owned()),
            ("webhook-signature", signature.to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        // The vector's payload has no "type": verified, then refused as a body.
        let expected = vector["expected_webhook_signature"].as_str().unwrap();
        let response = app.post_webhook("ci", &headers(expected), body.clone()).await;
        assert_eq!(response.status().as_u16(), 400);
        assert!(json(response).await["error"]["message"].as_str().unwrap().contains("type"));

        for bad in [
            vector["negative_examples"]["wrong_last_char_from_library_test"].as_str().unwrap(),
            "v1,",
            "",
        ] {
            let response = app.post_webhook("ci", &headers(bad), body.clone()).await;
            assert_eq!(response.status().as_u16(), 401, "{bad:?}");
        }
        let several = vector["negative_examples"]["multi_signature_header_with_one_valid_shape"].as_str().unwrap();
        let response = app.post_webhook("ci", &headers(several), body.clone()).await;
        assert_eq!(response.status().as_u16(), 400, "a list with one valid v1 signature verifies");
        assert!(app.deliveries().await.is_empty());
        app.finish().await;
    }

    async fn standard_webhooks_outside_the_five_minute_window_are_refused(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = br#"{"type":"build.completed","timestamp":"2026-11-21T00:00:00Z","data":{"id":1}}"#;
        let now = now_unix();
        // Clear of the 300 s boundary: the server reads its clock a moment
        // (possibly a second tick) after the test does.
        for (id, ts, status) in [("old", now - 310, 401), ("future", now + 310, 401), ("fresh", now - 60, 202)] {
            let response = app.post_webhook("ci", &standard_headers(STANDARD_SECRET, id, ts, body), body.to_vec()).await;
            assert_eq!(response.status().as_u16(), status, "{id}");
        }
        // A replay of the accepted request is a duplicate, not a second row.
        let replay = app.post_webhook("ci", &standard_headers(STANDARD_SECRET, "fresh", now - 60, body), body.to_vec()).await;
        assert_eq!(replay.status().as_u16(), 200);
        let rows = app.deliveries().await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event, "build.completed");
        app.finish().await;
    }

    async fn a_distribution_envelope_is_stored_event_by_event(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let body = fixture("distribution/envelope.push-batch.json");
        let headers = vec![
            ("Authorization", format!("Bearer {REGISTRY_TOKEN}")),
            ("Content-Type", "application/vnd.docker.distribution.events.v1+json".to_owned()),
        ];
        let response = app.post_webhook("registry", &headers, body.clone()).await;
        assert_eq!(response.status().as_u16(), 202);
        let answer = json(response).await;
        assert_eq!(answer["deliveries"].as_array().unwrap().len(), 3, "{answer}");
        let again = app.post_webhook("registry", &headers, body.clone()).await;
        assert_eq!(again.status().as_u16(), 200);
        assert_eq!(app.deliveries().await.len(), 3);

        let mut v2 = headers.clone();
        v2[1].1 = "application/vnd.docker.distribution.events.v2+json".into();
        let manifest = fixture("distribution/manifest-push.json");
        assert_eq!(app.post_webhook("registry", &v2, manifest).await.status().as_u16(), 202);

        let wrong = vec![("Authorization", "Bearer nope".to_owned()), headers[1].clone()];
        let response = app.post_webhook("registry", &wrong, body.clone()).await;
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(app.deliveries().await.len(), 4);
        app.finish().await;
    }

    async fn probes_answer(db: TestDb) {
        let app = TestApp::spawn(db).await;
        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
        }
        app.post_github("ping", "p1", br#"{"zen":"Speak like a human."}"#).await;
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("# HELP portcall_webhook_deliveries_total"));
        assert!(metrics.contains(r#"portcall_webhook_deliveries_total{kind="github",outcome="accepted",source="github"} 1"#), "{metrics}");
        app.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_gives_503_and_nothing_is_stored_until_it_recovers() {
    use sqlx::Connection as _;
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let mut locker = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();

    let body = fixture("github/push.json");
    let response = app.post_github("push", "while-locked", &body).await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(json(response).await["error"]["code"], "unavailable");

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(app.deliveries().await.is_empty());
    // The sender's retry succeeds.
    let retry = app.post_github("push", "while-locked", &body).await;
    assert_eq!(retry.status().as_u16(), 202);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gives_503_and_readyz_503_then_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(db).await;
    let body = fixture("github/push.json");
    assert_eq!(
        app.post_github("push", "before", &body)
            .await
            .status()
            .as_u16(),
        202
    );

    app.db.refuse_connections().await;

    for i in 0..3 {
        let response = app.post_github("push", &format!("during-{i}"), &body).await;
        assert_eq!(response.status().as_u16(), 503, "attempt {i}");
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    app.db.allow_connections().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        app.post_github("push", "during-0", &body)
            .await
            .status()
            .as_u16(),
        202
    );
    let ids: Vec<String> = app
        .deliveries()
        .await
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(ids, ["before", "during-0"]);
    app.finish().await;
}
