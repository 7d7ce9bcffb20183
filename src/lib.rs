//! portcall verifies and durably stores webhooks from source control and
//! container registries, then acts on them in the background.
//!
//! The crate's map, in the order a delivery travels:
//!
//! - [`config`]: settings from defaults, a TOML file and `PORTCALL__…`
//!   variables; secrets as `env:`/`file:` references.
//! - [`http`]: the actix-web routes; handlers only translate HTTP.
//! - [`ingest`]: one module per source kind: verify the raw request, later
//!   parse the stored payload into a domain event.
//! - [`store`]: every SQL query, for SQLite and PostgreSQL; the group-commit
//!   inbox writer; image pushes, releases, deployments and the outbox.
//! - [`worker`]: claims stored deliveries under leases and hands their
//!   events to the reactor, which enqueues jobs (as do deployment reports
//!   from the API); the dispatcher runs them, with retries and backoff;
//!   recovery asks GitHub to redeliver App webhook deliveries that never
//!   reached the inbox.
//! - [`registry`]: reads a pushed image's manifest and config from its
//!   registry for the source commit (OCI annotations and labels).
//! - [`scm`]: posting back to GitHub and GitLab behind one trait, each
//!   client wrapped in a decorator that adds metrics and spans.
//! - [`probe`]: live checks of those services and registries (reachable?
//!   credentials accepted?), implemented by each adapter.
//! - [`integrations`]: every configured source, provider and registry with
//!   its health, kept fresh by a background monitor.
//! - [`domain`]: identifiers, normalized events, components and release
//!   rules; no I/O.
//! - [`telemetry`]: tracing (text or JSON lines) and the Prometheus
//!   metrics, whose names are a contract.
//! - [`setup`]: the GitHub App manifest flow behind `/setup/github`: the
//!   manifest, the CSRF state, the pages' HTML, the code exchange, and the
//!   credential files (mode 0600, never replaced).
//! - [`startup`]: builds the application, for `main` and for tests.
//! - [`clock`]: the current time, injectable.
//! - [`cli`]: the client commands of the binary: admin verbs over
//!   `/api/v1`, and `portcall send` (signs a webhook like its provider).

#![forbid(unsafe_code)]

pub mod accounts;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod integrations;
pub mod probe;
pub mod registry;
pub mod scm;
pub mod sessions;
pub mod setup;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod worker;
