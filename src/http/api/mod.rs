//! `/api/v1`: JSON for operators and CI. Every route here requires a bearer
//! token (the [`auth::Admin`] extractor); handlers call one store function
//! and shape the answer.

pub mod auth;
mod deliveries;
mod integrations;
mod jobs;
mod releases;

use actix_web::web;

use super::ApiError;
use serde::Deserialize;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            // Malformed queries answer in the API's error shape, naming
            // what was wrong.
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::invalid(format!("invalid query string: {error}")).into()
            }))
            .configure(releases::config)
            .configure(jobs::config)
            .configure(deliveries::config)
            .configure(integrations::config)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found("no such API route"))
            })),
    );
}

/// A numeric id from the path; anything else names no resource.
pub fn id(segment: &str, what: &str) -> Result<i64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::not_found(format!("no {what} {segment:?}")))
}

/// Keyset pagination shared by the list routes: newest first, `limit` rows
/// (1–500, default 50) with ids below `before`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

impl Page {
    pub const DEFAULT: i64 = 50;
    pub const MAX: i64 = 500;

    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid(format!(
                "limit must be between 1 and {}",
                Self::MAX
            ))),
        }
    }

    /// The cursor of the next page: the last id, if the page was full.
    pub fn next_before(
        &self,
        ids: impl DoubleEndedIterator<Item = i64>,
        count: usize,
    ) -> Option<i64> {
        let limit = usize::try_from(self.limit.unwrap_or(Self::DEFAULT)).unwrap_or(0);
        if count == limit {
            ids.last()
        } else {
            None
        }
    }
}
