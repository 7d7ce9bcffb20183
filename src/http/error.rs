//! The one place errors become HTTP answers: `{"error":{"code","message"}}`
//! with a stable code. 5xx messages are opaque; the cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::ingest::Rejection;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// The database cannot commit: the sender should retry.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the delivery could not be stored; retry later",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What the caller is told (opaque for 5xx).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A database failure outside the webhook path: 503, cause to the log.
impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(error = ?error, "database error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; retry later",
        )
    }
}

impl From<&Rejection> for ApiError {
    fn from(rejection: &Rejection) -> Self {
        let (status, code) = if rejection.is_authentication_failure() {
            (StatusCode::UNAUTHORIZED, "unauthorized")
        } else if matches!(rejection, Rejection::UnsupportedMediaType { .. }) {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_request")
        };
        Self::new(status, code, rejection.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "5"));
        }

        response.json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}
