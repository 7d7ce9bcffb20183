//! `GET /releases`: releases per component, with their deployments.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::deliveries::pager;
use super::views::{self, Chrome, ReleaseRow, Tab};
use super::{html, number, page_size, text, Refusal, Signed};
use crate::domain::{Provider, RepoSlug};
use crate::http::AppState;
use crate::store::{deployments, releases};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    component: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    Signed(session): Signed,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let component = text(&query.component);
    let before = number("before", query.before.as_deref())?;
    let limit = page_size(query.limit.as_deref())?;
    let rows = releases::list(&state.db, component, before, limit).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let reports = deployments::of_releases(&state.db, &ids).await?;
    let shown: Vec<ReleaseRow<'_>> = rows
        .iter()
        .map(|release| ReleaseRow {
            release,
            commit_url: release
                .commit_sha
                .as_deref()
                .and_then(|sha| commit_url(&state, &release.repository, sha)),
            deployments: reports
                .get(&release.id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        })
        .collect();
    let components: Vec<&str> = state
        .outbox
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let keep = [("component", component), ("limit", text(&query.limit))];
    let pages = pager("/releases", &keep, &ids, limit, before.is_some());
    let chrome = Chrome {
        caller: &session.caller.id,
        csrf: session.csrf(),
        tab: Tab::Releases,
    };
    Ok(html(views::releases_page(
        chrome,
        &components,
        component,
        &shown,
        &pages,
    )))
}

/// The commit's page on its provider: GitHub (or GitHub Enterprise, the
/// web address setup uses) or the configured GitLab.
fn commit_url(state: &AppState, repository: &str, sha: &str) -> Option<String> {
    let slug = RepoSlug::parse(repository).ok()?;
    if !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match slug.provider() {
        Provider::Github => Some(format!(
            "{}/{}/commit/{sha}",
            state.setup.github_url.trim_end_matches('/'),
            slug.path()
        )),
        Provider::Gitlab => Some(format!(
            "{}/{}/-/commit/{sha}",
            state
                .gitlab_url
                .as_deref()
                .unwrap_or("https://gitlab.com")
                .trim_end_matches('/'),
            slug.path()
        )),
    }
}
