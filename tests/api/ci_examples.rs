//! The README's "Using portcall from CI" examples, run as written: each
//! example is read from the README between `<!-- ci-example:NAME -->` and
//! `<!-- /ci-example -->`, its variables are substituted the way its CI
//! system does (the shell for GitLab CI, `${{ … }}` then the shell for
//! GitHub Actions, Groovy for Jenkins), and the resulting method, URL,
//! headers and body bytes are sent to a running portcall. An example that
//! drifts from what the API accepts fails here.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_backends;

const README: &str = include_str!("../../README.md");

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const TAG: &str = "v1.4.2";

fn image_digest() -> String {
    use sha2::{Digest as _, Sha256};
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(b"the image CI pushed"))
    )
}

/// One HTTP request, as the CI system would send it.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        let rest = self.url.split_once("://").map_or(&*self.url, |(_, r)| r);
        rest.find('/').map_or("/", |i| &rest[i..])
    }

    async fn send(&self, app: &TestApp) -> (u16, Value) {
        let mut request = app
            .client
            .request(self.method.parse().unwrap(), &self.url)
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

/// The code block of the README example `name`, and its fence's language.
fn example(name: &str) -> (&'static str, &'static str) {
    let start = format!("<!-- ci-example:{name} -->");
    let at = README
        .find(&start)
        .unwrap_or_else(|| panic!("the README has no {start}"));
    let rest = &README[at + start.len()..];
    let end = rest
        .find("<!-- /ci-example -->")
        .unwrap_or_else(|| panic!("{start} is not closed"));
    let block = rest[..end].trim();
    let block = block
        .strip_prefix("```")
        .unwrap_or_else(|| panic!("{start}: expected a fenced code block"));
    let (lang, body) = block.split_once('\n').unwrap();
    let body = body
        .strip_suffix("```")
        .unwrap_or_else(|| panic!("{start}: the code block must end the example"));
    (lang.trim(), body)
}

/// Removes the indentation of `lines`' first non-empty line from each, the
/// way YAML reads a literal block scalar.
fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or(0, |l| l.len() - l.trim_start().len());
    let mut out = String::new();
    for line in lines {
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The literal block scalars (`key: |` or `- |`) of a YAML document, in
/// order, as YAML hands them to the runner.
fn yaml_literal_blocks(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_end().ends_with('|') && (line.contains(": |") || line.trim() == "- |") {
            let indent = line.len() - line.trim_start().len();
            let mut j = i + 1;
            while j < lines.len()
                && (lines[j].trim().is_empty()
                    || lines[j].len() - lines[j].trim_start().len() > indent)
            {
                j += 1;
            }
            blocks.push(dedent(&lines[i + 1..j]));
            i = j;
        } else {
            i += 1;
        }
    }
    blocks
}

/// Expands `$NAME` and `${NAME}` as a POSIX shell does in double quotes and
/// unquoted here-documents; an unset variable is a test failure (bash would
/// send an empty string, which is the drift this test exists to catch).
fn shell_expand(text: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("an unterminated ${");
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        assert!(!name.is_empty(), "a bare $ in {text:?}");
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("the example uses ${name}, which the test does not set"));
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Splits a shell command line into words: `"…"` expanded, `'…'` literal,
/// `\` followed by a newline joins lines.
fn shell_words(line: &str, vars: &BTreeMap<&str, String>) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            let mut raw = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                raw.push(c);
            }
            word.push_str(&shell_expand(&raw, vars));
        } else if first == '\'' {
            chars.next();
            for c in chars.by_ref() {
                if c == '\'' {
                    break;
                }
                word.push(c);
            }
        } else {
            let mut raw = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                chars.next();
            }
            word.push_str(&raw);
        }
        words.push(word);
    }
    words
}

/// The `curl` calls of a shell script, with their here-document bodies.
fn curl_calls(script: &str, vars: &BTreeMap<&str, String>) -> Vec<Call> {
    let lines: Vec<&str> = script.lines().collect();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with("curl ") {
            i += 1;
            continue;
        }
        let mut command = String::new();
        while lines[i].ends_with('\\') {
            command.push_str(lines[i].trim_end_matches('\\'));
            command.push(' ');
            i += 1;
        }
        command.push_str(lines[i]);
        i += 1;

        let words = shell_words(&command, vars);
        let mut call = Call {
            method: "GET".into(),
            url: String::new(),
            // What curl adds by itself.
            headers: vec![
                ("User-Agent".into(), "curl/8.10.1".into()),
                ("Accept".into(), "*/*".into()),
            ],
            body: Vec::new(),
        };
        let mut heredoc = None;
        let mut w = 1;
        while w < words.len() {
            match words[w].as_str() {
                "-X" | "--request" => {
                    call.method = words[w + 1].clone();
                    w += 1;
                }
                "-H" | "--header" => {
                    let (name, value) = words[w + 1].split_once(':').expect("Name: value");
                    call.headers.push((name.into(), value.trim_start().into()));
                    w += 1;
                }
                "--data-binary" => {
                    assert_eq!(words[w + 1], "@-", "the body comes from the here-document");
                    w += 1;
                }
                "-sS" | "--fail-with-body" => {}
                word if word.starts_with("<<") => {
                    let delimiter = &word[2..];
                    let (quoted, delimiter) = match delimiter
                        .strip_prefix('\'')
                        .and_then(|d| d.strip_suffix('\''))
                    {
                        Some(d) => (true, d.to_owned()),
                        None => (false, delimiter.to_owned()),
                    };
                    heredoc = Some((quoted, delimiter));
                }
                word if word.starts_with('-') => panic!("the test does not know curl's {word}"),
                url => call.url = url.to_owned(),
            }
            w += 1;
        }
        let (quoted, delimiter) = heredoc.expect("the body is a here-document");
        let mut body = String::new();
        while lines.get(i).expect("the here-document ends") != &delimiter {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        i += 1;
        let body = if quoted {
            body
        } else {
            shell_expand(&body, vars)
        };
        call.body = body.into_bytes();
        if !call.body.is_empty() && call.header("Content-Type").is_none() {
            // What `curl --data-binary` labels a body by default.
            call.headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        calls.push(call);
    }
    calls
}

/// Substitutes GitHub Actions' `${{ expression }}` from `context`; an
/// expression the test does not know fails it.
fn actions_expand(text: &str, context: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}").expect("an unterminated ${{") + at;
        let expression = rest[at + 3..end].trim();
        out.push_str(
            context
                .get(expression)
                .unwrap_or_else(|| panic!("the test does not know ${{{{ {expression} }}}}")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Groovy's interpolation of `${name}` in a `"…"` or `"""…"""` string.
fn groovy_expand(text: &str, binding: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let braced = rest[at + 1..]
            .strip_prefix('{')
            .unwrap_or_else(|| panic!("only ${{…}} is expected in {text:?}"));
        let end = braced.find('}').unwrap();
        let name = braced[..end].trim();
        out.push_str(
            binding
                .get(name)
                .unwrap_or_else(|| panic!("the test does not bind {name}")),
        );
        rest = &braced[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The argument `key:` of the `httpRequest(…)` step: the text of its string
/// literal (`'…'`, `"…"` or `"""…"""`) and whether Groovy interpolates it.
fn groovy_argument<'a>(step: &'a str, key: &str) -> (&'a str, bool) {
    let at = step
        .find(&format!("{key}: "))
        .unwrap_or_else(|| panic!("httpRequest has no {key}"));
    let value = &step[at + key.len() + 2..];
    for (open, interpolated) in [("\"\"\"", true), ("\"", true), ("'", false)] {
        if let Some(inner) = value.strip_prefix(open) {
            let end = inner.find(open).unwrap();
            return (&inner[..end], interpolated);
        }
    }
    panic!("{key}: not a string literal")
}

/// The `httpRequest` step of the Jenkins example, as the HTTP Request
/// plugin sends it.
fn jenkins_call(pipeline: &str, binding: &BTreeMap<&str, String>) -> Call {
    let at = pipeline.find("httpRequest(").expect("an httpRequest step");
    let step = &pipeline[at..];
    let string = |key: &str| {
        let (text, interpolated) = groovy_argument(step, key);
        if interpolated {
            groovy_expand(text, binding)
        } else {
            text.to_owned()
        }
    };
    let content_type = match string("contentType").as_str() {
        "APPLICATION_JSON" => "application/json",
        "APPLICATION_JSON_UTF8" => "application/json; charset=UTF-8",
        other => panic!("the test does not know contentType {other}"),
    };
    // customHeaders: [[name: '…', value: "…", maskValue: true]]
    let headers_at = step.find("customHeaders: [[").expect("customHeaders");
    let header = &step[headers_at + "customHeaders: ".len()..];
    let header = &header[..header.find("]]").unwrap() + 2];
    let (name, _) = groovy_argument(header, "name");
    let (value, _) = groovy_argument(header, "value");
    assert!(
        header.contains("maskValue: true"),
        "the token is masked: {header}"
    );
    Call {
        method: string("httpMode"),
        url: string("url"),
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            (name.into(), groovy_expand(value, binding)),
        ],
        body: string("requestBody").into_bytes(),
    }
}

/// Creates the pipeline's service account with the README's own command;
/// its token.
async fn service_account(app: &TestApp) -> String {
    let (lang, script) = example("service-account");
    assert_eq!(lang, "sh");
    let vars = BTreeMap::from([
        ("PORTCALL_URL", app.address.clone()),
        ("PORTCALL_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
    ]);
    let calls = curl_calls(script, &vars);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let (code, account) = calls[0].send(app).await;
    assert_eq!(code, 201, "{account:#}");
    assert_eq!(
        account["scopes"],
        json!(["release:create", "ci-event:create"])
    );
    assert!(account["expires_at"].is_i64(), "{account:#}");
    account["token"].as_str().unwrap().to_owned()
}

/// The headers every example must send.
fn assert_headers(call: &Call, token: &str) {
    assert_eq!(
        call.header("Authorization"),
        Some(format!("Bearer {token}").as_str()),
        "{call:#?}"
    );
    let content_type = call.header("Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{call:#?}");
    assert_eq!(call.method, "POST");
}

/// Sends a release twice: 201 with the release, then 200 with the same one.
async fn assert_release(app: &TestApp, call: &Call, repository: &str, build_id: &str) -> Value {
    assert_eq!(call.path(), "/api/v1/releases");
    let (code, release) = call.send(app).await;
    assert_eq!(
        code,
        201,
        "{release:#}\n{}",
        String::from_utf8_lossy(&call.body)
    );
    assert_eq!(release["name"], format!("hello-world-{TAG}"));
    assert_eq!(release["component"], "hello-world");
    assert_eq!(
        release["image"],
        "registry.example.com/octo-org/hello-world"
    );
    assert_eq!(release["digest"], image_digest());
    assert_eq!(release["tag"], TAG);
    assert_eq!(release["commit"], SHA);
    assert_eq!(release["metadata"]["sourceRef"]["repository"], repository);
    assert_eq!(release["metadata"]["sourceRef"]["tag"], TAG);
    assert_eq!(release["metadata"]["metadata"]["buildId"], build_id);

    let (code, again) = call.send(app).await;
    assert_eq!((code, &again["id"]), (200, &release["id"]), "{again:#}");
    let (_, listed) = app.get_api("/api/v1/releases").await;
    assert_eq!(
        listed["releases"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
    release
}

on_both_backends! {
    async fn the_readme_gitlab_ci_job_posts_its_build_and_release(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let token = service_account(&app).await;
        let (lang, yaml) = example("gitlab");
        assert_eq!(lang, "yaml");
        assert!(yaml.contains("- IMAGE_DIGEST=$(cat image-digest.txt)"), "the digest comes from the build job's file");
        let vars = BTreeMap::from([
            ("PORTCALL_URL", app.address.clone()),
            ("PORTCALL_TOKEN", token.clone()),
            ("IMAGE_DIGEST", image_digest()),
            ("CI_COMMIT_SHA", SHA.to_owned()),
            ("CI_COMMIT_TAG", TAG.to_owned()),
            ("CI_PROJECT_URL", "https://gitlab.example.com/octo-org/hello-world".to_owned()),
            ("CI_PIPELINE_ID", "987654".to_owned()),
            ("CI_PIPELINE_URL", "https://gitlab.example.com/octo-org/hello-world/-/pipelines/987654".to_owned()),
        ]);
        let calls: Vec<Call> = yaml_literal_blocks(yaml)
            .iter()
            .flat_map(|script| curl_calls(script, &vars))
            .collect();
        assert_eq!(calls.len(), 2, "{calls:#?}");
        for call in &calls {
            assert_headers(call, &token);
        }

        let build = &calls[0];
        assert_eq!(build.path(), "/api/v1/ci-events/build-complete");
        let (code, answer) = build.send(&app).await;
        assert_eq!((code, answer["status"].as_str()), (202, Some("accepted")), "{answer:#}");
        let (code, answer) = build.send(&app).await;
        assert_eq!((code, answer["status"].as_str()), (202, Some("duplicate")), "{answer:#}");

        let release = assert_release(&app, &calls[1], "https://gitlab.example.com/octo-org/hello-world", "987654").await;
        assert_eq!(
            release["metadata"]["metadata"]["buildUrl"],
            "https://gitlab.example.com/octo-org/hello-world/-/pipelines/987654"
        );
        app.finish().await;
    }

    async fn the_readme_github_actions_step_posts_its_release(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let token = service_account(&app).await;
        let (lang, yaml) = example("github");
        assert_eq!(lang, "yaml");
        let context = BTreeMap::from([
            ("vars.PORTCALL_URL", app.address.clone()),
            ("secrets.PORTCALL_TOKEN", token.clone()),
            ("steps.build.outputs.digest", image_digest()),
            ("github.sha", SHA.to_owned()),
            ("github.ref_name", TAG.to_owned()),
            ("github.server_url", "https://github.com".to_owned()),
            ("github.repository", "octo-org/hello-world".to_owned()),
            ("github.run_id", "1122334455".to_owned()),
        ]);
        let blocks = yaml_literal_blocks(yaml);
        assert_eq!(blocks.len(), 1, "one run: block");
        // Actions substitutes expressions in the script, then runs it.
        let script = actions_expand(&blocks[0], &context);
        let calls = curl_calls(&script, &BTreeMap::new());
        assert_eq!(calls.len(), 1, "{calls:#?}");
        assert_headers(&calls[0], &token);

        let release = assert_release(&app, &calls[0], "https://github.com/octo-org/hello-world", "1122334455").await;
        assert_eq!(
            release["metadata"]["metadata"]["buildUrl"],
            "https://github.com/octo-org/hello-world/actions/runs/1122334455"
        );
        app.finish().await;
    }

    async fn the_readme_jenkins_http_request_step_posts_its_release(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let token = service_account(&app).await;
        let (lang, pipeline) = example("jenkins");
        assert_eq!(lang, "groovy");
        let binding = BTreeMap::from([
            ("PORTCALL_URL", app.address.clone()),
            ("PORTCALL_TOKEN", token.clone()),
            ("IMAGE_DIGEST", image_digest()),
            ("TAG_NAME", TAG.to_owned()),
            ("GIT_COMMIT", SHA.to_owned()),
            ("GIT_URL", "https://git.example.com/octo-org/hello-world.git".to_owned()),
            ("BUILD_NUMBER", "42".to_owned()),
            ("BUILD_URL", "https://jenkins.example.com/job/hello-world/job/v1.4.2/42/".to_owned()),
        ]);
        let call = jenkins_call(pipeline, &binding);
        assert_headers(&call, &token);

        let release = assert_release(&app, &call, "https://git.example.com/octo-org/hello-world.git", "42").await;
        assert_eq!(
            release["metadata"]["metadata"]["buildUrl"],
            "https://jenkins.example.com/job/hello-world/job/v1.4.2/42/"
        );
        app.finish().await;
    }
}

#[test]
fn the_example_parsers_read_what_the_ci_systems_would() {
    // Shell: double quotes expand, single quotes do not, ${VAR} and $VAR.
    let vars = BTreeMap::from([("A", "1".to_owned()), ("B_2", "two".to_owned())]);
    assert_eq!(shell_expand("x$A-${B_2}y", &vars), "x1-twoy");
    let words = shell_words(r#"curl "$A/p" -H 'X: $A' <<'EOF'"#, &vars);
    assert_eq!(words, ["curl", "1/p", "-H", "X: $A", "<<'EOF'"]);
    // YAML literal blocks lose their indentation.
    let blocks = yaml_literal_blocks("a:\n  run: |\n    one\n      two\n  next: 1\n");
    assert_eq!(blocks, ["one\n  two\n"]);
    // Actions and Groovy.
    let context = BTreeMap::from([("github.sha", "abc".to_owned())]);
    assert_eq!(actions_expand("c=${{ github.sha }}.", &context), "c=abc.");
    assert_eq!(groovy_expand("t-${A}", &vars), "t-1");
}
