//! One table of hostile webhook requests: truncated and non-UTF-8 bodies,
//! deep nesting, huge and duplicated headers, wrong content types, a
//! signature over another body, replayed and future timestamps, traversal
//! in source names, `<script>` wherever a string goes. Each answers its
//! documented 4xx with a JSON error naming what was wrong, and none leaves
//! a row.

use reqwest::header::HeaderValue;
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

const PUSH: &[u8] = br#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"full_name":"octo-org/hello-world"}}"#;
const SCRIPT: &str = "<script>alert(1)</script>";

/// One hostile request and what it must be answered.
struct Case {
    name: &'static str,
    /// The path after `/webhooks/`, sent as written (percent-encoding kept).
    source: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
    /// Send the body chunked (`Transfer-Encoding`), without `Content-Length`.
    chunked: bool,
    status: u16,
    code: &'static str,
    /// The error message contains this (the header or what was wrong).
    names: &'static str,
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap()
}

fn case(
    name: &'static str,
    source: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Case {
    Case {
        name,
        source: source.to_owned(),
        headers: headers.into_iter().map(|(n, v)| (n, value(&v))).collect(),
        body,
        chunked: false,
        status: 0,
        code: "",
        names: "",
    }
}

impl Case {
    fn answers(mut self, status: u16, code: &'static str, names: &'static str) -> Self {
        (self.status, self.code, self.names) = (status, code, names);
        self
    }

    /// Replaces (or with `None` removes) every header of that name.
    fn header(mut self, name: &'static str, to: Option<HeaderValue>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(to) = to {
            self.headers.push((name, to));
        }
        self
    }

    /// Adds a second header of that name.
    fn also(mut self, name: &'static str, to: &str) -> Self {
        self.headers.push((name, value(to)));
        self
    }

    /// The same request to another source path; unknown sources are 404.
    fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_owned();
        self.answers(404, "not_found", "source")
    }

    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

/// A GitHub delivery of `body`, correctly signed.
fn github(name: &'static str, body: &[u8]) -> Case {
    case(
        name,
        "github",
        github_headers(GITHUB_SECRET, "push", "hostile-1", body),
        body.to_vec(),
    )
}

fn gitlab(name: &'static str, body: &[u8]) -> Case {
    case(
        name,
        "gitlab",
        vec![
            ("X-Gitlab-Token", GITLAB_TOKEN.into()),
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Event-UUID", "hostile-gl-1".into()),
            ("Content-Type", "application/json".into()),
        ],
        body.to_vec(),
    )
}

fn standard(name: &'static str, timestamp: i64, body: &[u8]) -> Case {
    case(
        name,
        "ci",
        standard_headers(STANDARD_SECRET, "msg_hostile", timestamp, body),
        body.to_vec(),
    )
}

fn registry(name: &'static str, body: &[u8]) -> Case {
    case(
        name,
        "registry",
        vec![
            ("Authorization", format!("Bearer {REGISTRY_TOKEN}")),
            (
                "Content-Type",
                "application/vnd.docker.distribution.events.v1+json".into(),
            ),
        ],
        body.to_vec(),
    )
}

fn nested(depth: usize) -> Vec<u8> {
    let mut body = b"{\"a\":".to_vec();
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend(std::iter::repeat_n(b']', depth));
    body.push(b'}');
    body
}

fn cases(now: i64) -> Vec<Case> {
    let scripted = format!(r#"{{"ref":"{SCRIPT}","repository":{{"full_name":"{SCRIPT}"}}}}"#);
    let over_limit = {
        let mut body = b"{\"pad\":\"".to_vec();
        body.resize(70_000, b'a');
        body.extend_from_slice(b"\"}");
        body
    };
    vec![
        // GitHub: bodies that are verified but are not a JSON object.
        github("a truncated body", &PUSH[..40]).answers(
            400,
            "invalid_request",
            "GitHub webhook payload",
        ),
        github("invalid UTF-8 in a string", b"{\"ref\":\"\xff\xfe\"}").answers(
            400,
            "invalid_request",
            "GitHub webhook payload",
        ),
        github("JSON nested 10,000 deep", &nested(10_000)).answers(
            400,
            "invalid_request",
            "recursion",
        ),
        github("an empty body", b"").answers(400, "invalid_request", "GitHub webhook payload"),
        github("a JSON array", b"[1,2,3]").answers(400, "invalid_request", "object"),
        github("trailing bytes after the object", b"{} {}").answers(
            400,
            "invalid_request",
            "trailing",
        ),
        github("a NUL byte before the object", b"\0{}").answers(
            400,
            "invalid_request",
            "GitHub webhook payload",
        ),
        github("a form body without payload=", b"other=1")
            .header(
                "Content-Type",
                Some(value("application/x-www-form-urlencoded")),
            )
            .answers(400, "invalid_request", "payload"),
        github("a form payload that is not JSON", b"payload=%7B%22ref")
            .header(
                "Content-Type",
                Some(value("application/x-www-form-urlencoded")),
            )
            .answers(400, "invalid_request", "GitHub webhook payload"),
        // GitHub: headers.
        github("text/plain", PUSH)
            .header("Content-Type", Some(value("text/plain")))
            .answers(415, "unsupported_media_type", "application/json"),
        github("an XML content type", PUSH)
            .header(
                "Content-Type",
                Some(value("application/xml; charset=utf-8")),
            )
            .answers(415, "unsupported_media_type", "application/json"),
        github("a signature over a different body", PUSH)
            .header(
                "X-Hub-Signature-256",
                Some(value(&github_signature(GITHUB_SECRET, b"{}"))),
            )
            .answers(401, "unauthorized", "X-Hub-Signature-256"),
        github("a signature by another secret", PUSH)
            .header(
                "X-Hub-Signature-256",
                Some(value(&github_signature("guess", PUSH))),
            )
            .answers(401, "unauthorized", "X-Hub-Signature-256"),
        github("a truncated signature", PUSH)
            .header(
                "X-Hub-Signature-256",
                Some(value(&github_signature(GITHUB_SECRET, PUSH)[..70])),
            )
            .answers(401, "unauthorized", "64 hex digits"),
        github("a signature with <script>", PUSH)
            .header(
                "X-Hub-Signature-256",
                Some(value(&format!("sha256={SCRIPT}"))),
            )
            .answers(401, "unauthorized", "X-Hub-Signature-256"),
        github("only the SHA-1 signature", PUSH)
            .header("X-Hub-Signature-256", None)
            .also(
                "X-Hub-Signature",
                "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
            )
            .answers(401, "unauthorized", "SHA-1"),
        github("a second, forged signature header", PUSH)
            .also("X-Hub-Signature-256", &github_signature("guess", PUSH))
            .answers(400, "invalid_request", "X-Hub-Signature-256"),
        github("two delivery ids", PUSH)
            .also("X-GitHub-Delivery", "hostile-2")
            .answers(400, "invalid_request", "X-GitHub-Delivery"),
        github("no event header", PUSH)
            .header("X-GitHub-Event", None)
            .answers(400, "invalid_request", "X-GitHub-Event"),
        github("no delivery header", PUSH)
            .header("X-GitHub-Delivery", None)
            .answers(400, "invalid_request", "X-GitHub-Delivery"),
        github("an 8 KB event name", PUSH)
            .header("X-GitHub-Event", Some(value(&"e".repeat(8 * 1024))))
            .answers(400, "invalid_request", "X-GitHub-Event"),
        github("a 300-character delivery id", PUSH)
            .header("X-GitHub-Delivery", Some(value(&"d".repeat(300))))
            .answers(400, "invalid_request", "X-GitHub-Delivery"),
        github("a delivery id that is not UTF-8", PUSH)
            .header(
                "X-GitHub-Delivery",
                Some(HeaderValue::from_bytes(b"id-\xff\xfe").unwrap()),
            )
            .answers(400, "invalid_request", "X-GitHub-Delivery"),
        github("an event name with a tab", PUSH)
            .header("X-GitHub-Event", Some(value("push\tx")))
            .answers(400, "invalid_request", "X-GitHub-Event"),
        case(
            "<script> in every string, unsigned",
            "github",
            github_headers("guess", SCRIPT, SCRIPT, scripted.as_bytes()),
            scripted.clone().into_bytes(),
        )
        .answers(401, "unauthorized", "X-Hub-Signature-256"),
        // Size.
        github("a body over max_body_bytes", &over_limit).answers(
            413,
            "payload_too_large",
            "65536",
        ),
        github("a chunked body over max_body_bytes", &over_limit)
            .chunked()
            .answers(413, "payload_too_large", "65536"),
        // Source names.
        github("traversal in the source name", PUSH).with_source("..%2Fgithub"),
        github("an encoded dot-dot source", PUSH).with_source("%2e%2e"),
        github("a source name with a NUL", PUSH).with_source("github%00"),
        github("a source name with <script>", PUSH)
            .with_source("%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        github("a source name in capitals", PUSH).with_source("GITHUB"),
        github("a 2,000-character source name", PUSH).with_source(&"g".repeat(2000)),
        github("a path below a source", PUSH).with_source("github%2F..%2Fgithub"),
        // GitLab.
        gitlab("a wrong token", PUSH)
            .header("X-Gitlab-Token", Some(value("gitlab-hook-tokem")))
            .answers(401, "unauthorized", "X-Gitlab-Token"),
        gitlab("the token with a trailing space", PUSH)
            .header("X-Gitlab-Token", Some(value(&format!("{GITLAB_TOKEN}x"))))
            .answers(401, "unauthorized", "X-Gitlab-Token"),
        gitlab("no token", PUSH)
            .header("X-Gitlab-Token", None)
            .answers(401, "unauthorized", "X-Gitlab-Token"),
        gitlab("a second, wrong token", PUSH)
            .also("X-Gitlab-Token", "guess")
            .answers(400, "invalid_request", "X-Gitlab-Token"),
        gitlab("a bad webhook signature beside the right token", PUSH)
            .also("webhook-id", "msg_gl")
            .also("webhook-timestamp", &now.to_string())
            .also("webhook-signature", "v1,c2lnbmF0dXJl")
            .answers(401, "unauthorized", "webhook-signature"),
        gitlab("no event header", PUSH)
            .header("X-Gitlab-Event", None)
            .answers(400, "invalid_request", "X-Gitlab-Event"),
        gitlab("a body that is not JSON", b"<xml/>").answers(400, "invalid_request", "GitLab"),
        // Standard Webhooks.
        standard("a replayed timestamp, ten minutes old", now - 600, PUSH).answers(
            401,
            "unauthorized",
            "timestamp",
        ),
        standard("a timestamp ten minutes ahead", now + 600, PUSH).answers(
            401,
            "unauthorized",
            "timestamp",
        ),
        standard("a timestamp that is not a number", now, PUSH)
            .header("webhook-timestamp", Some(value("yesterday")))
            .answers(401, "unauthorized", "webhook-timestamp"),
        standard("a signature for another message id", now, PUSH)
            .header("webhook-id", Some(value("msg_other")))
            .answers(401, "unauthorized", "webhook-signature"),
        standard("only a v2 signature", now, PUSH)
            .header("webhook-signature", Some(value("v2,c2lnbmF0dXJl")))
            .answers(401, "unauthorized", "webhook-signature"),
        standard("several signatures, none valid", now, PUSH)
            .header("webhook-signature", Some(value("v1,YQ== v1,Yg== v1a,Yw==")))
            .answers(401, "unauthorized", "webhook-signature"),
        standard("no message id", now, PUSH)
            .header("webhook-id", None)
            .answers(401, "unauthorized", "webhook-id"),
        // Distribution.
        registry("a wrong bearer token", b"{\"events\":[]}")
            .header("Authorization", Some(value("Bearer guess")))
            .answers(401, "unauthorized", "Authorization"),
        registry("basic auth instead of a bearer token", b"{\"events\":[]}")
            .header(
                "Authorization",
                Some(value("Basic cmVnaXN0cnk6cmVnaXN0cnk=")),
            )
            .answers(401, "unauthorized", "Authorization"),
        registry("a plain JSON content type", b"{\"events\":[]}")
            .header("Content-Type", Some(value("text/plain")))
            .answers(415, "unsupported_media_type", "distribution"),
        registry("an envelope with trailing bytes", b"{\"events\":[]} []").answers(
            400,
            "invalid_request",
            "trailing characters",
        ),
        registry("events that are not a list", b"{\"events\":\"x\"}").answers(
            400,
            "invalid_request",
            "events: invalid type",
        ),
        registry(
            "an event without an id",
            br#"{"events":[{"action":"push","target":{}}]}"#,
        )
        .answers(400, "invalid_request", "id"),
    ]
}

/// What came back: status, whether it was JSON, the body.
struct Answer {
    status: u16,
    json: bool,
    body: Value,
}

/// Sends the case byte for byte over a fresh connection: an HTTP client
/// would normalise the path (`%2e%2e` to `..`, then away) and the headers.
async fn send(app: &TestApp, case: &Case) -> Answer {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!(
        "POST /webhooks/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        case.source
    )
    .into_bytes();
    for (name, value) in &case.headers {
        request.extend_from_slice(format!("{name}: ").as_bytes());
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    if case.chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in case.body.chunks(4096) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", case.body.len()).as_bytes());
        request.extend_from_slice(&case.body);
    }
    // The server may answer (413) and close before reading everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}: no HTTP answer: {text:?}", case.name));
    let json = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("content-type: application/json")
    });
    Answer {
        status,
        json,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

on_both_backends! {
    async fn every_hostile_request_answers_its_4xx_and_leaves_no_row(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let cases = cases(now_unix());
        assert!(cases.len() >= 40, "{} cases", cases.len());
        let mut wrong = Vec::new();
        for case in &cases {
            let Answer { status, json, body } = send(&app, case).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or_default().to_ascii_lowercase();
            let names = message.contains(&case.names.to_ascii_lowercase());
            if status != case.status || code != case.code || !names || !json {
                wrong.push(format!(
                    "{}: expected {} {} naming {:?}, got {status} {body}",
                    case.name, case.status, case.code, case.names
                ));
            }
            // The credential is never echoed.
            for secret in [GITHUB_SECRET, GITLAB_TOKEN, REGISTRY_TOKEN, STANDARD_SECRET] {
                assert!(!body.to_string().contains(secret), "{}: {body}", case.name);
            }
        }
        assert!(wrong.is_empty(), "{} of {} cases answered wrongly:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
        assert_eq!(app.deliveries().await.len(), 0, "a hostile request left a row");
        // The server is still healthy and takes a good delivery after all that.
        assert_eq!(app.post_github("push", "after-hostile", PUSH).await.status(), 202);
        app.finish().await;
    }
}
