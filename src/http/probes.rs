//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::store::{deliveries, jobs};

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

/// The Prometheus exposition. The gauges that count database rows
/// (`portcall_inbox_pending`, `portcall_jobs{state}`) are refreshed here,
/// at scrape time, with two indexed counts: exact whichever replica did the
/// work, and nothing to do between scrapes. A database that does not answer
/// within a second leaves the last values (readiness reports it).
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let refresh = async {
        if let Ok(pending) = deliveries::count_pending(&state.db).await {
            state.metrics.inbox_pending.set(pending);
        }
        match jobs::count_by_state(&state.db).await {
            Ok(counts) => {
                for (job_state, count) in counts {
                    state
                        .metrics
                        .jobs
                        .with_label_values(&[job_state.as_str()])
                        .set(count);
                }
            }
            Err(error) => tracing::warn!(error = %error, "cannot count jobs for /metrics"),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), refresh).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
