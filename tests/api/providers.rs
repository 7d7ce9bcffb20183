//! GitHub and GitLab as wiremock servers answering with the providers'
//! documented bodies (`fixtures/github-api/`, `fixtures/gitlab-api/`), and
//! what the tests need to read the requests portcall sent them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{fixture, now_unix};

pub const APP_ID: u64 = 4242;
/// The installation the documented `get-repo-installation` body names.
pub const INSTALLATION_ID: u64 = 1;
pub const GITLAB_API_TOKEN: &str = "glpat-test-token";

/// A documented response body.
pub fn body(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

pub fn test_key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/github/test-app-key.pem")
}

/// A mock GitHub API.
pub struct GithubMock {
    pub server: MockServer,
}

impl GithubMock {
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    /// The `[github]` section pointing portcall at this mock. Recovery
    /// rounds are off (they would call the mock on their own); tests run
    /// them with `TestApp::recovery`.
    pub fn config(&self) -> String {
        format!(
            "\n[github]\napp_id = {APP_ID}\nprivate_key = \"file:{}\"\napi_url = \"{}\"\nrecovery = false\n",
            test_key_path().display(),
            self.server.uri()
        )
    }

    /// Installation lookup and token minting, answered as documented.
    pub async fn mount_app_auth(&self, repo: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/repos/{repo}/installation")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(body("github-api/apps/get-repo-installation.json")),
            )
            .mount(&self.server)
            .await;
        self.mount_token().await;
    }

    /// `GET /app` (and the installations) answered as documented: the
    /// App's live check succeeds.
    pub async fn mount_app(&self) {
        Mock::given(method("GET"))
            .and(path("/app"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(body("github-api/apps/get-authenticated.json")),
            )
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/app/installations"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([body("github-api/apps/get-repo-installation.json")])),
            )
            .mount(&self.server)
            .await;
    }

    pub async fn mount_token(&self) {
        let mut token = body("github-api/apps/create-installation-access-token.json");
        // Valid for an hour from now, as GitHub mints them.
        token["expires_at"] = json!(expires_in_an_hour());
        Mock::given(method("POST"))
            .and(path(format!(
                "/app/installations/{INSTALLATION_ID}/access_tokens"
            )))
            .respond_with(ResponseTemplate::new(201).set_body_json(token))
            .mount(&self.server)
            .await;
    }

    /// The first commit status on `sha` is refused with GitHub's 404 (a
    /// repository the App cannot see): the job dies at once. Mount before
    /// [`Self::mount_posting`], which answers the rest.
    pub async fn refuse_status_once(&self, repo: &str, sha: &str) {
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repo}/statuses/{sha}")))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
            })))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Statuses and check runs succeed; `pulls` are the open pull requests
    /// whose head is the commit (numbers).
    pub async fn mount_posting(&self, repo: &str, sha: &str, pulls: &[u64]) {
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repo}/statuses/{sha}")))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(body("github-api/repos/create-commit-status.json")),
            )
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repo}/check-runs")))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(body("github-api/checks/create.json")),
            )
            .mount(&self.server)
            .await;
        // No status is there yet (asked before a retry).
        Mock::given(method("GET"))
            .and(path(format!("/repos/{repo}/commits/{sha}/statuses")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&self.server)
            .await;
        // No check run of ours is there yet (asked before a retry).
        let mut none = body("github-api/checks/list-for-ref.json");
        none["total_count"] = json!(0);
        none["check_runs"] = json!([]);
        Mock::given(method("GET"))
            .and(path(format!("/repos/{repo}/commits/{sha}/check-runs")))
            .respond_with(ResponseTemplate::new(200).set_body_json(none))
            .mount(&self.server)
            .await;
        let documented = body("github-api/repos/list-pull-requests-associated-with-commit.json");
        let prs: Vec<Value> = pulls
            .iter()
            .map(|number| {
                let mut pr = documented[0].clone();
                pr["number"] = json!(number);
                pr["state"] = json!("open");
                pr["head"]["sha"] = json!(sha);
                pr
            })
            .collect();
        Mock::given(method("GET"))
            .and(path(format!("/repos/{repo}/commits/{sha}/pulls")))
            .respond_with(ResponseTemplate::new(200).set_body_json(prs))
            .mount(&self.server)
            .await;
    }

    /// Deployments succeed: creating one answers the documented deployment
    /// (id 1), a status on any deployment the documented status.
    pub async fn mount_deployments(&self, repo: &str) {
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repo}/deployments")))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(body("github-api/repos/create-deployment.json")),
            )
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(format!(
                "^/repos/{repo}/deployments/[0-9]+/statuses$"
            )))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(body("github-api/repos/create-deployment-status.json")),
            )
            .mount(&self.server)
            .await;
    }

    /// A pull request's comment thread that remembers what portcall posted:
    /// `GET` lists the comments created so far (the documented comment with
    /// portcall's body), `POST` adds one, `PATCH` edits one in place.
    /// `marker` is unused by the mock itself; it documents what portcall
    /// looks for.
    pub async fn mount_comments(&self, repo: &str, number: u64, marker: &str) {
        let _ = marker;
        let thread = CommentThread::default();
        Mock::given(method("GET"))
            .and(path(format!("/repos/{repo}/issues/{number}/comments")))
            .respond_with(thread.clone())
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repo}/issues/{number}/comments")))
            .respond_with(thread.clone())
            .mount(&self.server)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex(format!(
                "^/repos/{repo}/issues/comments/[0-9]+$"
            )))
            .respond_with(thread)
            .mount(&self.server)
            .await;
    }

    /// The requests received, in order, as `(METHOD, path)`.
    pub async fn calls(&self) -> Vec<(String, String)> {
        calls(&self.server).await
    }

    /// The requests received with this method and path.
    pub async fn requests(&self, verb: &str, request_path: &str) -> Vec<Request> {
        requests(&self.server, verb, request_path).await
    }
}

/// A mock GitLab API.
pub struct GitlabMock {
    pub server: MockServer,
}

impl GitlabMock {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        // The client checks its token once, on first use.
        Mock::given(method("GET"))
            .and(path("/api/v4/user"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(body("gitlab-api/get-current-user.json")),
            )
            .mount(&server)
            .await;
        Self { server }
    }

    /// The `[gitlab]` section (token file written into `dir`).
    pub fn config(&self, dir: &std::path::Path) -> String {
        let token = dir.join("gitlab-api-token");
        std::fs::write(&token, GITLAB_API_TOKEN).unwrap();
        format!(
            "\n[gitlab]\nurl = \"{}\"\ntoken = \"file:{}\"\n",
            self.server.uri(),
            token.display()
        )
    }

    /// `project` is URL-encoded in paths (`group%2Fsub%2Fhello`).
    pub async fn mount_posting(&self, project: &str, sha: &str, mrs: &[u64]) {
        let encoded = project.replace('/', "%2F");
        let status = body("gitlab-api/create-commit-status.json");
        Mock::given(method("POST"))
            .and(path(format!("/api/v4/projects/{encoded}/statuses/{sha}")))
            .respond_with(ResponseTemplate::new(201).set_body_json(status))
            .mount(&self.server)
            .await;
        let documented = body("gitlab-api/list-commit-merge-requests.json");
        let list: Vec<Value> = mrs
            .iter()
            .map(|iid| {
                let mut mr = documented[0].clone();
                mr["iid"] = json!(iid);
                mr["state"] = json!("opened");
                mr["sha"] = json!(sha);
                mr
            })
            .collect();
        Mock::given(method("GET"))
            .and(path(format!(
                "/api/v4/projects/{encoded}/repository/commits/{sha}/merge_requests"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(list))
            .mount(&self.server)
            .await;
        for iid in mrs {
            Mock::given(method("GET"))
                .and(path(format!(
                    "/api/v4/projects/{encoded}/merge_requests/{iid}/notes"
                )))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
                .mount(&self.server)
                .await;
            Mock::given(method("POST"))
                .and(path(format!(
                    "/api/v4/projects/{encoded}/merge_requests/{iid}/notes"
                )))
                .respond_with(
                    ResponseTemplate::new(201)
                        .set_body_json(body("gitlab-api/create-merge-request-note.json")),
                )
                .mount(&self.server)
                .await;
            Mock::given(method("POST"))
                .and(path(format!(
                    "/api/v4/projects/{encoded}/merge_requests/{iid}/discussions"
                )))
                .respond_with(
                    ResponseTemplate::new(201)
                        .set_body_json(body("gitlab-api/create-merge-request-discussion.json")),
                )
                .mount(&self.server)
                .await;
        }
    }

    /// The requests received, in order, as `(METHOD, path)`.
    pub async fn calls(&self) -> Vec<(String, String)> {
        calls(&self.server).await
    }

    pub async fn requests(&self, verb: &str, request_path: &str) -> Vec<Request> {
        requests(&self.server, verb, request_path).await
    }
}

async fn calls(server: &MockServer) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.method.to_string(), r.url.path().to_owned()))
        .collect()
}

async fn requests(server: &MockServer, verb: &str, request_path: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == request_path)
        .collect()
}

/// A form-encoded body as sorted `(key, value)` pairs.
pub fn form(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(&request.body).into_owned().collect();
    pairs.sort();
    pairs
}

pub fn json_body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON request body")
}

fn expires_in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The JWT portcall signed to mint the token: RS256 with the App's key,
/// issued by the App, at most ten minutes long, backdated for clock drift.
pub fn assert_app_jwt(request: &wiremock::Request) {
    let auth = request
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let token = auth.strip_prefix("Bearer ").expect("a bearer JWT");
    let public = std::fs::read(test_key_path().with_file_name("test-app-key.pub.pem")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is the App id as a number, which the spec-claim check cannot read.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("the JWT verifies with the App's public key")
        .claims;
    assert_eq!(claims["iss"], json!(APP_ID));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(iat <= now_unix() - 50, "iat is backdated: {iat}");
    assert!(exp - iat <= 600, "at most ten minutes: {}", exp - iat);
}

/// The comments of one pull request, as GitHub would keep them.
#[derive(Clone, Default)]
struct CommentThread(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl wiremock::Respond for CommentThread {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut comments = self.0.lock().unwrap();
        match request.method.as_str() {
            "GET" => ResponseTemplate::new(200).set_body_json(comments.clone()),
            "POST" => {
                // The documented comment, with ids counting up from its own.
                let mut comment = body("github-api/issues/create-comment.json");
                comment["id"] = json!(comment["id"].as_u64().unwrap() + comments.len() as u64);
                comment["body"] = json_body(request)["body"].clone();
                comments.push(comment.clone());
                ResponseTemplate::new(201).set_body_json(comment)
            }
            _ => {
                let id: u64 = request
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let Some(comment) = comments.iter_mut().find(|c| c["id"] == json!(id)) else {
                    return ResponseTemplate::new(404).set_body_json(json!({
                        "message": "Not Found",
                        "documentation_url": "https://docs.github.com/rest"
                    }));
                };
                comment["body"] = json_body(request)["body"].clone();
                ResponseTemplate::new(200).set_body_json(comment.clone())
            }
        }
    }
}

/// GitHub as far as the tests need it to remember what portcall did: a
/// status or check run is listed on its commit once created (statuses
/// newest first), the open pull requests whose head is a commit are listed
/// on it, and each pull request's issue comments are created, listed (a
/// page at a time, with GitHub's `Link`), edited and deleted, as GitHub
/// does. [`GithubState::mount`] puts it on every route it answers; a test
/// may mount it on some of them instead.
#[derive(Clone, Default)]
pub struct GithubState(Arc<std::sync::Mutex<GithubKept>>);

#[derive(Default)]
struct GithubKept {
    /// Statuses (newest first) and check runs, by kind and commit.
    posted: BTreeMap<Key, Vec<Value>>,
    /// The numbers of the open pull requests whose head is a commit.
    pulls: BTreeMap<String, Vec<u64>>,
    /// Each pull request's issue comments, oldest first.
    comments: BTreeMap<u64, Vec<Value>>,
    /// Comments ever created: their ids count up from the documented one.
    comments_created: u64,
}

/// `("status" | "check", commit)`.
type Key = (&'static str, String);

impl GithubState {
    /// How many statuses (`"status"`) or check runs (`"check"`) were
    /// created on `sha`.
    pub fn created(&self, what: &'static str, sha: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .posted
            .get(&(what, sha.to_owned()))
            .map_or(0, Vec::len)
    }

    /// Pull request `number` is open, its head `sha`.
    pub fn open_pull_request(&self, number: u64, sha: &str) {
        self.0
            .lock()
            .unwrap()
            .pulls
            .entry(sha.to_owned())
            .or_default()
            .push(number);
    }

    /// The comments on pull request `number` now, oldest first.
    pub fn comments(&self, number: u64) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .comments
            .get(&number)
            .cloned()
            .unwrap_or_default()
    }

    /// Answers every route it keeps, for `repo`.
    pub async fn mount(&self, server: &MockServer, repo: &str) {
        for (verb, route) in [
            ("POST", "statuses/[0-9a-f]{40}"),
            ("GET", "commits/[0-9a-f]{40}/statuses"),
            ("POST", "check-runs"),
            ("GET", "commits/[0-9a-f]{40}/check-runs"),
            ("GET", "commits/[0-9a-f]{40}/pulls"),
            ("GET", "issues/[0-9]+/comments"),
            ("POST", "issues/[0-9]+/comments"),
            ("PATCH", "issues/comments/[0-9]+"),
            ("DELETE", "issues/comments/[0-9]+"),
        ] {
            Mock::given(method(verb))
                .and(path_regex(format!("^/repos/{repo}/{route}$")))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
    }
}

fn github_not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest"
    }))
}

/// The `page` (from 1) of `per_page` items a request asks for, and the
/// number of the next page if there is one.
fn page_of(
    request: &Request,
    items: &[Value],
    default_per_page: usize,
) -> (Vec<Value>, Option<usize>) {
    let asked = |name: &str| {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = asked("per_page").unwrap_or(default_per_page).max(1);
    let page = asked("page").unwrap_or(1).max(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    let next = (end < items.len()).then_some(page + 1);
    (items[start..end].to_vec(), next)
}

impl wiremock::Respond for GithubState {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let mut kept = self.0.lock().unwrap();
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let asked = || -> Value { serde_json::from_slice(&request.body).unwrap() };
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", [.., "statuses", sha]) => {
                let asked = asked();
                let mut status = body("github-api/repos/create-commit-status.json");
                for field in ["state", "description", "target_url", "context"] {
                    status[field] = asked[field].clone();
                }
                let list = kept
                    .posted
                    .entry(("status", (*sha).to_owned()))
                    .or_default();
                list.insert(0, status.clone());
                ResponseTemplate::new(201).set_body_json(status)
            }
            ("GET", [.., sha, "statuses"]) => {
                let list = kept.posted.get(&("status", (*sha).to_owned())).cloned();
                ResponseTemplate::new(200).set_body_json(list.unwrap_or_default())
            }
            ("POST", [.., "check-runs"]) => {
                let asked = asked();
                let mut run = body("github-api/checks/create.json");
                for field in [
                    "name",
                    "head_sha",
                    "external_id",
                    "conclusion",
                    "details_url",
                ] {
                    run[field] = asked[field].clone();
                }
                for field in ["title", "summary"] {
                    run["output"][field] = asked["output"][field].clone();
                }
                let sha = asked["head_sha"].as_str().unwrap().to_owned();
                kept.posted
                    .entry(("check", sha))
                    .or_default()
                    .push(run.clone());
                ResponseTemplate::new(201).set_body_json(run)
            }
            ("GET", [.., sha, "check-runs"]) => {
                let name = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "check_name")
                    .map(|(_, v)| v.into_owned());
                let listed: Vec<Value> = kept
                    .posted
                    .get(&("check", (*sha).to_owned()))
                    .into_iter()
                    .flatten()
                    .filter(|run| name.as_deref().is_none_or(|n| run["name"] == n))
                    .cloned()
                    .collect();
                let mut list = body("github-api/checks/list-for-ref.json");
                list["total_count"] = json!(listed.len());
                list["check_runs"] = json!(listed);
                ResponseTemplate::new(200).set_body_json(list)
            }
            ("GET", [.., sha, "pulls"]) => {
                let documented =
                    body("github-api/repos/list-pull-requests-associated-with-commit.json");
                let listed: Vec<Value> = kept
                    .pulls
                    .get(*sha)
                    .into_iter()
                    .flatten()
                    .map(|number| {
                        let mut pr = documented[0].clone();
                        pr["number"] = json!(number);
                        pr["state"] = json!("open");
                        pr["head"]["sha"] = json!(sha);
                        pr
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(listed)
            }
            ("GET", [.., "issues", number, "comments"]) => {
                let Ok(number) = number.parse::<u64>() else {
                    return github_not_found();
                };
                let all = kept.comments.get(&number).cloned().unwrap_or_default();
                let (page, next) = page_of(request, &all, 30);
                let mut answer = ResponseTemplate::new(200).set_body_json(page);
                if let Some(next) = next {
                    let mut url = request.url.clone();
                    url.query_pairs_mut()
                        .clear()
                        .append_pair("per_page", &page_size(request).to_string())
                        .append_pair("page", &next.to_string());
                    answer =
                        answer.insert_header("link", format!("<{url}>; rel=\"next\"").as_str());
                }
                answer
            }
            ("POST", [.., "issues", number, "comments"]) => {
                let Ok(number) = number.parse::<u64>() else {
                    return github_not_found();
                };
                // The documented comment, its id counting up from its own.
                let mut comment = body("github-api/issues/create-comment.json");
                comment["id"] = json!(comment["id"].as_u64().unwrap() + kept.comments_created);
                comment["body"] = asked()["body"].clone();
                kept.comments_created += 1;
                kept.comments
                    .entry(number)
                    .or_default()
                    .push(comment.clone());
                ResponseTemplate::new(201).set_body_json(comment)
            }
            ("PATCH", [.., "issues", "comments", id]) => {
                let text = asked()["body"].clone();
                let id = id.parse::<u64>().ok();
                let found = kept
                    .comments
                    .values_mut()
                    .flatten()
                    .find(|c| c["id"].as_u64() == id);
                let Some(comment) = found else {
                    return github_not_found();
                };
                comment["body"] = text;
                let mut edited = body("github-api/issues/update-comment.json");
                for field in ["id", "body", "issue_url"] {
                    edited[field] = comment[field].clone();
                }
                ResponseTemplate::new(200).set_body_json(edited)
            }
            ("DELETE", [.., "issues", "comments", id]) => {
                let id = id.parse::<u64>().ok();
                for thread in kept.comments.values_mut() {
                    if let Some(at) = thread.iter().position(|c| c["id"].as_u64() == id) {
                        thread.remove(at);
                        return ResponseTemplate::new(204);
                    }
                }
                github_not_found()
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

/// The `per_page` a request asked for, GitHub's 30 if none.
fn page_size(request: &Request) -> usize {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == "per_page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(30)
}

/// GitLab as far as the tests need it to remember what portcall did:
/// commit statuses (listed on their commit, only the newest of each name
/// unless `all=true`, as GitLab lists them), the merge requests a commit
/// is in (with each one's head), and each merge request's notes, created
/// on their own or as the first note of a discussion, listed oldest first
/// a page at a time (`X-Next-Page`), edited and deleted. Answers with the
/// documented bodies (`fixtures/gitlab-api/`); requests are form-encoded,
/// as the `gitlab` crate sends them. [`GitlabState::mount`] puts it on
/// every route it answers.
#[derive(Clone, Default)]
pub struct GitlabState(Arc<std::sync::Mutex<GitlabKept>>);

#[derive(Default)]
struct GitlabKept {
    /// Commit statuses by commit, oldest first.
    statuses: BTreeMap<String, Vec<Value>>,
    /// Merge requests by iid: the commits in it, and its head.
    merge_requests: BTreeMap<u64, (Vec<String>, String)>,
    /// Each merge request's notes, oldest first.
    notes: BTreeMap<u64, Vec<Value>>,
    /// Ids handed out so far (statuses, notes).
    ids: u64,
}

impl GitlabState {
    /// Merge request `iid` is open, made of `commits`, the last its head.
    pub fn open_merge_request(&self, iid: u64, commits: &[&str]) {
        let head = commits.last().expect("a merge request has commits");
        self.0.lock().unwrap().merge_requests.insert(
            iid,
            (
                commits.iter().map(|c| (*c).to_owned()).collect(),
                (*head).to_owned(),
            ),
        );
    }

    /// The notes on merge request `iid` now, oldest first.
    pub fn notes(&self, iid: u64) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .notes
            .get(&iid)
            .cloned()
            .unwrap_or_default()
    }

    /// Answers every route it keeps, for `project` (`group/sub/project`).
    pub async fn mount(&self, server: &MockServer, project: &str) {
        let encoded = project.replace('/', "%2F");
        for (verb, route) in [
            ("POST", "statuses/[0-9a-f]{40}"),
            ("GET", "repository/commits/[0-9a-f]{40}/statuses"),
            ("GET", "repository/commits/[0-9a-f]{40}/merge_requests"),
            ("GET", "merge_requests/[0-9]+/notes"),
            ("POST", "merge_requests/[0-9]+/notes"),
            ("PUT", "merge_requests/[0-9]+/notes/[0-9]+"),
            ("DELETE", "merge_requests/[0-9]+/notes/[0-9]+"),
            ("POST", "merge_requests/[0-9]+/discussions"),
        ] {
            Mock::given(method(verb))
                .and(path_regex(format!("^/api/v4/projects/{encoded}/{route}$")))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
    }
}

fn gitlab_not_found(what: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({ "message": format!("404 {what} Not Found") }))
}

/// A GitLab list answer: the page asked for (20 a page unless `per_page`
/// says otherwise) and `X-Next-Page`, empty on the last.
fn gitlab_page(request: &Request, items: &[Value]) -> ResponseTemplate {
    let (page, next) = page_of(request, items, 20);
    let next = next.map(|n| n.to_string()).unwrap_or_default();
    ResponseTemplate::new(200)
        .insert_header("x-next-page", next.as_str())
        .set_body_json(page)
}

impl GitlabKept {
    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }
}

impl wiremock::Respond for GitlabState {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut kept = self.0.lock().unwrap();
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let form: BTreeMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let query = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let iid = |s: &str| s.parse::<u64>().ok();
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", [.., "statuses", sha]) => {
                let name = form
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| "default".into());
                let state = form.get("state").cloned().unwrap_or_default();
                let list = kept.statuses.entry((*sha).to_owned()).or_default();
                // A running or pending status cannot move to the state it
                // is in; a finished one is followed by a new one.
                let latest = list.iter().rev().find(|s| s["name"] == name.as_str());
                if ["pending", "running"].contains(&state.as_str())
                    && latest.is_some_and(|s| s["status"] == state.as_str())
                {
                    return ResponseTemplate::new(400).set_body_json(json!({
                        "message": format!("Cannot transition status via :{0} from :{0}", if state == "running" { "run" } else { "enqueue" })
                    }));
                }
                let id = kept.next_id();
                let mut status = body("gitlab-api/create-commit-status.json");
                status["id"] = json!(id);
                status["sha"] = json!(sha);
                status["name"] = json!(name);
                status["status"] = json!(state);
                for field in ["description", "target_url", "ref"] {
                    status[field] = form.get(field).map_or(Value::Null, |v| json!(v));
                }
                kept.statuses
                    .entry((*sha).to_owned())
                    .or_default()
                    .push(status.clone());
                ResponseTemplate::new(201).set_body_json(status)
            }
            ("GET", [.., "commits", sha, "statuses"]) => {
                let all = query("all").as_deref() == Some("true");
                let name = query("name");
                let on_commit = kept.statuses.get(*sha).cloned().unwrap_or_default();
                let listed: Vec<Value> = on_commit
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| name.as_deref().is_none_or(|n| s["name"] == n))
                    .filter(|(i, s)| {
                        all || !on_commit[i + 1..]
                            .iter()
                            .any(|later| later["name"] == s["name"])
                    })
                    .map(|(_, s)| s.clone())
                    .collect();
                gitlab_page(request, &listed)
            }
            ("GET", [.., "commits", sha, "merge_requests"]) => {
                let documented = body("gitlab-api/list-commit-merge-requests.json");
                let listed: Vec<Value> = kept
                    .merge_requests
                    .iter()
                    .filter(|(_, (commits, _))| commits.iter().any(|c| c == sha))
                    .map(|(iid, (_, head))| {
                        let mut mr = documented[0].clone();
                        mr["iid"] = json!(iid);
                        mr["state"] = json!("opened");
                        mr["sha"] = json!(head);
                        mr
                    })
                    .collect();
                gitlab_page(request, &listed)
            }
            ("GET", [.., "merge_requests", number, "notes"]) => {
                let Some(number) = iid(number) else {
                    return gitlab_not_found("Merge Request");
                };
                let notes = kept.notes.get(&number).cloned().unwrap_or_default();
                gitlab_page(request, &notes)
            }
            ("POST", [.., "merge_requests", number, "notes"]) => {
                let Some(number) = iid(number) else {
                    return gitlab_not_found("Merge Request");
                };
                let id = kept.next_id();
                let mut note = body("gitlab-api/create-merge-request-note.json");
                note["id"] = json!(id);
                note["body"] = json!(form.get("body").cloned().unwrap_or_default());
                note["noteable_iid"] = json!(number);
                kept.notes.entry(number).or_default().push(note.clone());
                ResponseTemplate::new(201).set_body_json(note)
            }
            ("PUT", [.., "merge_requests", number, "notes", id]) => {
                let (Some(number), Some(id)) = (iid(number), iid(id)) else {
                    return gitlab_not_found("Note");
                };
                let found = kept
                    .notes
                    .get_mut(&number)
                    .and_then(|notes| notes.iter_mut().find(|n| n["id"] == json!(id)));
                let Some(note) = found else {
                    return gitlab_not_found("Note");
                };
                note["body"] = json!(form.get("body").cloned().unwrap_or_default());
                let mut edited = body("gitlab-api/update-merge-request-note.json");
                for field in ["id", "body", "noteable_iid"] {
                    edited[field] = note[field].clone();
                }
                ResponseTemplate::new(200).set_body_json(edited)
            }
            ("DELETE", [.., "merge_requests", number, "notes", id]) => {
                let (Some(number), Some(id)) = (iid(number), iid(id)) else {
                    return gitlab_not_found("Note");
                };
                let notes = kept.notes.entry(number).or_default();
                match notes.iter().position(|n| n["id"] == json!(id)) {
                    Some(at) => {
                        notes.remove(at);
                        ResponseTemplate::new(204)
                    }
                    None => gitlab_not_found("Note"),
                }
            }
            ("POST", [.., "merge_requests", number, "discussions"]) => {
                let Some(number) = iid(number) else {
                    return gitlab_not_found("Merge Request");
                };
                let id = kept.next_id();
                let mut discussion = body("gitlab-api/create-merge-request-discussion.json");
                let note = &mut discussion["notes"][0];
                note["id"] = json!(id);
                note["body"] = json!(form.get("body").cloned().unwrap_or_default());
                note["noteable_iid"] = json!(number);
                // Its note is one of the merge request's notes.
                let listed = note.clone();
                kept.notes.entry(number).or_default().push(listed);
                ResponseTemplate::new(201).set_body_json(discussion)
            }
            _ => ResponseTemplate::new(404),
        }
    }
}
