//! The dashboard in a real browser: Debian's headless Chromium, driven
//! through chromedriver (W3C WebDriver) with fantoccini. One scenario, as
//! an operator lives it: sign in, find a delivery, open it, replay it,
//! retry a dead job, test an integration, see a hostile payload inert, be
//! refused without a session or a CSRF token, sign out. Every page visited
//! is saved as a PNG in `$PORTCALL_SCREENSHOT_DIR` (default
//! `target/screenshots/`).
//!
//! Without chromedriver the test is skipped with a note, unless `CI` is
//! set (`.ci/run` installs `chromium` and `chromium-driver`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::providers::GithubMock;

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const WAIT: Duration = Duration::from_secs(10);

fn chromedriver() -> PathBuf {
    std::env::var_os("PORTCALL_TEST_CHROMEDRIVER")
        .map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from)
}

fn chromium() -> String {
    std::env::var("PORTCALL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("PORTCALL_SCREENSHOT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        PathBuf::from,
    )
}

/// chromedriver on a free port, killed with the test. Chromium runs in
/// Tokyo's time zone, so the page must show times in the viewer's zone
/// rather than the server's UTC.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Option<Self> {
        let binary = chromedriver();
        if !binary.exists() || !std::path::Path::new(&chromium()).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {} or {} is missing: install chromium and chromium-driver",
                binary.display(),
                chromium()
            );
            eprintln!(
                "note: browser tests SKIPPED: {} not found (apt-get install chromium chromium-driver)",
                binary.display()
            );
            return None;
        }
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .env("TZ", "Asia/Tokyo")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self { child, url })
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-GB"]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The browser and the app, with the helpers a scenario reads well with.
struct Session<'a> {
    browser: Client,
    app: &'a TestApp,
}

impl Session<'_> {
    async fn open(&self, path: &str) {
        self.browser
            .goto(&self.app.url(path))
            .await
            .expect("page loads");
    }

    fn css(selector: &str) -> Locator<'_> {
        Locator::Css(selector)
    }

    /// The element, waiting for it; fails with the page's URL and source.
    async fn element(&self, selector: &str) -> fantoccini::elements::Element {
        match self
            .browser
            .wait()
            .at_most(WAIT)
            .for_element(Self::css(selector))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!(
                "no {selector} on {} ({error}):\n{}",
                self.browser.current_url().await.unwrap(),
                self.browser.source().await.unwrap_or_default()
            ),
        }
    }

    async fn text(&self, selector: &str) -> String {
        self.element(selector).await.text().await.unwrap()
    }

    async fn click(&self, selector: &str) {
        self.element(selector).await.click().await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.browser.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.browser.execute(script, Vec::new()).await.unwrap()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, png).unwrap();
        eprintln!("screenshot: {}", file.display());
    }
}

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_follows_a_delivery_through_the_dashboard_in_chromium() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    // GitHub refuses the commit status with a 404 (the job dies at once)
    // and accepts the rest.
    let github = GithubMock::start().await;
    github.mount_app_auth(REPO).await;
    github.refuse_status_once(REPO, SHA).await;
    github.mount_posting(REPO, SHA, &[]).await;
    github.mount_app().await;
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        Spawn {
            extra_config: github.config(),
            ..Spawn::default()
        },
    )
    .await;
    let s = Session {
        browser: driver.browser().await,
        app: &app,
    };

    // Without a session the dashboard sends the browser to sign in.
    s.open("/").await;
    assert_eq!(s.path().await, "/login?next=%2F");
    s.screenshot("login").await;
    s.element("#token")
        .await
        .send_keys("not-the-token")
        .await
        .unwrap();
    s.click("#login-submit").await;
    assert!(s.text("#login-error").await.contains("not valid"));
    s.element("#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    s.click("#login-submit").await;
    s.element("#nav").await;
    assert_eq!(s.path().await, "/");
    // The session cookie is HttpOnly (no script reads it) and SameSite=Strict.
    assert_eq!(
        s.js("return document.cookie.includes('portcall_session')")
            .await,
        json!(false)
    );
    let cookies = s.browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "portcall_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    // fantoccini keeps its cookie crate's SameSite private; its Debug
    // form is the variant name.
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");

    // Deliveries posted a moment ago: a build and an image push (a
    // release and its jobs) and a ping with a hostile payload.
    let image = digest("browser");
    let (code, _) = app.post_api("/api/v1/ci-events/build-complete", json!({
        "integrationId": "ci", "buildId": "1", "status": "success", "commit": SHA,
        "artifacts": [{"name": "hello-world", "digest": image, "repository": "registry.example.com/octo-org/hello-world"}]
    })).await;
    assert_eq!(code, 202);
    assert_eq!(
        app.post_image_push("ev-browser", REPO, "v2.0.0", &image)
            .await
            .status(),
        202
    );
    let hostile = br#"{"zen":"<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">","hook_id":1}"#;
    assert_eq!(
        app.post_github("ping", "ping-xss", hostile).await.status(),
        202
    );
    app.wait_until_settled(30).await;
    let rows = app.deliveries().await;
    let push = rows.iter().find(|d| d.source == "registry").unwrap().id;
    let ping = rows.iter().find(|d| d.source == "github").unwrap().id;

    s.open("/").await;
    let row = s.element(&format!("tr.delivery[data-id='{push}']")).await;
    assert!(
        row.text().await.unwrap().contains("hello-world-v2.0.0"),
        "the release it caused is linked"
    );
    // Times are shown in the viewer's zone (Tokyo), not the server's UTC.
    let received = s.element("td.received time").await;
    assert_eq!(
        received.attr("data-local").await.unwrap().as_deref(),
        Some("1")
    );
    let shown = received.text().await.unwrap();
    assert!(shown.contains("GMT+9") && !shown.contains("UTC"), "{shown}");
    s.screenshot("deliveries").await;

    // Readable on a phone: the page itself never scrolls sideways.
    s.browser.set_window_size(390, 844).await.unwrap();
    s.open("/").await;
    s.element("#deliveries").await;
    let overflow = s
        .js("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 1,
        "the page is {overflow} px wider than a phone"
    );
    s.screenshot("phone-deliveries").await;
    s.browser.set_window_size(1280, 900).await.unwrap();

    // The hostile payload is shown as text and runs nothing.
    s.open("/").await;
    s.click(&format!("tr.delivery[data-id='{ping}'] a.delivery-link"))
        .await;
    assert_eq!(s.path().await, format!("/deliveries/{ping}"));
    let body = s.text("#body").await;
    assert!(body.contains("<script>window.__xss=1</script>"), "{body}");
    assert_eq!(s.js("return window.__xss === undefined").await, json!(true));
    assert!(s
        .browser
        .find_all(Locator::Css("#body script, #body img"))
        .await
        .unwrap()
        .is_empty());
    let headers = s.text("#headers").await;
    assert!(
        headers.contains("x-github-event")
            && !headers.contains(&github_signature(GITHUB_SECRET, hostile))
    );
    s.screenshot("xss").await;

    // The push's page: its release and jobs; Replay processes it again.
    s.open(&format!("/deliveries/{push}")).await;
    assert!(s.text("#caused").await.contains("hello-world-v2.0.0"));
    s.screenshot("delivery-detail").await;
    s.click("#replay-submit").await;
    assert!(s.text("#notice").await.contains("Replay queued"));
    app.wait_until_settled(30).await;
    s.open(&format!("/deliveries/{push}")).await;
    let history = s.text("#history").await;
    assert!(
        history.contains("replayed") && history.contains("by admin"),
        "{history}"
    );
    assert_eq!(
        s.browser
            .find_all(Locator::Css("#history li.attempt"))
            .await
            .unwrap()
            .len(),
        3,
        "{history}"
    );

    // A form without its CSRF token is refused.
    s.js("document.querySelector('#replay input[name=csrf]').remove(); document.querySelector('#replay').submit(); return null").await;
    assert!(s.text("#error").await.contains("CSRF"));
    s.screenshot("csrf-refused").await;
    // ...and so is one without a session, or with another session's token.
    let cookie = format!("portcall_session={}", session.value());
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let replay = app.url(&format!("/deliveries/{push}/replay"));
    let refused = bare
        .post(&replay)
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let refused = bare
        .post(&replay)
        .header("Cookie", &cookie)
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // The dead job shows GitHub's error; Retry queues it again.
    s.open("/jobs?state=dead").await;
    let dead = s.element("tr.job[data-state='dead']").await;
    let job = dead.attr("data-id").await.unwrap().unwrap();
    assert!(s
        .text("tr.job[data-state='dead'] td.last-error")
        .await
        .contains("Not Found"));
    s.screenshot("jobs").await;
    s.click("tr.job[data-state='dead'] .retry-submit").await;
    assert!(s
        .text("#notice")
        .await
        .contains(&format!("Job {job} is queued again")));
    app.wait_until_settled(30).await;
    let (_, retried) = app.get_api(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(retried["state"], "done", "{retried:#}");

    // Releases link the commit on GitHub.
    s.open("/releases").await;
    let link = s.element("tr.release a.commit-link").await;
    assert_eq!(
        link.attr("href").await.unwrap().unwrap(),
        format!("https://github.com/{REPO}/commit/{SHA}")
    );
    s.screenshot("releases").await;

    // Integrations: Test shows the three steps.
    s.open("/integrations").await;
    s.click("tr.integration[data-name='provider:github'] .test-submit")
        .await;
    for step in [
        "#test-connectivity",
        "#test-authentication",
        "#test-functionality",
    ] {
        assert_eq!(
            s.text(&format!("{step} .step-status")).await,
            "ok",
            "{step}"
        );
    }
    s.screenshot("integrations").await;

    // Signing out ends the session.
    s.click("#logout button").await;
    s.element("#login").await;
    s.open("/jobs").await;
    assert_eq!(s.path().await, "/login?next=%2Fjobs");

    s.browser.close().await.unwrap();
    app.finish().await;
}
