//! Logs (tracing) and Prometheus metrics.
//!
//! Field names are dotted and stable (`delivery.id`, `source.name`); no log
//! line carries a secret, a token or a webhook body.

use prometheus::core::Collector as _;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: human-readable lines, or JSON lines when
/// `PORTCALL_LOG_FORMAT=json`. `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PORTCALL_LOG_FORMAT").is_ok_and(|f| f == "json");
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests starting several apps) keeps the first subscriber.
    let _ = result;
}

/// Every metric portcall exports, registered in its own registry (not the
/// process-global one, so tests can run several apps side by side).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Webhook requests by source, source kind and outcome
    /// (`accepted`, `duplicate`, `rejected`, `unavailable`).
    pub webhook_deliveries: IntCounterVec,
    /// Refused signatures and tokens by source and reason.
    pub verify_failures: IntCounterVec,
    /// Time from request start to the answer, for accepted requests.
    pub ingest_duration: HistogramVec,
    /// Deliveries processed by the worker, by source and final status.
    pub inbox_processed: IntCounterVec,
    /// Deliveries waiting to be processed, as last seen by the worker.
    pub inbox_pending: IntGauge,
    /// Outbox job attempts by kind and outcome (done, retry, dead, skipped).
    pub outbox_jobs: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "portcall_webhook_deliveries_total",
                "Webhook deliveries received, by source, source kind and outcome.",
            ),
            &["source", "kind", "outcome"],
        )
        .expect("valid metric");
        let verify_failures = IntCounterVec::new(
            Opts::new(
                "portcall_webhook_verify_failures_total",
                "Webhook requests refused for a missing or wrong signature or token, by source and reason.",
            ),
            &["source", "reason"],
        )
        .expect("valid metric");
        let ingest_duration = HistogramVec::new(
            HistogramOpts::new(
                "portcall_ingest_duration_seconds",
                "Time to verify and durably commit a webhook delivery.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["source"],
        )
        .expect("valid metric");
        let inbox_processed = IntCounterVec::new(
            Opts::new(
                "portcall_inbox_processed_total",
                "Deliveries the inbox worker finished, by source and status (processed, ignored, failed, retry).",
            ),
            &["source", "status"],
        )
        .expect("valid metric");
        let inbox_pending = IntGauge::new(
            "portcall_inbox_pending",
            "Deliveries stored and waiting to be processed.",
        )
        .expect("valid metric");
        let outbox_jobs = IntCounterVec::new(
            Opts::new(
                "portcall_outbox_jobs_total",
                "Outbox job attempts, by kind and outcome (done, retry, dead, skipped).",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(webhook_deliveries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(verify_failures.clone()),
            Box::new(ingest_duration.clone()),
            Box::new(inbox_processed.clone()),
            Box::new(inbox_pending.clone()),
            Box::new(outbox_jobs.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            webhook_deliveries,
            verify_failures,
            ingest_duration,
            inbox_processed,
            inbox_pending,
            outbox_jobs,
        }
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
