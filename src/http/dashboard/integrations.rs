//! `GET /integrations`, `POST /integrations/{name}/test`.

use actix_web::{web, HttpResponse};

use super::views::{self, Chrome, Tab, TestResult};
use super::{html, CsrfForm, Refusal, Signed};
use crate::http::AppState;

pub async fn list(Signed(session): Signed, state: web::Data<AppState>) -> HttpResponse {
    let chrome = Chrome {
        caller: &session.caller.id,
        csrf: session.csrf(),
        tab: Tab::Integrations,
    };
    html(views::integrations_page(
        chrome,
        &state.integrations.list(),
        None,
    ))
}

/// Runs a full check of one integration now and shows its three steps.
pub async fn test(
    signed: Signed,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    signed.check(&form)?;
    let report = state.integrations.test(&name).await.ok_or_else(|| {
        Refusal::not_found(format!("there is no integration {:?}", name.as_str()))
    })?;
    let result = TestResult {
        name: &report.integration.name,
        health: report.probe.health.as_str(),
        steps: [
            (
                "test-connectivity",
                "Connectivity",
                &report.probe.connectivity,
            ),
            (
                "test-authentication",
                "Authentication",
                &report.probe.authentication,
            ),
            (
                "test-functionality",
                "Functionality",
                &report.probe.functionality,
            ),
        ],
    };
    let chrome = Chrome {
        caller: &signed.0.caller.id,
        csrf: signed.0.csrf(),
        tab: Tab::Integrations,
    };
    Ok(html(views::integrations_page(
        chrome,
        &state.integrations.list(),
        Some(&result),
    )))
}
