//! The GitHub App manifest flow, without HTTP: the manifest portcall
//! offers GitHub, the exchange of GitHub's one-time code for the new app's
//! credentials, writing those credentials to files that the configuration
//! then references (`file:` secrets), and the two pages of
//! `/setup/github` (their CSRF state and HTML) as pure functions;
//! `http::setup` only translates them to HTTP.
//!
//! - **One source of truth.** The manifest is `manifests/github-app.json`,
//!   compiled in; only its three URLs are replaced from `server.public_url`,
//!   so the file people use by hand and the one-click flow cannot drift.
//! - **Secrets go to files, never elsewhere.** The private key and the
//!   webhook secret are held as [`SecretString`], written with mode 0600
//!   through a temporary file and a hard link (a crash leaves no file or
//!   the whole one), and never logged or put in an error.
//! - **Never clobber.** An existing credential file is never replaced: a
//!   second app would otherwise silently cut off the first one's key. The
//!   directory is checked before the one-time code is spent.
//! - **Every interpolated value is HTML-escaped**, the pages carry no
//!   script, and their CSP lets forms post only to GitHub.

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
    /// The display name the person creating it chose on GitHub.
    #[serde(default)]
    pub name: String,
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
            .field("name", &self.name)
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
        let reference = |path: &Path| toml_string(&format!("file:{}", path.display()));
        let mut toml = format!(
            "[github]\napp_id = {}\nprivate_key = {}\n",
            app.id,
            reference(&self.private_key)
        );
        let api_url = api_url.trim_end_matches('/');
        if api_url != "https://api.github.com" {
            toml.push_str(&format!("api_url = {}\n", toml_string(api_url)));
        }
        toml.push_str(&format!(
            "\n[[sources]]\nname = \"github\"\nkind = \"github\"\nsecrets = [{}]\n",
            reference(&self.webhook_secret)
        ));
        toml
    }
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why credentials were not written. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A credential file is there already: an existing app's key is never
    /// replaced.
    #[error("{} exists already; portcall never replaces an app's credentials: move the credential files away (or set setup.dir to another directory) to create another app", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WriteError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Self::Exists(path.to_owned())
            } else {
                Self::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        }
    }
}

/// Makes `dir` ready for a new app's credentials before GitHub's one-time
/// code is spent: creates it (mode 0700) if missing and checks that none of
/// the three files exists. The paths are absolute, so the configuration
/// that names them works from any working directory.
pub fn prepare_dir(dir: &Path) -> Result<CredentialFiles, WriteError> {
    create_private_dir(dir).map_err(WriteError::io(dir))?;
    let dir = fs::canonicalize(dir).map_err(WriteError::io(dir))?;
    let files = CredentialFiles::in_dir(&dir);
    for path in [&files.app_id, &files.private_key, &files.webhook_secret] {
        // `symlink_metadata`: a dangling link counts as there, too.
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(WriteError::Exists(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(WriteError::io(path)(e)),
        }
    }
    Ok(files)
}

/// Writes the app id, private key and webhook secret into `dir` (created
/// with mode 0700 if missing), each file mode 0600, each atomically, and
/// never over an existing file: if any of the three is there, nothing is
/// written and the answer names it.
pub fn write_credentials(dir: &Path, app: &CreatedApp) -> Result<CredentialFiles, WriteError> {
    let files = prepare_dir(dir)?;
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
/// for a moment), synced, then hard-linked to `path`: the link fails if
/// `path` exists (even if another replica created it a moment ago), so an
/// existing file is never replaced, and a crash leaves no partial file.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix)
        .map_err(std::io::Error::other)
        .map_err(WriteError::io(path))?;
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp).map_err(WriteError::io(&temp))?;
        file.write_all(contents).map_err(WriteError::io(&temp))?;
        file.sync_all().map_err(WriteError::io(&temp))?;
        fs::hard_link(&temp, path).map_err(WriteError::io(path))
    })();
    let _ = fs::remove_file(&temp);
    result
}

// ---------------------------------------------------------------------------
// The two pages' logic, without HTTP: the CSRF state, the account the app
// is created for, the HTML, and the callback's steps.

/// The cookie that carries the CSRF state from the page to the callback.
pub const STATE_COOKIE: &str = "portcall_setup_state";

/// The cookie is only sent to the setup page and its callback.
pub const STATE_COOKIE_PATH: &str = "/setup/github";

/// How long a started setup may take, in seconds: as long as GitHub's code.
pub const STATE_MAX_AGE_SECS: u32 = 3600;

/// The CSRF state of one setup: 256 random bits, URL-safe base64. It is
/// put in the browser's cookie and in the URL GitHub redirects back to, and
/// the callback requires both to be equal, so a redirect that this browser
/// did not start (a forged link) spends no code. Being in the cookie, it
/// works whichever replica answers the callback.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupState(String);

impl SetupState {
    /// A fresh state from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Set-Cookie` value that stores it. `SameSite=Lax`, not `Strict`:
    /// the cookie must come along on GitHub's cross-site redirect back.
    /// `secure` when portcall is served over https.
    pub fn cookie(&self, secure: bool) -> String {
        cookie(&self.0, STATE_MAX_AGE_SECS, secure)
    }
}

impl std::fmt::Debug for SetupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupState(..)")
    }
}

/// The `Set-Cookie` value that removes the state cookie (after success:
/// the state is spent).
pub fn clearing_cookie(secure: bool) -> String {
    cookie("", 0, secure)
}

fn cookie(value: &str, max_age: u32, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{STATE_COOKIE}={value}; Path={STATE_COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// The state cookie's value in a `Cookie` request header, if it is there.
pub fn state_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Why the callback's state was refused. No code is exchanged then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the redirect from GitHub carries no state; start again at /setup/github")]
    MissingState,
    #[error("this browser has no setup cookie (it expires after an hour, and only the browser that opened /setup/github has it); start again at /setup/github")]
    MissingCookie,
    #[error("the state from GitHub does not match this browser's setup cookie; start again at /setup/github")]
    Mismatch,
}

/// Checks the state GitHub handed back against the cookie, in constant time.
pub fn verify_state(cookie: Option<&str>, returned: Option<&str>) -> Result<(), StateError> {
    use subtle::ConstantTimeEq as _;
    let returned = returned
        .filter(|s| !s.is_empty())
        .ok_or(StateError::MissingState)?;
    let cookie = cookie
        .filter(|s| !s.is_empty())
        .ok_or(StateError::MissingCookie)?;
    if bool::from(cookie.as_bytes().ct_eq(returned.as_bytes())) {
        Ok(())
    } else {
        Err(StateError::Mismatch)
    }
}

/// A GitHub organisation login, as GitHub allows them: 1 to 39 ASCII
/// letters, digits and hyphens, no hyphen first, last or twice in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLogin(String);

/// `?org=` is not a GitHub login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("org must be a GitHub organisation login: 1 to 39 letters, digits and single hyphens, not first or last")]
pub struct InvalidOrgLogin;

impl OrgLogin {
    pub fn parse(login: &str) -> Result<Self, InvalidOrgLogin> {
        let ok = (1..=39).contains(&login.len())
            && login
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !login.starts_with('-')
            && !login.ends_with('-')
            && !login.contains("--");
        if ok {
            Ok(Self(login.to_owned()))
        } else {
            Err(InvalidOrgLogin)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the manifest is posted: `{web_url}/settings/apps/new` (an app of
/// the signed-in user) or `{web_url}/organizations/{org}/settings/apps/new`,
/// with the state GitHub puts on the redirect back. Neither the login nor
/// the state needs URL-escaping: both are parsed to URL-safe characters.
pub fn new_app_url(web_url: &str, org: Option<&OrgLogin>, state: &SetupState) -> String {
    let web = web_url.trim_end_matches('/');
    match org {
        None => format!("{web}/settings/apps/new?state={}", state.as_str()),
        Some(org) => format!(
            "{web}/organizations/{}/settings/apps/new?state={}",
            org.as_str(),
            state.as_str()
        ),
    }
}

/// The pages' one stylesheet; the CSP allows exactly it, by its hash.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1f2328}pre{background:#f6f8fa;padding:1rem;overflow-x:auto}button{font-size:1rem;padding:.5rem 1rem;cursor:pointer}code{background:#f6f8fa;padding:0 .2rem}";

/// The `Content-Security-Policy` of the setup pages: nothing may load but
/// the inline stylesheet (by its hash), no script at all, no framing, and
/// forms may only post to `form_target`'s origin (GitHub's web address;
/// `None`: nowhere).
pub fn content_security_policy(form_target: Option<&str>) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    let form_action = form_target
        .and_then(|target| url::Url::parse(target).ok())
        .map(|url| url.origin())
        .filter(url::Origin::is_tuple)
        .map_or_else(|| "'none'".to_owned(), |o| o.ascii_serialization());
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `text` safe to put in HTML content and in a quoted attribute.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`, which is HTML already escaped by the caller.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>{title} · portcall</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
        title = escape_html(title),
    )
}

/// A started setup: the state to put in the cookie and the page to show.
#[derive(Debug)]
pub struct Start {
    pub state: SetupState,
    /// Where the page's form posts (carries the state).
    pub action: String,
    pub html: String,
}

/// Starts a setup for a portcall reachable at `public_url`: a fresh state
/// and the page whose button posts the manifest to GitHub at `web_url`.
pub fn start(
    web_url: &str,
    public_url: &str,
    org: Option<&OrgLogin>,
) -> Result<Start, getrandom::Error> {
    let state = SetupState::generate()?;
    let action = new_app_url(web_url, org, &state);
    let manifest = manifest(public_url);
    let html = start_page(&manifest, &action, org);
    Ok(Start {
        state,
        action,
        html,
    })
}

/// The page with the button: a form posting the manifest (a hidden field,
/// JSON) to GitHub, and the manifest shown for review. No script.
pub fn start_page(manifest: &serde_json::Value, action: &str, org: Option<&OrgLogin>) -> String {
    let compact = manifest.to_string();
    let pretty = serde_json::to_string_pretty(manifest).unwrap_or_else(|_| compact.clone());
    let owner = match org {
        Some(org) => format!(
            "the organisation <strong>{}</strong>",
            escape_html(org.as_str())
        ),
        None => {
            "your GitHub account (for an organisation, open <code>/setup/github?org=LOGIN</code>)"
                .to_owned()
        }
    };
    let hook = manifest["hook_attributes"]["url"]
        .as_str()
        .unwrap_or_default();
    let body = format!(
        "<p>This creates portcall's GitHub App for {owner}, with the permissions and events portcall needs and its webhook at <code>{hook}</code>. GitHub asks you to confirm the name, then sends you back here; portcall writes the app's id, private key and webhook secret to files and shows the configuration that uses them.</p>\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"manifest\" value=\"{manifest}\">\n\
<button type=\"submit\">Create the GitHub App on GitHub</button>\n\
</form>\n\
<h2>The manifest</h2>\n<pre>{pretty}</pre>\n\
<p>The same manifest is <code>manifests/github-app.json</code>, for creating the app by hand.</p>",
        hook = escape_html(hook),
        action = escape_html(action),
        manifest = escape_html(&compact),
        pretty = escape_html(&pretty),
    );
    page("Create the GitHub App", &body)
}

/// A created app, its files written: what the success page shows.
#[derive(Debug)]
pub struct Created {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub install_url: String,
    pub files: CredentialFiles,
    /// The configuration to paste (no secret in it: only `file:` references).
    pub config_snippet: String,
}

/// The page after the app is created: where it is installed, the
/// configuration to paste, and the restart.
pub fn created_page(created: &Created) -> String {
    let name = if created.name.is_empty() {
        &created.slug
    } else {
        &created.name
    };
    let body = format!(
        "<p>GitHub created the app <strong>{name}</strong> (<code>{slug}</code>, id {id}). Its id, private key and webhook secret are in <code>{dir}</code> (mode 0600); they are shown nowhere else.</p>\n\
<h2>1. Configure portcall</h2>\n\
<p>Add this to portcall's configuration file (if it has a source named <code>github</code> already, give that one these <code>secrets</code> instead):</p>\n\
<pre>{snippet}</pre>\n\
<h2>2. Restart portcall</h2>\n\
<p>Restart portcall so it loads the app; <code>portcall check-config</code> checks the file first.</p>\n\
<h2>3. Install the app</h2>\n\
<p><a href=\"{install}\">Install the app</a> on the organisations or repositories of your components: <code>{install}</code></p>",
        name = escape_html(name),
        slug = escape_html(&created.slug),
        id = created.id,
        dir = escape_html(
            &created
                .files
                .private_key
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .display()
                .to_string()
        ),
        snippet = escape_html(&created.config_snippet),
        install = escape_html(&created.install_url),
    );
    page("GitHub App created", &body)
}

/// A page that explains why setup stopped.
pub fn error_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<p>{}</p>\n<p><a href=\"/setup/github\">Start again</a></p>",
            escape_html(message)
        ),
    )
}

/// Why the callback created no configuration.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the redirect from GitHub carries no code; start again at /setup/github")]
    MissingCode,
    /// The directory cannot take new credentials (checked before the code
    /// is spent).
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// GitHub created the app, but its credentials could not be written;
    /// GitHub shows the private key only once.
    #[error("GitHub created the app {slug} (id {id}), but portcall could not write its credentials: {source}")]
    Lost {
        id: u64,
        slug: String,
        source: WriteError,
    },
}

/// What the callback needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Where the code is exchanged (`setup.github_api_url`).
    pub api_url: &'a str,
    /// Where the credential files go (`setup.dir`).
    pub dir: &'a Path,
}

/// The callback's steps: the state must match the cookie, the directory
/// must take new files (so the one-time code is not spent for nothing),
/// then the code is exchanged and the credentials written.
pub async fn complete(
    target: Target<'_>,
    cookie: Option<&str>,
    state: Option<&str>,
    code: Option<&str>,
) -> Result<Created, CallbackError> {
    verify_state(cookie, state)?;
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(CallbackError::MissingCode)?;
    // File work runs on the blocking pool, off the HTTP worker threads that
    // also answer webhooks.
    let dir = target.dir.to_path_buf();
    blocking(move || prepare_dir(&dir)).await?;
    let app = exchange(target.api_url, code).await?;
    let dir = target.dir.to_path_buf();
    let (app, written) = blocking(move || {
        let written = write_credentials(&dir, &app);
        (app, written)
    })
    .await;
    let files = written.map_err(|source| CallbackError::Lost {
        id: app.id,
        slug: app.slug.clone(),
        source,
    })?;
    tracing::info!(app.id = app.id, app.slug = %app.slug, "GitHub App created from the manifest");
    Ok(Created {
        id: app.id,
        config_snippet: files.config_snippet(&app, target.api_url),
        install_url: app.install_url(),
        slug: app.slug,
        name: app.name,
        files,
    })
}

/// Runs file work on tokio's blocking pool; a panic there is re-raised.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
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
        // Writing again is refused, names the file, changes nothing and
        // leaves no temporary behind.
        let other: CreatedApp = serde_json::from_str(
            &FIXTURE.replace("e340154128314309424b7c8e90325147d99fdafa", "another-secret"),
        )
        .unwrap();
        match write_credentials(&dir, &other) {
            Err(WriteError::Exists(path)) => assert_eq!(path, files.app_id),
            other => panic!("{other:?}"),
        }
        fs::remove_file(&files.app_id).unwrap();
        match write_credentials(&dir, &other) {
            Err(WriteError::Exists(path)) => assert_eq!(path, files.private_key),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fs::read_to_string(&files.webhook_secret).unwrap(),
            "e340154128314309424b7c8e90325147d99fdafa"
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        let toml = files.config_snippet(&app, "https://api.github.com");
        assert!(toml.contains("app_id = 1\n"));
        assert!(toml.contains(&format!("file:{}", files.private_key.display())));
        assert!(toml.contains(&format!("file:{}", files.webhook_secret.display())));
        assert!(!toml.contains("api_url"));
    }

    #[test]
    fn setup_state_is_random_url_safe_and_checked_against_the_cookie() {
        let a = SetupState::generate().unwrap();
        let b = SetupState::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43, "256 bits, base64 without padding");
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(!format!("{a:?}").contains(a.as_str()));
        let s = a.as_str();
        assert_eq!(verify_state(Some(s), Some(s)), Ok(()));
        assert_eq!(verify_state(Some(s), None), Err(StateError::MissingState));
        assert_eq!(verify_state(None, Some(s)), Err(StateError::MissingCookie));
        assert_eq!(
            verify_state(Some(s), Some(b.as_str())),
            Err(StateError::Mismatch)
        );
        assert_eq!(verify_state(Some(s), Some("x")), Err(StateError::Mismatch));
        assert_eq!(
            verify_state(Some(""), Some("")),
            Err(StateError::MissingState)
        );
    }

    #[test]
    fn setup_state_cookie_is_httponly_lax_and_scoped_to_the_setup_paths() {
        let state = SetupState::generate().unwrap();
        let set = state.cookie(true);
        assert_eq!(
            set,
            format!(
                "portcall_setup_state={}; Path=/setup/github; Max-Age=3600; HttpOnly; SameSite=Lax; Secure",
                state.as_str()
            )
        );
        assert!(!state.cookie(false).contains("Secure"));
        assert!(clearing_cookie(false)
            .starts_with("portcall_setup_state=; Path=/setup/github; Max-Age=0"));
        let header = format!("a=1; portcall_setup_state={}; b=2", state.as_str());
        assert_eq!(state_from_cookies(&header), Some(state.as_str()));
        assert_eq!(state_from_cookies("a=1"), None);
        assert_eq!(state_from_cookies("portcall_setup_state="), None);
    }

    #[test]
    fn setup_org_logins_are_github_logins() {
        for good in ["octo-org", "a", "A1", "x".repeat(39).as_str()] {
            assert!(OrgLogin::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a/b",
            "a b",
            "ö",
            "x".repeat(40).as_str(),
            "a?x=1",
        ] {
            assert_eq!(OrgLogin::parse(bad), Err(InvalidOrgLogin), "{bad}");
        }
    }

    #[test]
    fn setup_new_app_urls_for_a_user_and_an_organisation() {
        let state = SetupState("S".into());
        assert_eq!(
            new_app_url("https://github.com/", None, &state),
            "https://github.com/settings/apps/new?state=S"
        );
        let org = OrgLogin::parse("octo-org").unwrap();
        assert_eq!(
            new_app_url("https://ghe.example.com", Some(&org), &state),
            "https://ghe.example.com/organizations/octo-org/settings/apps/new?state=S"
        );
    }

    #[test]
    fn setup_csp_allows_no_script_and_forms_only_to_github() {
        let csp = content_security_policy(Some("https://ghe.example.com:8443/x"));
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(
            csp.contains("; form-action https://ghe.example.com:8443;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("base-uri 'none'"));
        assert!(!csp.contains("script"));
        assert!(content_security_policy(None).contains("form-action 'none'"));
        // The hash is the page's stylesheet's.
        let page = error_page("t", "m");
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn setup_pages_escape_every_value() {
        let nasty = "\"><script>alert('x')</script>&";
        let html = error_page(nasty, nasty);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
        let mut manifest = manifest("https://p.example");
        manifest["description"] = nasty.into();
        let page = start_page(
            &manifest,
            "https://github.com/settings/apps/new?state=S&x=\"",
            None,
        );
        assert!(!page.contains("<script>"));
        assert!(
            page.contains("action=\"https://github.com/settings/apps/new?state=S&amp;x=&quot;\"")
        );
        assert!(!page.contains("<script"), "no script at all");
    }

    #[tokio::test]
    async fn setup_complete_refuses_a_bad_state_or_a_full_directory_before_calling_github() {
        // Nothing listens on port 9: a call would fail as Transport, not as below.
        let tmp = tempfile::tempdir().unwrap();
        let target = Target {
            api_url: "http://127.0.0.1:9",
            dir: tmp.path(),
        };
        let err = complete(target, Some("a"), Some("b"), Some("code"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallbackError::State(StateError::Mismatch)),
            "{err:?}"
        );
        let err = complete(target, Some("a"), Some("a"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, CallbackError::MissingCode), "{err:?}");
        fs::write(tmp.path().join("webhook-secret"), "old").unwrap();
        let err = complete(target, Some("a"), Some("a"), Some("code"))
            .await
            .unwrap_err();
        match err {
            CallbackError::Write(WriteError::Exists(path)) => {
                assert!(path.ends_with("webhook-secret"), "{}", path.display());
            }
            other => panic!("{other:?}"),
        }
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
