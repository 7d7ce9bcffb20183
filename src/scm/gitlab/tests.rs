//! The adapter against a wiremock GitLab answering with the documented
//! bodies (`fixtures/gitlab-api/`, see fixtures/SOURCES.md). Each mock pins
//! the method, the percent-encoded path, the `PRIVATE-TOKEN` header and,
//! for writes, the exact form fields; `.expect(n)` is checked when the
//! server drops.

use std::time::Duration;

use gitlab::api::ParamValue;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use super::*;
use crate::domain::{Environment, HttpUrl, Provider};
use crate::scm::{comment_marker, Annotation, DeploymentState};

const TOKEN: &str = "glpat-portcall-test-token";
/// The head of the merge request in the documented example.
const SHA: &str = "af5b13261899fb2c0db30abdd0af8b07cb44fdc5";
const OTHER_SHA: &str = "1111111111111111111111111111111111111111";
/// `group/sub/project` as GitLab wants it in a path.
const PROJECT: &str = "/api/v4/projects/group%2Fsub%2Fproject";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/gitlab-api/",
            $name,
            ".json"
        ))
    };
}

fn documented(fixture: &str) -> Value {
    serde_json::from_str(fixture).expect("the fixtures are JSON")
}

fn json_answer(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// A GitLab that knows the token, and a client for it.
async fn gitlab() -> (MockServer, GitlabClient) {
    gitlab_answering_within(Duration::from_secs(30)).await
}

/// [`gitlab`], the client waiting `timeout` for each answer.
async fn gitlab_answering_within(timeout: Duration) -> (MockServer, GitlabClient) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("PRIVATE-TOKEN", TOKEN))
        .respond_with(json_answer(200, documented(fixture!("get-current-user"))))
        .named("GET /user (the crate's token check)")
        .mount(&server)
        .await;
    let client = GitlabClient::new(&GitlabSettings {
        url: server.uri(),
        token: SecretString::from(TOKEN),
        request_timeout: timeout,
    })
    .expect("a valid base URL");
    (server, client)
}

fn client_for(url: &str) -> GitlabClient {
    GitlabClient::new(&GitlabSettings {
        url: url.to_owned(),
        token: SecretString::from(TOKEN),
        request_timeout: std::time::Duration::from_secs(30),
    })
    .expect("a valid base URL")
}

/// A request to GitLab's API with the token.
fn given(http_method: &str, api_path: String) -> MockBuilder {
    Mock::given(method(http_method))
        .and(path(api_path))
        .and(header("PRIVATE-TOKEN", TOKEN))
}

/// Matches an `application/x-www-form-urlencoded` body with exactly these
/// fields, in any order.
struct Form(Vec<(String, String)>);

fn form(pairs: &[(&str, &str)]) -> Form {
    Form(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

impl Match for Form {
    fn matches(&self, request: &Request) -> bool {
        let form_encoded = request
            .headers
            .get("content-type")
            .is_some_and(|v| v == "application/x-www-form-urlencoded");
        let mut got: Vec<(String, String)> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let mut want = self.0.clone();
        got.sort();
        want.sort();
        form_encoded && got == want
    }
}

/// Any request but a read: nothing may be written.
fn no_writes() -> Mock {
    Mock::given(|request: &Request| request.method != http::Method::GET)
        .respond_with(ResponseTemplate::new(500))
        .named("no writes")
        .expect(0)
}

fn repo() -> RepoSlug {
    RepoSlug::new(Provider::Gitlab, "group/sub/project").unwrap()
}

fn sha() -> CommitSha {
    CommitSha::parse(SHA).unwrap()
}

fn release_status(state: StatusState) -> CommitStatus {
    CommitStatus {
        context: "portcall/release".into(),
        state,
        description: "Release v1.2.0".into(),
        target_url: Some("https://portcall.example.com/releases/1".into()),
    }
}

fn status_form(state: &str) -> Form {
    form(&[
        ("state", state),
        ("name", "portcall/release"),
        ("description", "Release v1.2.0"),
        ("target_url", "https://portcall.example.com/releases/1"),
    ])
}

/// The documented merge request, then others changed only in what the
/// filter reads: iid, state, head sha.
fn merge_requests() -> Value {
    let documented = documented(fixture!("list-commit-merge-requests"))[0].clone();
    assert_eq!(
        (&documented["iid"], &documented["state"], &documented["sha"]),
        (&json!(1), &json!("opened"), &json!(SHA))
    );
    let variant = |iid: u64, state: &str, sha: &str| {
        let mut mr = documented.clone();
        mr["id"] = json!(100 + iid);
        mr["iid"] = json!(iid);
        mr["state"] = json!(state);
        mr["sha"] = json!(sha);
        mr
    };
    json!([
        documented,
        variant(7, "opened", SHA),
        variant(3, "closed", SHA),
        variant(4, "merged", SHA),
        variant(5, "opened", OTHER_SHA),
    ])
}

/// The documented note, with another id and body.
fn note(id: u64, body: &str) -> Value {
    let mut note = documented(fixture!("list-merge-request-notes"))[0].clone();
    note["id"] = json!(id);
    note["body"] = json!(body);
    note
}

/// One page of notes; `next` is GitLab's `X-Next-Page` (empty on the last).
fn notes_page(notes: Vec<Value>, page: u32, next: &str) -> ResponseTemplate {
    json_answer(200, Value::Array(notes))
        .insert_header("x-page", page.to_string().as_str())
        .insert_header("x-per-page", "100")
        .insert_header("x-next-page", next)
}

/// `GET …/merge_requests/2/notes`, oldest first, page `page`.
fn notes_list(page: u32) -> MockBuilder {
    given("GET", format!("{PROJECT}/merge_requests/2/notes"))
        .and(query_param("order_by", "created_at"))
        .and(query_param("sort", "asc"))
        .and(query_param("page", page.to_string()))
        .and(query_param("per_page", "100"))
}

fn marker() -> String {
    comment_marker("api")
}

fn comment(text: &str) -> String {
    format!("{}\n{text}", marker())
}

// ---------------------------------------------------------------------------
// Building the client.

#[test]
fn a_base_url_gives_the_crates_host_and_mode() {
    let cases = [
        ("https://gitlab.com", "gitlab.com", false),
        ("https://gitlab.example.com/", "gitlab.example.com", false),
        ("https://example.com/gitlab", "example.com/gitlab", false),
        ("http://127.0.0.1:8080", "127.0.0.1:8080", true),
    ];
    for (url, host, plain_http) in cases {
        let client = client_for(url);
        assert_eq!(
            (client.host.as_str(), client.plain_http),
            (host, plain_http),
            "{url}"
        );
    }
    for url in [
        "gitlab.com",
        "ftp://gitlab.com",
        "https://",
        "https://user@gitlab.com",
    ] {
        let settings = GitlabSettings {
            url: url.into(),
            token: SecretString::from(TOKEN),
            request_timeout: std::time::Duration::from_secs(30),
        };
        assert!(GitlabClient::new(&settings).is_err(), "{url}");
    }
}

#[test]
fn the_token_is_not_in_the_clients_debug_output() {
    let client = client_for("https://gitlab.example.com");
    assert!(!format!("{client:?}").contains(TOKEN));
}

#[tokio::test]
async fn the_client_is_built_on_first_use_and_kept() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("PRIVATE-TOKEN", TOKEN))
        .respond_with(json_answer(200, documented(fixture!("get-current-user"))))
        .expect(1)
        .mount(&server)
        .await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-commit-status")),
        ))
        .expect(2)
        .mount(&server)
        .await;

    let client = client_for(&server.uri());
    let received = server.received_requests().await.unwrap();
    assert!(received.is_empty(), "new() made no request");

    let status = release_status(StatusState::Pending);
    client.post_status(&repo(), &sha(), &status).await.unwrap();
    client.post_status(&repo(), &sha(), &status).await.unwrap();
}

#[tokio::test]
async fn a_gitlab_down_at_first_use_fails_transiently_and_is_tried_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(json_answer(200, documented(fixture!("get-current-user"))))
        .expect(1)
        .mount(&server)
        .await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-commit-status")),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let status = release_status(StatusState::Pending);

    let error = client
        .post_status(&repo(), &sha(), &status)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("connecting to GitLab (GET /user): GitLab answered 502"),
        "{error}"
    );

    client.post_status(&repo(), &sha(), &status).await.unwrap();
}

#[tokio::test]
async fn a_refused_token_is_a_permanent_failure_with_gitlabs_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(json_answer(401, json!({"message": "401 Unauthorized"})))
        .mount(&server)
        .await;
    let client = client_for(&server.uri());

    let error = client
        .post_status(&repo(), &sha(), &release_status(StatusState::Pending))
        .await
        .unwrap_err();
    let ScmError::Permanent { status, message } = &error else {
        panic!("a 401 is permanent: {error:?}");
    };
    assert_eq!(*status, Some(401));
    assert_eq!(
        message,
        "connecting to GitLab (GET /user): 401 Unauthorized"
    );
    assert!(!format!("{error:?}").contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_gitlab_is_a_transient_failure() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client_for(&format!("http://127.0.0.1:{port}"));

    let error = client
        .open_pull_requests(&repo(), &sha())
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("cannot reach GitLab"), "{error}");
}

#[tokio::test]
async fn a_gitlab_that_does_not_answer_in_time_is_a_transient_failure() {
    let (server, client) = gitlab_answering_within(Duration::from_millis(300)).await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(
            json_answer(201, documented(fixture!("create-commit-status")))
                .set_delay(Duration::from_secs(5)),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .post_status(&repo(), &sha(), &release_status(StatusState::Pending))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.to_string(), "GitLab did not answer within 300 ms");
}

// ---------------------------------------------------------------------------
// Commit statuses.

#[test]
fn status_states_map_to_gitlabs_words() {
    let cases = [
        (StatusState::Pending, "pending"),
        (StatusState::InProgress, "running"),
        (StatusState::Success, "success"),
        (StatusState::Failure, "failed"),
        (StatusState::Error, "failed"),
        (StatusState::Inactive, "canceled"),
    ];
    for (state, word) in cases {
        assert_eq!(gitlab_state(state).as_value(), word, "{state:?}");
    }
}

#[tokio::test]
async fn a_status_is_posted_with_gitlabs_state_to_the_encoded_subgroup_path() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .and(status_form("running"))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-commit-status")),
        ))
        .expect(1)
        .mount(&server)
        .await;

    client
        .post_status(&repo(), &sha(), &release_status(StatusState::InProgress))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_status_gitlab_already_has_counts_as_posted() {
    let (server, client) = gitlab().await;
    // The message as reported for a repeated terminal state, and the one
    // GitLab gives for a repeated running state (_errors.json).
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .and(status_form("success"))
        .respond_with(json_answer(
            400,
            json!({"message": "Cannot transition status from success to success"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .and(status_form("running"))
        .respond_with(json_answer(
            400,
            json!({"message": "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    for state in [StatusState::Success, StatusState::InProgress] {
        let status = release_status(state);
        client.post_status(&repo(), &sha(), &status).await.unwrap();
    }
}

/// The documented status, as GitLab lists it, with ours in it.
fn listed_status(name: &str, description: &str) -> Value {
    let mut status = documented(fixture!("create-commit-status"));
    status["name"] = json!(name);
    status["status"] = json!("success");
    status["description"] = json!(description);
    status["target_url"] = json!("https://portcall.example.com/releases/1");
    status
}

/// `GET …/repository/commits/SHA/statuses` of one name, every one of them.
fn statuses_list(name: &str) -> MockBuilder {
    given(
        "GET",
        format!("{PROJECT}/repository/commits/{SHA}/statuses"),
    )
    .and(query_param("name", name))
    .and(query_param("all", "true"))
    .and(query_param("page", "1"))
    .and(query_param("per_page", "100"))
}

#[tokio::test]
async fn a_status_is_current_when_one_of_its_name_on_the_commit_says_the_same() {
    let (server, client) = gitlab().await;
    // Ours, then another job's of the same name (another image).
    statuses_list("portcall/release")
        .respond_with(json_answer(
            200,
            json!([
                listed_status("portcall/release", "Release v1.2.0"),
                listed_status("portcall/release", "Release v1.2.1"),
            ]),
        ))
        .expect(4)
        .mount(&server)
        .await;
    server.register(no_writes()).await;

    let current = |status: CommitStatus| {
        let client = &client;
        async move {
            client
                .status_is_current(&repo(), &sha(), &status)
                .await
                .unwrap()
        }
    };
    assert!(
        current(release_status(StatusState::Success)).await,
        "behind a newer one"
    );
    assert!(!current(release_status(StatusState::InProgress)).await);
    assert!(
        !current(CommitStatus {
            description: "Release v1.3.0".into(),
            ..release_status(StatusState::Success)
        })
        .await
    );
    assert!(
        !current(CommitStatus {
            target_url: None,
            ..release_status(StatusState::Success)
        })
        .await
    );
}

fn check_run_made_before() -> CheckRun {
    CheckRun {
        name: "portcall / release".into(),
        head_sha: sha(),
        conclusion: CheckConclusion::Success,
        title: "Release v1.2.0".into(),
        summary: "The table.".into(),
        details_url: Some("https://portcall.example.com/releases/1".into()),
        external_id: Some("release-1".into()),
        annotations: Vec::new(),
    }
}

/// Its discussion, as GitLab lists it among the merge request's notes
/// (it may trim the ends).
fn discussion_note(id: u64) -> Value {
    let mut note = documented(fixture!("create-merge-request-discussion"))["notes"][0].clone();
    note["id"] = json!(id);
    note["body"] = json!("### Release v1.2.0\n\nThe table.");
    note
}

/// `GET …/merge_requests/IID/notes`, oldest first, the first page.
fn notes_of(iid: u64) -> MockBuilder {
    given("GET", format!("{PROJECT}/merge_requests/{iid}/notes"))
        .and(query_param("order_by", "created_at"))
        .and(query_param("sort", "asc"))
        .and(query_param("page", "1"))
        .and(query_param("per_page", "100"))
}

#[tokio::test]
async fn a_check_run_made_again_makes_only_what_an_earlier_attempt_did_not() {
    let (server, client) = gitlab().await;
    // The status is there, and merge request 1 has the discussion; 7 has
    // only a note of someone else's.
    statuses_list("portcall / release")
        .respond_with(json_answer(
            200,
            json!([listed_status("portcall / release", "Release v1.2.0")]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    given(
        "GET",
        format!("{PROJECT}/repository/commits/{SHA}/merge_requests"),
    )
    .respond_with(json_answer(200, merge_requests()))
    .expect(1)
    .mount(&server)
    .await;
    notes_of(1)
        .respond_with(notes_page(
            vec![note(301, "LGTM"), discussion_note(302)],
            1,
            "",
        ))
        .expect(1)
        .mount(&server)
        .await;
    notes_of(7)
        .respond_with(notes_page(vec![note(303, "LGTM")], 1, ""))
        .expect(1)
        .mount(&server)
        .await;
    given("POST", format!("{PROJECT}/merge_requests/7/discussions"))
        .and(form(&[("body", "### Release v1.2.0\n\nThe table.\n")]))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-merge-request-discussion")),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .named("any other write")
        .expect(0)
        .mount(&server)
        .await;

    let created = client
        .create_check_run_again(&repo(), &check_run_made_before())
        .await
        .unwrap();
    assert!(created, "the missing discussion");
}

#[tokio::test]
async fn a_check_run_an_earlier_attempt_made_whole_is_not_made_again() {
    let (server, client) = gitlab().await;
    statuses_list("portcall / release")
        .respond_with(json_answer(
            200,
            json!([listed_status("portcall / release", "Release v1.2.0")]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    given(
        "GET",
        format!("{PROJECT}/repository/commits/{SHA}/merge_requests"),
    )
    .respond_with(json_answer(200, merge_requests()))
    .expect(1)
    .mount(&server)
    .await;
    for (iid, id) in [(1, 302), (7, 304)] {
        notes_of(iid)
            .respond_with(notes_page(vec![discussion_note(id)], 1, ""))
            .expect(1)
            .mount(&server)
            .await;
    }
    server.register(no_writes()).await;

    let created = client
        .create_check_run_again(&repo(), &check_run_made_before())
        .await
        .unwrap();
    assert!(!created);
}

#[tokio::test]
async fn a_status_refused_for_another_reason_is_a_permanent_failure() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(json_answer(
            400,
            json!({"error": "state does not have a valid value"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .post_status(&repo(), &sha(), &release_status(StatusState::Success))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ScmError::Permanent { status: Some(400), message } if message == "state does not have a valid value"
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_project_gitlab_does_not_know_is_a_permanent_failure_with_its_message() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(json_answer(
            404,
            json!({"message": "404 Project Not Found"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .post_status(&repo(), &sha(), &release_status(StatusState::Success))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ScmError::Permanent { status: Some(404), message } if message == "404 Project Not Found"
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_bad_gateway_is_a_transient_failure() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .post_status(&repo(), &sha(), &release_status(StatusState::Success))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ScmError::Transient {
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "GitLab answered 502 Bad Gateway");
}

#[tokio::test]
async fn a_rate_limit_is_transient_with_gitlabs_retry_after() {
    let (server, client) = gitlab().await;
    // On a list, which the crate's own paging would read without headers.
    notes_list(1)
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3")
                .insert_header("ratelimit-limit", "600")
                .insert_header("ratelimit-remaining", "0")
                .set_body_string("Retry later\n"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .upsert_comment(&repo(), 2, &marker(), &comment("body"))
        .await
        .unwrap_err();
    let ScmError::Transient {
        retry_after,
        message,
    } = &error
    else {
        panic!("a 429 is transient: {error:?}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(3)));
    assert_eq!(
        message,
        "GitLab answered 429 Too Many Requests: Retry later"
    );
}

// ---------------------------------------------------------------------------
// Deployments: a commit status per environment.

fn deployment_report(state: DeploymentState) -> DeploymentReport {
    DeploymentReport {
        sha: sha(),
        environment: Environment::parse("production").unwrap(),
        state,
        url: Some(HttpUrl::parse("https://hello.example.com").unwrap()),
        log_url: Some(HttpUrl::parse("https://ci.example.com/deploys/9").unwrap()),
        release_id: 7,
        release_name: "api-v1.2.0".into(),
        title: "Release api-v1.2.0".into(),
        description: format!("api-v1.2.0 to production: {}", state.words()),
        deployment_id: None,
    }
}

#[tokio::test]
async fn a_deployment_report_is_the_commit_status_named_after_its_environment() {
    let (server, client) = gitlab().await;
    let states = [
        (DeploymentState::InProgress, "running", "in progress"),
        (DeploymentState::Success, "success", "success"),
        (DeploymentState::Failure, "failed", "failure"),
        (DeploymentState::Inactive, "canceled", "inactive"),
    ];
    for (_, gitlab_state, words) in states {
        let description = format!("api-v1.2.0 to production: {words}");
        given("POST", format!("{PROJECT}/statuses/{SHA}"))
            .and(form(&[
                ("state", gitlab_state),
                ("name", "portcall/production"),
                ("description", description.as_str()),
                ("target_url", "https://hello.example.com"),
            ]))
            .respond_with(json_answer(
                201,
                documented(fixture!("create-commit-status")),
            ))
            .expect(1)
            .mount(&server)
            .await;
    }
    server.register(no_deployment_objects()).await;

    for (state, _, _) in states {
        let answer = client
            .report_deployment(&repo(), &deployment_report(state))
            .await
            .unwrap();
        assert_eq!(answer, None, "GitLab has no deployment id to remember");
    }
}

#[tokio::test]
async fn a_deployment_state_gitlab_already_shows_counts_as_reported() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .and(form(&[
            ("state", "success"),
            ("name", "portcall/production"),
            ("description", "api-v1.2.0 to production: success"),
            ("target_url", "https://hello.example.com"),
        ]))
        .respond_with(json_answer(
            400,
            json!({"message": "Cannot transition status via :success from :success"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client
        .report_deployment(&repo(), &deployment_report(DeploymentState::Success))
        .await
        .unwrap();
    assert_eq!(answer, None);
}

#[tokio::test]
async fn a_refused_deployment_status_is_permanent_and_names_no_deployment() {
    let (server, client) = gitlab().await;
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .respond_with(json_answer(
            404,
            json!({"message": "404 Project Not Found"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = client
        .report_deployment(&repo(), &deployment_report(DeploymentState::Failure))
        .await
        .unwrap_err();
    assert_eq!(err.deployment_id, None);
    assert!(
        matches!(&err.error, ScmError::Permanent { status: Some(404), message } if message == "404 Project Not Found"),
        "{err:?}"
    );
}

/// GitLab's own deployments API is not used.
fn no_deployment_objects() -> Mock {
    Mock::given(path_regex("/deployments"))
        .respond_with(ResponseTemplate::new(500))
        .named("no GitLab deployment objects")
        .expect(0)
}

// ---------------------------------------------------------------------------
// Merge requests and check runs.

#[tokio::test]
async fn open_merge_requests_are_those_opened_with_the_commit_as_head() {
    let (server, client) = gitlab().await;
    given(
        "GET",
        format!("{PROJECT}/repository/commits/{SHA}/merge_requests"),
    )
    .and(query_param("page", "1"))
    .and(query_param("per_page", "100"))
    .respond_with(json_answer(200, merge_requests()))
    .expect(1)
    .mount(&server)
    .await;

    let iids = client.open_pull_requests(&repo(), &sha()).await.unwrap();
    assert_eq!(iids, [1, 7]);
}

#[tokio::test]
async fn a_check_run_is_a_status_and_a_discussion_on_each_open_merge_request() {
    let (server, client) = gitlab().await;
    let check = CheckRun {
        name: "portcall / release".into(),
        head_sha: sha(),
        conclusion: CheckConclusion::Failure,
        title: "Release v1.2.0 failed".into(),
        summary: "The image did not start.".into(),
        details_url: Some("https://portcall.example.com/releases/1".into()),
        external_id: Some("release-1".into()),
        annotations: vec![
            Annotation {
                path: "deploy/app.yaml".into(),
                start_line: 3,
                end_line: 5,
                level: "failure".into(),
                message: "image not\nfound".into(),
                title: Some("Pull failed".into()),
            },
            Annotation {
                path: "Dockerfile".into(),
                start_line: 1,
                end_line: 1,
                level: "warning".into(),
                message: "base image is not pinned".into(),
                title: None,
            },
        ],
    };
    given("POST", format!("{PROJECT}/statuses/{SHA}"))
        .and(form(&[
            ("state", "failed"),
            ("name", "portcall / release"),
            ("description", "Release v1.2.0 failed"),
            ("target_url", "https://portcall.example.com/releases/1"),
        ]))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-commit-status")),
        ))
        .expect(1)
        .mount(&server)
        .await;
    given(
        "GET",
        format!("{PROJECT}/repository/commits/{SHA}/merge_requests"),
    )
    .respond_with(json_answer(200, merge_requests()))
    .expect(1)
    .mount(&server)
    .await;
    let discussion = "### Release v1.2.0 failed\n\
                      \n\
                      The image did not start.\n\
                      \n\
                      - **failure** `deploy/app.yaml:3-5` Pull failed: image not found\n\
                      - **warning** `Dockerfile:1` base image is not pinned\n";
    for iid in [1, 7] {
        given(
            "POST",
            format!("{PROJECT}/merge_requests/{iid}/discussions"),
        )
        .and(form(&[("body", discussion)]))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-merge-request-discussion")),
        ))
        .expect(1)
        .mount(&server)
        .await;
    }
    Mock::given(path_regex(r"/discussions$"))
        .respond_with(ResponseTemplate::new(500))
        .named("a discussion on another merge request")
        .expect(0)
        .mount(&server)
        .await;

    client.create_check_run(&repo(), &check).await.unwrap();
}

// ---------------------------------------------------------------------------
// Sticky comments.

#[tokio::test]
async fn a_comment_is_created_when_no_note_has_the_marker() {
    let (server, client) = gitlab().await;
    let mut system_note = note(302, &format!("changed the description {}", marker()));
    system_note["system"] = json!(true);
    notes_list(1)
        .respond_with(notes_page(
            vec![note(301, "Comment for MR"), system_note],
            1,
            "",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let body = comment("Release v1.2.0 is live.");
    given("POST", format!("{PROJECT}/merge_requests/2/notes"))
        .and(form(&[("body", &body)]))
        .respond_with(json_answer(
            201,
            documented(fixture!("create-merge-request-note")),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let action = client
        .upsert_comment(&repo(), 2, &marker(), &body)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Created);
}

#[tokio::test]
async fn a_comment_found_on_the_second_page_is_edited_in_place() {
    let (server, client) = gitlab().await;
    let first_page: Vec<Value> = (1..=100).map(|id| note(id, "Comment for MR")).collect();
    notes_list(1)
        .respond_with(notes_page(first_page, 1, "2"))
        .expect(1)
        .mount(&server)
        .await;
    notes_list(2)
        .respond_with(notes_page(
            vec![note(301, &comment("Release v1.1.0 is live."))],
            2,
            "",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let body = comment("Release v1.2.0 is live.");
    given("PUT", format!("{PROJECT}/merge_requests/2/notes/301"))
        .and(form(&[("body", &body)]))
        .respond_with(json_answer(
            200,
            documented(fixture!("update-merge-request-note")),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let action = client
        .upsert_comment(&repo(), 2, &marker(), &body)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Updated);
}

#[tokio::test]
async fn a_comment_with_the_same_body_is_left_alone() {
    let (server, client) = gitlab().await;
    let body = comment("Release v1.2.0 is live.");
    notes_list(1)
        .respond_with(notes_page(vec![note(301, &body)], 1, ""))
        .expect(1)
        .mount(&server)
        .await;
    no_writes().mount(&server).await;

    let action = client
        .upsert_comment(&repo(), 2, &marker(), &body)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Unchanged);
}

#[tokio::test]
async fn of_duplicate_comments_the_oldest_is_kept_and_the_others_deleted() {
    let (server, client) = gitlab().await;
    let body = comment("Release v1.2.0 is live.");
    notes_list(1)
        .respond_with(notes_page(
            vec![
                note(305, &comment("Release v1.1.0 is live.")),
                note(301, &comment("Release v1.1.0 is live.")),
                note(303, "Comment for MR"),
                note(310, &body),
            ],
            1,
            "",
        ))
        .expect(1)
        .mount(&server)
        .await;
    given("PUT", format!("{PROJECT}/merge_requests/2/notes/301"))
        .and(form(&[("body", &body)]))
        .respond_with(json_answer(
            200,
            documented(fixture!("update-merge-request-note")),
        ))
        .expect(1)
        .mount(&server)
        .await;
    given("DELETE", format!("{PROJECT}/merge_requests/2/notes/305"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // Already deleted by the other upsert of the race.
    given("DELETE", format!("{PROJECT}/merge_requests/2/notes/310"))
        .respond_with(json_answer(404, json!({"message": "404 Not found"})))
        .expect(1)
        .mount(&server)
        .await;

    let action = client
        .upsert_comment(&repo(), 2, &marker(), &body)
        .await
        .unwrap();
    assert_eq!(action, CommentAction::Updated);
}

#[test]
fn a_note_body_is_cut_to_gitlabs_limit_and_keeps_its_marker() {
    let marker = marker();
    let long = "x".repeat(MAX_NOTE_CHARS + 10);

    let marker_first = sticky_body(&format!("{marker}\n{long}"), &marker, MAX_NOTE_CHARS);
    assert_eq!(marker_first.chars().count(), MAX_NOTE_CHARS);
    assert!(marker_first.starts_with(&marker));

    let marker_last = sticky_body(&format!("{long}\n{marker}"), &marker, MAX_NOTE_CHARS);
    assert_eq!(marker_last.chars().count(), MAX_NOTE_CHARS);
    assert!(marker_last.starts_with(&format!("{marker}\nxxx")));

    assert_eq!(
        sticky_body("short", &marker, MAX_NOTE_CHARS),
        format!("{marker}\nshort")
    );
    assert_eq!(
        sticky_body(&comment("short"), &marker, MAX_NOTE_CHARS),
        comment("short")
    );
}

#[test]
fn status_fields_are_cut_at_a_character_boundary() {
    assert_eq!(cut_bytes("short", 255), "short");
    let long = "é".repeat(200); // 400 bytes
    let cut = cut_bytes(&long, 255);
    assert_eq!(cut.len(), 254);
    assert!(long.starts_with(cut));
}
