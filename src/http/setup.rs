//! `/setup/github`: the GitHub App manifest flow's two pages, HTML for a
//! browser. The flow itself (state, manifest, exchange, files, HTML) is
//! [`crate::setup`]; these handlers check who may use it, read the query
//! and the cookie, call one function and map its errors to a status and a
//! page. Every answer carries the same strict security headers.
//!
//! Who may: nobody when `setup.enabled = false` (404); anyone while no
//! `[github]` App is configured (a fresh install); once one is, only a
//! caller with the admin token (the `/api/v1` check), and nobody when no
//! admin token is configured (403).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::api::auth;
use super::{ApiError, AppState};
use crate::domain::Scope;
use crate::setup::{self, CallbackError, ExchangeError, OrgLogin, WriteError};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/setup/github", web::get().to(start))
        .route("/setup/github/callback", web::get().to(callback));
}

/// `GET /setup/github[?org=LOGIN]`.
#[derive(Debug, Deserialize)]
struct StartQuery {
    org: Option<String>,
}

/// `GET /setup/github/callback?code=…&state=…`, as GitHub redirects.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// The page with the button that posts the manifest to GitHub; sets the
/// state cookie.
async fn start(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Page> {
    allow(&request, &state).await?;
    let query: StartQuery = query(&request)?;
    let org = query
        .org
        .as_deref()
        .map(OrgLogin::parse)
        .transpose()
        .map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Not an organisation", e))?;
    let public_url = state.public_url.as_deref().ok_or_else(|| {
        Page::error(
            StatusCode::CONFLICT,
            "Set server.public_url first",
            "set server.public_url first: GitHub needs portcall's public address for the app's webhook URL and for the redirect back here; then restart portcall and open /setup/github again",
        )
    })?;
    let github_url = &state.setup.github_url;
    let started = setup::start(github_url, public_url, org.as_ref()).map_err(|error| {
        tracing::error!(error = %error, "no randomness for the setup state");
        Page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Setup failed",
            "portcall could not start the setup; see its log",
        )
    })?;
    let mut response = Page {
        status: StatusCode::OK,
        html: started.html,
        form_target: Some(github_url.clone()),
    }
    .response();
    insert_cookie(&mut response, &started.state.cookie(secure(&state)));
    Ok(response)
}

/// GitHub's redirect back: checks the state, exchanges the code, writes
/// the credentials and shows the next steps.
async fn callback(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Page> {
    allow(&request, &state).await?;
    let query: CallbackQuery = query(&request)?;
    let cookie = request
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .find_map(setup::state_from_cookies);
    let target = setup::Target {
        api_url: &state.setup.github_api_url,
        dir: &state.setup.dir,
    };
    let created = setup::complete(
        target,
        cookie,
        query.state.as_deref(),
        query.code.as_deref(),
    )
    .await
    .map_err(callback_error)?;
    let mut response = Page {
        status: StatusCode::OK,
        html: setup::created_page(&created),
        form_target: None,
    }
    .response();
    insert_cookie(&mut response, &setup::clearing_cookie(secure(&state)));
    Ok(response)
}

/// Who may use the setup pages (see the module's documentation).
async fn allow(request: &HttpRequest, state: &AppState) -> Result<(), Page> {
    if !state.setup.enabled {
        return Err(Page::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "GitHub App setup is turned off (setup.enabled = false)",
        ));
    }
    if !state.github_configured {
        return Ok(());
    }
    if state.admin_token.is_none() {
        return Err(Page::error(
            StatusCode::FORBIDDEN,
            "Setup is closed",
            "setup is closed because a GitHub App is configured ([github]) and no admin.token is set; set admin.token to create another app here, or create it by hand (manifests/github-app.json)",
        ));
    }
    auth::require(request, state, Scope::Admin)
        .await
        .map(drop)
        .map_err(Page::from)
}

/// The query string, or a 400 page naming what is wrong with it.
fn query<T: serde::de::DeserializeOwned>(request: &HttpRequest) -> Result<T, Page> {
    serde_urlencoded::from_str(request.query_string()).map_err(|e| {
        Page::error(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("the query string cannot be read: {e}"),
        )
    })
}

/// The callback's errors as pages: what the person can do about it, and
/// the cause in the log for what they cannot.
fn callback_error(error: CallbackError) -> Page {
    let bad_request =
        |title: &str, message: String| Page::error(StatusCode::BAD_REQUEST, title, message);
    match error {
        CallbackError::State(error) => bad_request("Setup cannot continue", error.to_string()),
        CallbackError::MissingCode => bad_request(
            "Setup cannot continue",
            CallbackError::MissingCode.to_string(),
        ),
        CallbackError::Exchange(ExchangeError::Rejected(_) | ExchangeError::MalformedCode) => {
            bad_request(
                "The code from GitHub was refused",
                "the code from GitHub has expired or has been used (it works once, for an hour); start again at /setup/github".into(),
            )
        }
        CallbackError::Exchange(error) => {
            tracing::warn!(error = %error, "GitHub App setup: the code exchange failed");
            Page::error(
                StatusCode::BAD_GATEWAY,
                "GitHub did not answer",
                "portcall could not get the new app's credentials from GitHub (see portcall's log); reload this page to try again within the hour, or start again at /setup/github",
            )
        }
        CallbackError::Write(WriteError::Exists(path)) => Page::error(
            StatusCode::CONFLICT,
            "Credentials exist already",
            WriteError::Exists(path).to_string(),
        ),
        CallbackError::Write(error @ WriteError::Io { .. }) => {
            tracing::error!(error = %error, "GitHub App setup: the credentials directory is not writable");
            Page::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot write the credentials",
                "portcall cannot write to setup.dir (see portcall's log); fix that and start again at /setup/github",
            )
        }
        CallbackError::Lost { id, slug, source } => {
            tracing::error!(app.id = id, app.slug = %slug, error = %source, "GitHub App setup: the app was created but its credentials could not be written");
            Page::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The app's credentials were not saved",
                format!("GitHub created the app {slug} (id {id}), but portcall could not write its credentials (see portcall's log). In the app's settings on GitHub, generate a new private key and set a new webhook secret, or delete the app and start again at /setup/github"),
            )
        }
    }
}

/// `server.public_url` is https: the cookie is only sent over TLS.
fn secure(state: &AppState) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

fn insert_cookie(response: &mut HttpResponse, cookie: &str) {
    // The cookie is built from URL-safe base64 and fixed attributes.
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// An HTML answer of the setup pages, with their security headers; also
/// the pages' error type.
#[derive(Debug, thiserror::Error)]
#[error("{status}")]
pub struct Page {
    status: StatusCode,
    html: String,
    /// Where a form on the page may post (the CSP's `form-action`).
    form_target: Option<String>,
}

impl Page {
    fn error(status: StatusCode, title: &str, message: impl ToString) -> Self {
        Self {
            status,
            html: setup::error_page(title, &message.to_string()),
            form_target: None,
        }
    }

    fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                setup::content_security_policy(self.form_target.as_deref()),
            ))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(self.html.clone())
    }
}

/// The `/api/v1` check's refusal (401, 403, 503), as a page.
impl From<ApiError> for Page {
    fn from(error: ApiError) -> Self {
        let title = match error.status_code() {
            StatusCode::UNAUTHORIZED => "Admin token required",
            StatusCode::FORBIDDEN => "Not allowed",
            _ => "Unavailable",
        };
        let message = if error.status_code() == StatusCode::UNAUTHORIZED {
            format!("{}: a GitHub App is configured, so setup needs Authorization: Bearer <admin.token>", error.message())
        } else {
            error.message().to_owned()
        };
        Self::error(error.status_code(), title, message)
    }
}

impl ResponseError for Page {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}
