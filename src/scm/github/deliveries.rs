//! The app webhook's delivery log: `GET /app/hook/deliveries` and
//! `POST /app/hook/deliveries/{id}/attempts`, both as the app itself (the
//! app JWT, not an installation token). Missed-delivery recovery reads the
//! log and asks GitHub to send again what portcall never stored.

use http::header::LINK;
use http::Method;
use serde::Deserialize;

use super::{parse, uri, wire, GithubClient};
use crate::scm::ScmError;

/// Pages of 100 deliveries read at most in one listing (GitHub keeps three
/// days of them; this bounds a runaway cursor).
const MAX_DELIVERY_PAGES: usize = 100;

/// One entry of the app webhook's delivery log, as GitHub lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct HookDelivery {
    /// The attempt's id (what a redelivery request names).
    pub id: u64,
    /// The delivery's GUID: `X-GitHub-Delivery`, shared by its redeliveries.
    pub guid: String,
    /// GitHub's view of the attempt, e.g. `"OK"`.
    #[serde(default)]
    pub status: String,
    /// The HTTP status portcall answered with (0 when unreachable).
    #[serde(default)]
    pub status_code: u16,
    #[serde(default)]
    pub redelivery: bool,
    #[serde(default)]
    pub event: String,
    /// RFC 3339.
    pub delivered_at: String,
}

impl HookDelivery {
    /// `delivered_at` as Unix seconds; `None` when unreadable.
    pub fn delivered_at_unix(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.delivered_at)
            .ok()
            .map(|t| t.timestamp())
    }
}

impl GithubClient {
    /// The app webhook's deliveries delivered at or after `since_unix`,
    /// newest first, following `Link: rel="next"` cursors until a page is
    /// empty, a page reaches older entries, or there is no next page.
    pub async fn hook_deliveries(&self, since_unix: i64) -> Result<Vec<HookDelivery>, ScmError> {
        let mut target = uri("/app/hook/deliveries?per_page=100".to_owned())?;
        let mut found = Vec::new();
        for _ in 0..MAX_DELIVERY_PAGES {
            let answer = self
                .exchange(&Method::GET, &target, &self.jwt()?, None::<&()>)
                .await?;
            let page: Vec<HookDelivery> = parse(&answer, "app webhook deliveries")?;
            if page.is_empty() {
                return Ok(found);
            }
            let mut reached_old = false;
            for delivery in page {
                match delivery.delivered_at_unix() {
                    Some(at) if at < since_unix => reached_old = true,
                    _ => found.push(delivery),
                }
            }
            let next = answer
                .headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(wire::next_link);
            match next {
                Some(link) if !reached_old => target = self.same_origin(link)?,
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    /// Asks GitHub to send delivery attempt `hook_delivery_id` again.
    /// GitHub answers 202; a 422 (too old to redeliver) is permanent.
    pub async fn redeliver(&self, hook_delivery_id: u64) -> Result<(), ScmError> {
        let target = uri(format!("/app/hook/deliveries/{hook_delivery_id}/attempts"))?;
        self.exchange(&Method::POST, &target, &self.jwt()?, None::<&()>)
            .await?;
        Ok(())
    }
}
