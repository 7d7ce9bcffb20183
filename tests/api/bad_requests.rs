//! One table of bad requests across the `/api/v1` routes: each answers the
//! exact status and `error.code`, a message naming the field (or what was
//! wrong), and never a 500.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn digest(seed: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// What a case sends as its body.
enum Body {
    None,
    /// Bytes as they are, with `Content-Type: application/json`.
    Raw(&'static str),
    Json(Value),
    /// A valid JSON object just over the 1 MiB limit.
    OverOneMiB,
}

struct Case {
    method: &'static str,
    /// `{release}` is replaced by an existing release's id.
    path: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
    /// The message contains this (the field's path, or what was wrong).
    names: &'static str,
}

fn case(
    method: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
    names: &'static str,
) -> Case {
    Case {
        method,
        path,
        body,
        status,
        code,
        names,
    }
}

/// A valid release body, changed by `edit`.
fn release(edit: impl FnOnce(&mut Value)) -> Body {
    let mut body = json!({
        "name": "hello-world-v1.0.0",
        "components": [{"component": "hello-world", "digest": digest("release"), "tag": "v1.0.0"}],
        "sourceRef": {"type": "git", "repository": "https://github.com/octo-org/hello-world",
                      "commit": SHA, "tag": "v1.0.0", "branch": "main"},
        "metadata": {"buildId": "1"}
    });
    edit(&mut body);
    Body::Json(body)
}

/// A valid build event, changed by `edit`.
fn build(edit: impl FnOnce(&mut Value)) -> Body {
    let mut body = json!({
        "buildId": "1", "status": "success", "commit": SHA,
        "buildUrl": "https://ci.example.com/builds/1",
        "artifacts": [{"name": "hello-world", "digest": digest("build"),
                       "repository": "registry.example.com/octo-org/hello-world:v1.0.0"}]
    });
    edit(&mut body);
    Body::Json(body)
}

/// A valid artefact version, changed by `edit`.
fn artefact(edit: impl FnOnce(&mut Value)) -> Body {
    let mut body = json!({
        "name": "registry.example.com/octo-org/hello-world", "version": "v1.0.0",
        "type": "container", "commit": SHA, "ref": "refs/heads/main"
    });
    edit(&mut body);
    Body::Json(body)
}

/// A valid service account, changed by `edit`.
fn account(edit: impl FnOnce(&mut Value)) -> Body {
    let mut body = json!({"name": "ci", "scopes": ["release:create"], "expiresIn": "30d"});
    edit(&mut body);
    Body::Json(body)
}

/// A valid deployment report, changed by `edit`.
fn deployment(edit: impl FnOnce(&mut Value)) -> Body {
    let mut body = json!({"environment": "production", "state": "success",
                          "url": "https://hello.example.com", "logUrl": "https://ci.example.com/1"});
    edit(&mut body);
    Body::Json(body)
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Body::{None as NoBody, OverOneMiB, Raw};
    const BAD: &str = "invalid_request";
    const MISSING: &str = "not_found";
    vec![
        // Bodies that are not a JSON object.
        case("POST", "/api/v1/releases", Raw(r#"{"components": ["#), 400, BAD, "not valid JSON"),
        case("POST", "/api/v1/releases", Raw("name=hello-world"), 400, BAD, "not valid JSON"),
        case("POST", "/api/v1/releases", Raw(r#"[{"component": "hello-world"}]"#), 400, BAD, "JSON object"),
        case("POST", "/api/v1/ci-events/build-complete", Raw(r#""a string""#), 400, BAD, "JSON object"),
        case("POST", "/api/v1/service-accounts", Raw("null"), 400, BAD, "JSON object"),
        case("POST", "/api/v1/releases/{release}/deployments", Raw(""), 400, BAD, "JSON"),
        case("POST", "/api/v1/releases", OverOneMiB, 413, "payload_too_large", "1048576"),
        // Releases.
        case("POST", "/api/v1/releases", release(|b| { b.as_object_mut().unwrap().remove("components"); }), 400, BAD, "components"),
        case("POST", "/api/v1/releases", release(|b| b["components"] = json!([])), 400, BAD, "components"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["digest"] = json!(42)), 400, BAD, "components[0].digest"),
        case("POST", "/api/v1/releases", release(|b| { b["components"][0].as_object_mut().unwrap().remove("tag"); }), 400, BAD, "tag"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["component"] = json!("no-such-component")), 400, BAD, "components[0].component"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["digest"] = json!("sha256:abc")), 400, BAD, "components[0].digest"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["digest"] = json!(digest("x").to_uppercase())), 400, BAD, "components[0].digest"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["tag"] = json!("v1 0")), 400, BAD, "components[0].tag"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["tag"] = json!(".hidden")), 400, BAD, "components[0].tag"),
        case("POST", "/api/v1/releases", release(|b| b["components"][0]["image"] = json!("x")), 400, BAD, "image"),
        case("POST", "/api/v1/releases", release(|b| b["sourceRef"]["commit"] = json!("6113728")), 400, BAD, "sourceRef.commit"),
        case("POST", "/api/v1/releases", release(|b| b["sourceRef"]["repository"] = json!("git@github.com:octo-org/hello-world.git")), 400, BAD, "sourceRef.repository"),
        case("POST", "/api/v1/releases", release(|b| b["sourceRef"] = json!("main")), 400, BAD, "sourceRef"),
        case("POST", "/api/v1/releases", release(|b| b["name"] = json!("")), 400, BAD, "name"),
        case("POST", "/api/v1/releases", release(|b| b["metadata"] = json!([1])), 400, BAD, "metadata"),
        // Build events and artefact versions.
        case("POST", "/api/v1/ci-events/build-complete", build(|b| { b.as_object_mut().unwrap().remove("buildId"); }), 400, BAD, "buildId"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["status"] = json!("exploded")), 400, BAD, "status"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["commit"] = json!("not-a-sha")), 400, BAD, "commit"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["artifacts"][0]["digest"] = json!("md5:00")), 400, BAD, "artifacts[0].digest"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["artifacts"] = json!([{"name": "hello-world"}])), 400, BAD, "artifacts[0]"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["artifacts"] = json!({})), 400, BAD, "artifacts"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["buildId"] = json!(17)), 400, BAD, "buildId"),
        case("POST", "/api/v1/ci-events/build-complete", build(|b| b["buildUrl"] = json!("ci.example.com/1")), 400, BAD, "buildUrl"),
        case("POST", "/api/v1/artefact-versions", artefact(|b| b["type"] = json!("zip")), 400, BAD, "type"),
        case("POST", "/api/v1/artefact-versions", artefact(|b| b["name"] = json!("hello-world")), 400, BAD, "name"),
        case("POST", "/api/v1/artefact-versions", artefact(|b| b["version"] = json!("v 1")), 400, BAD, "version"),
        case("POST", "/api/v1/artefact-versions", artefact(|b| { b.as_object_mut().unwrap().remove("commit"); }), 400, BAD, "commit"),
        // Service accounts.
        case("POST", "/api/v1/service-accounts", account(|b| b["scopes"] = json!(["release:delete"])), 400, BAD, "scopes"),
        case("POST", "/api/v1/service-accounts", account(|b| b["scopes"] = json!([])), 400, BAD, "scopes"),
        case("POST", "/api/v1/service-accounts", account(|b| b["scopes"] = json!("admin")), 400, BAD, "scopes"),
        case("POST", "/api/v1/service-accounts", account(|b| b["expiresIn"] = json!("forever")), 400, BAD, "expiresIn"),
        case("POST", "/api/v1/service-accounts", account(|b| b["expiresIn"] = json!("99999d")), 400, BAD, "expiresIn"),
        case("POST", "/api/v1/service-accounts", account(|b| b["name"] = json!(5)), 400, BAD, "name"),
        case("POST", "/api/v1/service-accounts", account(|b| b["role"] = json!("admin")), 400, BAD, "role"),
        case("DELETE", "/api/v1/service-accounts/sa_nope", NoBody, 404, MISSING, "sa_nope"),
        // Deployments.
        case("POST", "/api/v1/releases/{release}/deployments", deployment(|b| b["state"] = json!("exploded")), 400, BAD, "state"),
        case("POST", "/api/v1/releases/{release}/deployments", deployment(|b| b["environment"] = json!("prod env!")), 400, BAD, "environment"),
        case("POST", "/api/v1/releases/{release}/deployments", deployment(|b| b["url"] = json!("ftp://hello.example.com")), 400, BAD, "url"),
        case("POST", "/api/v1/releases/{release}/deployments", deployment(|b| { b.as_object_mut().unwrap().remove("state"); }), 400, BAD, "state"),
        case("POST", "/api/v1/releases/424242/deployments", deployment(|_| ()), 404, MISSING, "424242"),
        case("POST", "/api/v1/releases/abc/deployments", deployment(|_| ()), 404, MISSING, "abc"),
        // Reads: unknown ids and bad queries.
        case("GET", "/api/v1/releases/424242", NoBody, 404, MISSING, "424242"),
        case("GET", "/api/v1/releases/abc", NoBody, 404, MISSING, "abc"),
        case("GET", "/api/v1/deliveries/424242", NoBody, 404, MISSING, "424242"),
        case("GET", "/api/v1/jobs/424242", NoBody, 404, MISSING, "424242"),
        case("POST", "/api/v1/deliveries/424242/replay", NoBody, 404, MISSING, "424242"),
        case("GET", "/api/v1/jobs?state=exploded", NoBody, 400, BAD, "state"),
        case("GET", "/api/v1/deliveries?status=exploded", NoBody, 400, BAD, "status"),
        case("GET", "/api/v1/releases?limit=0", NoBody, 400, BAD, "limit"),
        // A query parameter of the wrong type is named.
        case("GET", "/api/v1/releases?limit=abc", NoBody, 400, BAD, "limit"),
        case("GET", "/api/v1/deliveries?before=abc", NoBody, 400, BAD, "before"),
        case("GET", "/api/v1/jobs?colour=blue", NoBody, 400, BAD, "colour"),
        case("POST", "/api/v1/integrations/nope/test", NoBody, 404, MISSING, "nope"),
    ]
}

on_both_backends! {
    async fn every_bad_request_answers_its_status_code_and_field_and_never_a_500(db: TestDb) {
        let app = TestApp::spawn(db).await;
        // A release with a commit, for the deployment cases.
        let (code, created) = app.post_api("/api/v1/releases", json!({
            "components": [{"component": "hello-world", "digest": digest("existing"), "tag": "v0.1.0"}],
            "sourceRef": {"commit": SHA}
        })).await;
        assert_eq!(code, 201, "{created:#}");
        let release = created["id"].as_i64().unwrap().to_string();

        let cases = cases();
        assert!(cases.len() >= 25);
        let mut failures = Vec::new();
        for case in &cases {
            let path = case.path.replace("{release}", &release);
            let mut request = app
                .client
                .request(case.method.parse().unwrap(), app.url(&path))
                .bearer_auth(ADMIN_TOKEN);
            let shown = match &case.body {
                Body::None => String::new(),
                Body::Raw(raw) => {
                    request = request.header("Content-Type", "application/json").body(*raw);
                    (*raw).to_owned()
                }
                Body::Json(value) => {
                    request = request.json(value);
                    value.to_string()
                }
                Body::OverOneMiB => {
                    let big = format!(r#"{{"name": "{}"}}"#, "a".repeat(1024 * 1024));
                    request = request.header("Content-Type", "application/json").body(big);
                    "(a body over 1 MiB)".to_owned()
                }
            };
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let code = answer["error"]["code"].as_str();
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            let ok = status == case.status && code == Some(case.code) && message.contains(case.names);
            if !ok || status >= 500 {
                failures.push(format!(
                    "{} {path} {shown}\n  expected {} {} naming {:?}\n  got      {status} {answer}",
                    case.method, case.status, case.code, case.names
                ));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));

        // Nothing was created by any of them.
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"].as_array().unwrap().len(), 1, "{releases:#}");
        let (_, accounts) = app.get_api("/api/v1/service-accounts").await;
        assert_eq!(accounts["service_accounts"], json!([]), "{accounts:#}");
        app.finish().await;
    }
}
