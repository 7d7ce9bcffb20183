//! Black-box tests: the real application on port 0, a fresh SQLite file
//! (and a fresh PostgreSQL database when PORTCALL_TEST_POSTGRES_URL is set)
//! per test, requests over HTTP.

mod helpers;

mod auth;
mod bad_requests;
mod browser;
mod ci;
mod ci_examples;
mod cli;
mod cli_client;
mod concurrency;
mod dashboard;
mod deployments;
mod events;
mod faults;
mod hostile;
mod inbox;
mod logs;
mod manifests;
mod metrics;
mod openapi;
mod operations;
mod outbox;
mod provider_faults;
mod providers;
mod recovery;
mod registries;
mod registries_cloud;
mod registry;
mod registry_reader;
mod release_e2e;
mod releases_api;
mod replicas;
mod setup;
mod slow_clients;
mod support_registry;
mod webhooks;
