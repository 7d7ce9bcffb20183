//! Logs (tracing) and Prometheus metrics.
//!
//! Field names are dotted and stable (`delivery.id`, `source.name`); no log
//! line carries a secret, a token or a webhook body.

use prometheus::core::Collector as _;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, span fields included (for log shippers).
    Json,
}

/// Installs the global subscriber writing `format` to standard error.
/// `RUST_LOG` filters (default `info`).
///
/// JSON lines carry the fields of every enclosing span (`spans`) and of the
/// innermost one (`span`), so a line logged inside a delivery's or a job's
/// span names its `delivery.id`, `integration`, `provider` and `operation`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // A second init (tests starting several apps) keeps the first subscriber.
    let _ = result;
}

/// Buckets for outbound calls (providers, live tests): 10 ms to a minute.
const CALL_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Every metric portcall exports, registered in its own registry (not the
/// process-global one, so tests can run several apps side by side). The
/// names are a contract (dashboards and alerts chart them); the README's
/// "Metrics and alerts" lists each with its labels.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    /// Webhook requests by source, source kind and outcome
    /// (`accepted`, `duplicate`, `rejected`, `unavailable`).
    pub webhook_deliveries: IntCounterVec,
    /// Refused signatures and tokens by source and reason.
    pub verify_failures: IntCounterVec,
    /// Time from request start to the answer, for accepted requests.
    pub ingest_duration: HistogramVec,
    /// Deliveries processed by the worker, by source and final status.
    pub inbox_processed: IntCounterVec,
    /// Deliveries waiting to be processed, refreshed from the database on
    /// each scrape (and by the worker after each batch).
    pub inbox_pending: IntGauge,
    /// Outbox jobs by state, refreshed from the database on each scrape.
    pub jobs: IntGaugeVec,
    /// Job attempts by provider (`github`, `gitlab`, `registry`), operation
    /// (the job kind) and result (`done`, `retry`, `dead`, `skipped`).
    pub job_attempts: IntCounterVec,
    /// Releases created (not found again), by component.
    pub releases_created: IntCounterVec,
    /// Periodic health checks and live tests of integrations, by provider
    /// (the integration's kind) and concluded health.
    pub health_checks: IntCounterVec,
    /// How long a live test (`POST /api/v1/integrations/{name}/test`) took.
    pub test_connection_duration: HistogramVec,
    /// Provider calls by provider, operation and status (`success`,
    /// `transient`, `permanent`), counted by [`crate::scm::Instrumented`].
    pub scm_annotations: IntCounterVec,
    /// Provider call durations by provider and operation.
    pub scm_annotation_duration: HistogramVec,
    /// GitHub's `x-ratelimit-remaining`, as last answered, per installation.
    pub github_ratelimit_remaining: IntGaugeVec,
    /// Missed GitHub deliveries handled by recovery, by result
    /// (`requested`, `failed`, `list_failed`).
    pub recovered_deliveries: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric")
        };
        let webhook_deliveries = counter(
            "portcall_webhook_deliveries_total",
            "Webhook deliveries received, by source, source kind and outcome.",
            &["source", "kind", "outcome"],
        );
        let verify_failures = counter(
            "portcall_webhook_verify_failures_total",
            "Webhook requests refused for a missing or wrong signature or token, by source and reason.",
            &["source", "reason"],
        );
        let ingest_duration = histogram(
            "portcall_ingest_duration_seconds",
            "Time to verify and durably commit a webhook delivery.",
            &["source"],
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        );
        let inbox_processed = counter(
            "portcall_inbox_processed_total",
            "Deliveries the inbox worker finished, by source and status (processed, ignored, failed, retry).",
            &["source", "status"],
        );
        let inbox_pending = IntGauge::new(
            "portcall_inbox_pending",
            "Deliveries stored and waiting to be processed.",
        )
        .expect("valid metric");
        let jobs = gauge(
            "portcall_jobs",
            "Outbox jobs by state (pending, done, dead, skipped), as stored.",
            &["state"],
        );
        let job_attempts = counter(
            "portcall_job_attempts_total",
            "Outbox job attempts, by provider, operation (job kind) and result (done, retry, dead, skipped).",
            &["provider", "operation", "result"],
        );
        let releases_created = counter(
            "portcall_releases_created_total",
            "Releases created (from a pushed image or through the API), by component.",
            &["component"],
        );
        let health_checks = counter(
            "integrations_health_check_total",
            "Integration health checks and live tests, by provider (integration kind) and status (healthy, degraded, unhealthy, unknown).",
            &["provider", "status"],
        );
        let test_connection_duration = histogram(
            "integrations_test_connection_duration_seconds",
            "Duration of live integration tests (connectivity and authentication), by provider.",
            &["provider"],
            &CALL_BUCKETS,
        );
        let scm_annotations = counter(
            "scm_annotation_total",
            "Calls to a source-control provider (status, check run, comment, deployment), by provider, operation and status (success, transient, permanent).",
            &["provider", "operation", "status"],
        );
        let scm_annotation_duration = histogram(
            "scm_annotation_duration_seconds",
            "Duration of calls to a source-control provider, by provider and operation.",
            &["provider", "operation"],
            &CALL_BUCKETS,
        );
        let github_ratelimit_remaining = gauge(
            "portcall_github_ratelimit_remaining",
            "GitHub API requests left in the current rate-limit window (x-ratelimit-remaining), by App installation.",
            &["installation"],
        );
        let recovered_deliveries = counter(
            "portcall_recovered_deliveries_total",
            "Missed or failed GitHub App deliveries portcall asked GitHub to redeliver, by result (requested, failed; list_failed counts rounds whose listing failed).",
            &["result"],
        );
        let mut names = Vec::new();
        for collector in [
            Box::new(webhook_deliveries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(verify_failures.clone()),
            Box::new(ingest_duration.clone()),
            Box::new(inbox_processed.clone()),
            Box::new(inbox_pending.clone()),
            Box::new(jobs.clone()),
            Box::new(job_attempts.clone()),
            Box::new(releases_created.clone()),
            Box::new(health_checks.clone()),
            Box::new(test_connection_duration.clone()),
            Box::new(scm_annotations.clone()),
            Box::new(scm_annotation_duration.clone()),
            Box::new(github_ratelimit_remaining.clone()),
            Box::new(recovered_deliveries.clone()),
        ] {
            names.extend(collector.desc().iter().map(|d| d.fq_name.clone()));
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            names,
            webhook_deliveries,
            verify_failures,
            ingest_duration,
            inbox_processed,
            inbox_pending,
            jobs,
            job_attempts,
            releases_created,
            health_checks,
            test_connection_duration,
            scm_annotations,
            scm_annotation_duration,
            github_ratelimit_remaining,
            recovered_deliveries,
        }
    }

    /// Every metric family name this registry exports, whether or not it
    /// has a sample yet (dashboards and alerts may only chart these).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// What `source`'s senders did since this process started: requests
    /// that passed verification (accepted or duplicate) and requests refused
    /// for a missing or wrong signature or token.
    pub fn source_tally(&self, source: &str) -> SourceTally {
        let sum = |vec: &IntCounterVec, matches: &dyn Fn(&str, &str) -> bool| -> u64 {
            vec.collect()
                .iter()
                .flat_map(|family| family.get_metric())
                .filter(|metric| {
                    let labels = metric.get_label();
                    let value = |name: &str| {
                        labels
                            .iter()
                            .find(|l| l.name() == name)
                            .map_or("", |l| l.value())
                    };
                    matches(value("source"), value("outcome"))
                })
                // Counters are whole numbers kept as f64.
                .map(|metric| metric.get_counter().get_value() as u64)
                .sum()
        };
        SourceTally {
            verified: sum(&self.webhook_deliveries, &|s, outcome| {
                s == source && matches!(outcome, "accepted" | "duplicate")
            }),
            refused: sum(&self.verify_failures, &|s, _| s == source),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// A source's requests since start, by verification result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceTally {
    /// Passed verification (stored, or a duplicate of a stored one).
    pub verified: u64,
    /// Refused for a missing or wrong signature or token.
    pub refused: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_metric_is_registered_with_help() {
        let metrics = Metrics::new();
        for name in [
            "integrations_health_check_total",
            "integrations_test_connection_duration_seconds",
            "scm_annotation_total",
            "scm_annotation_duration_seconds",
            "portcall_webhook_deliveries_total",
            "portcall_webhook_verify_failures_total",
            "portcall_ingest_duration_seconds",
            "portcall_inbox_pending",
            "portcall_jobs",
            "portcall_job_attempts_total",
            "portcall_releases_created_total",
            "portcall_github_ratelimit_remaining",
            "portcall_recovered_deliveries_total",
        ] {
            assert!(metrics.names().iter().any(|n| n == name), "{name}");
        }
        metrics.inbox_pending.set(3);
        assert!(metrics
            .render()
            .contains("# HELP portcall_inbox_pending Deliveries stored"));
    }
}
