//! A small `/api/v1` client over reqwest: bearer auth from
//! `PORTCALL_TOKEN`, error answers mapped to [`CliError`], and the raw
//! answer kept for `--json`.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use url::Url;

use super::CliError;

/// The environment variable holding the admin or service-account token.
pub const TOKEN_ENV: &str = "PORTCALL_TOKEN";

const TIMEOUT: Duration = Duration::from_secs(30);

/// An answer from the server.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The body exactly as received.
    pub text: String,
    /// The body as JSON (`Null` when it is empty or not JSON).
    pub json: Value,
}

/// A client for one server.
pub struct Api {
    http: reqwest_oci::Client,
    base: Url,
    token: SecretString,
}

impl Api {
    /// A client for `base` with the token from [`TOKEN_ENV`].
    pub fn from_env(base: &Url) -> Result<Self, CliError> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{TOKEN_ENV} is not set: export the admin token (or a service account's) first"
                ))
            })?;
        Ok(Self {
            http: http_client()?,
            base: base.clone(),
            token: SecretString::from(token.trim().to_owned()),
        })
    }

    /// `GET /api/v1/{path…}?{query}`, skipping unset query values.
    pub async fn get(
        &self,
        path: &[&str],
        query: &[(&str, Option<String>)],
    ) -> Result<Answer, CliError> {
        let mut url = self.url(path);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                if let Some(value) = value {
                    pairs.append_pair(name, value);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.send(self.http.get(url)).await
    }

    /// `POST /api/v1/{path…}` with an optional JSON body.
    pub async fn post(&self, path: &[&str], body: Option<&Value>) -> Result<Answer, CliError> {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        self.send(request).await
    }

    /// `DELETE /api/v1/{path…}`.
    pub async fn delete(&self, path: &[&str]) -> Result<Answer, CliError> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &[&str]) -> Url {
        api_url(&self.base, path)
    }

    async fn send(&self, request: reqwest_oci::RequestBuilder) -> Result<Answer, CliError> {
        let request = request.bearer_auth(self.token.expose_secret());
        let answer = exchange(request, &self.base).await?;
        if (200..300).contains(&answer.status) {
            Ok(answer)
        } else {
            Err(api_error(&answer))
        }
    }
}

/// The HTTP client every command uses.
pub(crate) fn http_client() -> Result<reqwest_oci::Client, CliError> {
    reqwest_oci::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("portcall-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot build an HTTP client: {e}")))
}

/// `base` with `/api/v1/{path…}` appended, each segment percent-encoded.
fn api_url(base: &Url, path: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["api", "v1"]).extend(path);
    }
    url
}

/// Sends `request` and reads the answer. Errors name `shown` (the server's
/// address) rather than the request URL, which may carry a `?token=`.
pub(crate) async fn exchange(
    request: reqwest_oci::RequestBuilder,
    shown: &Url,
) -> Result<Answer, CliError> {
    let mut shown = shown.clone();
    shown.set_query(None);
    let unreachable = |e: reqwest_oci::Error| CliError::Unreachable {
        url: shown.to_string(),
        cause: error_chain(&e.without_url()),
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(unreachable)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, text, json })
}

/// The API's `{"error":{"code","message"}}`, or the bare status.
pub(crate) fn api_error(answer: &Answer) -> CliError {
    let error = &answer.json["error"];
    CliError::Api {
        status: answer.status,
        code: error["code"].as_str().unwrap_or("http_error").to_owned(),
        message: error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered HTTP {}", answer.status)),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_keep_a_base_prefix_and_encode_segments() {
        let base = Url::parse("https://ops.example.com/portcall/").unwrap();
        assert_eq!(
            api_url(&base, &["service-accounts", "a b/c"]).as_str(),
            "https://ops.example.com/portcall/api/v1/service-accounts/a%20b%2Fc"
        );
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            api_url(&base, &["deliveries"]).as_str(),
            "http://127.0.0.1:8080/api/v1/deliveries"
        );
    }

    #[test]
    fn error_answers_become_api_errors_with_their_code() {
        let answer = Answer {
            status: 404,
            text: String::new(),
            json: serde_json::json!({"error": {"code": "not_found", "message": "no delivery 9"}}),
        };
        let error = api_error(&answer);
        assert_eq!(error.to_string(), "no delivery 9 (not_found, HTTP 404)");
        assert_eq!(error.exit_code(), super::super::ExitCode::NotFound);
        let bare = api_error(&Answer {
            status: 502,
            text: "bad gateway".into(),
            json: Value::Null,
        });
        assert_eq!(bare.exit_code(), super::super::ExitCode::Failure);
    }
}
