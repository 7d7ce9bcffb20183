//! The GitHub App manifest flow, without its HTTP pages: the manifest
//! portcall offers GitHub, the exchange of GitHub's one-time code for the
//! new app's credentials, and writing those credentials to files that the
//! configuration then references (`file:` secrets).
//!
//! - **One source of truth.** The manifest is `manifests/github-app.json`,
//!   compiled in; only its three URLs are replaced from `server.public_url`,
//!   so the file people use by hand and the one-click flow cannot drift.
//! - **Secrets go to files, never elsewhere.** The private key and the
//!   webhook secret are held as [`SecretString`], written with mode 0600
//!   through a temporary file and a rename (a crash leaves either the old
//!   file or the whole new one), and never logged or put in an error.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `manifests/github-app.json`, as shipped.
pub const MANIFEST_TEMPLATE: &str = include_str!("../manifests/github-app.json");

/// How long the code exchange may take in all.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The App manifest for a portcall reachable at `public_url`: the shipped
/// manifest with `url`, `hook_attributes.url` (the `github` source's
/// webhook endpoint) and `redirect_url` (the setup callback) filled in.
pub fn manifest(public_url: &str) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    let mut manifest: serde_json::Value =
        serde_json::from_str(MANIFEST_TEMPLATE).expect("manifests/github-app.json is valid JSON");
    manifest["url"] = base.into();
    manifest["hook_attributes"]["url"] = format!("{base}/webhooks/github").into();
    manifest["redirect_url"] = format!("{base}/setup/github/callback").into();
    manifest
}

/// GitHub's web address for an API base URL: `https://api.github.com` →
/// `https://github.com`; GitHub Enterprise Server's `https://HOST/api/v3`
/// → `https://HOST`. `None` when `api_url` is neither shape.
pub fn web_url_for_api_url(api_url: &str) -> Option<String> {
    let parsed = url::Url::parse(api_url.trim_end_matches('/')).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?;
    if host == "api.github.com" {
        return Some("https://github.com".to_owned());
    }
    if parsed.path().trim_end_matches('/') != "/api/v3" {
        return None;
    }
    let mut web = format!("{}://{host}", parsed.scheme());
    if let Some(port) = parsed.port() {
        web.push_str(&format!(":{port}"));
    }
    Some(web)
}

/// What GitHub answers to `POST /app-manifests/{code}/conversions`: the
/// new app, with the only copy of its private key.
#[derive(Deserialize)]
pub struct CreatedApp {
    pub id: u64,
    pub slug: String,
    /// `https://github.com/apps/{slug}`; installing is `{html_url}/installations/new`.
    pub html_url: String,
    #[serde(deserialize_with = "secret")]
    pub pem: SecretString,
    #[serde(deserialize_with = "secret")]
    pub webhook_secret: SecretString,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl std::fmt::Debug for CreatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApp")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("html_url", &self.html_url)
            .finish_non_exhaustive()
    }
}

impl CreatedApp {
    /// Where the app is installed on accounts and repositories.
    pub fn install_url(&self) -> String {
        format!("{}/installations/new", self.html_url.trim_end_matches('/'))
    }
}

/// Why the code exchange gave no app. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The code is not a plain token (it goes into the URL path).
    #[error("the code from GitHub is malformed")]
    MalformedCode,
    /// GitHub does not know the code, or it has expired or been used (404, 422).
    #[error("GitHub rejected the code (HTTP {0}); it is valid for one hour and works once")]
    Rejected(u16),
    /// Any other non-2xx answer.
    #[error("GitHub answered HTTP {0}")]
    Status(u16),
    /// No answer (connection, TLS, timeout).
    #[error("could not reach GitHub: {0}")]
    Transport(String),
    /// A 2xx answer that is not the documented app shape.
    #[error("GitHub's answer is not an app: {0}")]
    Shape(String),
}

/// Exchanges the one-time `code` GitHub put on the redirect for the new
/// app's credentials: `POST {api_url}/app-manifests/{code}/conversions`,
/// unauthenticated, as GitHub documents.
pub async fn exchange(api_url: &str, code: &str) -> Result<CreatedApp, ExchangeError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if code.is_empty() || code.len() > 200 || !code.chars().all(plain) {
        return Err(ExchangeError::MalformedCode);
    }
    let url = format!(
        "{}/app-manifests/{code}/conversions",
        api_url.trim_end_matches('/')
    );
    let client = reqwest_oci::Client::builder()
        .timeout(EXCHANGE_TIMEOUT)
        .user_agent(concat!("portcall/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ExchangeError::Transport(e.to_string()))?;
    let response = client
        .post(url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .map_err(|e| ExchangeError::Transport(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        404 | 422 => return Err(ExchangeError::Rejected(status)),
        _ => return Err(ExchangeError::Status(status)),
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ExchangeError::Transport(e.without_url().to_string()))?;
    // serde_json's error names a line and column, never the content.
    serde_json::from_slice(&body).map_err(|e| ExchangeError::Shape(e.to_string()))
}

/// The three files written for a new app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFiles {
    pub app_id: PathBuf,
    pub private_key: PathBuf,
    pub webhook_secret: PathBuf,
}

impl CredentialFiles {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            app_id: dir.join("app-id"),
            private_key: dir.join("private-key.pem"),
            webhook_secret: dir.join("webhook-secret"),
        }
    }

    /// The configuration that uses these files, to paste into portcall.toml.
    /// `api_url` is only written when it is not github.com's.
    pub fn config_snippet(&self, app: &CreatedApp, api_url: &str) -> String {
        let mut toml = format!(
            "[github]\napp_id = {}\nprivate_key = \"file:{}\"\n",
            app.id,
            self.private_key.display()
        );
        if api_url.trim_end_matches('/') != "https://api.github.com" {
            toml.push_str(&format!("api_url = \"{api_url}\"\n"));
        }
        toml.push_str(&format!(
            "\n[[sources]]\nname = \"github\"\nkind = \"github\"\nsecrets = [\"file:{}\"]\n",
            self.webhook_secret.display()
        ));
        toml
    }
}

/// Writes the app id, private key and webhook secret into `dir` (created
/// with mode 0700 if missing), each file mode 0600, each atomically.
pub fn write_credentials(dir: &Path, app: &CreatedApp) -> std::io::Result<CredentialFiles> {
    create_private_dir(dir)?;
    let files = CredentialFiles::in_dir(dir);
    write_private(&files.private_key, app.pem.expose_secret().as_bytes())?;
    write_private(
        &files.webhook_secret,
        app.webhook_secret.expose_secret().as_bytes(),
    )?;
    write_private(&files.app_id, format!("{}\n", app.id).as_bytes())?;
    Ok(files)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `contents` to `path` through a sibling temporary file created
/// with mode 0600 (so the secret is never readable by others, not even
/// for a moment), synced, then renamed over `path`.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix).map_err(std::io::Error::other)?;
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../fixtures/github-api/apps/create-from-manifest.json");

    #[test]
    fn setup_manifest_fills_urls_and_keeps_the_rest_of_the_file() {
        let built = manifest("https://ci.example.org/portcall/");
        assert_eq!(built["url"], "https://ci.example.org/portcall");
        assert_eq!(
            built["hook_attributes"]["url"],
            "https://ci.example.org/portcall/webhooks/github"
        );
        assert_eq!(
            built["redirect_url"],
            "https://ci.example.org/portcall/setup/github/callback"
        );
        let mut shipped: serde_json::Value = serde_json::from_str(MANIFEST_TEMPLATE).unwrap();
        let mut rest = built.clone();
        for v in [&mut shipped, &mut rest] {
            let o = v.as_object_mut().unwrap();
            o.remove("url");
            o.remove("redirect_url");
            o["hook_attributes"].as_object_mut().unwrap().remove("url");
        }
        assert_eq!(rest, shipped);
    }

    #[test]
    fn setup_manifest_has_the_design_permissions_and_events() {
        let built = manifest("https://p.example");
        let perms = &built["default_permissions"];
        for (k, v) in [
            ("checks", "write"),
            ("pull_requests", "write"),
            ("statuses", "write"),
            ("deployments", "write"),
            ("contents", "read"),
            ("metadata", "read"),
        ] {
            assert_eq!(perms[k], v, "{k}");
        }
        let events: Vec<&str> = built["default_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        // `installation` is not subscribable: GitHub sends it to every app.
        for e in [
            "push",
            "pull_request",
            "check_run",
            "check_suite",
            "package",
            "registry_package",
        ] {
            assert!(events.contains(&e), "{e}");
        }
        assert_eq!(built["hook_attributes"]["active"], true);
    }

    #[test]
    fn setup_web_url_from_api_url() {
        assert_eq!(
            web_url_for_api_url("https://api.github.com").as_deref(),
            Some("https://github.com")
        );
        assert_eq!(
            web_url_for_api_url("https://ghe.example.com/api/v3/").as_deref(),
            Some("https://ghe.example.com")
        );
        assert_eq!(
            web_url_for_api_url("http://127.0.0.1:8081/api/v3").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(web_url_for_api_url("https://ghe.example.com/x"), None);
        assert_eq!(web_url_for_api_url("ftp://ghe.example.com/api/v3"), None);
    }

    fn app() -> CreatedApp {
        serde_json::from_str(FIXTURE).unwrap()
    }

    #[test]
    fn setup_created_app_reads_the_documented_answer_and_hides_secrets() {
        let app = app();
        assert_eq!(app.id, 1);
        assert_eq!(
            app.install_url(),
            "https://github.com/apps/octoapp/installations/new"
        );
        let debug = format!("{app:?}");
        assert!(!debug.contains("e340154128314309424b7c8e90325147d99fdafa"));
        assert!(!debug.contains("PRIVATE KEY"));
    }

    #[cfg(unix)]
    #[test]
    fn setup_write_credentials_writes_three_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("portcall-github");
        let app = app();
        let files = write_credentials(&dir, &app).unwrap();
        assert_eq!(fs::read_to_string(&files.app_id).unwrap(), "1\n");
        assert_eq!(
            fs::read_to_string(&files.private_key).unwrap(),
            app.pem.expose_secret()
        );
        assert_eq!(
            fs::read_to_string(&files.webhook_secret).unwrap(),
            "e340154128314309424b7c8e90325147d99fdafa"
        );
        for f in [&files.app_id, &files.private_key, &files.webhook_secret] {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Writing again replaces the files and leaves no temporary behind.
        write_credentials(&dir, &app).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        let toml = files.config_snippet(&app, "https://api.github.com");
        assert!(toml.contains("app_id = 1\n"));
        assert!(toml.contains(&format!("file:{}", files.private_key.display())));
        assert!(toml.contains(&format!("file:{}", files.webhook_secret.display())));
        assert!(!toml.contains("api_url"));
    }

    #[tokio::test]
    async fn setup_exchange_posts_the_code_and_reads_the_app() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v3/app-manifests/abc123/conversions"))
            .respond_with(ResponseTemplate::new(201).set_body_raw(FIXTURE, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v3/app-manifests/used/conversions"))
            .respond_with(ResponseTemplate::new(404).set_body_string(r#"{"message":"Not Found"}"#))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v3/app-manifests/bad/conversions"))
            .respond_with(ResponseTemplate::new(422))
            .mount(&server)
            .await;
        let api = format!("{}/api/v3", server.uri());
        let app = exchange(&api, "abc123").await.unwrap();
        assert_eq!(app.slug, "octoapp");
        assert_eq!(
            app.webhook_secret.expose_secret(),
            "e340154128314309424b7c8e90325147d99fdafa"
        );
        assert!(matches!(
            exchange(&api, "used").await,
            Err(ExchangeError::Rejected(404))
        ));
        assert!(matches!(
            exchange(&api, "bad").await,
            Err(ExchangeError::Rejected(422))
        ));
        assert!(matches!(
            exchange(&api, "../x").await,
            Err(ExchangeError::MalformedCode)
        ));
    }
}
