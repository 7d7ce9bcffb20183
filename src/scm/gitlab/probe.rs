//! The GitLab token's live check: `GET /user` (reachable? is the token
//! valid, and whose is it?), then `GET /projects?membership=true` (can it
//! see any project to post to?).

use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use gitlab::api::projects::Projects;
use gitlab::api::users::CurrentUser;
use serde::Deserialize;

use super::classify::{answered, classify, Failure};
use super::{decode, invalid_request, GitlabClient};
use crate::probe::{Answer, Depth, HealthCheck, Probe};
use crate::scm::ScmError;

/// What is read of the current user.
#[derive(Debug, Deserialize)]
struct User {
    username: String,
}

#[async_trait]
impl HealthCheck for GitlabClient {
    #[tracing::instrument(name = "gitlab.probe", skip_all)]
    async fn probe(&self, depth: Depth) -> Probe {
        let started = Instant::now();
        // The first use builds the crate's client, which asks GET /user
        // itself: a refused token shows up here.
        if let Err(failure) = self.connect().await {
            return Probe::from_answer(started.elapsed(), answer_of(failure));
        }
        let started = Instant::now();
        let answer = self.current_user().await;
        let probe = Probe::from_answer(started.elapsed(), answer);
        if depth == Depth::Full && probe.authenticated() {
            let projects = self.count_projects().await;
            probe.with_functionality(projects)
        } else {
            probe
        }
    }
}

impl GitlabClient {
    /// `GET /user`: whose token this is.
    async fn current_user(&self) -> Answer {
        let endpoint = match CurrentUser::builder().build() {
            Ok(endpoint) => endpoint,
            Err(error) => return Answer::Refused(invalid_request(error).to_string()),
        };
        let response = match self.send_any(&endpoint, None).await {
            Ok(response) => response,
            Err(error) => return Answer::Unreachable(error.to_string()),
        };
        if !response.status().is_success() {
            return answer_of(Failure::Answer {
                status: response.status(),
                headers: response.headers(),
                body: response.body(),
            });
        }
        match decode::<User>(&response) {
            Ok(user) => Answer::Accepted(format!("authenticated as @{}", user.username)),
            Err(error) => Answer::Trouble(error.to_string()),
        }
    }

    /// `GET /projects?membership=true&simple=true`: how many projects the
    /// token's user is a member of (GitLab's `X-Total`, else the first
    /// page). None is a failure: the token can post nowhere.
    async fn count_projects(&self) -> Result<String, String> {
        let endpoint = Projects::builder()
            .membership(true)
            .simple(true)
            .build()
            .map_err(|e| invalid_request(e).to_string())?;
        let response = self
            .send(&endpoint, None)
            .await
            .map_err(|e| format!("listing the token's projects: {e}"))?;
        let page: Vec<serde_json::Value> = decode(&response).map_err(|e| e.to_string())?;
        let total = response
            .headers()
            .get("x-total")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (total, page.len()) {
            (Some(0), _) | (None, 0) => Err(
                "the token is a member of no project: give it access to the projects of your gitlab: components"
                    .to_owned(),
            ),
            (Some(1), _) | (None, 1) => Ok("the token can reach 1 project".to_owned()),
            (Some(n), _) => Ok(format!("the token can reach {n} projects")),
            (None, n) => Ok(format!("the token can reach at least {n} projects")),
        }
    }
}

/// A failure as a health finding: GitLab answered (refusing the token, or in
/// trouble), or it did not.
fn answer_of(failure: Failure<'_>) -> Answer {
    let reached = answered(&failure);
    let error = classify(failure, SystemTime::now());
    match (reached, error) {
        (false, error) => Answer::Unreachable(error.to_string()),
        (true, error @ ScmError::Transient { .. }) => Answer::Trouble(error.to_string()),
        (true, ScmError::Permanent { status, message }) => Answer::Refused(match status {
            Some(status @ (401 | 403)) => format!("GitLab refused the token ({status}): {message}"),
            Some(status) => format!("GitLab answered {status}: {message}"),
            None => message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::{json, Value};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::GitlabSettings;
    use crate::probe::{Health, StepStatus};

    const TOKEN: &str = "glpat-portcall-probe-token";

    fn documented(text: &str) -> Value {
        serde_json::from_str(text).expect("fixtures are JSON")
    }

    fn client_for(url: &str) -> GitlabClient {
        GitlabClient::new(&GitlabSettings {
            url: url.to_owned(),
            token: SecretString::from(TOKEN),
            request_timeout: std::time::Duration::from_secs(5),
        })
        .unwrap()
    }

    async fn user(server: &MockServer, status: u16, body: Value) {
        Mock::given(method("GET"))
            .and(path("/api/v4/user"))
            .and(header("PRIVATE-TOKEN", TOKEN))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn a_valid_token_with_projects_makes_a_healthy_full_check() {
        let server = MockServer::start().await;
        user(
            &server,
            200,
            documented(include_str!(
                "../../../fixtures/gitlab-api/get-current-user.json"
            )),
        )
        .await;
        let project = documented(include_str!(
            "../../../fixtures/gitlab-api/get-project.json"
        ));
        Mock::given(method("GET"))
            .and(path("/api/v4/projects"))
            .and(query_param("membership", "true"))
            .and(query_param("simple", "true"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("X-Total", "3")
                    .set_body_json(json!([project])),
            )
            .mount(&server)
            .await;
        let probe = client_for(&server.uri()).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Healthy, "{probe:#?}");
        assert_eq!(probe.authentication.message, "authenticated as @john_smith");
        assert_eq!(
            probe.functionality.message,
            "the token can reach 3 projects"
        );
    }

    #[tokio::test]
    async fn a_refused_token_fails_authentication() {
        let server = MockServer::start().await;
        user(&server, 401, json!({"message": "401 Unauthorized"})).await;
        let probe = client_for(&server.uri()).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Unhealthy);
        assert_eq!(probe.connectivity.status, StepStatus::Ok);
        assert_eq!(
            probe.authentication.message,
            "GitLab refused the token (401): 401 Unauthorized"
        );
        assert!(!format!("{probe:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn a_gitlab_in_trouble_is_degraded_and_a_closed_port_unreachable() {
        let server = MockServer::start().await;
        user(&server, 502, json!({"message": "Bad Gateway"})).await;
        let probe = client_for(&server.uri()).probe(Depth::Health).await;
        assert_eq!(probe.health, Health::Degraded, "{probe:#?}");

        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let probe = client_for(&format!("http://127.0.0.1:{port}"))
            .probe(Depth::Full)
            .await;
        assert_eq!(probe.health, Health::Unhealthy);
        assert_eq!(probe.connectivity.status, StepStatus::Failed);
        assert!(
            probe.connectivity.message.contains("cannot reach GitLab"),
            "{}",
            probe.connectivity.message
        );
    }
}
