//! `POST /api/v1/service-accounts` (the token is shown once),
//! `GET /api/v1/service-accounts`, `DELETE /api/v1/service-accounts/{id}`.

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Authorized;
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::accounts::{self, NewAccount};
use crate::domain::{Scope, Scopes};
use crate::http::{ApiError, AppState};
use crate::store::now_ms;
use crate::store::service_accounts::{self, ServiceAccount};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/service-accounts", web::post().to(create))
        .route("/service-accounts", web::get().to(list))
        .route("/service-accounts/{id}", web::delete().to(revoke));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateRequest {
    name: String,
    description: Option<String>,
    scopes: Vec<String>,
    expires_in: Option<String>,
}

impl CreateRequest {
    fn validate(self) -> Result<NewAccount, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::invalid("name: expected 1 to 100 characters"));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(ApiError::invalid("description: at most 1000 characters"));
        }
        if self.scopes.is_empty() {
            return Err(ApiError::invalid("scopes: at least one scope is required"));
        }
        let scopes = self
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
        let expires_in = self
            .expires_in
            .as_deref()
            .map(|s| {
                accounts::parse_lifetime(s).ok_or_else(|| {
                    ApiError::invalid(
                        "expiresIn: expected a number and d, h, m or s (e.g. 365d), at most ten years",
                    )
                })
            })
            .transpose()?;
        Ok(NewAccount {
            name: name.to_owned(),
            description: self.description,
            scopes: Scopes::new(scopes),
            expires_in,
        })
    }
}

fn describe(account: &ServiceAccount) -> Value {
    let scopes: Vec<&str> = account.scopes.split_whitespace().collect();
    json!({
        "id": account.id,
        "name": account.name,
        "description": account.description,
        "scopes": scopes,
        "created_at": account.created_at,
        "expires_at": account.expires_at,
        "revoked_at": account.revoked_at,
    })
}

/// 201 with the token, shown this once.
///
/// Requires the scope `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/service-accounts",
    operation_id = "create_service_account",
    tag = "service-accounts",
    request_body = CreateRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = r#"`{"id","name","token","scopes","expires_at",…}`: the token is shown this once"#, body = Object),
        (status = 400, description = "A malformed query or body, naming the field", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn create(
    _: Authorized,
    ApiJson(body): ApiJson<CreateRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let new = body.validate()?;
    let created = accounts::create(&state.db, &new, now_ms()).await?;
    let mut answer = describe(&created.account);
    answer["token"] = json!(created.token.expose_secret());
    tracing::info!(account.id = %created.account.id, scopes = %created.account.scopes, "service account created");
    Ok(HttpResponse::Created().json(answer))
}

/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/service-accounts",
    operation_id = "list_service_accounts",
    tag = "service-accounts",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{"service_accounts":[…]}`, without tokens"#, body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn list(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let accounts = service_accounts::list(&state.db).await?;
    let accounts: Vec<Value> = accounts.iter().map(describe).collect();
    Ok(HttpResponse::Ok().json(json!({ "service_accounts": accounts })))
}

/// Revokes at once: the next request with the token is 401.
///
/// Requires the scope `admin`.
#[utoipa::path(
    delete,
    path = "/api/v1/service-accounts/{id}",
    operation_id = "revoke_service_account",
    tag = "service-accounts",
    params(("id" = String, Path, description = "The service account's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such service account", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    ),
)]
async fn revoke(
    caller: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if service_accounts::revoke(&state.db, &id, now_ms()).await? {
        tracing::info!(account.id = %id, by = %caller.0.id, "service account revoked");
        return Ok(HttpResponse::NoContent().finish());
    }
    if service_accounts::exists(&state.db, &id).await? {
        Err(ApiError::conflict(format!(
            "service account {id} is already revoked"
        )))
    } else {
        Err(ApiError::not_found(format!("no service account {id}")))
    }
}
