//! `ApiJson<T>`: a JSON object request body, refused with the API's error
//! shape naming the field and its path (`components[0].digest`) and what
//! was expected, never a bare 400. Size and syntax are checked by the
//! scope's `JsonConfig` (see `super::config`).

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::http::ApiError;

/// A JSON object request body read as `T`. A body that is JSON but not a
/// `T` is refused with the path of the field it got wrong (`state: unknown
/// variant …`, `components[0].digest: …`), which actix's own `Json` cannot
/// say; a body that is not JSON is refused by the scope's `JsonConfig`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(request, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            Ok(ApiJson(typed(value)?))
        })
    }
}

/// `value` as a `T`, or the field it got wrong. Only an object will do:
/// serde would also fill a struct from an array, by position.
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let what = error.into_inner();
        if path == "." {
            ApiError::invalid(format!("invalid body: {what}"))
        } else {
            ApiError::invalid(format!("{path}: {what}"))
        }
    })
}

/// A query string read as `T`, refused naming the parameter at fault
/// (`limit: invalid digit found in string`), which actix's own `Query`
/// cannot say.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(request.query_string().as_bytes());
        let parsed = serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if path == "." {
                    ApiError::invalid(format!("invalid query string: {inner}"))
                } else {
                    ApiError::invalid(format!("invalid query string: {path}: {inner}"))
                }
            });
        ready(parsed)
    }
}
