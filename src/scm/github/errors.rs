//! Which GitHub failures are worth trying again, and when.
//!
//! The dispatcher owns the one retry policy; this module only tells it
//! whether a retry can help ([`ScmError::Transient`]) and, when GitHub said
//! so, how long to wait. Following GitHub's "Best practices for using the
//! REST API" and "Rate limits for the REST API":
//!
//! - 5xx, 408 and 429 are transient;
//! - 403 is transient only when it is a rate limit: the primary limit
//!   (`x-ratelimit-remaining: 0`), a secondary limit (GitHub's message says
//!   "secondary rate limit", formerly "abuse detection"), or any 403 that
//!   carries `Retry-After`;
//! - every other 4xx (401 after a fresh token, 403, 404, 422, …) is
//!   permanent and keeps GitHub's `message`;
//! - failing to reach GitHub at all (connect, TLS, timeout) is transient.
//!
//! The wait is `Retry-After` when present; for an exhausted primary limit,
//! `x-ratelimit-reset` minus now; for a secondary limit without either, one
//! minute (GitHub: "wait for at least one minute"). GitHub sends
//! `x-ratelimit-reset` on every answer, so it is only used when the limit
//! is actually exhausted — a 502 is not a reason to wait out the hour.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::scm::ScmError;

/// Longest part of GitHub's `errors` array kept in a message.
const MAX_DETAIL_CHARS: usize = 500;

/// Wait after a secondary rate limit that named no time.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Classifies anything octocrab returned. `now_unix` is the current time,
/// for turning `x-ratelimit-reset` into a wait.
pub(super) fn classify(err: &octocrab::Error, now_unix: i64) -> ScmError {
    match err {
        octocrab::Error::GitHub { source, .. } => {
            let mut message = source.message.clone();
            if let Some(errors) = source.errors.as_ref().filter(|e| !e.is_empty()) {
                let detail: String = serde_json::Value::from(errors.clone())
                    .to_string()
                    .chars()
                    .take(MAX_DETAIL_CHARS)
                    .collect();
                message = format!("{message} {detail}");
            }
            let empty = HeaderMap::new();
            let headers = source.headers.as_ref().unwrap_or(&empty);
            classify_answer(source.status_code, headers, &message, now_unix)
        }
        // The request never got an answer: connection refused or reset, DNS,
        // TLS, a connect/read/write timeout.
        octocrab::Error::Service { .. } | octocrab::Error::Hyper { .. } => {
            ScmError::transient(format!("could not reach GitHub: {}", chain(err)), None)
        }
        _ => ScmError::permanent(None, format!("GitHub call failed: {}", chain(err))),
    }
}

/// Classifies one non-2xx answer from its status, headers and GitHub's
/// `message`.
pub(super) fn classify_answer(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now_unix: i64,
) -> ScmError {
    let text = format!("GitHub answered {}: {message}", status.as_u16());
    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let exhausted = header_str(headers, "x-ratelimit-remaining") == Some("0");
    let until_reset = || {
        header_u64(headers, "x-ratelimit-reset").map(|reset| {
            let secs = i64::try_from(reset).unwrap_or(i64::MAX) - now_unix;
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        })
    };
    let secondary = {
        let m = message.to_ascii_lowercase();
        m.contains("secondary rate limit") || m.contains("abuse detection")
    };

    let rate_limited =
        matches!(status.as_u16(), 403 | 429) && (exhausted || secondary || retry_after.is_some());
    if rate_limited || status == StatusCode::TOO_MANY_REQUESTS {
        let wait = retry_after
            .or_else(|| exhausted.then(until_reset).flatten())
            .or_else(|| secondary.then_some(SECONDARY_LIMIT_WAIT));
        return ScmError::transient(text, wait);
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return ScmError::transient(text, retry_after);
    }
    ScmError::permanent(Some(status.as_u16()), text)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

/// An error and its causes on one line, each cause once.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// Status, headers, GitHub's message, and the expectation: `Some(wait)`
    /// is transient with that wait in seconds, `None` permanent.
    type Case<'a> = (
        u16,
        Vec<(&'static str, &'a str)>,
        &'a str,
        Option<Option<u64>>,
    );

    #[test]
    fn answers_are_classified_by_status_headers_and_message() {
        let reset = (NOW + 42).to_string();
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
        // GitHub sends rate-limit headers on every answer, exhausted or not.
        let plenty = [
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", reset.as_str()),
        ];
        let cases: Vec<Case> = vec![
            (500, vec![], "Server Error", Some(None)),
            (502, plenty.to_vec(), "Bad Gateway", Some(None)),
            (
                503,
                vec![("retry-after", "7")],
                "Unavailable",
                Some(Some(7)),
            ),
            (408, vec![], "Request Timeout", Some(None)),
            (
                429,
                vec![("retry-after", "3")],
                "Too Many Requests",
                Some(Some(3)),
            ),
            (
                429,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
                "API rate limit exceeded",
                Some(Some(42)),
            ),
            (429, vec![], "Too Many Requests", Some(None)),
            (
                403,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
                "API rate limit exceeded for installation ID 1.",
                Some(Some(42)),
            ),
            (
                403,
                vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
                "API rate limit exceeded",
                Some(Some(0)),
            ),
            (
                403,
                vec![
                    ("retry-after", "30"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
                "API rate limit exceeded",
                Some(Some(30)),
            ),
            (403, plenty.to_vec(), secondary, Some(Some(60))),
            (403, vec![("retry-after", "5")], secondary, Some(Some(5))),
            (
                403,
                vec![],
                "You have triggered an abuse detection mechanism.",
                Some(Some(60)),
            ),
            (403, vec![("retry-after", "9")], "Forbidden", Some(Some(9))),
            (
                403,
                plenty.to_vec(),
                "Resource not accessible by integration",
                None,
            ),
            (401, vec![], "Bad credentials", None),
            (404, vec![], "Not Found", None),
            (422, vec![], "Validation Failed", None),
            (400, vec![], "Problems parsing JSON", None),
            (410, vec![], "Gone", None),
        ];
        for (status, hdrs, message, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            let got = classify_answer(status, &headers(&hdrs), message, NOW);
            match (expected, &got) {
                (
                    Some(wait),
                    ScmError::Transient {
                        retry_after,
                        message: m,
                    },
                ) => {
                    assert_eq!(
                        *retry_after,
                        wait.map(Duration::from_secs),
                        "{status} {hdrs:?}"
                    );
                    assert!(m.contains(message), "{m}");
                }
                (
                    None,
                    ScmError::Permanent {
                        status: s,
                        message: m,
                    },
                ) => {
                    assert_eq!(*s, Some(status.as_u16()));
                    assert!(m.contains(message), "{m}");
                }
                _ => panic!("{status} {hdrs:?} {message:?}: got {got:?}"),
            }
        }
    }
}
