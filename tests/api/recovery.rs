//! Missed-delivery recovery: deliveries GitHub made while portcall was
//! stopped (or that failed) are found in the App's delivery log and asked
//! for again, once each, as the App (JWT).

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{fixture, now_unix, Spawn, TestApp, TestDb};
use crate::on_both_backends;
use crate::providers::{assert_app_jwt, GithubMock};

const A: &str = "a0000000-0000-0000-0000-00000000000a";
const B: &str = "b0000000-0000-0000-0000-00000000000b";
const C: &str = "c0000000-0000-0000-0000-00000000000c";
const D: &str = "d0000000-0000-0000-0000-00000000000d";
/// Missing too, but older than GitHub's three days: never asked for.
const OLD: &str = "e0000000-0000-0000-0000-00000000000e";

fn at(seconds_ago: i64) -> String {
    chrono::DateTime::from_timestamp(now_unix() - seconds_ago, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One entry of `GET /app/hook/deliveries`, shaped as GitHub documents it.
fn entry(id: u64, guid: &str, status_code: u16, seconds_ago: i64) -> Value {
    json!({
        "id": id,
        "guid": guid,
        "delivered_at": at(seconds_ago),
        "redelivery": false,
        "duration": 0.27,
        "status": if status_code == 200 { "OK" } else { "Bad Gateway" },
        "status_code": status_code,
        "event": "push",
        "action": null,
        "installation_id": 1,
        "repository_id": 1,
        "throttled_at": null
    })
}

async fn spawn(db: TestDb, github: &GithubMock) -> TestApp {
    TestApp::spawn_with(
        db,
        Spawn {
            // `recovery = false`: rounds run only when the test says so.
            extra_config: github.config(),
            worker: false,
            ..Spawn::default()
        },
    )
    .await
}

async fn mount_log(github: &GithubMock) {
    let next = format!(
        "<{}/app/hook/deliveries?per_page=100&cursor=page2>; rel=\"next\"",
        github.server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param("per_page", "100"))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!([
                    entry(6, D, 502, 60),
                    entry(5, C, 200, 120),
                    // C's original attempt failed; the redelivery (5) is
                    // the most recent attempt, the one asked for again.
                    entry(4, C, 502, 180),
                    entry(3, B, 200, 240),
                ])),
        )
        .mount(&github.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param("cursor", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            entry(2, A, 200, 300),
            entry(1, OLD, 200, 4 * 24 * 60 * 60),
        ])))
        .mount(&github.server)
        .await;
}

async fn mount_redelivery(github: &GithubMock, id: u64, status: u16) {
    Mock::given(method("POST"))
        .and(path(format!("/app/hook/deliveries/{id}/attempts")))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({})))
        .expect(1)
        .mount(&github.server)
        .await;
}

fn recovered_metric(metrics: &str, result: &str) -> Option<String> {
    let prefix = format!("portcall_recovered_deliveries_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
}

on_both_backends! {
    async fn recover_asks_once_for_each_delivery_missed_while_stopped(db: TestDb) {
        let github = GithubMock::start().await;
        let mut app = spawn(db, &github).await;
        let body = fixture("github/push.json");
        for guid in [A, B] {
            assert_eq!(app.post_github("push", guid, &body).await.status().as_u16(), 202);
        }
        mount_log(&github).await;
        mount_redelivery(&github, 5, 202).await;
        mount_redelivery(&github, 6, 202).await;
        let recovery = app.recovery.clone().expect("[github] is configured");

        let first = recovery.run_once().await.unwrap();
        let mut requested = first.requested.clone();
        requested.sort();
        assert_eq!(requested, [C, D]);
        assert!(first.failed.is_empty());

        let second = recovery.run_once().await.unwrap();
        assert!(second.requested.is_empty() && second.failed.is_empty(), "{second:?}");

        let requests = github.server.received_requests().await.unwrap();
        let posts: Vec<_> = requests.iter().filter(|r| r.method.as_str() == "POST").collect();
        assert_eq!(posts.len(), 2, "one request each for C and D, none for A, B or the old one");
        for request in &requests {
            assert_app_jwt(request);
        }
        // Two rounds, two pages each.
        assert_eq!(requests.iter().filter(|r| r.method.as_str() == "GET").count(), 4);

        // GitHub's redelivery of C arrives.
        assert_eq!(app.post_github("push", C, &body).await.status().as_u16(), 202);
        let (status, listed) = app.get_api("/api/v1/deliveries?recovered=true").await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["delivery_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [C]);
        // The same view from the admin CLI.
        let cli = crate::cli_client::portcall(&app, &["deliveries", "list", "--recovered", "--json"]).await;
        assert_eq!(cli.status.code(), Some(0), "{}", String::from_utf8_lossy(&cli.stderr));
        let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
        assert_eq!(cli["deliveries"], listed["deliveries"]);
        let (_, others) = app.get_api("/api/v1/deliveries?recovered=false&source=github").await;
        assert_eq!(others["deliveries"].as_array().unwrap().len(), 2);

        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert_eq!(recovered_metric(&metrics, "requested").as_deref(), Some("2"));
        assert!(metrics.contains("# HELP portcall_recovered_deliveries_total"));
        app.stop().await;
    }

    async fn recover_records_a_refused_redelivery_and_never_asks_again(db: TestDb) {
        let github = GithubMock::start().await;
        let mut app = spawn(db, &github).await;
        let body = fixture("github/push.json");
        for guid in [A, B, C] {
            assert_eq!(app.post_github("push", guid, &body).await.status().as_u16(), 202);
        }
        mount_log(&github).await;
        // Too old to redeliver, GitHub says.
        mount_redelivery(&github, 6, 422).await;
        let recovery = app.recovery.clone().unwrap();

        let first = recovery.run_once().await.unwrap();
        assert_eq!(first.failed, [D]);
        let second = recovery.run_once().await.unwrap();
        assert!(second.requested.is_empty() && second.failed.is_empty());

        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert_eq!(recovered_metric(&metrics, "failed").as_deref(), Some("1"));
        app.stop().await;
    }

    async fn recover_survives_a_failed_listing_and_tries_again_next_round(db: TestDb) {
        let github = GithubMock::start().await;
        let mut app = spawn(db, &github).await;
        Mock::given(method("GET"))
            .and(path("/app/hook/deliveries"))
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "down"})))
            .up_to_n_times(1)
            .mount(&github.server)
            .await;
        let recovery = app.recovery.clone().unwrap();
        assert!(recovery.run_once().await.is_err());

        mount_log(&github).await;
        for id in [2, 5, 6] {
            mount_redelivery(&github, id, 202).await;
        }
        let next = recovery.run_once().await.unwrap();
        assert_eq!(next.requested.len(), 3, "{next:?}");

        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert_eq!(recovered_metric(&metrics, "list_failed").as_deref(), Some("1"));
        let (status, _) = app.get_api("/api/v1/deliveries").await;
        assert_eq!(status, 200, "the server still answers");
        app.stop().await;
    }
}
