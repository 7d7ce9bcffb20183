//! Bearer-token authentication for `/api/v1`, as an extractor: a handler
//! that takes [`Admin`] only runs for a caller holding the admin token.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::http::{ApiError, AppState};

/// A caller authenticated with `admin.token`.
#[derive(Debug)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = request
            .app_data::<web::Data<AppState>>()
            .and_then(|state| state.admin_token.as_ref());
        ready(authenticate(request, token).map(|()| Admin))
    }
}

fn authenticate(request: &HttpRequest, admin: Option<&SecretString>) -> Result<(), ApiError> {
    let presented = bearer(request)?;
    // No admin token configured: no presented token can match.
    let matches = admin.is_some_and(|admin| {
        bool::from(admin.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the bearer token is not valid"))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(request: &HttpRequest) -> Result<&str, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))
}
