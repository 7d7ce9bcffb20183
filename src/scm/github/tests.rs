//! The adapter against a wiremock GitHub that answers with the documented
//! example bodies (`fixtures/github-api/`). Every request body the adapter
//! sends is checked against the operation's request schema, every app JWT
//! against the test key's public half, and every mock says how often it
//! must be called.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use super::*;
use crate::domain::{Environment, HttpUrl};
use crate::scm::{comment_marker, Annotation, CheckConclusion, DeploymentState, StatusState};

const APP_ID: u64 = 123_456;
const KEY_PEM: &str = include_str!("../../../fixtures/github/test-app-key.pem");
const PUBLIC_KEY_PEM: &str = include_str!("../../../fixtures/github/test-app-key.pub.pem");

/// The documented answers, each the first success example of its operation.
mod answer {
    pub const ACCESS_TOKEN: &str =
        include_str!("../../../fixtures/github-api/apps/create-installation-access-token.json");
    pub const REPO_INSTALLATION: &str =
        include_str!("../../../fixtures/github-api/apps/get-repo-installation.json");
    pub const CHECK_RUN_CREATED: &str =
        include_str!("../../../fixtures/github-api/checks/create.json");
    pub const CHECK_RUN_UPDATED: &str =
        include_str!("../../../fixtures/github-api/checks/update.json");
    pub const STATUS: &str =
        include_str!("../../../fixtures/github-api/repos/create-commit-status.json");
    pub const STATUSES: &str = include_str!(
        "../../../fixtures/github-api/repos/list-commit-statuses-for-a-reference.json"
    );
    pub const CHECK_RUNS: &str =
        include_str!("../../../fixtures/github-api/checks/list-for-ref.json");
    pub const PULLS_OF_COMMIT: &str = include_str!(
        "../../../fixtures/github-api/repos/list-pull-requests-associated-with-commit.json"
    );
    pub const COMMENTS: &str =
        include_str!("../../../fixtures/github-api/issues/list-comments.json");
    pub const COMMENT_CREATED: &str =
        include_str!("../../../fixtures/github-api/issues/create-comment.json");
    pub const COMMENT_UPDATED: &str =
        include_str!("../../../fixtures/github-api/issues/update-comment.json");
    pub const DEPLOYMENT: &str =
        include_str!("../../../fixtures/github-api/repos/create-deployment.json");
    pub const DEPLOYMENT_STATUS: &str =
        include_str!("../../../fixtures/github-api/repos/create-deployment-status.json");
}

/// The request-body schemas of the operations the adapter calls.
mod schema {
    pub const ACCESS_TOKEN: &str = include_str!(
        "../../../fixtures/github-api/apps/create-installation-access-token.request-schema.json"
    );
    pub const CHECK_RUN_CREATE: &str =
        include_str!("../../../fixtures/github-api/checks/create.request-schema.json");
    pub const CHECK_RUN_UPDATE: &str =
        include_str!("../../../fixtures/github-api/checks/update.request-schema.json");
    pub const STATUS: &str =
        include_str!("../../../fixtures/github-api/repos/create-commit-status.request-schema.json");
    pub const COMMENT_CREATE: &str =
        include_str!("../../../fixtures/github-api/issues/create-comment.request-schema.json");
    pub const COMMENT_UPDATE: &str =
        include_str!("../../../fixtures/github-api/issues/update-comment.request-schema.json");
    pub const DEPLOYMENT: &str =
        include_str!("../../../fixtures/github-api/repos/create-deployment.request-schema.json");
    pub const DEPLOYMENT_STATUS: &str = include_str!(
        "../../../fixtures/github-api/repos/create-deployment-status.request-schema.json"
    );
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).expect("fixtures are JSON")
}

fn now() -> i64 {
    Clock::system().now_unix()
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------
// A mock GitHub and a client pointed at it.

/// The installation id in the documented `GET /repos/{o}/{r}/installation`
/// answer.
const INSTALLATION: u64 = 1;
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

struct Github {
    server: MockServer,
    client: GithubClient,
    repo: RepoSlug,
}

impl Github {
    /// A client for a fresh mock, with the repository's installation
    /// remembered (as the webhook handler would).
    async fn start() -> Self {
        let github = Self::start_unremembered().await;
        github
            .client
            .remember_installation(&github.repo, INSTALLATION);
        github
    }

    async fn start_unremembered() -> Self {
        let server = MockServer::start().await;
        let client = client_for(&server.uri());
        let repo = RepoSlug::parse("github:octo-org/hello-world").unwrap();
        Self {
            server,
            client,
            repo,
        }
    }

    fn api(&self, rest: &str) -> String {
        format!("/repos/octo-org/hello-world{rest}")
    }

    /// Mints `token` for the installation, `times` times exactly.
    async fn mints(&self, token: &str, times: u64) {
        Mock::given(method("POST"))
            .and(path(format!(
                "/app/installations/{INSTALLATION}/access_tokens"
            )))
            .respond_with(ResponseTemplate::new(201).set_body_json(token_answer(token)))
            .expect(times)
            .named("mint an installation token")
            .mount(&self.server)
            .await;
    }

    async fn requests(&self, verb: &str, to: &str) -> Vec<Request> {
        let all = self
            .server
            .received_requests()
            .await
            .expect("recording is on");
        all.into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path() == to)
            .collect()
    }

    /// Every app JWT that reached the access-token endpoint is valid.
    async fn assert_mints_carried_app_jwts(&self) {
        let mints = self
            .requests(
                "POST",
                &format!("/app/installations/{INSTALLATION}/access_tokens"),
            )
            .await;
        assert!(!mints.is_empty());
        for mint in &mints {
            assert_app_jwt(mint);
            // octocrab sends `{}` here; we send nothing, which the body
            // schema allows (the body is optional).
            if !mint.body.is_empty() {
                assert_valid(schema::ACCESS_TOKEN, &mint.body_json().unwrap());
            }
        }
    }
}

fn client_for(api_url: &str) -> GithubClient {
    GithubClient::new(&GithubSettings {
        app_id: APP_ID,
        private_key: SecretString::from(KEY_PEM),
        api_url: api_url.to_owned(),
        request_timeout: std::time::Duration::from_secs(60),
        recovery: Default::default(),
    })
    .expect("the test key and URL are valid")
}

/// The documented token answer, with the two values these tests need
/// changed: the documented token expired in 2016, and a test that tells
/// tokens apart needs its own value.
fn token_answer(token: &str) -> Value {
    let mut answer = parsed(answer::ACCESS_TOKEN);
    answer["expires_at"] = json!(rfc3339(now() + 3600));
    answer["token"] = json!(token);
    answer
}

fn github_error(message: &str) -> Value {
    json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
}

#[derive(Deserialize)]
struct AppClaims {
    iat: i64,
    exp: i64,
    iss: u64,
}

/// RS256, signed by the test key, `iss` = the app id, issued at least 55
/// seconds ago, living at most ten minutes.
fn assert_app_jwt(request: &Request) {
    let header = request.headers.get("authorization").expect("authorization");
    let jwt = header
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .expect("a bearer JWT");
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<AppClaims>(jwt, &key, &Validation::new(Algorithm::RS256))
        .expect("a valid RS256 JWT signed by the app key")
        .claims;
    assert_eq!(claims.iss, APP_ID);
    assert!(
        claims.iat <= now() - 55,
        "iat {} is not backdated",
        claims.iat
    );
    assert!(
        claims.exp - claims.iat <= 600,
        "lives longer than 10 minutes"
    );
    assert!(claims.exp > now());
}

// ---------------------------------------------------------------------------
// A small check of request bodies against the JSON schemas: the keywords
// GitHub's request schemas use (type, enum, required, properties, items,
// maxItems, maxLength, oneOf, anyOf).

fn violations(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let is = |t: &str| match t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => false,
        };
        if !allowed.iter().any(|t| is(t)) {
            out.push(format!("{at}: {value} is not of type {types}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            out.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let (Some(max), Some(s)) = (
        schema.get("maxLength").and_then(Value::as_u64),
        value.as_str(),
    ) {
        if s.chars().count() as u64 > max {
            out.push(format!("{at}: longer than {max}"));
        }
    }
    if let Some(object) = value.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                out.push(format!("{at}: required {key:?} is missing"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in properties {
                if let Some(v) = object.get(key) {
                    violations(sub, v, &format!("{at}.{key}"), out);
                }
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                out.push(format!(
                    "{at}: {} items, at most {max} allowed",
                    items.len()
                ));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                violations(item_schema, item, &format!("{at}[{i}]"), out);
            }
        }
    }
    let passing = |alternatives: &Value| {
        alternatives
            .as_array()
            .into_iter()
            .flatten()
            .filter(|alt| {
                let mut sub = Vec::new();
                violations(alt, value, at, &mut sub);
                sub.is_empty()
            })
            .count()
    };
    if let Some(alternatives) = schema.get("oneOf") {
        if passing(alternatives) != 1 {
            out.push(format!("{at}: does not match exactly one of oneOf"));
        }
    }
    if let Some(alternatives) = schema.get("anyOf") {
        if passing(alternatives) == 0 {
            out.push(format!("{at}: matches none of anyOf"));
        }
    }
}

fn assert_valid(schema: &str, body: &Value) {
    let mut out = Vec::new();
    violations(&parsed(schema), body, "body", &mut out);
    assert!(
        out.is_empty(),
        "request body breaks the schema: {out:#?}\n{body:#}"
    );
}

#[test]
fn the_schema_check_catches_what_github_would_refuse() {
    let base = json!({"name": "n", "head_sha": SHA, "status": "completed", "conclusion": "success",
                      "output": {"title": "t", "summary": "s"}});
    assert_valid(schema::CHECK_RUN_CREATE, &base);
    let broken = [
        json!({"head_sha": SHA}),
        json!({"name": "n", "head_sha": SHA, "status": "completed"}),
        json!({"name": "n", "head_sha": SHA, "status": "done", "conclusion": "success"}),
        json!({"name": "n", "head_sha": SHA, "status": "completed", "conclusion": "success",
               "output": {"title": "t"}}),
        json!({"name": "n", "head_sha": 7, "status": "completed", "conclusion": "success"}),
    ];
    for body in broken {
        let mut out = Vec::new();
        violations(&parsed(schema::CHECK_RUN_CREATE), &body, "body", &mut out);
        assert!(!out.is_empty(), "{body} passed");
    }
}

// ---------------------------------------------------------------------------
// Construction.

#[tokio::test]
async fn a_bad_key_or_url_is_refused_without_showing_the_key() {
    let settings = |key: &str, url: &str| GithubSettings {
        app_id: APP_ID,
        private_key: SecretString::from(key),
        api_url: url.to_owned(),
        request_timeout: std::time::Duration::from_secs(60),
        recovery: Default::default(),
    };
    let secret_garbage =
        "-----BEGIN RSA PRIVATE KEY-----\nTUlJc2VjcmV0\n-----END RSA PRIVATE KEY-----\n";
    let err = GithubClient::new(&settings(secret_garbage, "https://api.github.com")).unwrap_err();
    assert!(matches!(err, GithubSetupError::InvalidKey));
    assert!(!format!("{err} {err:?}").contains("TUlJc2VjcmV0"));
    for url in ["api.github.com", "ftp://example.com", "https://"] {
        let err = GithubClient::new(&settings(KEY_PEM, url)).unwrap_err();
        assert!(
            matches!(err, GithubSetupError::InvalidApiUrl(_)),
            "{url}: {err}"
        );
    }
    let client = GithubClient::new(&settings(KEY_PEM, "https://ghe.example.com/api/v3/")).unwrap();
    assert!(!format!("{client:?}").contains("PRIVATE"));
}

// ---------------------------------------------------------------------------
// Commit statuses.

#[tokio::test]
async fn a_status_is_posted_in_githubs_words_with_a_cut_description() {
    let gh = Github::start().await;
    gh.mints("ghs_token_one", 1).await;
    Mock::given(method("POST"))
        .and(path(gh.api(&format!("/statuses/{SHA}"))))
        .and(bearer_token("ghs_token_one"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(2)
        .mount(&gh.server)
        .await;
    let sha = CommitSha::parse(SHA).unwrap();

    let long = CommitStatus {
        context: "portcall/release".into(),
        state: StatusState::InProgress,
        description: "é".repeat(200),
        target_url: Some("https://portcall.example.com/releases/7".into()),
    };
    gh.client.post_status(&gh.repo, &sha, &long).await.unwrap();
    let bare = CommitStatus {
        context: "portcall/release".into(),
        state: StatusState::Inactive,
        description: "withdrawn".into(),
        target_url: None,
    };
    gh.client.post_status(&gh.repo, &sha, &bare).await.unwrap();

    let sent: Vec<Value> = gh
        .requests("POST", &gh.api(&format!("/statuses/{SHA}")))
        .await
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(
        sent,
        [
            json!({"state": "pending", "target_url": "https://portcall.example.com/releases/7",
                   "description": "é".repeat(140), "context": "portcall/release"}),
            json!({"state": "error", "description": "withdrawn", "context": "portcall/release"}),
        ]
    );
    for body in &sent {
        assert_valid(schema::STATUS, body);
    }
    gh.assert_mints_carried_app_jwts().await;
}

#[tokio::test]
async fn github_enterprise_paths_keep_the_api_prefix() {
    let server = MockServer::start().await;
    let client = client_for(&format!("{}/api/v3", server.uri()));
    let repo = RepoSlug::parse("github:octo-org/hello-world").unwrap();
    client.remember_installation(&repo, INSTALLATION);
    Mock::given(method("POST"))
        .and(path(format!(
            "/api/v3/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(token_answer("ghs_ghe")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/api/v3/repos/octo-org/hello-world/statuses/{SHA}"
        )))
        .and(bearer_token("ghs_ghe"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(1)
        .mount(&server)
        .await;
    let status = CommitStatus {
        context: "portcall/release".into(),
        state: StatusState::Success,
        description: "released".into(),
        target_url: None,
    };
    client
        .post_status(&repo, &CommitSha::parse(SHA).unwrap(), &status)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Check runs.

fn annotation(i: usize) -> Annotation {
    Annotation {
        path: "deploy/values.yaml".into(),
        start_line: i as u32 + 1,
        end_line: i as u32 + 1,
        level: if i % 2 == 0 { "warning" } else { "notice" }.into(),
        message: format!("note {i}"),
        title: (i == 0).then(|| "first".to_owned()),
    }
}

#[tokio::test]
async fn a_check_run_with_120_annotations_is_created_with_50_then_patched_with_50_and_20() {
    let gh = Github::start().await;
    gh.mints("ghs_checks", 1).await;
    Mock::given(method("POST"))
        .and(path(gh.api("/check-runs")))
        .and(bearer_token("ghs_checks"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::CHECK_RUN_CREATED)))
        .expect(1)
        .mount(&gh.server)
        .await;
    // The documented check run has id 4.
    Mock::given(method("PATCH"))
        .and(path(gh.api("/check-runs/4")))
        .and(bearer_token("ghs_checks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(parsed(answer::CHECK_RUN_UPDATED)))
        .expect(2)
        .mount(&gh.server)
        .await;

    let check = CheckRun {
        name: "portcall / release".into(),
        head_sha: CommitSha::parse(SHA).unwrap(),
        conclusion: CheckConclusion::Success,
        title: "hello-world v1.2.0 released".into(),
        summary: "**3** images".into(),
        details_url: Some("https://portcall.example.com/releases/7".into()),
        external_id: None,
        annotations: (0..120).map(annotation).collect(),
    };
    let before = now();
    gh.client.create_check_run(&gh.repo, &check).await.unwrap();

    let created: Value = gh.requests("POST", &gh.api("/check-runs")).await[0]
        .body_json()
        .unwrap();
    assert_valid(schema::CHECK_RUN_CREATE, &created);
    assert_eq!(created["name"], "portcall / release");
    assert_eq!(created["head_sha"], SHA);
    assert_eq!(created["status"], "completed");
    assert_eq!(created["conclusion"], "success");
    assert_eq!(
        created["details_url"],
        "https://portcall.example.com/releases/7"
    );
    assert!(
        created.get("external_id").is_none(),
        "unset fields are left out"
    );
    let completed = chrono::DateTime::parse_from_rfc3339(created["completed_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!((before..=now()).contains(&completed));
    assert_eq!(created["output"]["title"], "hello-world v1.2.0 released");
    assert_eq!(created["output"]["summary"], "**3** images");
    let first = created["output"]["annotations"].as_array().unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(
        first[0],
        json!({"path": "deploy/values.yaml", "start_line": 1, "end_line": 1,
               "annotation_level": "warning", "message": "note 0", "title": "first"})
    );

    let patches: Vec<Value> = gh
        .requests("PATCH", &gh.api("/check-runs/4"))
        .await
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    let sizes: Vec<usize> = patches
        .iter()
        .map(|p| p["output"]["annotations"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [50, 20]);
    assert_eq!(patches[0]["output"]["annotations"][0]["message"], "note 50");
    assert_eq!(
        patches[1]["output"]["annotations"][19]["message"],
        "note 119"
    );
    for patch in &patches {
        assert_valid(schema::CHECK_RUN_UPDATE, patch);
        assert_eq!(patch["output"]["title"], "hello-world v1.2.0 released");
        assert_eq!(patch["output"]["summary"], "**3** images");
    }
}

// ---------------------------------------------------------------------------
// Pull requests of a commit.

#[tokio::test]
async fn open_pull_requests_are_the_open_ones_headed_by_the_commit() {
    let gh = Github::start().await;
    gh.mints("ghs_pulls", 1).await;
    // The documented list holds one open PR, #1347, headed by SHA. Add a
    // closed one and one whose head moved on.
    let documented = parsed(answer::PULLS_OF_COMMIT)[0].clone();
    assert_eq!(
        (documented["number"].as_u64(), documented["state"].as_str()),
        (Some(1347), Some("open"))
    );
    assert_eq!(documented["head"]["sha"], SHA);
    let mut closed = documented.clone();
    closed["number"] = json!(1348);
    closed["state"] = json!("closed");
    let mut moved_on = documented.clone();
    moved_on["number"] = json!(1349);
    moved_on["head"]["sha"] = json!("0123456789abcdef0123456789abcdef01234567");
    Mock::given(method("GET"))
        .and(path(gh.api(&format!("/commits/{SHA}/pulls"))))
        .and(query_param("per_page", "100"))
        .and(bearer_token("ghs_pulls"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([documented, closed, moved_on])),
        )
        .expect(1)
        .mount(&gh.server)
        .await;

    let open = gh
        .client
        .open_pull_requests(&gh.repo, &CommitSha::parse(SHA).unwrap())
        .await
        .unwrap();
    assert_eq!(open, [1347]);
}

#[tokio::test]
async fn a_status_is_current_when_one_of_its_context_says_the_same_newest_or_not() {
    let gh = Github::start().await;
    gh.mints("ghs_statuses", 1).await;
    // The documented status (context "continuous-integration/jenkins",
    // success), then ours, then an older one of ours that another job's
    // status followed (say, another image of the commit).
    let documented = parsed(answer::STATUSES)[0].clone();
    assert_eq!(documented["context"], "continuous-integration/jenkins");
    let mut ours = documented.clone();
    ours["context"] = json!("portcall/release");
    ours["state"] = json!("success");
    ours["description"] = json!("released");
    ours["target_url"] = Value::Null;
    let mut older = ours.clone();
    older["description"] = json!("released before");
    Mock::given(method("GET"))
        .and(path(gh.api(&format!("/commits/{SHA}/statuses"))))
        .and(query_param("per_page", "100"))
        .and(bearer_token("ghs_statuses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([documented, ours, older])))
        .expect(6)
        .mount(&gh.server)
        .await;
    let sha = CommitSha::parse(SHA).unwrap();

    let current = |status: CommitStatus| {
        let (gh, sha) = (&gh, &sha);
        async move {
            gh.client
                .status_is_current(&gh.repo, sha, &status)
                .await
                .unwrap()
        }
    };
    assert!(current(any_status()).await, "the newest of the context");
    let before = CommitStatus {
        description: "released before".into(),
        ..any_status()
    };
    assert!(current(before).await, "behind a newer one of the context");
    let pending = CommitStatus {
        state: StatusState::Pending,
        ..any_status()
    };
    assert!(!current(pending).await, "another state");
    let linked = CommitStatus {
        target_url: Some("https://portcall.example.com/releases/7".into()),
        ..any_status()
    };
    assert!(!current(linked).await, "another link");
    let other = CommitStatus {
        description: "released again".into(),
        ..any_status()
    };
    assert!(!current(other).await, "another description");
    let jenkins = CommitStatus {
        description: "Build has completed successfully".into(),
        target_url: Some("https://ci.example.com/1000/output".into()),
        ..any_status()
    };
    assert!(!current(jenkins).await, "another context's");
}

#[tokio::test]
async fn a_check_run_exists_when_one_of_its_name_and_id_or_else_title_and_summary_is_there() {
    let gh = Github::start().await;
    gh.mints("ghs_checks", 1).await;
    let listed = parsed(answer::CHECK_RUNS);
    let documented = &listed["check_runs"][0];
    assert_eq!(
        (
            &documented["name"],
            &documented["external_id"],
            &documented["head_sha"]
        ),
        (
            &json!("mighty_readme"),
            &json!(""),
            &json!("ce587453ced02b1526dfb4cb910479d431683101")
        )
    );
    // The documented run has no id; a second of the name has one.
    let mut listed = listed.clone();
    let mut with_id = listed["check_runs"][0].clone();
    with_id["id"] = json!(5);
    with_id["external_id"] = json!("release-7");
    with_id["output"]["title"] = json!("Release 7");
    listed["check_runs"] = json!([listed["check_runs"][0].clone(), with_id]);
    listed["total_count"] = json!(2);
    Mock::given(method("GET"))
        .and(path(gh.api(
            "/commits/ce587453ced02b1526dfb4cb910479d431683101/check-runs",
        )))
        .and(query_param("check_name", "mighty_readme"))
        .and(query_param("filter", "all"))
        .and(bearer_token("ghs_checks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed.clone()))
        .expect(6)
        .mount(&gh.server)
        .await;
    let check = |external_id: Option<&str>, title: &str, summary: &str| CheckRun {
        name: "mighty_readme".into(),
        head_sha: CommitSha::parse("ce587453ced02b1526dfb4cb910479d431683101").unwrap(),
        conclusion: CheckConclusion::Success,
        title: title.into(),
        summary: summary.into(),
        details_url: None,
        external_id: external_id.map(str::to_owned),
        annotations: Vec::new(),
    };
    let exists = |c: CheckRun| {
        let gh = &gh;
        async move { gh.client.check_run_exists(&gh.repo, &c).await.unwrap() }
    };
    let (title, summary) = (
        "Mighty Readme report",
        "There are 0 failures, 2 warnings, and 1 notice.",
    );
    assert!(
        exists(check(None, title, summary)).await,
        "without an id: the one of that title and summary"
    );
    assert!(exists(check(Some(""), title, summary)).await);
    assert!(
        !exists(check(None, "Another image", summary)).await,
        "not merely any of that name: another image of the commit has one"
    );
    assert!(!exists(check(None, title, "Another summary")).await);
    assert!(
        exists(check(Some("release-7"), "t", "s")).await,
        "with an id: the one of that id"
    );
    assert!(
        !exists(check(Some("release-8"), title, summary)).await,
        "another run's id"
    );
}

// ---------------------------------------------------------------------------
// Sticky comments.

const PR: u64 = 1347;

fn marker() -> String {
    comment_marker("hello-world")
}

/// The documented comment (id 1, "Me too") with `id` and `body` replaced.
fn comment(id: u64, body: &str) -> Value {
    let mut c = parsed(answer::COMMENTS)[0].clone();
    c["id"] = json!(id);
    c["body"] = json!(body);
    c
}

impl Github {
    /// The first page of comments on the PR (`page: None`), or page `page`
    /// at `at` (GitHub's next links name the repository by id).
    async fn comment_page(&self, page: Option<(&str, &str)>, comments: Value, next: Option<&str>) {
        let mut answer = ResponseTemplate::new(200).set_body_json(comments);
        if let Some(next) = next {
            let link = format!(
                "<{uri}{next}>; rel=\"next\", <{uri}{next}>; rel=\"last\"",
                uri = self.server.uri()
            );
            answer = answer.insert_header("link", link.as_str());
        }
        let list = match page {
            Some((at, page)) => Mock::given(path(at)).and(query_param("page", page)),
            None => Mock::given(path(self.api(&format!("/issues/{PR}/comments"))))
                .and(query_param_is_missing("page")),
        };
        let list = list.and(method("GET")).and(query_param("per_page", "100"));
        list.respond_with(answer)
            .expect(1)
            .mount(&self.server)
            .await;
    }

    async fn expect_create(&self, times: u64) {
        Mock::given(method("POST"))
            .and(path(self.api(&format!("/issues/{PR}/comments"))))
            .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::COMMENT_CREATED)))
            .expect(times)
            .mount(&self.server)
            .await;
    }

    async fn expect_edit(&self, id: u64, times: u64) {
        Mock::given(method("PATCH"))
            .and(path(self.api(&format!("/issues/comments/{id}"))))
            .respond_with(ResponseTemplate::new(200).set_body_json(parsed(answer::COMMENT_UPDATED)))
            .expect(times)
            .mount(&self.server)
            .await;
    }

    async fn sent_bodies(&self, verb: &str, to: &str) -> Vec<Value> {
        self.requests(verb, to)
            .await
            .iter()
            .map(|r| r.body_json().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_comment_is_created_when_none_carries_the_marker() {
    let gh = Github::start().await;
    gh.mints("ghs_comments", 1).await;
    // The documented list: one comment, "Me too", without our marker.
    gh.comment_page(None, parsed(answer::COMMENTS), None).await;
    gh.expect_create(1).await;
    gh.expect_edit(1, 0).await;

    let body = format!("{}\n### hello-world v1.2.0 released", marker());
    let action = gh
        .client
        .upsert_comment(&gh.repo, PR, &marker(), &body)
        .await
        .unwrap();

    assert_eq!(action, CommentAction::Created);
    let sent = gh
        .sent_bodies("POST", &gh.api(&format!("/issues/{PR}/comments")))
        .await;
    assert_eq!(sent, [json!({ "body": body })]);
    assert_valid(schema::COMMENT_CREATE, &sent[0]);
}

#[tokio::test]
async fn a_comment_on_the_second_page_is_edited_in_place() {
    let gh = Github::start().await;
    gh.mints("ghs_comments", 1).await;
    // GitHub's next links name the repository by id; they are followed as given.
    let page_two = "/repositories/1296269/issues/1347/comments?per_page=100&page=2";
    let others: Vec<Value> = (1..=100).map(|id| comment(id, "Me too")).collect();
    gh.comment_page(None, json!(others), Some(page_two)).await;
    let old = format!("{}\nv1.1.0 released", marker());
    let page_two_at = Some(("/repositories/1296269/issues/1347/comments", "2"));
    gh.comment_page(
        page_two_at,
        json!([comment(101, "lgtm"), comment(102, &old)]),
        None,
    )
    .await;
    gh.expect_create(0).await;
    gh.expect_edit(102, 1).await;

    let new = format!("{}\nv1.2.0 released", marker());
    let action = gh
        .client
        .upsert_comment(&gh.repo, PR, &marker(), &new)
        .await
        .unwrap();

    assert_eq!(action, CommentAction::Updated);
    let sent = gh
        .sent_bodies("PATCH", &gh.api("/issues/comments/102"))
        .await;
    assert_eq!(sent, [json!({ "body": new })]);
    assert_valid(schema::COMMENT_UPDATE, &sent[0]);
}

#[tokio::test]
async fn an_identical_comment_is_left_unchanged() {
    let gh = Github::start().await;
    gh.mints("ghs_comments", 1).await;
    let body = format!("{}\nv1.2.0 released", marker());
    gh.comment_page(None, json!([comment(5, "Me too"), comment(6, &body)]), None)
        .await;
    gh.expect_create(0).await;
    gh.expect_edit(6, 0).await;

    let action = gh
        .client
        .upsert_comment(&gh.repo, PR, &marker(), &body)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Unchanged);
}

#[tokio::test]
async fn duplicates_left_by_a_race_are_deleted_and_the_oldest_kept() {
    let gh = Github::start().await;
    gh.mints("ghs_comments", 1).await;
    let old = format!("{}\nv1.1.0 released", marker());
    let other_component = format!("{}\nunrelated", comment_marker("other"));
    gh.comment_page(
        None,
        json!([
            comment(12, &old),
            comment(11, &other_component),
            comment(10, &old)
        ]),
        None,
    )
    .await;
    gh.expect_create(0).await;
    gh.expect_edit(10, 1).await;
    gh.expect_edit(12, 0).await;
    Mock::given(method("DELETE"))
        .and(path(gh.api("/issues/comments/12")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&gh.server)
        .await;
    for untouched in [10, 11] {
        Mock::given(method("DELETE"))
            .and(path(gh.api(&format!("/issues/comments/{untouched}"))))
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount(&gh.server)
            .await;
    }

    let new = format!("{}\nv1.2.0 released", marker());
    let action = gh
        .client
        .upsert_comment(&gh.repo, PR, &marker(), &new)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Updated);
}

#[test]
fn a_sticky_body_always_keeps_its_marker_within_the_limit() {
    let m = marker();
    let long = format!("{}{m}", "x".repeat(MAX_COMMENT_CHARS));
    let text = sticky_body(&long, &m, MAX_COMMENT_CHARS);
    assert!(text.starts_with(&m) && text.chars().count() <= MAX_COMMENT_CHARS);
    assert_eq!(
        sticky_body(&format!("{m}\nshort"), &m, MAX_COMMENT_CHARS),
        format!("{m}\nshort")
    );
}

// ---------------------------------------------------------------------------
// Deployments.

/// The documented deployment's id.
const DEPLOYMENT_ID: u64 = 1;

fn deployment_report(state: DeploymentState, known: Option<u64>) -> DeploymentReport {
    DeploymentReport {
        sha: CommitSha::parse(SHA).unwrap(),
        environment: Environment::parse("production").unwrap(),
        state,
        url: Some(HttpUrl::parse("https://hello.example.com").unwrap()),
        log_url: Some(HttpUrl::parse("https://ci.example.com/deploys/9").unwrap()),
        release_id: 7,
        release_name: "hello-world-v1.2.0".into(),
        title: "Release hello-world-v1.2.0".into(),
        description: format!("hello-world-v1.2.0 to production: {}", state.words()),
        deployment_id: known,
    }
}

impl Github {
    async fn creates_deployments(&self, answer: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(self.api("/deployments")))
            .respond_with(answer)
            .expect(times)
            .named("create a deployment")
            .mount(&self.server)
            .await;
    }

    async fn posts_deployment_statuses(&self, id: u64, answer: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(self.api(&format!("/deployments/{id}/statuses"))))
            .respond_with(answer)
            .expect(times)
            .named("create a deployment status")
            .mount(&self.server)
            .await;
    }
}

#[tokio::test]
async fn a_first_report_creates_the_deployment_of_the_commit_then_posts_its_status() {
    let gh = Github::start().await;
    gh.mints("ghs_deploy", 1).await;
    let documented = parsed(answer::DEPLOYMENT);
    assert_eq!(documented["id"], json!(DEPLOYMENT_ID));
    gh.creates_deployments(ResponseTemplate::new(201).set_body_json(documented), 1)
        .await;
    gh.posts_deployment_statuses(
        DEPLOYMENT_ID,
        ResponseTemplate::new(201).set_body_json(parsed(answer::DEPLOYMENT_STATUS)),
        1,
    )
    .await;

    let report = deployment_report(DeploymentState::InProgress, None);
    let id = gh
        .client
        .report_deployment(&gh.repo, &report)
        .await
        .unwrap();

    assert_eq!(id, Some(DEPLOYMENT_ID));
    let created = gh.sent_bodies("POST", &gh.api("/deployments")).await;
    assert_eq!(
        created,
        [json!({
            "ref": SHA,
            "environment": "production",
            "auto_merge": false,
            "required_contexts": [],
            "description": "Release hello-world-v1.2.0",
            "payload": {"release_id": 7, "release": "hello-world-v1.2.0"},
        })]
    );
    assert_valid(schema::DEPLOYMENT, &created[0]);
    let statuses = gh
        .sent_bodies(
            "POST",
            &gh.api(&format!("/deployments/{DEPLOYMENT_ID}/statuses")),
        )
        .await;
    assert_eq!(
        statuses,
        [json!({
            "state": "in_progress",
            "environment_url": "https://hello.example.com",
            "log_url": "https://ci.example.com/deploys/9",
            "description": "hello-world-v1.2.0 to production: in progress",
        })]
    );
    assert_valid(schema::DEPLOYMENT_STATUS, &statuses[0]);
    gh.assert_mints_carried_app_jwts().await;
}

#[tokio::test]
async fn a_known_deployment_only_gets_the_new_status_in_githubs_words() {
    let gh = Github::start().await;
    gh.mints("ghs_deploy", 1).await;
    gh.creates_deployments(ResponseTemplate::new(201), 0).await;
    gh.posts_deployment_statuses(
        42,
        ResponseTemplate::new(201).set_body_json(parsed(answer::DEPLOYMENT_STATUS)),
        4,
    )
    .await;

    for state in DeploymentState::ALL {
        let mut report = deployment_report(state, Some(42));
        report.url = None;
        report.log_url = None;
        report.description = "é".repeat(200);
        let id = gh
            .client
            .report_deployment(&gh.repo, &report)
            .await
            .unwrap();
        assert_eq!(id, Some(42));
    }

    let sent = gh
        .sent_bodies("POST", &gh.api("/deployments/42/statuses"))
        .await;
    let states: Vec<&str> = sent.iter().map(|b| b["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["in_progress", "success", "failure", "inactive"]);
    for body in &sent {
        assert_eq!(
            body,
            &json!({"state": body["state"], "description": "é".repeat(140)}),
            "unset URLs are left out, the description is cut to 140"
        );
        assert_valid(schema::DEPLOYMENT_STATUS, body);
    }
}

#[tokio::test]
async fn a_202_makes_no_deployment_and_is_permanent_with_githubs_message() {
    let gh = Github::start().await;
    gh.mints("ghs_deploy", 1).await;
    // The documented 202 answer ("merged-branch-response").
    let accepted = json!({"message": "Auto-merged master into topic-branch on deployment."});
    gh.creates_deployments(ResponseTemplate::new(202).set_body_json(accepted), 1)
        .await;
    gh.posts_deployment_statuses(DEPLOYMENT_ID, ResponseTemplate::new(201), 0)
        .await;

    let report = deployment_report(DeploymentState::Success, None);
    let err = gh
        .client
        .report_deployment(&gh.repo, &report)
        .await
        .unwrap_err();

    assert_eq!(err.deployment_id, None);
    let ScmError::Permanent { status, message } = &err.error else {
        panic!("a 202 is permanent: {err:?}")
    };
    assert_eq!(*status, Some(202));
    assert!(
        message.contains("Auto-merged master into topic-branch on deployment."),
        "{message}"
    );
}

#[tokio::test]
async fn a_status_that_fails_after_the_deployment_was_created_names_the_deployment() {
    let gh = Github::start().await;
    gh.mints("ghs_deploy", 1).await;
    gh.creates_deployments(
        ResponseTemplate::new(201).set_body_json(parsed(answer::DEPLOYMENT)),
        1,
    )
    .await;
    gh.posts_deployment_statuses(
        DEPLOYMENT_ID,
        ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
        1,
    )
    .await;

    let report = deployment_report(DeploymentState::InProgress, None);
    let err = gh
        .client
        .report_deployment(&gh.repo, &report)
        .await
        .unwrap_err();

    assert!(err.error.is_transient(), "{err:?}");
    assert_eq!(
        err.deployment_id,
        Some(DEPLOYMENT_ID),
        "the retry must reuse it"
    );
}

#[tokio::test]
async fn a_refused_deployment_is_permanent_and_creates_nothing_to_reuse() {
    let gh = Github::start().await;
    gh.mints("ghs_deploy", 1).await;
    let refused = json!({
        "message": "Validation Failed",
        "errors": [{"resource": "Deployment", "code": "custom", "message": "No ref found for: 6dcb09b5"}],
        "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
    });
    gh.creates_deployments(ResponseTemplate::new(422).set_body_json(refused), 1)
        .await;

    let report = deployment_report(DeploymentState::Success, None);
    let err = gh
        .client
        .report_deployment(&gh.repo, &report)
        .await
        .unwrap_err();

    assert_eq!(err.deployment_id, None);
    assert!(
        matches!(&err.error, ScmError::Permanent { status: Some(422), message } if message.contains("No ref found")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Installation tokens and installations.

fn any_status() -> CommitStatus {
    CommitStatus {
        context: "portcall/release".into(),
        state: StatusState::Success,
        description: "released".into(),
        target_url: None,
    }
}

impl Github {
    async fn post_status(&self) -> Result<(), ScmError> {
        let sha = CommitSha::parse(SHA).unwrap();
        self.client
            .post_status(&self.repo, &sha, &any_status())
            .await
    }

    fn statuses(&self) -> MockBuilder {
        Mock::given(method("POST")).and(path(self.api(&format!("/statuses/{SHA}"))))
    }
}

#[tokio::test]
async fn one_token_serves_several_calls_until_near_expiry() {
    let gh = Github::start().await;
    gh.mints("ghs_cached", 1).await;
    gh.statuses()
        .and(bearer_token("ghs_cached"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(2)
        .mount(&gh.server)
        .await;
    gh.post_status().await.unwrap();
    gh.post_status().await.unwrap();
    gh.assert_mints_carried_app_jwts().await;
}

#[tokio::test]
async fn concurrent_calls_for_one_installation_mint_once() {
    let gh = Github::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_answer("ghs_once"))
                // Slow enough that every caller arrives while it runs.
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&gh.server)
        .await;
    gh.statuses()
        .and(bearer_token("ghs_once"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(3)
        .mount(&gh.server)
        .await;
    let (a, b, c) = tokio::join!(gh.post_status(), gh.post_status(), gh.post_status());
    a.and(b).and(c).unwrap();
}

/// Answers the access-token endpoint with `first`, then `second`.
async fn mints_in_turn(gh: &Github, first: &str, second: &str) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(token_answer(first)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(token_answer(second)))
        .expect(1)
        .mount(&gh.server)
        .await;
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_the_call_repeated_once() {
    let gh = Github::start().await;
    mints_in_turn(&gh, "ghs_revoked", "ghs_fresh").await;
    gh.statuses()
        .and(bearer_token("ghs_revoked"))
        .respond_with(ResponseTemplate::new(401).set_body_json(github_error("Bad credentials")))
        .expect(1)
        .mount(&gh.server)
        .await;
    gh.statuses()
        .and(bearer_token("ghs_fresh"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(2)
        .mount(&gh.server)
        .await;
    gh.post_status().await.unwrap();
    // The fresh token is the cached one now.
    gh.post_status().await.unwrap();
    gh.assert_mints_carried_app_jwts().await;
}

#[tokio::test]
async fn a_second_401_is_permanent_and_names_no_token() {
    let gh = Github::start().await;
    mints_in_turn(&gh, "ghs_first_secret", "ghs_second_secret").await;
    gh.statuses()
        .respond_with(ResponseTemplate::new(401).set_body_json(github_error("Bad credentials")))
        .expect(2)
        .mount(&gh.server)
        .await;
    let err = gh.post_status().await.unwrap_err();
    let ScmError::Permanent { status, message } = &err else {
        panic!("not permanent: {err:?}")
    };
    assert_eq!(*status, Some(401));
    assert!(message.contains("Bad credentials"), "{message}");
    assert!(!format!("{err:?}").contains("secret"), "{err:?}");
}

#[tokio::test]
async fn the_installation_is_looked_up_once_when_not_remembered() {
    let gh = Github::start_unremembered().await;
    assert_eq!(gh.client.installation_of(&gh.repo), None);
    Mock::given(method("GET"))
        .and(path(gh.api("/installation")))
        .respond_with(ResponseTemplate::new(200).set_body_json(parsed(answer::REPO_INSTALLATION)))
        .expect(1)
        .mount(&gh.server)
        .await;
    gh.mints("ghs_looked_up", 1).await;
    gh.statuses()
        .and(bearer_token("ghs_looked_up"))
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(2)
        .mount(&gh.server)
        .await;

    gh.post_status().await.unwrap();
    gh.post_status().await.unwrap();

    assert_eq!(gh.client.installation_of(&gh.repo), Some(INSTALLATION));
    // Case does not matter to GitHub, nor to the cache.
    let shouting = RepoSlug::parse("github:Octo-Org/Hello-World").unwrap();
    assert_eq!(gh.client.installation_of(&shouting), Some(INSTALLATION));
    let lookup = &gh.requests("GET", &gh.api("/installation")).await[0];
    assert_app_jwt(lookup);
}

#[tokio::test]
async fn a_remembered_installation_is_not_looked_up() {
    let gh = Github::start().await;
    assert_eq!(gh.client.installation_of(&gh.repo), Some(INSTALLATION));
    Mock::given(method("GET"))
        .and(path(gh.api("/installation")))
        .respond_with(ResponseTemplate::new(200).set_body_json(parsed(answer::REPO_INSTALLATION)))
        .expect(0)
        .mount(&gh.server)
        .await;
    gh.mints("ghs_remembered", 1).await;
    gh.statuses()
        .respond_with(ResponseTemplate::new(201).set_body_json(parsed(answer::STATUS)))
        .expect(1)
        .mount(&gh.server)
        .await;
    gh.post_status().await.unwrap();
}

#[tokio::test]
async fn a_deleted_installation_is_forgotten_so_the_next_attempt_looks_again() {
    let gh = Github::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(ResponseTemplate::new(404).set_body_json(github_error("Not Found")))
        .expect(1)
        .mount(&gh.server)
        .await;
    let err = gh.post_status().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(gh.client.installation_of(&gh.repo), None);
}

// ---------------------------------------------------------------------------
// Failures, classified.

#[tokio::test]
async fn failures_are_transient_or_permanent_as_github_means_them() {
    let reset = now() + 30;
    let secondary =
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
    let cases = [
        (ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"), "transient", None),
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3")
                .set_body_json(github_error("Too Many Requests")),
            "transient",
            Some(3..=3),
        ),
        (
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(github_error("API rate limit exceeded for installation ID 1.")),
            "transient",
            Some(28..=30),
        ),
        (
            ResponseTemplate::new(403).set_body_json(github_error(secondary)),
            "transient",
            Some(60..=60),
        ),
        (
            ResponseTemplate::new(404).set_body_json(github_error("Not Found")),
            "Not Found",
            None,
        ),
        (
            ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Status", "code": "custom", "message": "This SHA and context has reached the maximum number of statuses."}],
                "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
            })),
            "Validation Failed",
            None,
        ),
        (
            ResponseTemplate::new(403).set_body_json(github_error("Resource not accessible by integration")),
            "Resource not accessible by integration",
            None,
        ),
    ];
    for (answer, expected, wait) in cases {
        let gh = Github::start().await;
        gh.mints("ghs_errors", 1).await;
        gh.statuses()
            .respond_with(answer)
            .expect(1)
            .mount(&gh.server)
            .await;
        let err = gh.post_status().await.unwrap_err();
        match (&err, expected) {
            (ScmError::Transient { retry_after, .. }, "transient") => {
                let secs = retry_after.map(|d| d.as_secs());
                match wait {
                    Some(range) => assert!(secs.is_some_and(|s| range.contains(&s)), "{err:?}"),
                    None => assert_eq!(secs, None, "{err:?}"),
                }
            }
            (ScmError::Permanent { status, message }, github_message) => {
                assert!(status.is_some_and(|s| (403..=422).contains(&s)), "{err:?}");
                assert!(message.contains(github_message), "{message}");
            }
            _ => panic!("expected {expected}, got {err:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_github_is_transient() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client_for(&format!("http://127.0.0.1:{port}"));
    let repo = RepoSlug::parse("github:octo-org/hello-world").unwrap();
    client.remember_installation(&repo, INSTALLATION);
    let err = client
        .post_status(&repo, &CommitSha::parse(SHA).unwrap(), &any_status())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_gitlab_repository_is_refused_permanently() {
    let gh = Github::start().await;
    let gitlab = RepoSlug::parse("gitlab:group/project").unwrap();
    let err = gh
        .client
        .open_pull_requests(&gitlab, &CommitSha::parse(SHA).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScmError::Permanent { status: None, .. }),
        "{err:?}"
    );
}
