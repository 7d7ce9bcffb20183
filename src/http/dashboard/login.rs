//! `GET /login`, `POST /login`, `POST /logout`: signing in with the admin
//! token or a service-account token with scope `admin`.
//!
//! The sign-in form has no session to take a CSRF token from, so it uses a
//! double-submit token: a random value in an HttpOnly, SameSite=Strict
//! cookie scoped to `/login` and in the form, which must match. A page on
//! another site can neither read the cookie nor make the browser send it.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{private_cookie, see_other, views, CsrfForm, Refusal, Signed};
use crate::http::AppState;
use crate::sessions::{self, SignInError};
use crate::store::now_ms;

/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "portcall_login";

/// The sign-in page that returns to `next` afterwards.
pub fn url(next: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    format!("/login?{query}")
}

/// Where to go after signing in: a path of this site only (`/…`, never
/// `//host` or `/\host`, which browsers read as another site).
fn local(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/",
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in page, with a fresh double-submit token.
pub async fn form(query: web::Query<LoginQuery>, state: web::Data<AppState>) -> HttpResponse {
    let next = local(query.next.as_deref()).to_owned();
    login_page(&state, StatusCode::OK, &next, None)
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> HttpResponse {
    let token = sessions::random_token();
    let mut response = super::html_with(status, views::login_page(&token, next, error));
    let mut cookie = private_cookie(state, LOGIN_COOKIE, token, "/login");
    cookie.set_max_age(CookieDuration::hours(1));
    response
        .add_cookie(&cookie)
        .expect("a cookie of hex digits is a valid header");
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in a log line.
        f.debug_struct("LoginForm")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Checks the token and opens a session.
pub async fn submit(
    request: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let cookie = request.cookie(LOGIN_COOKIE);
    let expected = cookie.as_ref().map(|c| c.value()).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Err(Refusal::page(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "the sign-in form's CSRF token is missing or does not match its cookie; \
             open the sign-in page again and submit it from there",
        ));
    }
    let next = local(form.next.as_deref());
    if form.token.trim().is_empty() {
        return Ok(login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            Some("enter the admin token or a service-account token with scope admin"),
        ));
    }
    let signed_in = sessions::sign_in(
        &state.db,
        state.admin_token.as_ref(),
        &form.token,
        now_ms(),
        state.dashboard.session_lifetime,
    )
    .await;
    let (token, session) = match signed_in {
        Ok(signed_in) => signed_in,
        Err(SignInError::Store(error)) => return Err(error.into()),
        Err(refused @ SignInError::NotAdmin) => {
            return Ok(login_page(
                &state,
                StatusCode::FORBIDDEN,
                next,
                Some(&refused.to_string()),
            ))
        }
        Err(refused @ SignInError::Refused(_)) => {
            tracing::info!(error = %refused, "dashboard sign-in refused");
            return Ok(login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                next,
                Some(&refused.to_string()),
            ));
        }
    };
    tracing::info!(caller = %session.caller.id, "dashboard sign-in");
    let mut response = see_other(next);
    let mut cookie = private_cookie(
        &state,
        sessions::COOKIE,
        secrecy::ExposeSecret::expose_secret(&token).to_owned(),
        "/",
    );
    cookie.set_max_age(CookieDuration::seconds(
        i64::try_from(state.dashboard.session_lifetime.as_secs()).unwrap_or(i64::MAX),
    ));
    response
        .add_cookie(&cookie)
        .expect("a cookie of hex digits is a valid header");
    // The double-submit token has served.
    let mut spent = private_cookie(&state, LOGIN_COOKIE, String::new(), "/login");
    spent.make_removal();
    response
        .add_cookie(&spent)
        .expect("an empty cookie is a valid header");
    Ok(response)
}

/// Ends the session and clears its cookie.
pub async fn sign_out(
    request: HttpRequest,
    signed: Signed,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    signed.check(&form)?;
    if let Some(cookie) = request.cookie(sessions::COOKIE) {
        sessions::sign_out(&state.db, cookie.value()).await?;
    }
    tracing::info!(caller = %signed.0.caller.id, "dashboard sign-out");
    let mut response = see_other("/login");
    let mut cleared = private_cookie(&state, sessions::COOKIE, String::new(), "/");
    cleared.make_removal();
    response
        .add_cookie(&cleared)
        .expect("an empty cookie is a valid header");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local(Some("/jobs?state=dead")), "/jobs?state=dead");
        assert_eq!(local(Some("/")), "/");
        for outside in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "jobs",
            "/a\nb",
        ] {
            assert_eq!(local(Some(outside)), "/", "{outside:?}");
        }
        assert_eq!(local(None), "/");
    }

    #[test]
    fn the_sign_in_url_carries_where_to_return() {
        assert_eq!(url("/"), "/login?next=%2F");
        assert_eq!(
            url("/jobs?state=dead"),
            "/login?next=%2Fjobs%3Fstate%3Ddead"
        );
    }
}
