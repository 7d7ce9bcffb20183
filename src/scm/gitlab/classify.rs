//! How a GitLab call that did not succeed becomes an [`ScmError`]: the one
//! place that decides whether trying again can help.
//!
//! | what happened | class |
//! |---|---|
//! | 5xx, 429 | transient, not before `Retry-After` seconds, else `RateLimit-Reset` (unix time) |
//! | 408, 409 (GitLab: "an update is already in progress for the SHA/ref") | transient |
//! | no answer within the request timeout, connection or TLS failure | transient |
//! | 401, 403, 404, 422, any other 4xx, 3xx | permanent, with GitLab's `message` or `error` |
//! | a request that cannot be built (bad token characters, bad URL) | permanent |
//!
//! A 400 "Cannot transition status" is permanent here; the status call
//! decides that it means "already in that state" (see `post_status`).

use std::error::Error as StdError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitlab::api::ApiError;
use gitlab::{GitlabError, RestError};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::scm::ScmError;

/// Longest message taken from an error body; GitLab's are short, a proxy's
/// page or a validation object may not be.
const MAX_MESSAGE_CHARS: usize = 500;

/// A call that did not succeed, before it is classified.
#[derive(Debug)]
pub(super) enum Failure<'a> {
    /// GitLab, or a proxy in front of it, answered with a status other than 2xx.
    Answer {
        status: StatusCode,
        headers: &'a HeaderMap,
        body: &'a [u8],
    },
    /// No complete answer within the request timeout.
    TimedOut(Duration),
    /// The crate could not build or send the request, or read the answer.
    Api(ApiError<RestError>),
    /// Building the crate's client failed; it asks GitLab `GET /user` to
    /// check the token, so this may carry GitLab's answer.
    Build(GitlabError),
}

/// Classifies `failure`; `now` dates a `RateLimit-Reset`.
pub(super) fn classify(failure: Failure<'_>, now: SystemTime) -> ScmError {
    match failure {
        Failure::Answer {
            status,
            headers,
            body,
        } => by_status(status, retry_after(headers, now), body_message(body)),
        Failure::TimedOut(limit) => ScmError::transient(
            format!("GitLab did not answer within {} ms", limit.as_millis()),
            None,
        ),
        Failure::Build(GitlabError::Api { source }) => classify(Failure::Api(source), now),
        Failure::Build(GitlabError::Communication { source }) => {
            transport(source.is_builder(), &source)
        }
        Failure::Build(GitlabError::Http { status }) => by_status(status, None, None),
        Failure::Build(other) => {
            ScmError::permanent(None, format!("cannot build the GitLab client: {other}"))
        }
        Failure::Api(error) => match error {
            ApiError::Client {
                source: RestError::Communication { source },
            } => transport(source.is_builder(), &source),
            // The token is not a valid header value, or the request is malformed.
            ApiError::Client { source } => {
                ScmError::permanent(None, format!("cannot send the request: {source}"))
            }
            ApiError::GitlabWithStatus { status, msg } => by_status(status, None, Some(msg)),
            ApiError::GitlabObjectWithStatus { status, obj }
            | ApiError::GitlabUnrecognizedWithStatus { status, obj } => {
                by_status(status, None, Some(obj.to_string()))
            }
            ApiError::GitlabService { status, data } => {
                by_status(status, None, body_message(&data))
            }
            ApiError::GitlabRateLimited {
                retry_after,
                rl_reset,
                ..
            } => {
                // The crate writes 0 for a header that was missing.
                let retry_after = if retry_after > Duration::ZERO {
                    Some(retry_after)
                } else {
                    u64::try_from(rl_reset.timestamp())
                        .ok()
                        .and_then(|reset| until(reset, now))
                };
                by_status(StatusCode::TOO_MANY_REQUESTS, retry_after, None)
            }
            ApiError::MovedPermanently { location } => ScmError::permanent(
                Some(StatusCode::MOVED_PERMANENTLY.as_u16()),
                format!(
                    "moved permanently to {}",
                    location.as_deref().unwrap_or("an unknown location")
                ),
            ),
            other => ScmError::permanent(None, other.to_string()),
        },
    }
}

/// Whether GitLab (or a proxy in front of it) answered at all, as opposed
/// to no connection, no answer in time, or no request: what tells a health
/// check's "refused" from "unreachable".
pub(super) fn answered(failure: &Failure<'_>) -> bool {
    match failure {
        Failure::Answer { .. } => true,
        Failure::TimedOut(_) => false,
        Failure::Build(GitlabError::Api { source }) | Failure::Api(source) => matches!(
            source,
            ApiError::GitlabWithStatus { .. }
                | ApiError::GitlabObjectWithStatus { .. }
                | ApiError::GitlabUnrecognizedWithStatus { .. }
                | ApiError::GitlabService { .. }
                | ApiError::GitlabRateLimited { .. }
                | ApiError::MovedPermanently { .. }
        ),
        Failure::Build(GitlabError::Http { .. }) => true,
        Failure::Build(_) => false,
    }
}

/// The rule for an HTTP answer.
fn by_status(
    status: StatusCode,
    retry_after: Option<Duration>,
    message: Option<String>,
) -> ScmError {
    let transient = status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT
        );
    if transient {
        let message = match message {
            Some(message) => format!("GitLab answered {status}: {message}"),
            None => format!("GitLab answered {status}"),
        };
        ScmError::transient(message, retry_after)
    } else {
        ScmError::permanent(
            Some(status.as_u16()),
            message.unwrap_or_else(|| status.to_string()),
        )
    }
}

/// No answer: connection refused, DNS, TLS, reset, timeout inside the
/// client. Only a request the client could not even build is permanent.
fn transport(is_builder: bool, error: &dyn StdError) -> ScmError {
    let message = format!("cannot reach GitLab: {}", chain(error));
    if is_builder {
        ScmError::permanent(None, message)
    } else {
        ScmError::transient(message, None)
    }
}

/// `error` and its causes, `: `-separated (reqwest puts "connection
/// refused" in a cause, not in its own message).
fn chain(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// GitLab's explanation in an error body: `message` (a string, or an object
/// of field errors), `error` with an optional `error_description` (OAuth and
/// parameter errors), or short plain text ("Retry later"). HTML pages from
/// proxies are left out.
fn body_message(body: &[u8]) -> Option<String> {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(value) => match (
            value.get("message"),
            value.get("error"),
            value.get("error_description").and_then(Value::as_str),
        ) {
            (Some(Value::String(message)), _, _) => message.clone(),
            (Some(object), _, _) => object.to_string(),
            (None, Some(Value::String(error)), Some(description)) => {
                format!("{error}: {description}")
            }
            (None, Some(Value::String(error)), None) => error.clone(),
            (None, Some(object), _) => object.to_string(),
            (None, None, _) => return None,
        },
        Err(_) => {
            let text = std::str::from_utf8(body).ok()?.trim();
            if text.is_empty() || text.contains('<') {
                return None;
            }
            text.to_owned()
        }
    };
    Some(clip(message))
}

fn clip(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut clipped: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    clipped.push('…');
    clipped
}

/// How long to wait: `Retry-After` (seconds, as GitLab sends it), else
/// `RateLimit-Reset` (unix seconds) when it is in the future.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let seconds =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    if let Some(seconds) = seconds("retry-after") {
        return Some(Duration::from_secs(seconds));
    }
    until(seconds("ratelimit-reset")?, now)
}

fn until(unix_seconds: u64, now: SystemTime) -> Option<Duration> {
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (unix_seconds > now).then(|| Duration::from_secs(unix_seconds - now))
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::HeaderValue;

    /// 2026-01-01T00:00:00Z, the "now" of these cases.
    const NOW: u64 = 1_767_225_600;

    /// The class, the seconds to wait or the status, and the message.
    #[derive(Debug, PartialEq)]
    enum Want {
        Transient(Option<u64>),
        Permanent(Option<u16>, String),
    }

    fn permanent(status: Option<u16>, message: &str) -> Want {
        Want::Permanent(status, message.to_owned())
    }

    fn got(error: &ScmError) -> Want {
        match error {
            ScmError::Transient { retry_after, .. } => {
                Want::Transient(retry_after.map(|d| d.as_secs()))
            }
            ScmError::Permanent { status, message } => Want::Permanent(*status, message.clone()),
        }
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Want {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let failure = Failure::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &map,
            body: body.as_bytes(),
        };
        got(&classify(failure, UNIX_EPOCH + Duration::from_secs(NOW)))
    }

    /// Status, headers, body, and the classification wanted.
    type AnswerCase<'a> = (u16, &'a [(&'static str, &'a str)], &'a str, Want);

    #[test]
    fn gitlab_answers_are_classified_by_status_with_gitlabs_message() {
        let reset_in_42 = (NOW + 42).to_string();
        let reset_past = (NOW - 5).to_string();
        // Bodies are the shapes in api-examples/gitlab/_errors.json.
        let cases: &[AnswerCase<'_>] = &[
            (
                502,
                &[],
                "<html><body>502 Bad Gateway</body></html>",
                Want::Transient(None),
            ),
            (
                500,
                &[],
                r#"{"message":"500 Internal Server Error"}"#,
                Want::Transient(None),
            ),
            (503, &[("retry-after", "7")], "", Want::Transient(Some(7))),
            (
                429,
                &[("retry-after", "3")],
                "Retry later\n",
                Want::Transient(Some(3)),
            ),
            (
                429,
                &[("ratelimit-reset", &reset_in_42)],
                "Retry later\n",
                Want::Transient(Some(42)),
            ),
            (
                429,
                &[("retry-after", "3"), ("ratelimit-reset", &reset_in_42)],
                "",
                Want::Transient(Some(3)),
            ),
            (
                429,
                &[("ratelimit-reset", &reset_past)],
                "",
                Want::Transient(None),
            ),
            (429, &[("retry-after", "soon")], "", Want::Transient(None)),
            (
                409,
                &[],
                r#"{"message":"409 Conflict"}"#,
                Want::Transient(None),
            ),
            (408, &[], "", Want::Transient(None)),
            (
                401,
                &[],
                r#"{"message":"401 Unauthorized"}"#,
                permanent(Some(401), "401 Unauthorized"),
            ),
            (
                401,
                &[],
                r#"{"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."}"#,
                permanent(
                    Some(401),
                    "invalid_token: Token was revoked. You have to re-authorize from the user.",
                ),
            ),
            (
                403,
                &[],
                r#"{"message":"403 Forbidden"}"#,
                permanent(Some(403), "403 Forbidden"),
            ),
            (
                404,
                &[],
                r#"{"message":"404 Project Not Found"}"#,
                permanent(Some(404), "404 Project Not Found"),
            ),
            (404, &[], "", permanent(Some(404), "404 Not Found")),
            (
                400,
                &[],
                r#"{"error":"state is missing"}"#,
                permanent(Some(400), "state is missing"),
            ),
            (
                400,
                &[],
                r#"{"message":{"note":["can't be blank"]}}"#,
                permanent(Some(400), r#"{"note":["can't be blank"]}"#),
            ),
            (
                422,
                &[],
                r#"{"message":"The number of jobs has exceeded the limit"}"#,
                permanent(Some(422), "The number of jobs has exceeded the limit"),
            ),
            (418, &[], "{}", permanent(Some(418), "418 I'm a teapot")),
            (302, &[], "", permanent(Some(302), "302 Found")),
        ];
        for (status, headers, body, want) in cases {
            assert_eq!(
                &answer(*status, headers, body),
                want,
                "{status} {headers:?} {body}"
            );
        }
    }

    #[test]
    fn failures_without_an_answer_are_classified() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let status = |code| StatusCode::from_u16(code).unwrap();
        let bad_token = RestError::from(gitlab::AuthError::from(
            HeaderValue::from_str("line\nbreak").unwrap_err(),
        ));
        let cases: Vec<(Failure<'_>, Want)> = vec![
            (Failure::TimedOut(Duration::from_secs(30)), Want::Transient(None)),
            (
                Failure::Api(ApiError::GitlabWithStatus { status: status(502), msg: "502 Bad Gateway".into() }),
                Want::Transient(None),
            ),
            (
                Failure::Api(ApiError::GitlabService { status: status(404), data: b"Not Found".to_vec() }),
                permanent(Some(404), "Not Found"),
            ),
            (
                Failure::Api(ApiError::client(bad_token)),
                permanent(None, "cannot send the request: error setting auth header: header value error: failed to parse header value"),
            ),
            // What building the client reports when GitLab refuses the token on `GET /user`.
            (
                Failure::Build(GitlabError::from(ApiError::<RestError>::GitlabWithStatus {
                    status: status(401),
                    msg: "401 Unauthorized".into(),
                })),
                permanent(Some(401), "401 Unauthorized"),
            ),
            (
                Failure::Build(GitlabError::from(ApiError::<RestError>::GitlabService {
                    status: status(503),
                    data: Vec::new(),
                })),
                Want::Transient(None),
            ),
        ];
        for (failure, want) in cases {
            let description = format!("{failure:?}");
            assert_eq!(got(&classify(failure, now)), want, "{description}");
        }
    }

    #[test]
    fn long_messages_are_clipped() {
        let body = format!(r#"{{"message":"{}"}}"#, "x".repeat(2_000));
        let Want::Permanent(_, message) = answer(400, &[], &body) else {
            panic!("a 400 is permanent");
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
