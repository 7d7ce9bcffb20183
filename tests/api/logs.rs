//! `portcall --log-format json serve`: every line is a JSON object; lines
//! about a delivery or a job name its `delivery.id`, `integration`,
//! `provider` and `operation` (and `commit` where known); no line carries a
//! secret, a token or a body.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use crate::helpers::*;
use crate::providers::*;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const REPO: &str = "octo-org/api";

/// The fields of a line's spans (outermost first), merged into one object.
fn span_fields(line: &Value) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    for span in line["spans"].as_array().into_iter().flatten() {
        if let Some(object) = span.as_object() {
            fields.extend(object.clone());
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_delivery_and_job_and_never_a_secret_or_body() {
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    github.mount_posting(REPO, SHA, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let component = format!(
        "\n[[components]]\nname = \"api\"\nimage = \"registry.example.com/{REPO}\"\nrepository = \"github:{REPO}\"\nrelease_tags = [\"*\"]\n"
    );
    let config = write_config(
        dir.path(),
        &db_url,
        true,
        true,
        &(github.config() + &component),
    );
    let port = free_port();
    let child = Command::new(BIN)
        .arg("--log-format")
        .arg("json")
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("PORTCALL_CONFIG")
        .env_remove("PORTCALL_LOG_FORMAT")
        // Debug: the request path's own lines too.
        .env("RUST_LOG", "portcall=debug,info")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("portcall starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_serving(port).await;

    // A GitHub push, then an image push that makes a release and its jobs.
    let body = fixture("github/push.json");
    let mut request = client.post(format!("{base}/webhooks/github"));
    for (name, value) in github_headers(GITHUB_SECRET, "push", "log-delivery-1", &body) {
        request = request.header(name, value);
    }
    assert_eq!(
        request.body(body).send().await.unwrap().status().as_u16(),
        202
    );
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(b"api build")));
    let envelope = json!({"events": [{
        "id": "log-image-1",
        "timestamp": "2026-12-01T10:00:00.000000000Z",
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "size": 594, "digest": digest, "repository": REPO, "tag": SHA,
                   "url": format!("http://127.0.0.1:5000/v2/{REPO}/manifests/{digest}")},
        "request": {"id": "r-1", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000",
                    "method": "PUT", "useragent": "skopeo/1.9.3"},
        "actor": {}, "source": {"addr": "registry:5000", "instanceID": "i-1"}
    }]});
    let pushed = client
        .post(format!("{base}/webhooks/registry"))
        .bearer_auth(REGISTRY_TOKEN)
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(serde_json::to_vec(&envelope).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 202);
    // Until GitHub got the commit status: the job ran and logged.
    for _ in 0..200 {
        if !github
            .requests("POST", &format!("/repos/{REPO}/statuses/{SHA}"))
            .await
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap()
        .success());
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("portcall exits after SIGTERM")
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or("").to_owned();

    // The worker's line about the GitHub push.
    let done = lines
        .iter()
        .find(|l| {
            message(l) == "delivery done"
                && span_fields(l).get("delivery.id") == Some(&json!("log-delivery-1"))
        })
        .unwrap_or_else(|| panic!("no 'delivery done' line for log-delivery-1:\n{stderr}"));
    let fields = span_fields(done);
    assert_eq!(fields["integration"], "github", "{done}");
    assert_eq!(fields["provider"], "github", "{done}");
    assert_eq!(fields["operation"], "push", "{done}");
    assert!(
        fields["commit"].as_str().is_some_and(|c| c.len() == 40),
        "{done}"
    );

    // The request path's line about it.
    let stored = lines
        .iter()
        .find(|l| {
            message(l) == "webhook stored"
                && span_fields(l).get("delivery.id") == Some(&json!("log-delivery-1"))
        })
        .unwrap_or_else(|| panic!("no 'webhook stored' line for log-delivery-1:\n{stderr}"));
    let fields = span_fields(stored);
    assert_eq!(
        (
            &fields["integration"],
            &fields["provider"],
            &fields["operation"]
        ),
        (&json!("github"), &json!("github"), &json!("receive"))
    );

    // A job's line names the provider, the operation and the commit.
    let job = lines
        .iter()
        .find(|l| {
            message(l) == "job done"
                && span_fields(l).get("operation") == Some(&json!("commit_status"))
        })
        .unwrap_or_else(|| panic!("no 'job done' line for the commit status:\n{stderr}"));
    let fields = span_fields(job);
    assert_eq!(fields["integration"], "provider:github", "{job}");
    assert_eq!(fields["provider"], "github", "{job}");
    assert_eq!(fields["commit"], SHA, "{job}");

    // Never a secret, a token or a body.
    for secret in [
        GITHUB_SECRET,
        REGISTRY_TOKEN,
        ADMIN_TOKEN,
        "Initial commit",
        "ghs_",
    ] {
        assert!(
            !stderr.contains(secret),
            "{secret:?} reached the log:\n{stderr}"
        );
    }
}
