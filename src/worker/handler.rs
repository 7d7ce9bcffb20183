//! The seam between the inbox and what portcall does about an event.

use futures_util::future::BoxFuture;

use crate::domain::Event;

/// Which delivery an event came from, for logs and idempotency keys.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryContext<'a> {
    /// The inbox row id.
    pub id: i64,
    pub source: &'a str,
    pub delivery_id: &'a str,
}

/// What a handler did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acted on; the text says what was done.
    Processed(String),
    /// Deliberately not acted on; the text says why.
    Ignored(String),
}

/// Why handling failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying later (database briefly unavailable, …).
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

/// Acts on normalized events. Implementations must be idempotent: the same
/// delivery can be handled again after a crash, a replay or a lease expiry.
pub trait EventHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        delivery: DeliveryContext<'a>,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Outcome, HandlerError>>;
}

/// Records each event as parsed, acting on none: the baseline handler until
/// releases and posting back are wired in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recorder;

impl EventHandler for Recorder {
    fn handle<'a>(
        &'a self,
        _delivery: DeliveryContext<'a>,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        let outcome = match event {
            Event::Unknown { what } => Outcome::Ignored(format!("{what}: not acted on")),
            other => Outcome::Processed(format!("recorded {other}")),
        };
        Box::pin(async move { Ok(outcome) })
    }
}
