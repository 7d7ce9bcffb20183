//! The client commands of the binary, run as processes against a running
//! portcall: `portcall send` for every source kind, each admin verb in
//! table and `--json` form, the documented exit codes, and completions.

use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::*;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SECRET: &str = "a-registry-hook-s3cret";

/// A source for every kind the base test configuration lacks, each named
/// after its kind and holding [`SECRET`] in `dir`.
fn every_kind(dir: &Path) -> String {
    let path = dir.join("registry-secret");
    std::fs::write(&path, SECRET).unwrap();
    let secret = format!("file:{}", path.display());
    let mut toml = String::new();
    for (name, kind, extra) in [
        ("acr", "acr", ""),
        ("ecr", "ecr", ""),
        ("gar", "gar", ""),
        ("harbor", "harbor", ""),
        ("quay", "quay", ""),
        ("dockerhub", "dockerhub", ""),
        ("jfrog", "jfrog", "registry = \"jfrog.example.com\"\n"),
        (
            "jfrog-signed",
            "jfrog",
            "registry = \"jfrog.example.com\"\nsigned = true\n",
        ),
        ("nexus", "nexus", "registry = \"nexus.example.com\"\n"),
    ] {
        toml.push_str(&format!(
            "\n[[sources]]\nname = \"{name}\"\nkind = \"{kind}\"\nsecrets = [\"{secret}\"]\n{extra}"
        ));
    }
    toml
}

/// `portcall ARGS…` against `app` with the admin token.
pub(crate) async fn portcall(app: &TestApp, args: &[&str]) -> Output {
    portcall_with(app, args, &[("PORTCALL_TOKEN", ADMIN_TOKEN)]).await
}

async fn portcall_with(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTCALL_TOKEN")
        .env_remove("PORTCALL_CONFIG")
        .env("PORTCALL_URL", &app.address)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("portcall runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON:\n{}", stdout(output)))
}

fn fixture_path(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The app with a source of every kind, and the directory holding their
/// secret, which must outlive it.
async fn spawn() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let extra = every_kind(dir.path());
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        Spawn {
            extra_config: extra,
            ..Spawn::default()
        },
    )
    .await;
    (app, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_every_kind_as_its_verifier_expects() {
    let (app, _secrets) = spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        format!("file:{}", path.display())
    };
    let github = write("github", GITHUB_SECRET);
    let gitlab = write("gitlab", GITLAB_TOKEN);
    let registry = write("registry", REGISTRY_TOKEN);
    let standard = write("standard", STANDARD_SECRET);
    let other = write("other", SECRET);
    // A Pub/Sub push envelope around the Artifact Registry notification.
    let gar = {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(fixture("gar/insert.json"));
        let envelope = serde_json::json!({
            "message": {"attributes": {}, "data": data, "messageId": "77", "publishTime": "2026-12-01T10:00:00.000Z"},
            "subscription": "projects/my-project/subscriptions/portcall"
        });
        let path = dir.path().join("gar.json");
        std::fs::write(&path, envelope.to_string()).unwrap();
        path.display().to_string()
    };
    let wrong = write("wrong", "not-the-secret");
    // (what, secret, args)
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "github",
            &github,
            vec!["--kind", "github", "--event", "push", "github/push.json"],
        ),
        (
            "gitlab",
            &gitlab,
            vec![
                "--kind",
                "gitlab",
                "--event",
                "Push Hook",
                "gitlab/push.json",
            ],
        ),
        (
            "gitlab signed",
            STANDARD_SECRET,
            vec![
                "--kind",
                "gitlab",
                "--signed",
                "--event",
                "Push Hook",
                "gitlab/push.json",
            ],
        ),
        (
            "distribution",
            &registry,
            vec![
                "--kind",
                "distribution",
                "--source",
                "registry",
                "distribution/manifest-push.json",
            ],
        ),
        (
            "standard",
            &standard,
            vec![
                "--kind",
                "standard",
                "--source",
                "ci",
                "standard-webhooks/contact.created.json",
            ],
        ),
        ("acr", &other, vec!["--kind", "acr", "acr/push.json"]),
        (
            "ecr",
            &other,
            vec!["--kind", "ecr", "ecr/image-action.push.json"],
        ),
        (
            "harbor",
            &other,
            vec!["--kind", "harbor", "harbor/PUSH_ARTIFACT.json"],
        ),
        (
            "jfrog",
            &other,
            vec!["--kind", "jfrog", "jfrog/docker.pushed.json"],
        ),
        (
            "jfrog signed",
            &other,
            vec![
                "--kind",
                "jfrog",
                "--signed",
                "--source",
                "jfrog-signed",
                "jfrog/docker.pushed.json",
            ],
        ),
        (
            "nexus",
            &other,
            vec![
                "--kind",
                "nexus",
                "--event",
                "rm:repository:component",
                "nexus/component.created.docker.json",
            ],
        ),
        (
            "quay",
            &other,
            vec!["--kind", "quay", "quay/repo_push.json"],
        ),
        (
            "dockerhub",
            &other,
            vec!["--kind", "dockerhub", "dockerhub/push.json"],
        ),
        ("gar", &other, vec!["--kind", "gar", &gar]),
    ];
    let signing_key = write("gitlab-signing", STANDARD_SECRET);
    for (what, secret, args) in cases {
        let secret = if secret == STANDARD_SECRET {
            signing_key.as_str()
        } else {
            secret
        };
        let (file, flags) = args.split_last().unwrap();
        let file = if file.starts_with('/') {
            file.to_string()
        } else {
            fixture_path(file)
        };
        let id = format!("cli-{}", what.replace(' ', "-"));
        let takes_id = ["github", "gitlab", "gitlab signed", "standard", "nexus"].contains(&what);
        let mut send: Vec<&str> = vec!["send", "--secret", secret];
        send.extend(flags);
        if takes_id {
            send.extend(["--delivery-id", &id]);
        }
        send.push(&file);
        let first = portcall(&app, &send).await;
        assert_exit(&first, 0);
        assert!(
            stdout(&first).starts_with("HTTP 202 Accepted\n"),
            "{what}: {}",
            stdout(&first)
        );
        assert_eq!(json_after_status(&first)["status"], "accepted", "{what}");
        if takes_id {
            assert_eq!(json_after_status(&first)["delivery"], id.as_str(), "{what}");
        }
        let again = portcall(&app, &send).await;
        assert_exit(&again, 0);
        assert!(
            stdout(&again).starts_with("HTTP 200 OK\n"),
            "{what}: {}",
            stdout(&again)
        );
        assert_eq!(json_after_status(&again)["status"], "duplicate", "{what}");

        let mut refused = send.clone();
        refused[2] = &wrong;
        let refused = portcall(&app, &refused).await;
        assert_exit(&refused, 4);
        assert!(
            stdout(&refused).starts_with("HTTP 401 Unauthorized\n"),
            "{what}: {}",
            stdout(&refused)
        );
        let all = format!("{}{}", stdout(&refused), stderr(&refused));
        assert!(
            !all.contains(SECRET) && !all.contains("not-the-secret"),
            "{what} echoes a secret:\n{all}"
        );
    }
    app.finish().await;
}

/// The JSON body `send` prints after its `HTTP …` line.
fn json_after_status(output: &Output) -> Value {
    let text = stdout(output);
    let body = text.split_once('\n').map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn send_takes_env_references_generates_ids_and_refuses_bad_usage() {
    let (app, _secrets) = spawn().await;
    let push = fixture_path("github/push.json");
    let env = [("PORTCALL_TEST_HOOK", GITHUB_SECRET)];
    let args = [
        "send",
        "--kind",
        "github",
        "--event",
        "push",
        "--secret",
        "env:PORTCALL_TEST_HOOK",
        &push,
    ];
    let first = portcall_with(&app, &args, &env).await;
    assert_exit(&first, 0);
    // A fresh delivery id each time: both are accepted.
    let second = portcall_with(&app, &args, &env).await;
    assert_exit(&second, 0);
    assert_ne!(
        json_after_status(&first)["delivery"],
        json_after_status(&second)["delivery"]
    );

    // From stdin, form-encoded as GitHub sends `payload=`.
    let form = format!(
        "payload={}",
        form_urlencoded::byte_serialize(&fixture("github/push.json")).collect::<String>()
    );
    let mut child = Command::new(BIN)
        .args([
            "send",
            "--kind",
            "github",
            "--event",
            "push",
            "--secret",
            "env:PORTCALL_TEST_HOOK",
        ])
        .args([
            "--content-type",
            "application/x-www-form-urlencoded",
            "--delivery-id",
            "from-stdin",
            "-",
        ])
        .env("PORTCALL_URL", &app.address)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(form.as_bytes()).await.unwrap();
    }
    let piped = child.wait_with_output().await.unwrap();
    assert_exit(&piped, 0);
    assert_eq!(json_after_status(&piped)["delivery"], "from-stdin");
    assert_eq!(
        app.received_body("github", "from-stdin").await,
        form.as_bytes()
    );

    for (case, args, needle) in [
        (
            "a literal secret",
            vec![
                "send",
                "--kind",
                "github",
                "--event",
                "push",
                "--secret",
                GITHUB_SECRET,
                &push,
            ],
            "literal",
        ),
        (
            "an unset variable",
            vec![
                "send",
                "--kind",
                "github",
                "--event",
                "push",
                "--secret",
                "env:PORTCALL_SURELY_UNSET",
                &push,
            ],
            "PORTCALL_SURELY_UNSET",
        ),
        (
            "no event for github",
            vec![
                "send",
                "--kind",
                "github",
                "--secret",
                "env:PORTCALL_TEST_HOOK",
                &push,
            ],
            "--event",
        ),
        (
            "a delivery id for harbor",
            vec![
                "send",
                "--kind",
                "harbor",
                "--delivery-id",
                "x",
                "--secret",
                "env:PORTCALL_TEST_HOOK",
                &push,
            ],
            "delivery id",
        ),
        (
            "an unknown kind",
            vec![
                "send",
                "--kind",
                "bitbucket",
                "--secret",
                "env:PORTCALL_TEST_HOOK",
                &push,
            ],
            "bitbucket",
        ),
    ] {
        let output = portcall_with(&app, &args, &env).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(needle),
            "{case}: {}",
            stderr(&output)
        );
        assert!(
            !stderr(&output).contains("Secret to Everybody"),
            "{case} echoes the secret"
        );
    }
    let unknown = portcall_with(
        &app,
        &[
            "send",
            "--kind",
            "github",
            "--event",
            "push",
            "--source",
            "nowhere",
            "--secret",
            "env:PORTCALL_TEST_HOOK",
            &push,
        ],
        &env,
    )
    .await;
    assert_exit(&unknown, 3);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_verbs_work_in_table_and_json_form() {
    let (app, _secrets) = spawn().await;
    assert_eq!(
        app.post_image_push("ev-sha", "octo-org/hello-world", SHA, DIGEST)
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post_image_push("ev-tag", "octo-org/hello-world", "v1.0.0", DIGEST)
            .await
            .status(),
        202
    );
    let jobs = app.wait_until_settled(20).await;
    assert!(!jobs.is_empty(), "the push enqueues jobs");

    // deliveries list, newest first.
    let table = portcall(&app, &["deliveries", "list"]).await;
    assert_exit(&table, 0);
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID  SOURCE    EVENT"), "{text}");
    assert!(
        lines[1].contains("ev-tag") && lines[2].contains("ev-sha"),
        "{text}"
    );
    let listed = json(&portcall(&app, &["deliveries", "list", "--json", "--limit", "1"]).await);
    assert_eq!(listed["deliveries"].as_array().unwrap().len(), 1);
    let newest = listed["deliveries"][0]["id"].as_i64().unwrap();
    assert_eq!(listed["next_before"], newest);
    let paged = portcall(&app, &["deliveries", "list", "--limit", "1"]).await;
    assert!(
        stderr(&paged).contains(&format!("--before {newest}")),
        "{}",
        stderr(&paged)
    );
    let older = json(
        &portcall(
            &app,
            &[
                "deliveries",
                "list",
                "--json",
                "--before",
                &newest.to_string(),
            ],
        )
        .await,
    );
    assert!(older["deliveries"][0]["id"].as_i64().unwrap() < newest);
    let filtered = json(
        &portcall(
            &app,
            &["deliveries", "list", "--json", "--status", "failed"],
        )
        .await,
    );
    assert_eq!(filtered["deliveries"], serde_json::json!([]));

    // deliveries show and replay.
    let id = newest.to_string();
    let shown = portcall(&app, &["deliveries", "show", &id]).await;
    assert_exit(&shown, 0);
    assert!(
        stdout(&shown).contains("delivery:         ev-tag\n"),
        "{}",
        stdout(&shown)
    );
    assert!(stdout(&shown).contains("headers:\n"), "{}", stdout(&shown));
    assert!(!stdout(&shown).contains(REGISTRY_TOKEN));
    assert!(
        stdout(&shown).contains("\"id\": \"ev-tag\""),
        "the body: {}",
        stdout(&shown)
    );
    assert_eq!(
        json(&portcall(&app, &["deliveries", "show", &id, "--json"]).await)["delivery_id"],
        "ev-tag"
    );
    let replayed = portcall(&app, &["deliveries", "replay", &id]).await;
    assert_exit(&replayed, 0);
    assert!(
        stdout(&replayed).contains(&format!("delivery {id} queued for replay")),
        "{}",
        stdout(&replayed)
    );
    app.wait_until_settled(20).await;
    let replayed = json(&portcall(&app, &["deliveries", "replay", &id, "--json"]).await);
    assert_eq!(replayed["id"], newest);
    app.wait_until_settled(20).await;

    // jobs list and retry.
    let table = portcall(&app, &["jobs", "list", "--state", "skipped"]).await;
    assert_exit(&table, 0);
    assert!(stdout(&table).starts_with("ID  KIND"), "{}", stdout(&table));
    assert!(stdout(&table).contains("skipped"));
    assert!(
        stdout(&table).contains("no [github] provider is configured"),
        "{}",
        stdout(&table)
    );
    let skipped = json(&portcall(&app, &["jobs", "list", "--state", "skipped", "--json"]).await);
    let job = skipped["jobs"][0]["id"].as_i64().unwrap().to_string();
    let retried = portcall(&app, &["jobs", "retry", &job]).await;
    assert_exit(&retried, 0);
    assert!(
        stdout(&retried).contains(&format!("job {job} queued again")),
        "{}",
        stdout(&retried)
    );
    app.wait_until_settled(20).await;
    assert_eq!(
        json(&portcall(&app, &["jobs", "retry", &job, "--json"]).await)["state"],
        "pending"
    );
    app.wait_until_settled(20).await;

    // releases list and show.
    let table = portcall(&app, &["releases", "list"]).await;
    assert_exit(&table, 0);
    assert!(
        stdout(&table).contains("hello-world") && stdout(&table).contains("v1.0.0"),
        "{}",
        stdout(&table)
    );
    assert!(
        stdout(&table).contains("sha256:0123456789ab"),
        "digests are shortened: {}",
        stdout(&table)
    );
    let releases = json(
        &portcall(
            &app,
            &["releases", "list", "--json", "--component", "hello-world"],
        )
        .await,
    );
    let release = releases["releases"][0]["id"].as_i64().unwrap().to_string();
    let shown = portcall(&app, &["releases", "show", &release]).await;
    assert_exit(&shown, 0);
    assert!(
        stdout(&shown).contains(DIGEST) && stdout(&shown).contains("no deployments"),
        "{}",
        stdout(&shown)
    );
    assert_eq!(
        json(&portcall(&app, &["releases", "show", &release, "--json"]).await)["tag"],
        "v1.0.0"
    );

    // service accounts: create, list, revoke; the token works until revoked.
    let created = portcall(
        &app,
        &[
            "service-accounts",
            "create",
            "--name",
            "ci",
            "--scope",
            "release:read",
            "--expires-in",
            "30d",
        ],
    )
    .await;
    assert_exit(&created, 0);
    let token_line = stdout(&created)
        .lines()
        .find(|l| l.starts_with("token:"))
        .unwrap()
        .to_owned();
    let token = token_line.trim_start_matches("token:").trim().to_owned();
    let ci = portcall_with(&app, &["releases", "list"], &[("PORTCALL_TOKEN", &token)]).await;
    assert_exit(&ci, 0);
    let forbidden = portcall_with(&app, &["jobs", "list"], &[("PORTCALL_TOKEN", &token)]).await;
    assert_exit(&forbidden, 4);
    let other = json(
        &portcall(
            &app,
            &[
                "service-accounts",
                "create",
                "--json",
                "--name",
                "cd",
                "--scope",
                "deployment:report",
                "--scope",
                "release:read",
            ],
        )
        .await,
    );
    assert_eq!(
        other["scopes"],
        serde_json::json!(["release:read", "deployment:report"])
    );
    let table = portcall(&app, &["service-accounts", "list"]).await;
    let text = stdout(&table);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.find(" cd ").unwrap() < text.find(" ci ").unwrap(),
        "newest first: {text}"
    );
    assert!(!text.contains(&token));
    let id = json(&portcall(&app, &["service-accounts", "list", "--json"]).await)
        ["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = portcall(&app, &["service-accounts", "revoke", &id]).await;
    assert_exit(&revoked, 0);
    assert!(stdout(&revoked).contains("revoked"));
    assert_exit(
        &portcall_with(&app, &["releases", "list"], &[("PORTCALL_TOKEN", &token)]).await,
        4,
    );
    let again = portcall(&app, &["service-accounts", "revoke", &id, "--json"]).await;
    assert_exit(&again, 1);
    assert!(
        stderr(&again).contains("already revoked"),
        "{}",
        stderr(&again)
    );

    // integrations list, test, types.
    let table = portcall(&app, &["integrations", "list"]).await;
    assert_exit(&table, 0);
    assert!(
        stdout(&table).starts_with("NAME") && stdout(&table).contains("source:github"),
        "{}",
        stdout(&table)
    );
    let listed = json(&portcall(&app, &["integrations", "list", "--json"]).await);
    assert!(listed["integrations"].as_array().unwrap().len() >= 4);
    let tested = portcall(&app, &["integrations", "test", "github"]).await;
    assert_exit(&tested, 0);
    assert!(
        stdout(&tested).contains("connectivity"),
        "{}",
        stdout(&tested)
    );
    assert_eq!(
        json(&portcall(&app, &["integrations", "test", "github", "--json"]).await)["name"],
        "github"
    );
    let types = portcall(&app, &["integrations", "types"]).await;
    assert_exit(&types, 0);
    assert!(
        stdout(&types).contains("source:nexus") && stdout(&types).contains("provider:gitlab"),
        "{}",
        stdout(&types)
    );
    let nexus = portcall(&app, &["integrations", "types", "nexus"]).await;
    assert_exit(&nexus, 0);
    assert!(
        stdout(&nexus).contains("FIELD") && stdout(&nexus).contains("secrets"),
        "{}",
        stdout(&nexus)
    );
    assert_eq!(
        json(&portcall(&app, &["integrations", "types", "source:github", "--json"]).await)["kind"],
        "source:github"
    );
    assert_exit(
        &portcall(&app, &["integrations", "types", "github"]).await,
        2,
    );
    assert!(json(&portcall(&app, &["integrations", "types", "--json"]).await)["types"].is_array());
    app.finish().await;
}

#[tokio::test]
async fn exit_codes_tell_unauthorized_not_found_and_unreachable_apart() {
    let (app, _secrets) = spawn().await;
    for args in [
        &["deliveries", "show", "999999"][..],
        &["deliveries", "replay", "999999"],
        &["jobs", "retry", "999999"],
        &["releases", "show", "999999"],
        &["service-accounts", "revoke", "no-such-account"],
        &["integrations", "test", "nothing"],
        &["integrations", "types", "source:svn"],
    ] {
        let output = portcall(&app, args).await;
        assert_exit(&output, 3);
        assert!(
            stderr(&output).starts_with("error: "),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let wrong = portcall_with(
        &app,
        &["deliveries", "list"],
        &[("PORTCALL_TOKEN", "wrong-token")],
    )
    .await;
    assert_exit(&wrong, 4);
    assert!(
        stderr(&wrong).contains("unauthorized"),
        "{}",
        stderr(&wrong)
    );
    assert!(
        !stderr(&wrong).contains("wrong-token"),
        "the token is never echoed"
    );
    assert_exit(&portcall_with(&app, &["deliveries", "list"], &[]).await, 2);
    let bad_limit = portcall(&app, &["jobs", "list", "--limit", "9999"]).await;
    assert_exit(&bad_limit, 1);
    assert!(
        stderr(&bad_limit).contains("limit"),
        "{}",
        stderr(&bad_limit)
    );
    assert_exit(&portcall(&app, &["deliveries", "frobnicate"]).await, 2);

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let unreachable = portcall(&app, &["deliveries", "list", "--url", &url]).await;
    assert_exit(&unreachable, 5);
    assert!(
        stderr(&unreachable).contains(&url),
        "{}",
        stderr(&unreachable)
    );
    let push = fixture_path("quay/repo_push.json");
    let path = app.settings_path.parent().unwrap().join("gh");
    let secret = format!("file:{}", path.display());
    let sent = portcall(
        &app,
        &[
            "send", "--kind", "quay", "--secret", &secret, "--url", &url, &push,
        ],
    )
    .await;
    assert_exit(&sent, 5);
    assert!(
        !stderr(&sent).contains("token="),
        "the ?token= never shows: {}",
        stderr(&sent)
    );
    app.finish().await;
}

#[tokio::test]
async fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef portcall"),
        ("fish", "complete -c portcall"),
    ] {
        let output = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for verb in ["deliveries", "service-accounts", "send"] {
            assert!(script.contains(verb), "{shell} lacks {verb}");
        }
    }
    let output = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn help_documents_the_verbs_and_exit_codes() {
    for args in [
        &["--help"][..],
        &["deliveries", "--help"],
        &["send", "--help"],
        &["service-accounts", "--help"],
    ] {
        let output = Command::new(BIN).args(args).output().await.unwrap();
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        for needle in [
            "Exit codes:",
            "5  the server is unreachable",
            "PORTCALL_TOKEN",
        ] {
            assert!(text.contains(needle), "{args:?} lacks {needle:?}:\n{text}");
        }
    }
}
