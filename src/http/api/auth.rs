//! Authorization for `/api/v1`: a middleware that finds the route's scope in
//! [`ROUTES`](super::ROUTES), authenticates the bearer token and checks the
//! scope before any handler runs. Handlers that need to know who called take
//! the [`Authorized`] extractor.
//!
//! It fails closed: a request that matches no declared route is refused, so
//! a route registered without a scope cannot be reached.

use std::future::{ready, Ready};
use std::sync::OnceLock;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest, ResponseError as _};

use super::ApiRoute;
use crate::accounts::{self, AuthError, Caller};
use crate::domain::Scope;
use crate::http::{ApiError, AppState};
use crate::store::now_ms;

/// The caller of a route that passed [`authorize`].
#[derive(Debug, Clone)]
pub struct Authorized(pub Caller);

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Set by `authorize` for every route that requires a scope.
        let caller = request.extensions().get::<Caller>().cloned();
        ready(
            caller
                .map(Authorized)
                .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>")),
        )
    }
}

/// The route a request is for, by method and path.
fn route_of(request: &ServiceRequest) -> Option<&'static ApiRoute> {
    static PATTERNS: OnceLock<Vec<(ResourceDef, &'static ApiRoute)>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        super::ROUTES
            .iter()
            .map(|route| (ResourceDef::new(route.path), route))
            .collect()
    });
    patterns
        .iter()
        .find(|(pattern, route)| {
            route.method == *request.method() && pattern.is_match(request.path())
        })
        .map(|(_, route)| *route)
}

/// Authenticates and authorizes every `/api/v1` request.
pub async fn authorize(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match check(&request).await {
        Ok(()) => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(error) => {
            let response = error.error_response();
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

async fn check(request: &ServiceRequest) -> Result<(), ApiError> {
    let Some(route) = route_of(request) else {
        // Unknown paths get the API's 404; a known path with another method
        // is refused rather than reaching an undeclared handler.
        return Err(ApiError::not_found("no such API route"));
    };
    let Some(scope) = route.scope else {
        return Ok(());
    };
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("the application state is always registered");
    let caller = require(request.request(), state, scope).await?;
    request.extensions_mut().insert(caller);
    Ok(())
}

/// Authenticates a request's bearer token (the admin token or a service
/// account's) and checks that it holds `scope`: 401 without a valid token,
/// 403 without the scope. The one check behind `/api/v1`, also used by
/// the setup pages.
pub async fn require(
    request: &HttpRequest,
    state: &AppState,
    scope: Scope,
) -> Result<Caller, ApiError> {
    let presented = bearer(request)?;
    let caller = accounts::authenticate(&state.db, state.admin_token.as_ref(), presented, now_ms())
        .await
        .map_err(|error| match error {
            AuthError::Store(error) => ApiError::from(error),
            refused => ApiError::unauthorized(refused.to_string()),
        })?;
    if !caller.scopes.allows(scope) {
        return Err(ApiError::forbidden(format!(
            "this token lacks the scope {scope}"
        )));
    }
    Ok(caller)
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
