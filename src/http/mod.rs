//! The HTTP interface (actix-web). Handlers only translate: they extract,
//! call one function per step and map errors; no SQL and no rules here.

pub mod api;
mod dashboard;
mod error;
pub mod probes;
pub mod setup;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;
use secrecy::SecretString;
use tokio::sync::Notify;

pub use error::ApiError;

use crate::clock::Clock;
use crate::config::{DashboardSettings, SetupSettings};
use crate::ingest::Source;
use crate::integrations::Integrations;
use crate::store::inbox::InboxWriter;
use crate::store::Db;
use crate::telemetry::Metrics;
use crate::worker::Outbox;

/// What every handler can reach.
pub struct AppState {
    pub sources: HashMap<String, Arc<SourceEntry>>,
    pub inbox: InboxWriter,
    pub db: Db,
    pub metrics: Metrics,
    pub clock: Clock,
    pub max_body_bytes: usize,
    pub read_timeout: std::time::Duration,
    /// Wakes this process's inbox worker when a delivery is committed.
    pub wake_worker: Arc<Notify>,
    /// Wakes this process's dispatcher when a job is re-queued.
    pub wake_dispatcher: Arc<Notify>,
    /// `admin.token`: the bearer token for `/api/v1`.
    pub admin_token: Option<SecretString>,
    /// Components, providers and the database, for what CI reports.
    pub outbox: Arc<Outbox>,
    /// Sources, providers and registries with their health.
    pub integrations: Arc<Integrations>,
    /// `[setup]`: the GitHub App setup pages.
    pub setup: SetupSettings,
    /// `server.public_url`: the webhook and callback URLs of the manifest.
    pub public_url: Option<String>,
    /// Whether `[github]` is configured: an app exists, so setup is for
    /// the admin only.
    pub github_configured: bool,
    /// `[dashboard]`: whether it is served, and how long a sign-in lasts.
    pub dashboard: DashboardSettings,
    /// `gitlab.url`, for links to commits on GitLab.
    pub gitlab_url: Option<String>,
}

/// A configured source, with its name shared for cheap hand-offs.
#[derive(Debug)]
pub struct SourceEntry {
    pub name: Arc<str>,
    pub source: Source,
}

/// The route table, top-down.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(webhooks::config)
        .configure(probes::config)
        .configure(setup::config)
        .configure(api::config)
        .configure(dashboard::config);
}
