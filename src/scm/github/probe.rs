//! The GitHub App's live check: `GET /app` with the app JWT (reachable?
//! is the key the App's?), then `GET /app/installations` (is the App
//! installed anywhere?).

use std::time::Instant;

use async_trait::async_trait;
use http::header::LINK;
use http::Method;
use octocrab::models;
use secrecy::SecretString;

use super::{errors, parse, uri, wire, Failure, GithubClient};
use crate::probe::{Answer, Depth, HealthCheck, Probe};

/// Installations read by the functional check (one page).
const INSTALLATIONS_PER_PAGE: usize = 100;

#[async_trait]
impl HealthCheck for GithubClient {
    #[tracing::instrument(name = "github.probe", skip_all)]
    async fn probe(&self, depth: Depth) -> Probe {
        let started = Instant::now();
        let jwt = match self.jwt() {
            Ok(jwt) => jwt,
            Err(error) => {
                return Probe::from_answer(started.elapsed(), Answer::Refused(error.to_string()))
            }
        };
        let answer = match uri("/app".to_owned()) {
            Ok(target) => match self.send(&Method::GET, &target, &jwt, None::<&()>).await {
                Ok(answer) => match parse::<models::App>(&answer, "the authenticated app") {
                    Ok(app) => Answer::Accepted(format!(
                        "authenticated as the GitHub App {} (id {})",
                        app.slug.as_deref().unwrap_or(&app.name),
                        app.id
                    )),
                    Err(error) => Answer::Trouble(error.to_string()),
                },
                Err(failure) => self.answer_of(failure),
            },
            Err(error) => Answer::Refused(error.to_string()),
        };
        let probe = Probe::from_answer(started.elapsed(), answer);
        if depth == Depth::Full && probe.authenticated() {
            let installations = self.count_installations(&jwt).await;
            probe.with_functionality(installations)
        } else {
            probe
        }
    }
}

impl GithubClient {
    /// What a failed call says about the service: an answer from GitHub
    /// refuses us (4xx) or shows trouble (5xx, rate limits); anything else
    /// means GitHub was not reached.
    fn answer_of(&self, failure: Failure) -> Answer {
        match failure {
            Failure::Octocrab(err) => {
                let answered = matches!(err, octocrab::Error::GitHub { .. });
                let error = errors::classify(&err, self.clock.now_unix());
                match (answered, error.is_transient()) {
                    (true, true) => Answer::Trouble(error.to_string()),
                    (true, false) => Answer::Refused(error.to_string()),
                    (false, _) => Answer::Unreachable(error.to_string()),
                }
            }
            Failure::TimedOut(error) => Answer::Unreachable(error.to_string()),
            Failure::Unsendable(error) => Answer::Refused(error.to_string()),
        }
    }

    /// `GET /app/installations`: how many accounts the App is installed on
    /// (one page of [`INSTALLATIONS_PER_PAGE`]). None is a failure: the App
    /// can post nowhere.
    async fn count_installations(&self, jwt: &SecretString) -> Result<String, String> {
        let target = uri(format!(
            "/app/installations?per_page={INSTALLATIONS_PER_PAGE}"
        ))
        .map_err(|e| e.to_string())?;
        let answer = self
            .exchange(&Method::GET, &target, jwt, None::<&()>)
            .await
            .map_err(|e| format!("listing the App's installations: {e}"))?;
        let installations: Vec<models::Installation> =
            parse(&answer, "installations").map_err(|e| e.to_string())?;
        let more = answer
            .headers
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(wire::next_link)
            .is_some();
        match (installations.len(), more) {
            (0, _) => Err(
                "the App has no installations: install it on the accounts or repositories of your components"
                    .to_owned(),
            ),
            (1, false) => Ok("the App is installed on 1 account".to_owned()),
            (n, false) => Ok(format!("the App is installed on {n} accounts")),
            (n, true) => Ok(format!("the App is installed on more than {n} accounts")),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::{json, Value};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::GithubSettings;
    use crate::probe::{Health, StepStatus};

    const KEY_PEM: &str = include_str!("../../../fixtures/github/test-app-key.pem");

    fn documented(text: &str) -> Value {
        serde_json::from_str(text).expect("fixtures are JSON")
    }

    fn app() -> Value {
        documented(include_str!(
            "../../../fixtures/github-api/apps/get-authenticated.json"
        ))
    }

    fn installation() -> Value {
        documented(include_str!(
            "../../../fixtures/github-api/apps/get-repo-installation.json"
        ))
    }

    fn client_for(api_url: &str) -> GithubClient {
        GithubClient::new(&GithubSettings {
            app_id: 4242,
            private_key: SecretString::from(KEY_PEM),
            api_url: api_url.to_owned(),
            request_timeout: std::time::Duration::from_secs(60),
            recovery: Default::default(),
        })
        .expect("the test key and URL are valid")
    }

    async fn answers(server: &MockServer, route: &str, status: u16, body: Value) {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn the_app_and_its_installations_make_a_healthy_full_check() {
        let server = MockServer::start().await;
        answers(&server, "/app", 200, app()).await;
        answers(&server, "/app/installations", 200, json!([installation()])).await;
        let probe = client_for(&server.uri()).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Healthy, "{probe:#?}");
        assert_eq!(
            probe.authentication.message,
            "authenticated as the GitHub App octoapp (id 1)"
        );
        assert_eq!(
            probe.functionality.message,
            "the App is installed on 1 account"
        );
        assert!(probe.connectivity.latency_ms.is_some());
    }

    #[tokio::test]
    async fn the_health_check_alone_does_not_list_installations() {
        let server = MockServer::start().await;
        answers(&server, "/app", 200, app()).await;
        let probe = client_for(&server.uri()).probe(Depth::Health).await;
        assert_eq!(probe.health, Health::Healthy);
        assert_eq!(probe.functionality.status, StepStatus::Skipped);
        let calls = server.received_requests().await.unwrap();
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test]
    async fn a_refused_jwt_fails_authentication_with_githubs_message() {
        let server = MockServer::start().await;
        let refusal = json!({
            "message": "A JSON web token could not be decoded",
            "documentation_url": "https://docs.github.com/rest",
        });
        answers(&server, "/app", 401, refusal).await;
        let probe = client_for(&server.uri()).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Unhealthy);
        assert_eq!(probe.connectivity.status, StepStatus::Ok);
        assert_eq!(probe.authentication.status, StepStatus::Failed);
        assert_eq!(
            probe.authentication.message,
            "GitHub answered 401: A JSON web token could not be decoded"
        );
        assert_eq!(probe.functionality.status, StepStatus::Skipped);
    }

    #[tokio::test]
    async fn a_github_in_trouble_is_degraded_and_one_not_installed_anywhere_too() {
        let server = MockServer::start().await;
        answers(
            &server,
            "/app",
            503,
            json!({"message": "Service Unavailable"}),
        )
        .await;
        let probe = client_for(&server.uri()).probe(Depth::Health).await;
        assert_eq!(probe.health, Health::Degraded, "{probe:#?}");

        let server = MockServer::start().await;
        answers(&server, "/app", 200, app()).await;
        answers(&server, "/app/installations", 200, json!([])).await;
        let probe = client_for(&server.uri()).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Degraded);
        assert_eq!(probe.functionality.status, StepStatus::Failed);
        assert!(probe.functionality.message.contains("no installations"));
    }

    #[tokio::test]
    async fn a_closed_port_fails_connectivity() {
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
            probe
                .connectivity
                .message
                .starts_with("could not reach GitHub"),
            "{}",
            probe.connectivity.message
        );
        assert_eq!(probe.authentication.status, StepStatus::Skipped);
    }
}
