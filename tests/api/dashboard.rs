//! The web dashboard over plain HTTP (the browser tests are in
//! `browser.rs`): sign-in and sessions, CSRF, the security headers, and
//! what each page shows of the inbox, the outbox and the releases.

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::helpers::*;
use crate::on_both_backends;

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

/// A browser without a cookie jar or redirects: every cookie and hop is
/// asserted on.
struct Visitor<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    session: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    csp: Option<String>,
    html: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        field_value(&self.html, "csrf").unwrap_or_else(|| panic!("no csrf field in {}", self.html))
    }

    /// The `Set-Cookie` line for `name`.
    fn cookie(&self, name: &str) -> &str {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.cookies))
    }
}

fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

impl<'a> Visitor<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            session: None,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, extra_cookie: Option<String>) -> Page {
        let cookies: Vec<String> = self
            .session
            .iter()
            .map(|s| format!("portcall_session={s}"))
            .chain(extra_cookie)
            .collect();
        let request = if cookies.is_empty() {
            request
        } else {
            request.header("Cookie", cookies.join("; "))
        };
        let response = request.send().await.expect("request sent");
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let location = header(LOCATION);
        let csp = header(CONTENT_SECURITY_POLICY);
        let cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        Page {
            status: response.status().as_u16(),
            location,
            cookies,
            csp,
            html: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(self.app.url(path)), None).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.client.post(self.app.url(path)).form(form), None)
            .await
    }

    /// Signs in with `token` through the sign-in form; the answer to the POST.
    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/login?next=%2Fjobs").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let login_cookie = cookie_value(form.cookie("portcall_login"));
        let answer = self
            .send(
                self.client.post(self.app.url("/login")).form(&[
                    ("token", token),
                    ("csrf", &form.csrf()),
                    ("next", "/jobs"),
                ]),
                Some(format!("portcall_login={login_cookie}")),
            )
            .await;
        if answer.status == 303 {
            self.session = Some(cookie_value(answer.cookie("portcall_session")));
        }
        answer
    }
}

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

async fn create_account(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (code, answer) = app
        .post_api(
            "/api/v1/service-accounts",
            json!({"name": "ops", "scopes": scopes}),
        )
        .await;
    assert_eq!(code, 201, "{answer:#}");
    (
        answer["id"].as_str().unwrap().to_owned(),
        answer["token"].as_str().unwrap().to_owned(),
    )
}

on_both_backends! {
    async fn signing_in_sets_a_strict_http_only_session_and_every_page_needs_it(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let mut visitor = Visitor::new(&app);

        // Without a session, pages send the browser to sign in and back.
        for (path, next) in [("/", "%2F"), ("/jobs?state=dead", "%2Fjobs%3Fstate%3Ddead"), ("/releases", "%2Freleases"), ("/integrations", "%2Fintegrations"), ("/deliveries/1", "%2Fdeliveries%2F1")] {
            let page = visitor.get(path).await;
            assert_eq!((page.status, page.location.as_deref()), (303, Some(format!("/login?next={next}").as_str())), "{path}");
        }
        // ...and forms are refused.
        for path in ["/deliveries/1/replay", "/jobs/1/retry", "/integrations/github/test", "/logout"] {
            let page = visitor.post(path, &[("csrf", "x")]).await;
            assert_eq!(page.status, 401, "{path}: {}", page.html);
        }

        let form = visitor.get("/login").await;
        assert_eq!(form.status, 200);
        let csp = form.csp.as_deref().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let login = form.cookie("portcall_login");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/login"] {
            assert!(login.contains(attribute), "{login}");
        }

        // A wrong token is refused with the reason, and opens nothing.
        let refused = visitor.sign_in("not-the-token").await;
        assert_eq!(refused.status, 401, "{}", refused.html);
        assert!(refused.html.contains(r#"id="login-error""#) && refused.html.contains("the bearer token is not valid"), "{}", refused.html);
        assert!(!refused.html.contains("not-the-token"), "the token is echoed: {}", refused.html);
        assert!(refused.cookies.iter().all(|c| !c.starts_with("portcall_session=")));

        // A sign-in form whose CSRF token does not match its cookie is refused.
        let forged = visitor
            .send(
                visitor.client.post(app.url("/login")).form(&[("token", ADMIN_TOKEN), ("csrf", "forged"), ("next", "/")]),
                Some("portcall_login=other".into()),
            )
            .await;
        assert_eq!(forged.status, 403, "{}", forged.html);
        assert!(forged.html.contains("CSRF"), "{}", forged.html);

        let signed_in = visitor.sign_in(ADMIN_TOKEN).await;
        assert_eq!((signed_in.status, signed_in.location.as_deref()), (303, Some("/jobs")));
        let session = signed_in.cookie("portcall_session");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(session.contains(attribute), "{session}");
        }
        assert!(!session.contains("Secure"), "plain http has no Secure cookie: {session}");
        // Only its hash is stored.
        let token = visitor.session.clone().unwrap();
        assert_eq!(token.len(), 64);
        let stored: Vec<(String, String)> = sqlx::query_as("SELECT token_hash, caller FROM dashboard_sessions")
            .fetch_all(&app.sql().await)
            .await
            .unwrap();
        assert_eq!(stored, [(hex::encode(Sha256::digest(token.as_bytes())), "admin".to_owned())]);

        for path in ["/", "/jobs", "/releases", "/integrations"] {
            let page = visitor.get(path).await;
            assert_eq!(page.status, 200, "{path}: {}", page.html);
            assert!(page.html.contains(r#"<nav id="nav">"#), "{path}");
            assert!(page.csp.is_some(), "{path}");
        }
        let script = visitor.get("/ui/app.js").await;
        assert!(script.status == 200 && script.html.contains("Intl.DateTimeFormat"));

        // Signing out needs the session's CSRF token, then ends the session.
        let jobs = visitor.get("/jobs").await;
        let no_csrf = visitor.post("/logout", &[]).await;
        assert_eq!(no_csrf.status, 403, "{}", no_csrf.html);
        let out = visitor.post("/logout", &[("csrf", &jobs.csrf())]).await;
        assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
        assert!(out.cookie("portcall_session").contains("Max-Age=0"));
        assert_eq!(visitor.get("/").await.status, 303, "the old cookie still opens pages");
        app.finish().await;
    }

    async fn a_service_account_signs_in_only_with_scope_admin_and_revoking_it_ends_its_session(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, reader) = create_account(&app, &["release:read"]).await;
        let mut visitor = Visitor::new(&app);
        let refused = visitor.sign_in(&reader).await;
        assert_eq!(refused.status, 403, "{}", refused.html);
        assert!(refused.html.contains("lacks the scope admin"), "{}", refused.html);

        let (id, admin) = create_account(&app, &["admin"]).await;
        assert_eq!(visitor.sign_in(&admin).await.status, 303);
        let page = visitor.get("/").await;
        assert_eq!(page.status, 200);
        assert!(page.html.contains(&id), "the caller is shown: {}", page.html);

        let (code, _) = {
            let response = app.client.delete(app.url(&format!("/api/v1/service-accounts/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            (response.status().as_u16(), ())
        };
        assert_eq!(code, 204);
        assert_eq!(visitor.get("/").await.status, 303, "a revoked account's session lives on");
        app.finish().await;
    }

    async fn the_pages_show_a_delivery_what_it_caused_and_replay_and_retry_it(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let mut visitor = Visitor::new(&app);
        visitor.sign_in(ADMIN_TOKEN).await;

        // A build links the digest to its commit; the push of v2.0.0 makes
        // a release and its (skipped: no GitHub configured) jobs.
        let image = digest("built");
        let (code, _) = app.post_api("/api/v1/ci-events/build-complete", json!({
            "integrationId": "ci", "buildId": "1", "status": "success", "commit": SHA,
            "artifacts": [{"name": "hello-world", "digest": image, "repository": "registry.example.com/octo-org/hello-world"}]
        })).await;
        assert_eq!(code, 202);
        assert_eq!(app.post_image_push("ev-1", REPO, "v2.0.0", &image).await.status(), 202);
        let hostile = br#"{"zen":"<script>window.__xss=1</script>","hook_id":1}"#;
        assert_eq!(app.post_github("ping", "ping-1", hostile).await.status(), 202);
        app.wait_until_settled(20).await;
        let rows = app.deliveries().await;
        let push = rows.iter().find(|d| d.source == "registry").unwrap();
        let ping = rows.iter().find(|d| d.source == "github").unwrap();

        let inbox = visitor.get("/").await;
        assert_eq!(inbox.status, 200);
        let html = &inbox.html;
        assert!(html.contains(&format!(r#"<tr class="delivery" data-id="{}" data-status="processed">"#, push.id)), "{html}");
        assert!(html.contains(&format!(r#"href="/deliveries/{}""#, ping.id)), "{html}");
        assert!(html.contains("HMAC-SHA256 (X-Hub-Signature-256)") && html.contains("bearer token (Authorization)"), "verification is shown: {html}");
        assert!(html.contains(r#"class="release-link" href="/releases?component=hello-world#release-"#), "{html}");
        assert!(html.contains(&format!(r#"href="/jobs?delivery={}""#, push.id)), "{html}");
        // Filters narrow the list.
        let only_github = visitor.get("/?source=github&status=processed&since=1h").await;
        assert!(only_github.html.contains(&format!(r#"data-id="{}""#, ping.id)));
        assert!(!only_github.html.contains(&format!(r#"data-id="{}""#, push.id)), "{}", only_github.html);
        assert!(visitor.get("/?status=failed").await.html.contains(r#"id="empty""#));
        let bad = visitor.get("/?status=lost").await;
        assert_eq!(bad.status, 400);
        assert!(bad.html.contains("status must be one of pending, processed, ignored, failed"), "{}", bad.html);
        // A page of one links to the next.
        let first = visitor.get("/?limit=1").await;
        assert!(first.html.contains(&format!(r#"id="next-page" href="/?limit=1&amp;before={}""#, ping.id)), "{}", first.html);

        // The payload is shown as text, never as markup.
        let detail = visitor.get(&format!("/deliveries/{}", ping.id)).await;
        assert_eq!(detail.status, 200);
        assert!(!detail.html.contains("<script>window"), "{}", detail.html);
        assert!(detail.html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"), "{}", detail.html);
        // Credentials are not stored, so never shown; the other headers are.
        assert!(detail.html.contains("<th>x-github-event</th><td>ping</td>"), "{}", detail.html);
        assert!(!detail.html.contains("x-hub-signature-256</th>"), "{}", detail.html);
        assert!(!detail.html.contains(&github_signature(GITHUB_SECRET, hostile)));
        assert!(detail.html.contains(r#"<li class="attempt">"#), "{}", detail.html);

        // The push's page shows its release and jobs; replay needs the CSRF token.
        let push_page = visitor.get(&format!("/deliveries/{}", push.id)).await;
        assert!(push_page.html.contains("hello-world-v2.0.0"), "{}", push_page.html);
        assert!(push_page.html.contains(r#"class="job""#), "{}", push_page.html);
        let csrf = push_page.csrf();
        let refused = visitor.post(&format!("/deliveries/{}/replay", push.id), &[("csrf", "wrong")]).await;
        assert_eq!(refused.status, 403);
        assert!(refused.html.contains("CSRF"), "{}", refused.html);
        let replayed = visitor.post(&format!("/deliveries/{}/replay", push.id), &[("csrf", &csrf)]).await;
        assert_eq!((replayed.status, replayed.location.clone()), (303, Some(format!("/deliveries/{}?replayed=1", push.id))));
        app.wait_until_settled(20).await;
        let again = visitor.get(&format!("/deliveries/{}?replayed=1", push.id)).await;
        assert!(again.html.contains(r#"id="notice""#));
        assert_eq!(again.html.matches(r#"<li class="attempt">"#).count(), 3, "processed, replayed, processed: {}", again.html);
        assert!(again.html.contains("replayed</span>"), "{}", again.html);
        let (_, releases) = app.get_api("/api/v1/releases").await;
        assert_eq!(releases["releases"].as_array().unwrap().len(), 1, "a replay made a second release");

        // Releases: commit link to GitHub.
        let releases_page = visitor.get("/releases").await;
        assert!(releases_page.html.contains(&format!(r#"class="commit-link" href="https://github.com/{REPO}/commit/{SHA}""#)), "{}", releases_page.html);

        // The API view of the same links.
        let (_, caused) = app.get_api(&format!("/api/v1/jobs?delivery={}", push.id)).await;
        assert!(!caused["jobs"].as_array().unwrap().is_empty(), "{caused:#}");
        assert!(caused["jobs"].as_array().unwrap().iter().all(|j| j["delivery_row"] == push.id));

        let missing = visitor.get("/deliveries/999999").await;
        assert_eq!(missing.status, 404);
        assert_eq!(visitor.post("/jobs/999999/retry", &[("csrf", &csrf)]).await.status, 404);
        app.finish().await;
    }

    async fn testing_an_integration_shows_its_three_steps(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let mut visitor = Visitor::new(&app);
        visitor.sign_in(ADMIN_TOKEN).await;
        let list = visitor.get("/integrations").await;
        assert!(list.html.contains(r#"<tr class="integration" data-name="github">"#), "{}", list.html);
        let tested = visitor.post("/integrations/github/test", &[("csrf", &list.csrf())]).await;
        assert_eq!(tested.status, 200, "{}", tested.html);
        for step in ["test-connectivity", "test-authentication", "test-functionality"] {
            assert!(tested.html.contains(&format!(r#"id="{step}""#)), "{step}: {}", tested.html);
        }
        assert!(tested.html.contains(r#"class="step-status badge"#));
        assert_eq!(visitor.post("/integrations/nope/test", &[("csrf", &list.csrf())]).await.status, 404);
        assert_eq!(visitor.post("/integrations/github/test", &[]).await.status, 403);
        app.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_can_be_turned_off() {
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        Spawn {
            extra_config: "[dashboard]\nenabled = false\n".into(),
            ..Spawn::default()
        },
    )
    .await;
    let visitor = Visitor::new(&app);
    assert_eq!(visitor.get("/").await.status, 404);
    assert_eq!(visitor.get("/login").await.status, 404);
    assert_eq!(visitor.get("/healthz").await.status, 200);
    app.finish().await;
}
