//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// 200 while the process runs.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when the database answers within two seconds, else 503: a replica
/// that cannot commit deliveries should get none.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            unready()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            unready()
        }
    }
}

fn unready() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({
        "error": {"code": "unavailable", "message": "the database does not answer"}
    }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
