//! The web dashboard at `/`: server-rendered HTML for operators. Handlers
//! check the session (the [`Signed`] extractor), read the query or form,
//! call the store and hand plain data to [`views`], which renders it with
//! every value escaped. No handler here writes HTML by hand.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and
//! styles only from `/ui/`, forms only to portcall itself, no framing);
//! every state-changing form carries the session's CSRF token.

mod deliveries;
mod integrations;
mod jobs;
mod login;
mod releases;
mod views;

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{HttpServiceFactory, Payload};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{guard, web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use maud::Markup;
use serde::Deserialize;

use super::AppState;
use crate::sessions::{self, Session};
use crate::store::{now_ms, StoreError};

/// What every dashboard page may load and where its forms may go.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

pub fn config(cfg: &mut web::ServiceConfig) {
    let get = web::get;
    let post = web::post;
    cfg.service(page(web::resource("/ui/style.css").route(get().to(style))))
        .service(page(web::resource("/ui/app.js").route(get().to(script))))
        .service(page(
            web::resource("/login")
                .route(get().to(login::form))
                .route(post().to(login::submit)),
        ))
        .service(page(
            web::resource("/logout").route(post().to(login::sign_out)),
        ))
        .service(page(web::resource("/").route(get().to(deliveries::list))))
        .service(page(
            web::resource("/deliveries/{id}").route(get().to(deliveries::detail)),
        ))
        .service(page(
            web::resource("/deliveries/{id}/replay").route(post().to(deliveries::replay)),
        ))
        .service(page(
            web::resource("/releases").route(get().to(releases::list)),
        ))
        .service(page(web::resource("/jobs").route(get().to(jobs::list))))
        .service(page(
            web::resource("/jobs/{id}/retry").route(post().to(jobs::retry)),
        ))
        .service(page(
            web::resource("/integrations").route(get().to(integrations::list)),
        ))
        .service(page(
            web::resource("/integrations/{name}/test").route(post().to(integrations::test)),
        ));
}

/// A dashboard resource: served only while `dashboard.enabled`, the
/// security headers on every answer, query and form errors as pages.
fn page(resource: actix_web::Resource) -> impl HttpServiceFactory {
    resource
        .guard(guard::fn_guard(|context| {
            context
                .app_data::<web::Data<AppState>>()
                .is_some_and(|state| state.dashboard.enabled)
        }))
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            Refusal::bad_request(format!("the query string is not valid: {error}")).into()
        }))
        .app_data(
            web::FormConfig::default()
                .limit(64 * 1024)
                .error_handler(|error, _| {
                    Refusal::bad_request(format!("the form is not valid: {error}")).into()
                }),
        )
        .wrap(security_headers())
}

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::CACHE_CONTROL, "no-store"))
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// A rendered page, 200.
fn html(markup: Markup) -> HttpResponse {
    html_with(StatusCode::OK, markup)
}

fn html_with(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(markup.into_string())
}

/// 303 to a path of the dashboard (after a form, and to the sign-in page).
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Whether cookies must be `Secure`: portcall is served over https.
fn secure(state: &AppState) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

/// A cookie only the server reads (HttpOnly), sent only by portcall's own
/// pages (SameSite=Strict).
fn private_cookie<'c>(state: &AppState, name: &'c str, value: String, path: &'c str) -> Cookie<'c> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .finish()
}

/// The signed-in caller of a dashboard route. Without a live session a page
/// (GET) redirects to the sign-in page and comes back afterwards; a form
/// (POST) is refused with 401.
pub struct Signed(pub Session);

impl FromRequest for Signed {
    type Error = Refusal;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Refusal>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let state = request
                .app_data::<web::Data<AppState>>()
                .expect("the application state is always registered");
            let session = match request.cookie(sessions::COOKIE) {
                Some(cookie) => {
                    sessions::resume(
                        &state.db,
                        state.admin_token.as_ref(),
                        cookie.value(),
                        now_ms(),
                    )
                    .await?
                }
                None => None,
            };
            match session {
                Some(session) => Ok(Signed(session)),
                None if request.method() == Method::GET || request.method() == Method::HEAD => {
                    Err(Refusal::SignIn {
                        next: request
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned(),
                    })
                }
                None => Err(Refusal::page(
                    StatusCode::UNAUTHORIZED,
                    "Not signed in",
                    "this form needs a signed-in session; sign in and try again",
                )),
            }
        })
    }
}

impl Signed {
    /// Refuses a form whose CSRF token is missing or not this session's.
    fn check(&self, form: &CsrfForm) -> Result<(), Refusal> {
        if self.0.csrf_matches(&form.csrf) {
            Ok(())
        } else {
            Err(Refusal::page(
                StatusCode::FORBIDDEN,
                "Form refused",
                "the form's CSRF token is missing or does not belong to this session; \
                 reload the page and submit it again",
            ))
        }
    }
}

/// A form that only carries the CSRF token (Replay, Retry, Test, sign-out).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Why a dashboard request got no page of its own.
#[derive(Debug)]
pub enum Refusal {
    /// No session: to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// An error page.
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
}

impl Refusal {
    fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Refusal::Page {
            status,
            title,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Refusal::page(StatusCode::BAD_REQUEST, "Bad request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Refusal::page(StatusCode::NOT_FOUND, "Not found", message)
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "dashboard: database error");
        Refusal::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "the database did not answer; try again in a moment",
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SignIn { .. } => f.write_str("not signed in"),
            Refusal::Page { message, .. } => f.write_str(message),
        }
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::SignIn { .. } => StatusCode::SEE_OTHER,
            Refusal::Page { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = match self {
            Refusal::SignIn { next } => see_other(&login::url(next)),
            Refusal::Page {
                status,
                title,
                message,
            } => html_with(*status, views::error_page(title, message)),
        };
        // Error answers skip the resource's middleware when raised by an
        // extractor, so they get the headers here too.
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// An optional numeric query parameter, refused naming it.
fn number(name: &str, value: Option<&str>) -> Result<Option<i64>, Refusal> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Refusal::bad_request(format!("{name} must be a number; got {v:?}"))),
    }
}

/// An optional text query parameter; an empty field (a filter left at
/// "any") is no filter.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// An optional query parameter that must be one of a few words, refused
/// naming it and the words it may be.
fn choice<T>(
    name: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, Refusal> {
    text(value)
        .map(|v| {
            parse(v).ok_or_else(|| {
                Refusal::bad_request(format!("{name} must be one of {allowed}; got {v:?}"))
            })
        })
        .transpose()
}

/// The number of rows a page shows: `limit` (1–200), default 50.
fn page_size(limit: Option<&str>) -> Result<i64, Refusal> {
    match number("limit", limit)? {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(Refusal::bad_request("limit must be between 1 and 200")),
    }
}

/// A numeric id from the path; anything else names nothing.
fn path_id(segment: &str, what: &str) -> Result<i64, Refusal> {
    segment
        .parse()
        .map_err(|_| Refusal::not_found(format!("there is no {what} {segment:?}")))
}
