//! The `portcall` binary: its subcommands, crash recovery and graceful
//! shutdown, run as a real process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use portcall::store::deliveries::Status;
use tokio::process::{Child, Command};

use crate::helpers::*;

/// Starts `portcall serve` and waits until it answers `/healthz`.
async fn serve(config: &Path, port: u16, worker: bool) -> Child {
    let child = portcall_command(config)
        .arg("serve")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCALL__WORKER__ENABLED", worker.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcall starts");
    wait_until_serving(port).await;
    child
}

#[tokio::test]
async fn help_explains_every_subcommand() {
    let output = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for word in [
        "serve",
        "migrate",
        "check-config",
        "--config",
        "PORTCALL_CONFIG",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[tokio::test]
async fn check_config_accepts_the_shipped_configurations() {
    for file in ["manifests/portcall.example.toml", "portcall.dev.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let output = portcall_command(&path)
            .arg("check-config")
            .envs([
                ("GH_HOOK_SECRET", "a"),
                ("GH_HOOK_SECRET_PREVIOUS", "b"),
                ("GL_HOOK_TOKEN", "c"),
                ("REGISTRY_HOOK_TOKEN", "d"),
                ("REGISTRY_USER", "e"),
                ("REGISTRY_PASSWORD", "f"),
                (
                    "STANDARD_HOOK_SECRET",
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                ),
                ("PORTCALL_ADMIN_TOKEN", "g"),
                ("GITLAB_TOKEN", "h"),
                ("GITHUB_APP_PRIVATE_KEY", "i"),
            ])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn check_config_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"
[admin]
token = "hunter2-literal"

[[sources]]
name = "github"
kind = "github"
secrets = ["env:PORTCALL_TEST_SURELY_UNSET"]

[[sources]]
name = "github"
kind = "bitbucket"
secrets = ["file:/nonexistent/secret"]

[[sources]]
name = "empty"
kind = "gitlab"
"#,
    )
    .unwrap();
    let output = portcall_command(&config)
        .arg("check-config")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8(output.stderr).unwrap();
    for expected in [
        "admin.token: a secret must be a reference",
        "sources[0].secrets[0]: environment variable PORTCALL_TEST_SURELY_UNSET is not set",
        "sources[1].name: duplicate source name",
        "sources[1].kind: unknown source kind \"bitbucket\"",
        "sources[1].secrets[0]: file /nonexistent/secret cannot be read",
        "sources[2].secrets: at least one secret is required",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("hunter2"),
        "a literal secret was echoed:\n{text}"
    );
}

#[tokio::test]
async fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let config = write_config(
        dir.path(),
        &format!("sqlite://{}", db.display()),
        true,
        true,
        "",
    );
    let output = portcall_command(&config)
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(db.exists());
    // Running it again is a no-op.
    let again = portcall_command(&config)
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(again.status.success());
}

#[tokio::test]
async fn a_delivery_accepted_before_a_crash_is_processed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let config = write_config(dir.path(), &db_url, true, true, "");
    let port = free_port();

    // Accept with no worker running, then die without any chance to clean up.
    let mut first = serve(&config, port, false).await;
    assert_eq!(post_push(port, "before-crash").await, 202);
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let second = serve(&config, port, true).await;
    let settings = portcall::config::Settings::load(Some(&config)).unwrap();
    let store = portcall::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let mut status = Status::Pending;
    for _ in 0..200 {
        let rows = portcall::store::deliveries::all(&store).await.unwrap();
        assert_eq!(rows.len(), 1);
        status = rows[0].status;
        if status != Status::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Status::Processed);
    assert_eq!(
        post_push(port, "before-crash").await,
        200,
        "still known after restart"
    );
    drop(second);
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("term.db").display());
    let config = write_config(dir.path(), &db_url, true, true, "");
    let port = free_port();
    let mut child = serve(&config, port, true).await;
    assert_eq!(post_push(port, "before-term").await, 202);

    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("portcall exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains(GITHUB_SECRET), "a secret reached the log");
}

#[tokio::test]
async fn a_url_token_never_reaches_the_log_even_at_trace_level() {
    const TOKEN: &str = "quay-url-token-in-the-log-test";
    const WRONG: &str = "wrong-url-token-in-the-log-test";
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("log.db").display());
    let token_file = dir.path().join("quay-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let extra = format!(
        "[[sources]]\nname = \"quay\"\nkind = \"quay\"\nsecrets = [\"file:{}\"]\n\n\
         [[components]]\nname = \"quay-repo\"\nimage = \"quay.io/mynamespace/repository\"\n\
         repository = \"github:octo-org/quay-repo\"\nrelease_tags = [\"latest\"]\n",
        token_file.display()
    );
    let config = write_config(dir.path(), &db_url, true, true, &extra);
    let port = free_port();
    let child = portcall_command(&config)
        .arg("serve")
        .env("RUST_LOG", "trace")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcall starts");
    // Trace level logs a lot: drain the pipes from the start, or the
    // server blocks writing its log once they are full.
    let pid = child.id().unwrap().to_string();
    let output = tokio::spawn(child.wait_with_output());
    wait_until_serving(port).await;
    let client = reqwest::Client::new();
    let post = |token: &'static str| {
        client
            .post(format!(
                "http://127.0.0.1:{port}/webhooks/quay?token={token}"
            ))
            .header("Content-Type", "application/json")
            .body(fixture("quay/repo_push.json"))
            .send()
    };
    assert_eq!(post(TOKEN).await.unwrap().status().as_u16(), 202);
    assert_eq!(post(TOKEN).await.unwrap().status().as_u16(), 200);
    let refused = post(WRONG).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(!refused.text().await.unwrap().contains(WRONG));
    // Let the worker process the push and the dispatcher run its
    // resolution (which ends: no api_url).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let jobs: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/api/v1/jobs"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let resolved = jobs["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|j| j["kind"] == "resolve_image" && j["state"] != "pending")
        });
        if resolved {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the push was not resolved: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let output = tokio::time::timeout(Duration::from_secs(15), output)
        .await
        .expect("portcall exits after SIGTERM")
        .unwrap()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(log.contains("webhook refused"), "nothing was logged: {log}");
    assert!(
        log.contains("no api_url"),
        "the resolution did not run: {log}"
    );
    for secret in [TOKEN, WRONG] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
    // The rejection names the credential's place (`?token=`), never its value
    // or the request's query string.
    for line in log.lines().filter(|l| l.contains("?token=")) {
        assert!(line.contains("?token= does not match"), "{line}");
    }
}

#[tokio::test]
async fn a_query_token_never_reaches_the_log_even_at_debug() {
    const TOKEN: &str = "gar-query-token-value";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("gar_token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gar.db").display());
    let extra = format!(
        "[[sources]]\nname = \"gar\"\nkind = \"gar\"\nsecrets = [\"file:{}\"]\n",
        token_file.display()
    );
    let config = write_config(dir.path(), &db_url, true, true, &extra);
    let port = free_port();
    let child = portcall_command(&config)
        .arg("serve")
        .env("RUST_LOG", "debug")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcall starts");
    // Drain the log from the start: a full pipe would block the server.
    let pid = child.id().unwrap().to_string();
    let output = tokio::spawn(child.wait_with_output());
    let client = reqwest::Client::new();
    let url = |query: &str| format!("http://127.0.0.1:{port}/webhooks/gar?{query}");
    wait_until_serving(port).await;
    let body = r#"{"message":{"data":"e30=","messageId":"m-1"},"subscription":"projects/p/subscriptions/s"}"#;
    for (query, expected) in [
        (format!("token={TOKEN}"), 202),
        (format!("token={TOKEN}x"), 401),
        (format!("token={TOKEN}&token={TOKEN}"), 401),
    ] {
        let response = client.post(url(&query)).body(body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{query}");
        assert!(!response.text().await.unwrap().contains(TOKEN));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let output = tokio::time::timeout(Duration::from_secs(15), output)
        .await
        .expect("portcall exits after SIGTERM")
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("webhook refused"), "{stderr}");
    assert!(
        !stderr.contains(TOKEN),
        "the ?token= reached the log:\n{stderr}"
    );
}
