//! A registry's live check: `GET /v2/` (the Distribution API's version
//! check: reachable? does it ask for credentials?), the authentication it
//! asks for with the source's read credentials, then `GET /v2/_catalog?n=1`.
//!
//! `GET /v2/` is sent with a plain client because oci-client's own
//! handshake does not say what the registry answered; the authentication
//! and the catalog go through oci-client, as image reads do.

use std::time::Instant;

use async_trait::async_trait;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest_oci::header::WWW_AUTHENTICATE;
use reqwest_oci::StatusCode;

use super::{error_chain, RegistryReader};
use crate::probe::{Answer, Depth, HealthCheck, Probe};

/// The repository named in the token request: a pull scope needs one, and
/// token services issue a token for a repository that does not exist.
const PROBE_REPOSITORY: &str = "portcall/health-check";

#[async_trait]
impl HealthCheck for RegistryReader {
    #[tracing::instrument(name = "registry.probe", skip_all, fields(registry.host = %self.host))]
    async fn probe(&self, depth: Depth) -> Probe {
        let started = Instant::now();
        let answer = self.check_api().await;
        let probe = Probe::from_answer(started.elapsed(), answer);
        if depth == Depth::Full && probe.authenticated() {
            let catalog = self.read_catalog().await;
            probe.with_functionality(catalog)
        } else {
            probe
        }
    }
}

impl RegistryReader {
    fn probe_reference(&self) -> Reference {
        Reference::with_tag(self.host.clone(), PROBE_REPOSITORY.into(), "latest".into())
    }

    /// `GET /v2/`, then whatever authentication the registry asks for.
    async fn check_api(&self) -> Answer {
        let url = format!("{}/v2/", self.base_url);
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(error) => {
                return Answer::Unreachable(self.scrub(format!(
                    "GET /v2/ at {}: {}",
                    self.host,
                    error_chain(&error)
                )))
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Accepted(format!(
                "{} serves the registry API without asking for credentials",
                self.host
            ));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return self.authenticate(&challenge).await;
        }
        let said = format!("GET /v2/ at {} answered {status}", self.host);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Answer::Trouble(said)
        } else {
            Answer::Refused(format!("{said}: is api_url a registry's base URL?"))
        }
    }

    /// Answers the registry's challenge as image reads would: Basic with
    /// the configured credentials, or oci-client's token handshake.
    async fn authenticate(&self, challenge: &str) -> Answer {
        let scheme = challenge
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (scheme.as_str(), &self.auth) {
            ("basic", RegistryAuth::Basic(user, password)) => {
                let url = format!("{}/v2/", self.base_url);
                match self
                    .http
                    .get(&url)
                    .basic_auth(user, Some(password))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        Answer::Accepted("the registry accepted the configured credentials".into())
                    }
                    Ok(r) if r.status().is_server_error() => Answer::Trouble(format!(
                        "GET /v2/ with credentials at {} answered {}",
                        self.host,
                        r.status()
                    )),
                    Ok(r) => Answer::Refused(format!(
                        "the registry refused the configured credentials ({})",
                        r.status()
                    )),
                    Err(error) => Answer::Unreachable(self.scrub(format!(
                        "GET /v2/ at {}: {}",
                        self.host,
                        error_chain(&error)
                    ))),
                }
            }
            ("basic", _) => Answer::Refused(
                "the registry asks for credentials (Basic) and the source has none: set username and password"
                    .into(),
            ),
            ("bearer", auth) => {
                let reference = self.probe_reference();
                match self
                    .client
                    .auth(&reference, auth, RegistryOperation::Pull)
                    .await
                {
                    Ok(_) => Answer::Accepted(match auth {
                        RegistryAuth::Anonymous => {
                            "the registry's token service issued an anonymous pull token".into()
                        }
                        _ => "the registry's token service accepted the configured credentials"
                            .into(),
                    }),
                    Err(error @ OciDistributionError::AuthenticationFailure(_)) => {
                        Answer::Refused(self.error("authenticating", error).to_string())
                    }
                    Err(error) => {
                        let error = self.error("authenticating", error);
                        if error.is_transient() {
                            Answer::Trouble(error.to_string())
                        } else {
                            Answer::Refused(error.to_string())
                        }
                    }
                }
            }
            _ => Answer::Refused(format!(
                "the registry answered 401 with an authentication scheme portcall does not speak ({:?})",
                scheme
            )),
        }
    }

    /// `GET /v2/_catalog?n=1`.
    async fn read_catalog(&self) -> Result<String, String> {
        let reference = self.probe_reference();
        match self.client.catalog(&reference, &self.auth, Some(1), None).await {
            Ok(catalog) if catalog.repositories.is_empty() => {
                Ok("the catalog answers; it lists no repositories".into())
            }
            Ok(_) => Ok("the catalog answers and lists repositories".into()),
            Err(error) => Err(format!(
                "{} (many registries do not offer the catalog; reading images by digest may still work)",
                self.error("listing the catalog (GET /v2/_catalog)", error)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::json;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::ingest::RegistryApi;
    use crate::probe::{Health, StepStatus};

    fn reader(url: &str, credentials: Option<(&str, &str)>) -> RegistryReader {
        RegistryReader::new(&RegistryApi {
            url: url.to_owned(),
            username: credentials.map(|(u, _)| SecretString::from(u)),
            password: credentials.map(|(_, p)| SecretString::from(p)),
        })
        .unwrap()
    }

    /// `Authorization: Basic` of `reader:hunter2`.
    const BASIC: &str = "Basic cmVhZGVyOmh1bnRlcjI=";

    async fn v2(server: &MockServer, status: u16, challenge: Option<String>) {
        let mut answer = ResponseTemplate::new(status).set_body_json(json!({}));
        if let Some(challenge) = challenge {
            answer = answer.insert_header("WWW-Authenticate", challenge.as_str());
        }
        Mock::given(method("GET"))
            .and(path("/v2/"))
            .respond_with(answer)
            .with_priority(10)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn an_open_registry_with_a_catalog_is_healthy() {
        let server = MockServer::start().await;
        v2(&server, 200, None).await;
        Mock::given(method("GET"))
            .and(path("/v2/_catalog"))
            .and(query_param("n", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"repositories": ["octo-org/hello-world"]})),
            )
            .mount(&server)
            .await;
        let probe = reader(&server.uri(), None).probe(Depth::Full).await;
        assert_eq!(probe.health, Health::Healthy, "{probe:#?}");
        assert_eq!(
            probe.functionality.message,
            "the catalog answers and lists repositories"
        );
    }

    #[tokio::test]
    async fn basic_credentials_are_tried_and_a_refusal_never_shows_the_password() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/"))
            .and(header("Authorization", BASIC))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .with_priority(1)
            .mount(&server)
            .await;
        v2(&server, 401, Some("Basic realm=\"registry\"".into())).await;
        let good = reader(&server.uri(), Some(("reader", "hunter2")))
            .probe(Depth::Health)
            .await;
        assert_eq!(good.health, Health::Healthy, "{good:#?}");

        let wrong = reader(&server.uri(), Some(("reader", "wrong")))
            .probe(Depth::Health)
            .await;
        assert_eq!(wrong.health, Health::Unhealthy);
        assert_eq!(
            wrong.authentication.message,
            "the registry refused the configured credentials (401 Unauthorized)"
        );
        let none = reader(&server.uri(), None).probe(Depth::Health).await;
        assert_eq!(none.authentication.status, StepStatus::Failed);
        assert!(none
            .authentication
            .message
            .contains("set username and password"));
        assert!(!format!("{good:?}{wrong:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_token_service_is_asked_with_the_credentials() {
        let server = MockServer::start().await;
        let realm = format!("{}/token", server.uri());
        v2(
            &server,
            401,
            Some(format!(
                "Bearer realm=\"{realm}\",service=\"registry.test\""
            )),
        )
        .await;
        Mock::given(method("GET"))
            .and(path("/token"))
            .and(header("Authorization", BASIC))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "t"})))
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"details": "denied"})))
            .with_priority(10)
            .mount(&server)
            .await;
        let good = reader(&server.uri(), Some(("reader", "hunter2")))
            .probe(Depth::Health)
            .await;
        assert_eq!(good.health, Health::Healthy, "{good:#?}");
        let wrong = reader(&server.uri(), Some(("reader", "wrong")))
            .probe(Depth::Health)
            .await;
        assert_eq!(wrong.health, Health::Unhealthy, "{wrong:#?}");
        assert!(wrong
            .authentication
            .message
            .starts_with("authenticating at"));
    }

    #[tokio::test]
    async fn a_registry_in_trouble_is_degraded_and_a_closed_port_unreachable() {
        let server = MockServer::start().await;
        v2(&server, 503, None).await;
        let probe = reader(&server.uri(), None).probe(Depth::Health).await;
        assert_eq!(probe.health, Health::Degraded);

        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let probe = reader(&format!("http://127.0.0.1:{port}"), None)
            .probe(Depth::Full)
            .await;
        assert_eq!(probe.health, Health::Unhealthy);
        assert_eq!(probe.connectivity.status, StepStatus::Failed);
        assert!(
            probe
                .connectivity
                .message
                .starts_with("GET /v2/ at 127.0.0.1:"),
            "{}",
            probe.connectivity.message
        );
    }
}
