//! Missed-delivery recovery for the GitHub App's webhook.
//!
//! GitHub never retries a failed delivery, and a delivery sent while
//! portcall was down or unreachable is simply lost. GitHub does keep a log
//! of the app webhook's deliveries for three days and will send one again on
//! request. A recovery round reads that log (as the app, with its JWT),
//! picks every delivery GUID portcall holds no row for in any `github`-kind
//! source (GitHub's attempt failed, or it "succeeded" but never reached the
//! database, e.g. through a proxy), and asks GitHub to redeliver the most
//! recent attempt of each.
//!
//! "Once each" comes from the `github_recoveries` table: a GUID is claimed
//! with an insert before the request, so neither a restart nor a second
//! replica asks twice. Rounds run at start and then every
//! `github.recovery_interval_secs`, with at most `github.recovery_max_per_run`
//! requests each; what is left waits for the next round. A failed listing is
//! logged and counted and the next round tries again.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::RecoverySettings;
use crate::scm::github::deliveries::HookDelivery;
use crate::scm::github::GithubClient;
use crate::scm::ScmError;
use crate::store::recoveries::{self, RecoveryReason, RecoveryResult};
use crate::store::Db;
use crate::telemetry::Metrics;

/// How far back GitHub keeps the delivery log (and can redeliver).
const GITHUB_DELIVERY_WINDOW_SECS: i64 = 3 * 24 * 60 * 60;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// GUIDs GitHub accepted a redelivery request for.
    pub requested: Vec<String>,
    /// GUIDs whose request GitHub refused (recorded; not asked again).
    pub failed: Vec<String>,
    /// Missing GUIDs left for a later round by `recovery_max_per_run`.
    pub deferred: usize,
}

/// Runs recovery rounds; cheap to share behind an `Arc`.
pub struct Recovery {
    db: Db,
    github: Arc<GithubClient>,
    /// The names of the `github`-kind sources.
    sources: Vec<String>,
    settings: RecoverySettings,
    metrics: Metrics,
    clock: Clock,
}

impl Recovery {
    pub fn new(
        db: Db,
        github: Arc<GithubClient>,
        sources: Vec<String>,
        settings: RecoverySettings,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        Self {
            db,
            github,
            sources,
            settings,
            metrics,
            clock,
        }
    }

    /// Whether rounds run in the background (`github.recovery`).
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// A round at once, then one every interval, until `shutdown`. A round
    /// that fails is logged and counted; the next one tries again.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    // Already logged and counted by `run_once`.
                    let _ = self.run_once().await;
                }
            }
        }
    }

    /// One round: list, pick, claim, ask. Errors here are already logged.
    #[tracing::instrument(name = "recovery round", skip_all)]
    pub async fn run_once(&self) -> anyhow::Result<RoundReport> {
        let result = self.round().await;
        if let Err(error) = &result {
            tracing::warn!(
                error = format!("{error:#}"),
                "GitHub delivery recovery round failed"
            );
        }
        result
    }

    async fn round(&self) -> anyhow::Result<RoundReport> {
        let since = self.clock.now_unix() - GITHUB_DELIVERY_WINDOW_SECS;
        let listed = match self.github.hook_deliveries(since).await {
            Ok(listed) => listed,
            Err(error) => {
                self.count("list_failed");
                return Err(error).context("cannot list the GitHub App's webhook deliveries");
            }
        };
        let mut report = RoundReport::default();
        let mut budget = self.settings.max_per_run;
        for (delivery, reason) in self.missing(latest_attempts(listed)).await? {
            if budget == 0 {
                report.deferred += 1;
                continue;
            }
            let claimed = recoveries::claim(
                &self.db,
                &delivery.guid,
                i64::try_from(delivery.id).unwrap_or(i64::MAX),
                reason,
                crate::store::now_ms(),
            )
            .await
            .context("cannot record a redelivery request")?;
            if !claimed {
                continue;
            }
            budget -= 1;
            match self.github.redeliver(delivery.id).await {
                Ok(()) => {
                    recoveries::record(&self.db, &delivery.guid, RecoveryResult::Requested, None)
                        .await
                        .context("cannot record a redelivery request's outcome")?;
                    self.count(RecoveryResult::Requested.as_str());
                    tracing::info!(
                        delivery.id = delivery.guid,
                        hook_delivery.id = delivery.id,
                        event = delivery.event,
                        reason = reason.as_str(),
                        "asked GitHub to redeliver a missed delivery"
                    );
                    report.requested.push(delivery.guid);
                }
                Err(error) => {
                    let message = error.to_string();
                    recoveries::record(
                        &self.db,
                        &delivery.guid,
                        RecoveryResult::Failed,
                        Some(&message),
                    )
                    .await
                    .context("cannot record a redelivery request's outcome")?;
                    self.count(RecoveryResult::Failed.as_str());
                    tracing::warn!(
                        delivery.id = delivery.guid,
                        hook_delivery.id = delivery.id,
                        error = message,
                        transient = matches!(error, ScmError::Transient { .. }),
                        "GitHub refused to redeliver a missed delivery; not asking again"
                    );
                    report.failed.push(delivery.guid);
                }
            }
        }
        Ok(report)
    }

    /// The attempts whose GUID portcall has no row for, oldest first (the
    /// nearest to leaving GitHub's window), with why.
    async fn missing(
        &self,
        latest: Vec<HookDelivery>,
    ) -> anyhow::Result<Vec<(HookDelivery, RecoveryReason)>> {
        let mut missing = Vec::new();
        for delivery in latest {
            if recoveries::is_stored(&self.db, &self.sources, &delivery.guid)
                .await
                .context("cannot look up stored deliveries")?
            {
                continue;
            }
            let reason = if (200..300).contains(&delivery.status_code) {
                RecoveryReason::Missing
            } else {
                RecoveryReason::Failed
            };
            missing.push((delivery, reason));
        }
        Ok(missing)
    }

    fn count(&self, result: &str) {
        self.metrics
            .recovered_deliveries
            .with_label_values(&[result])
            .inc();
    }
}

/// The most recent attempt of each GUID (the original and its
/// redeliveries share one), oldest GUID first.
fn latest_attempts(listed: Vec<HookDelivery>) -> Vec<HookDelivery> {
    let mut latest: HashMap<String, HookDelivery> = HashMap::new();
    for delivery in listed {
        let key = (delivery.delivered_at_unix(), delivery.id);
        match latest.get(&delivery.guid) {
            Some(seen) if (seen.delivered_at_unix(), seen.id) >= key => {}
            _ => {
                latest.insert(delivery.guid.clone(), delivery);
            }
        }
    }
    let mut latest: Vec<HookDelivery> = latest.into_values().collect();
    latest.sort_by_key(|d| (d.delivered_at_unix(), d.id));
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: u64, guid: &str, at: &str) -> HookDelivery {
        HookDelivery {
            id,
            guid: guid.to_owned(),
            status: "OK".to_owned(),
            status_code: 200,
            redelivery: false,
            event: "push".to_owned(),
            delivered_at: at.to_owned(),
        }
    }

    #[test]
    fn recover_picks_the_most_recent_attempt_of_each_guid_oldest_first() {
        let latest = latest_attempts(vec![
            attempt(5, "b", "2026-12-01T10:00:00Z"),
            attempt(4, "a", "2026-12-01T09:00:00Z"),
            attempt(3, "b", "2026-12-01T08:00:00Z"),
            attempt(2, "a", "2026-12-01T07:00:00Z"),
        ]);
        let ids: Vec<u64> = latest.iter().map(|d| d.id).collect();
        assert_eq!(ids, [4, 5]);
    }
}
