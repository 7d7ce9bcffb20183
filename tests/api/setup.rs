//! The GitHub App setup pages, through HTTP: the page posting the manifest
//! to GitHub (headers, form, state cookie), the callback exchanging the
//! code with a mock GitHub answering GitHub's documented body, the files it
//! writes and the configuration it shows, and who may use either.

use std::path::Path;

use portcall::config::Settings;
use portcall::setup::{self, CreatedApp, CredentialFiles};
use secrecy::ExposeSecret as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{fixture, Spawn, TestApp, TestDb, ADMIN_TOKEN};
use crate::on_both_backends;
use crate::providers::GithubMock;

const PUBLIC_URL: &str = "https://portcall.example.com";
const CONVERSION: &str = "github-api/apps/create-from-manifest.json";
/// In the documented answer: the app's webhook secret and a piece of its key.
const WEBHOOK_SECRET: &str = "e340154128314309424b7c8e90325147d99fdafa";
const PEM_PIECE: &str = "MIIEowIBAAKCAQEAuEPzOUE";

/// An app whose setup writes into `dir` and exchanges codes at `api_url`.
async fn spawn(db: TestDb, public_url: Option<&str>, setup: &str) -> TestApp {
    TestApp::spawn_with(
        db,
        Spawn {
            extra_config: format!("\n[setup]\n{setup}"),
            public_url: public_url.map(str::to_owned),
            worker: false,
            ..Spawn::default()
        },
    )
    .await
}

fn setup_config(dir: &Path, api_url: &str) -> String {
    format!(
        "dir = \"{}\"\ngithub_api_url = \"{api_url}\"\n",
        dir.display()
    )
}

/// The documented answer of `POST /app-manifests/{code}/conversions`.
fn created_app() -> CreatedApp {
    serde_json::from_slice(&fixture(CONVERSION)).unwrap()
}

async fn mount_conversion(github: &MockServer, code: &str, status: u16, expect: u64) {
    let response = if (200..300).contains(&status) {
        ResponseTemplate::new(status).set_body_raw(fixture(CONVERSION), "application/json")
    } else {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({"message": "Not Found"}))
    };
    Mock::given(method("POST"))
        .and(path(format!("/app-manifests/{code}/conversions")))
        .respond_with(response)
        .expect(expect)
        .mount(github)
        .await;
}

fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The (unescaped) value of the first `{name}="…"` attribute after `after`.
fn attribute(html: &str, after: &str, name: &str) -> String {
    let from = html
        .find(after)
        .unwrap_or_else(|| panic!("no {after} in {html}"));
    let rest = &html[from..];
    let start = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + rest[start..].find('"').unwrap();
    unescape(&rest[start..end])
}

/// The state cookie a page set, checking its attributes.
fn state_cookie(response: &reqwest::Response, secure: bool) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("the page sets the state cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let mut parts = set.split("; ");
    let state = parts
        .next()
        .unwrap()
        .strip_prefix("portcall_setup_state=")
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = parts.collect();
    let mut expected = vec![
        "Path=/setup/github",
        "Max-Age=3600",
        "HttpOnly",
        "SameSite=Lax",
    ];
    if secure {
        expected.push("Secure");
    }
    assert_eq!(attributes, expected, "{set}");
    assert!(state.len() >= 22, "at least 128 bits: {state}");
    state
}

async fn get(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(state) = cookie {
        request = request.header("cookie", format!("other=1; portcall_setup_state={state}"));
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// Starts a setup: the page's state cookie.
async fn start(app: &TestApp) -> String {
    let page = get(app, "/setup/github", None, None).await;
    assert_eq!(page.status().as_u16(), 200);
    state_cookie(&page, false)
}

fn assert_security_headers(response: &reqwest::Response, form_action: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        &format!("form-action {form_action}"),
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.split("; ").any(|d| d == directive),
            "{directive} not in {csp}"
        );
    }
    assert!(
        csp.contains("style-src 'sha256-") && !csp.contains("script"),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn credential_files(dir: &Path) -> CredentialFiles {
    CredentialFiles::in_dir(&std::fs::canonicalize(dir).unwrap())
}

on_both_backends! {
    async fn setup_page_posts_the_manifest_to_github_with_strict_headers_and_a_state_cookie(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let mut app = spawn(db, Some(PUBLIC_URL), &format!("dir = \"{}\"\n", dir.path().display())).await;

        let page = get(&app, "/setup/github", None, None).await;
        assert_eq!(page.status().as_u16(), 200);
        assert_security_headers(&page, "https://github.com");
        let state = state_cookie(&page, true);
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script"), "no JavaScript");
        assert_eq!(
            attribute(&html, "<form", "action"),
            format!("https://github.com/settings/apps/new?state={state}")
        );
        assert_eq!(attribute(&html, "<form", "method"), "post");
        let manifest: serde_json::Value =
            serde_json::from_str(&attribute(&html, "name=\"manifest\"", "value")).unwrap();
        assert_eq!(manifest, setup::manifest(PUBLIC_URL));
        assert_eq!(manifest["hook_attributes"]["url"], "https://portcall.example.com/webhooks/github");
        assert_eq!(manifest["redirect_url"], "https://portcall.example.com/setup/github/callback");

        // For an organisation; every page gets its own state.
        let page = get(&app, "/setup/github?org=octo-org", None, None).await;
        assert_eq!(page.status().as_u16(), 200);
        let org_state = state_cookie(&page, true);
        assert_ne!(org_state, state);
        let html = page.text().await.unwrap();
        assert_eq!(
            attribute(&html, "<form", "action"),
            format!("https://github.com/organizations/octo-org/settings/apps/new?state={org_state}")
        );

        for bad in ["-octo", "octo-", "octo--org", "octo_org", "octo%2Forg", "%22%3E%3Cscript%3E", "o".repeat(40).as_str(), ""] {
            let page = get(&app, &format!("/setup/github?org={bad}"), None, None).await;
            assert_eq!(page.status().as_u16(), 400, "org={bad}");
            assert!(page.headers().get("set-cookie").is_none());
            let html = page.text().await.unwrap();
            assert!(html.contains("org must be a GitHub organisation login"), "{html}");
            assert!(!html.contains("<script>"));
        }
        app.stop().await;
    }

    async fn setup_page_asks_for_server_public_url_first(db: TestDb) {
        let mut app = spawn(db, None, "").await;
        let page = get(&app, "/setup/github", None, None).await;
        assert_eq!(page.status().as_u16(), 409);
        assert!(page.headers().get("set-cookie").is_none());
        assert!(page.text().await.unwrap().contains("set server.public_url first"));
        app.stop().await;
    }

    async fn setup_callback_exchanges_the_code_once_writes_private_files_and_never_clobbers_them(db: TestDb) {
        let github = MockServer::start().await;
        mount_conversion(&github, "abc123", 201, 1).await;
        mount_conversion(&github, "def456", 201, 0).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("github-app");
        let mut app = spawn(db, Some("http://portcall.test"), &setup_config(&dir, &github.uri())).await;
        let state = start(&app).await;

        let answer = get(&app, &format!("/setup/github/callback?code=abc123&state={state}"), Some(&state), None).await;
        assert_eq!(answer.status().as_u16(), 200);
        assert_security_headers(&answer, "'none'");
        let cleared = answer.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
        assert!(cleared.starts_with("portcall_setup_state=; Path=/setup/github; Max-Age=0"), "{cleared}");
        let html = answer.text().await.unwrap();

        // Exactly one exchange, unauthenticated, as GitHub documents it.
        let requests = github.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method.as_str(), "POST");
        assert_eq!(request.url.path(), "/app-manifests/abc123/conversions");
        let header = |name: &str| request.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("accept").as_deref(), Some("application/vnd.github+json"));
        assert_eq!(header("x-github-api-version").as_deref(), Some("2022-11-28"));
        assert!(header("user-agent").unwrap().starts_with("portcall/"));
        assert_eq!(header("authorization"), None);

        // The three files, private, holding the documented answer's values.
        let app_fixture = created_app();
        let files = credential_files(&dir);
        assert_eq!(std::fs::read_to_string(&files.app_id).unwrap(), "1\n");
        assert_eq!(std::fs::read_to_string(&files.private_key).unwrap(), app_fixture.pem.expose_secret());
        assert_eq!(std::fs::read_to_string(&files.webhook_secret).unwrap(), WEBHOOK_SECRET);
        for file in [&files.app_id, &files.private_key, &files.webhook_secret] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&dir), 0o700);

        // The page: install link, the exact configuration, the restart; no secret.
        let text = unescape(&html);
        assert!(text.contains("Octocat App") && text.contains("octoapp"));
        assert!(html.contains("href=\"https://github.com/apps/octoapp/installations/new\""));
        let snippet = files.config_snippet(&app_fixture, &github.uri());
        assert!(text.contains(&snippet), "{text}");
        assert!(snippet.contains("[[sources]]\nname = \"github\"\nkind = \"github\"\n"));
        assert!(snippet.contains(&format!("secrets = [\"file:{}\"]", files.webhook_secret.display())));
        assert!(text.contains("Restart portcall"));
        assert!(!html.contains(WEBHOOK_SECRET) && !html.contains(PEM_PIECE));
        assert!(!html.contains("PRIVATE KEY"));

        // The snippet, pasted into a configuration, loads: its files resolve.
        let config = tmp.path().join("portcall.toml");
        std::fs::write(&config, format!("[database]\nurl = \"sqlite://{}/x.db\"\n\n{snippet}", tmp.path().display())).unwrap();
        let settings = Settings::load(Some(&config)).unwrap_or_else(|e| panic!("{e}"));
        let github_settings = settings.github.expect("[github] from the snippet");
        assert_eq!(github_settings.app_id, 1);
        assert_eq!(github_settings.private_key.expose_secret(), app_fixture.pem.expose_secret().trim());
        assert_eq!(github_settings.api_url, github.uri());
        assert_eq!(settings.sources.len(), 1);
        assert_eq!(settings.sources[0].name, "github");
        assert_eq!(settings.sources[0].secrets.len(), 1);

        // A second app would clobber the first one's key: refused before
        // its code is spent, naming the file; nothing changes.
        let again = get(&app, &format!("/setup/github/callback?code=def456&state={state}"), Some(&state), None).await;
        assert_eq!(again.status().as_u16(), 409);
        let text = unescape(&again.text().await.unwrap());
        assert!(text.contains(&files.app_id.display().to_string()), "{text}");
        assert!(text.contains("never replaces"), "{text}");
        assert_eq!(std::fs::read_to_string(&files.webhook_secret).unwrap(), WEBHOOK_SECRET);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        assert_eq!(github.received_requests().await.unwrap().len(), 1);
        app.stop().await;
    }

    async fn setup_callback_without_a_matching_state_spends_no_code(db: TestDb) {
        let github = MockServer::start().await;
        mount_conversion(&github, "abc123", 201, 0).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("github-app");
        let mut app = spawn(db, Some(PUBLIC_URL), &setup_config(&dir, &github.uri())).await;
        let state = {
            let page = get(&app, "/setup/github", None, None).await;
            state_cookie(&page, true)
        };
        let other = "A".repeat(43);
        for (query, cookie, why) in [
            (format!("code=abc123&state={state}"), None, "no setup cookie"),
            ("code=abc123".to_owned(), Some(state.as_str()), "carries no state"),
            (format!("code=abc123&state={other}"), Some(state.as_str()), "does not match"),
            (format!("code=abc123&state={state}"), Some(other.as_str()), "does not match"),
            (format!("state={state}"), Some(state.as_str()), "carries no code"),
        ] {
            let answer = get(&app, &format!("/setup/github/callback?{query}"), cookie, None).await;
            assert_eq!(answer.status().as_u16(), 400, "{query} {cookie:?}");
            let html = answer.text().await.unwrap();
            assert!(html.contains(why), "{why}: {html}");
            assert!(html.contains("start again at /setup/github"), "{html}");
        }
        assert!(github.received_requests().await.unwrap().is_empty());
        assert!(!dir.join("private-key.pem").exists());
        app.stop().await;
    }

    async fn setup_callback_shows_a_refused_code_as_400_and_a_failing_github_as_502(db: TestDb) {
        let github = MockServer::start().await;
        mount_conversion(&github, "used", 404, 1).await;
        mount_conversion(&github, "invalid", 422, 1).await;
        mount_conversion(&github, "down", 500, 1).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("github-app");
        let mut app = spawn(db, Some("http://portcall.test"), &setup_config(&dir, &github.uri())).await;
        let state = start(&app).await;
        for (code, status) in [("used", 400), ("invalid", 400), ("down", 502)] {
            let answer = get(&app, &format!("/setup/github/callback?code={code}&state={state}"), Some(&state), None).await;
            assert_eq!(answer.status().as_u16(), status, "{code}");
            assert!(answer.headers().get("set-cookie").is_none(), "the state stays for a retry");
            let html = answer.text().await.unwrap();
            if status == 400 {
                assert!(html.contains("expired or has been used"), "{html}");
                assert!(html.contains("start again at /setup/github"), "{html}");
            } else {
                assert!(html.contains("could not get the new app&#39;s credentials from GitHub"), "{html}");
            }
        }
        assert_eq!(github.received_requests().await.unwrap().len(), 3);
        for file in ["app-id", "private-key.pem", "webhook-secret"] {
            assert!(!dir.join(file).exists(), "{file}");
        }
        app.stop().await;
    }

    async fn setup_needs_the_admin_token_once_a_github_app_is_configured(db: TestDb) {
        let github = GithubMock::start().await;
        mount_conversion(&github.server, "abc123", 201, 0).await;
        let tmp = tempfile::tempdir().unwrap();
        let mut app = TestApp::spawn_with(
            db,
            Spawn {
                extra_config: format!("{}\n[setup]\ndir = \"{}\"\n", github.config(), tmp.path().display()),
                public_url: Some(PUBLIC_URL.into()),
                worker: false,
                ..Spawn::default()
            },
        )
        .await;
        for token in [None, Some("wrong-token")] {
            let page = get(&app, "/setup/github", None, token).await;
            assert_eq!(page.status().as_u16(), 401, "{token:?}");
            assert!(page.headers().get("set-cookie").is_none());
            assert_eq!(page.headers().get("x-frame-options").unwrap(), "DENY");
            assert!(page.text().await.unwrap().contains("admin.token"));
        }
        let callback = get(&app, "/setup/github/callback?code=abc123&state=s", Some("s"), None).await;
        assert_eq!(callback.status().as_u16(), 401);

        let page = get(&app, "/setup/github", None, Some(ADMIN_TOKEN)).await;
        assert_eq!(page.status().as_u16(), 200);
        // The form posts to the configured App's GitHub: the mock is no
        // /api/v3 URL, so github.com.
        let html = page.text().await.unwrap();
        assert!(attribute(&html, "<form", "action").starts_with("https://github.com/settings/apps/new?state="));
        assert!(github.server.received_requests().await.unwrap().iter().all(|r| !r.url.path().starts_with("/app-manifests")));
        app.stop().await;
    }

    async fn setup_can_be_turned_off(db: TestDb) {
        let mut app = spawn(db, Some(PUBLIC_URL), "enabled = false\n").await;
        for path in ["/setup/github", "/setup/github?org=octo-org", "/setup/github/callback?code=a&state=b"] {
            let answer = get(&app, path, Some("b"), Some(ADMIN_TOKEN)).await;
            assert_eq!(answer.status().as_u16(), 404, "{path}");
            assert!(answer.headers().get("set-cookie").is_none());
        }
        app.stop().await;
    }
}

/// Without an admin token, a configured App closes setup: nobody can create
/// a second app over the first one's files.
#[tokio::test]
async fn setup_is_closed_when_an_app_is_configured_and_no_admin_token_is_set() {
    let github = GithubMock::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcall.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC_URL}\"\n[database]\nurl = \"sqlite://{}/portcall.db\"\n[worker]\nenabled = false\n[dispatcher]\nenabled = false\n{}",
            tmp.path().display(),
            github.config()
        ),
    )
    .unwrap();
    let settings = Settings::load(Some(&config)).unwrap();
    assert!(settings.admin.token.is_none());
    let app = portcall::startup::Application::build(settings)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for path in ["/setup/github", "/setup/github/callback?code=a&state=b"] {
        let answer = client
            .get(format!("{address}{path}"))
            .bearer_auth("anything")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 403, "{path}");
        let html = answer.text().await.unwrap();
        assert!(
            html.contains("setup is closed because a GitHub App is configured"),
            "{html}"
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
