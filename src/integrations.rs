//! Everything portcall is connected to, and how each connection is doing:
//! what `/api/v1/integrations` shows.
//!
//! Three families, fixed at start from the configuration:
//!
//! | name | kind | health from |
//! |---|---|---|
//! | the source's name (`github`) | `source:{github,gitlab,distribution,standard}` | the inbox and the verification counters |
//! | `provider:github`, `provider:gitlab` | `provider:github`, `provider:gitlab` | a live check: `GET /app` with the app JWT, `GET /user` |
//! | `registry:{source}` (sources with `api_url`) | `registry` | a live check: `GET /v2/` and its authentication |
//!
//! Source names are `[a-z0-9_-]`, so the prefixed names never collide.
//!
//! A webhook source is `healthy` when a verified delivery arrived in the
//! last 24 hours, `unknown` otherwise, and `degraded` when more requests
//! were refused for their signature or token than verified since this
//! process started. The [`Integrations::run_monitor`] task recomputes every
//! integration's health each `integrations.health_interval_secs` (the
//! first time one interval after start); a test
//! (`POST /api/v1/integrations/{name}/test`) runs one integration's full
//! check at once and records it too. Nothing here holds or shows a
//! credential: the checks run inside the adapters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::ingest::SourceKind;
use crate::probe::{Depth, Health, HealthCheck, Probe, Step};
use crate::registry::RegistryReader;
use crate::scm::Providers;
use crate::store::{deliveries, now_ms, Db};
use crate::telemetry::{Metrics, SourceTally};

/// How recent a source's last verified delivery must be for it to count
/// as healthy.
const SOURCE_FRESHNESS: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest one live check may take before it counts as unreachable
/// (the clients' own timeouts are longer, for real work).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What kind of integration an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A webhook endpoint, `POST /webhooks/{name}`.
    Source(SourceKind),
    /// The GitHub App portcall posts back with.
    GithubProvider,
    /// The GitLab token portcall posts back with.
    GitlabProvider,
    /// A registry's read API (a source's `api_url`).
    Registry,
}

impl Kind {
    /// As the API shows it, and as `/api/v1/integration-types` lists kinds.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source(SourceKind::Github) => "source:github",
            Kind::Source(SourceKind::Gitlab) => "source:gitlab",
            Kind::Source(SourceKind::Distribution) => "source:distribution",
            Kind::Source(SourceKind::Standard) => "source:standard",
            Kind::Source(SourceKind::Acr) => "source:acr",
            Kind::Source(SourceKind::Ecr) => "source:ecr",
            Kind::Source(SourceKind::Gar) => "source:gar",
            Kind::Source(SourceKind::Harbor) => "source:harbor",
            Kind::Source(SourceKind::Quay) => "source:quay",
            Kind::Source(SourceKind::Dockerhub) => "source:dockerhub",
            Kind::Source(SourceKind::Jfrog) => "source:jfrog",
            Kind::Source(SourceKind::Nexus) => "source:nexus",
            Kind::GithubProvider => "provider:github",
            Kind::GitlabProvider => "provider:gitlab",
            Kind::Registry => "registry",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An integration and its last known health, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Integration {
    pub name: String,
    pub kind: Kind,
    pub health: Health,
    /// When it was last checked (Unix ms); `None` before the first check.
    pub checked_at: Option<i64>,
    pub message: String,
}

/// The answer to a test: the health it concluded and each step.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    #[serde(flatten)]
    pub integration: Integration,
    #[serde(flatten)]
    pub probe: Probe,
}

enum Target {
    /// A webhook source: nothing to call, the inbox tells.
    Source,
    Remote(Arc<dyn HealthCheck>),
}

struct Entry {
    name: String,
    kind: Kind,
    target: Target,
    last: Mutex<Finding>,
}

/// The last check's conclusion.
struct Finding {
    health: Health,
    /// Unix ms; `None` before the first check.
    checked_at: Option<i64>,
    message: String,
}

impl Entry {
    fn current(&self) -> Integration {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        Integration {
            name: self.name.clone(),
            kind: self.kind,
            health: last.health,
            checked_at: last.checked_at,
            message: last.message.clone(),
        }
    }

    /// Records a finding, logging a change of health once.
    fn record(&self, health: Health, message: &str, at: i64) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.health != health {
            if matches!(health, Health::Unhealthy | Health::Degraded) {
                tracing::warn!(integration.name = %self.name, integration.health = health.as_str(), %message, "integration health changed");
            } else {
                tracing::info!(integration.name = %self.name, integration.health = health.as_str(), %message, "integration health changed");
            }
        }
        *last = Finding {
            health,
            checked_at: Some(at),
            message: message.to_owned(),
        };
    }
}

/// Every configured integration and its last known health. Shared by the
/// API and the monitor task.
pub struct Integrations {
    entries: Vec<Entry>,
    db: Db,
    metrics: Metrics,
}

impl Integrations {
    /// The integrations of a configuration: its sources (in order), the
    /// configured providers, and a registry reader per source with `api_url`.
    pub fn new(
        sources: &[(String, SourceKind)],
        providers: &Providers,
        registries: &HashMap<String, Arc<RegistryReader>>,
        db: Db,
        metrics: Metrics,
    ) -> Self {
        let entry = |name: String, kind, target| Entry {
            name,
            kind,
            target,
            last: Mutex::new(Finding {
                health: Health::Unknown,
                checked_at: None,
                message: "not checked yet: the monitor checks one interval after start".to_owned(),
            }),
        };
        let mut entries: Vec<Entry> = sources
            .iter()
            .map(|(name, kind)| entry(name.clone(), Kind::Source(*kind), Target::Source))
            .collect();
        if let Some(check) = &providers.github_check {
            entries.push(entry(
                "provider:github".into(),
                Kind::GithubProvider,
                Target::Remote(check.clone()),
            ));
        }
        if let Some(check) = &providers.gitlab_check {
            entries.push(entry(
                "provider:gitlab".into(),
                Kind::GitlabProvider,
                Target::Remote(check.clone()),
            ));
        }
        for (source, _) in sources {
            if let Some(reader) = registries.get(source) {
                entries.push(entry(
                    format!("registry:{source}"),
                    Kind::Registry,
                    Target::Remote(reader.clone() as Arc<dyn HealthCheck>),
                ));
            }
        }
        Self {
            entries,
            db,
            metrics,
        }
    }

    /// Every integration's last known health, in a stable order.
    pub fn list(&self) -> Vec<Integration> {
        self.entries.iter().map(Entry::current).collect()
    }

    /// Runs the full check of integration `name` now and records its
    /// result; `None` if there is no such integration.
    pub async fn test(&self, name: &str) -> Option<TestReport> {
        let entry = self.entries.iter().find(|e| e.name == name)?;
        let started = std::time::Instant::now();
        let probe = self.check(entry, Depth::Full).await;
        self.metrics
            .test_connection_duration
            .with_label_values(&[entry.kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        self.count(entry, probe.health);
        entry.record(probe.health, probe.summary(), now_ms());
        Some(TestReport {
            integration: entry.current(),
            probe,
        })
    }

    /// Checks every integration once, concurrently, and records the results.
    pub async fn check_all(&self) {
        let checks = self.entries.iter().map(|entry| async move {
            let probe = self.check(entry, Depth::Health).await;
            self.count(entry, probe.health);
            entry.record(probe.health, probe.summary(), now_ms());
        });
        futures_util::future::join_all(checks).await;
    }

    /// Checks every integration every `interval`, the first time one
    /// `interval` after start, until `shutdown`; a check in progress is
    /// abandoned at shutdown.
    ///
    /// Not at start: a process that restarts often (a crash loop, a
    /// rollout of many replicas) would otherwise call every provider on
    /// each start, and `POST /api/v1/integrations/{name}/test` checks at
    /// once when an operator wants to know.
    pub async fn run_monitor(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        tracing::info!(
            interval_secs = interval.as_secs(),
            integrations = self.entries.len(),
            "integrations health monitor started"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.check_all() => {}
            }
        }
        tracing::info!("integrations health monitor stopped");
    }

    /// Counts a check's conclusion in `integrations_health_check_total`,
    /// labelled with the integration's kind (`provider:github`, …).
    fn count(&self, entry: &Entry, health: Health) {
        self.metrics
            .health_checks
            .with_label_values(&[entry.kind.as_str(), health.as_str()])
            .inc();
    }

    async fn check(&self, entry: &Entry, depth: Depth) -> Probe {
        match &entry.target {
            Target::Source => self.source_probe(&entry.name).await,
            Target::Remote(check) => {
                match tokio::time::timeout(PROBE_TIMEOUT, check.probe(depth)).await {
                    Ok(probe) => probe,
                    Err(_) => Probe::from_answer(
                        PROBE_TIMEOUT,
                        crate::probe::Answer::Unreachable(format!(
                            "no answer within {} s",
                            PROBE_TIMEOUT.as_secs()
                        )),
                    ),
                }
            }
        }
    }

    /// A webhook source's health, from its verification tally since start
    /// and its newest stored (so verified) delivery.
    async fn source_probe(&self, name: &str) -> Probe {
        let tally = self.metrics.source_tally(name);
        let last = deliveries::last_received(&self.db, name).await;
        source_probe(name, tally, last.as_ref().ok().copied(), now_ms())
            .unwrap_or_else(|| {
                if let Err(error) = &last {
                    tracing::warn!(error = ?error, source.name = name, "cannot read the source's newest delivery");
                }
                Probe {
                    connectivity: receiver_step(name),
                    authentication: Step::skipped("not known: the inbox could not be read"),
                    functionality: Step::skipped("not known: the inbox could not be read"),
                    health: Health::Unknown,
                }
            })
    }
}

/// portcall is the receiving end: there is nothing to connect to.
fn receiver_step(name: &str) -> Step {
    Step::skipped(format!(
        "senders connect to portcall: POST /webhooks/{name}"
    ))
}

/// A source's findings: `last` is `Some(newest delivery time)` when the
/// inbox answered (`Some(None)`: no delivery yet), `None` when it did not.
fn source_probe(
    name: &str,
    tally: SourceTally,
    last: Option<Option<i64>>,
    now_ms: i64,
) -> Option<Probe> {
    let last = last?;
    let counts = format!(
        "{} verified and {} refused for a missing or wrong signature or token since start",
        tally.verified, tally.refused
    );
    let authentication = if tally.refused > tally.verified {
        Step::failed(format!("more requests refused than verified: {counts}"))
    } else if tally.verified == 0 {
        Step::skipped(format!("no request since start ({counts})"))
    } else {
        Step::ok(counts)
    };
    let freshness = i64::try_from(SOURCE_FRESHNESS.as_millis()).unwrap_or(i64::MAX);
    let (functionality, fresh) = match last {
        Some(at) if now_ms - at <= freshness => (
            Step::ok(format!(
                "last verified delivery {} s ago",
                (now_ms - at) / 1000
            )),
            true,
        ),
        Some(at) => (
            Step::skipped(format!(
                "no verified delivery in the last 24 h (the last was {} h ago)",
                (now_ms - at) / 3_600_000
            )),
            false,
        ),
        None => (Step::skipped("no verified delivery yet"), false),
    };
    let health = if tally.refused > tally.verified {
        Health::Degraded
    } else if fresh {
        Health::Healthy
    } else {
        Health::Unknown
    };
    Some(Probe {
        connectivity: receiver_step(name),
        authentication,
        functionality,
        health,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn tally(verified: u64, refused: u64) -> SourceTally {
        SourceTally { verified, refused }
    }

    #[test]
    fn a_source_is_healthy_with_a_verified_delivery_in_the_last_day() {
        let probe = source_probe("github", tally(3, 1), Some(Some(NOW - HOUR)), NOW).unwrap();
        assert_eq!(probe.health, Health::Healthy);
        assert_eq!(
            probe.summary(),
            "3 verified and 1 refused for a missing or wrong signature or token since start"
        );
    }

    #[test]
    fn a_source_without_recent_deliveries_is_unknown() {
        let stale = source_probe("github", tally(0, 0), Some(Some(NOW - 25 * HOUR)), NOW).unwrap();
        assert_eq!(stale.health, Health::Unknown);
        let never = source_probe("github", tally(0, 0), Some(None), NOW).unwrap();
        assert_eq!(never.health, Health::Unknown);
        assert!(source_probe("github", tally(0, 0), None, NOW).is_none());
    }

    #[test]
    fn every_source_and_provider_kind_is_described_in_the_catalog() {
        let kinds = SourceKind::ALL
            .map(Kind::Source)
            .into_iter()
            .chain([Kind::GithubProvider, Kind::GitlabProvider]);
        for kind in kinds {
            assert!(
                crate::config::catalog::catalog()
                    .iter()
                    .any(|t| t.kind == kind.as_str()),
                "{}",
                kind.as_str()
            );
        }
    }

    #[test]
    fn a_source_refusing_more_than_it_verifies_is_degraded() {
        let probe = source_probe("github", tally(1, 2), Some(Some(NOW)), NOW).unwrap();
        assert_eq!(probe.health, Health::Degraded);
        assert!(probe
            .summary()
            .starts_with("more requests refused than verified"));
    }
}
