//! Building and running the service: one function used by `main` and by the
//! tests, bindable to port 0.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Settings;
use crate::http::{self, AppState, SourceEntry};
use crate::integrations::Integrations;
use crate::registry::RegistryReader;
use crate::scm::Providers;
use crate::store::inbox::InboxWriter;
use crate::store::Db;
use crate::telemetry::Metrics;
use crate::worker::inbox::SourceInfo;
use crate::worker::recovery::Recovery;
use crate::worker::{Dispatcher, EventHandler, InboxWorker, Outbox, Reactor};

/// Knobs for tests and embedders; `Default` is what `portcall serve` uses.
#[derive(Default)]
pub struct BuildOptions {
    pub clock: Clock,
    /// Replaces the [`Reactor`] (tests that only look at the inbox).
    pub handler: Option<Arc<dyn EventHandler>>,
}

/// A bound, migrated, not yet running portcall.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    worker: Option<InboxWorker>,
    dispatcher: Option<Dispatcher>,
    writer: JoinHandle<()>,
    integrations: Arc<Integrations>,
    /// Missed-delivery recovery, when a GitHub App is configured.
    recovery: Option<Arc<Recovery>>,
    /// How often the integrations health monitor checks.
    health_interval: std::time::Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    /// Connects to and migrates the database, binds the listener and
    /// prepares the worker. Nothing is served until [`Self::run_until_stopped`].
    pub async fn build_with(settings: Settings, options: BuildOptions) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database)
            .await
            .context("cannot open the database")?;
        db.migrate().await.context("cannot migrate the database")?;

        let metrics = Metrics::new();
        let wake = Arc::new(Notify::new());
        let wake_dispatcher = Arc::new(Notify::new());
        let (providers, hints) =
            Providers::from_settings(settings.github.as_ref(), settings.gitlab.as_ref(), &metrics)?;
        let mut registries = HashMap::new();
        for source in &settings.sources {
            if let Some(api) = &source.registry_api {
                let reader = RegistryReader::new(api).with_context(|| {
                    format!(
                        "sources: cannot set up the registry reader of {:?}",
                        source.name
                    )
                })?;
                registries.insert(source.name.clone(), Arc::new(reader));
            }
        }
        let integrations = Arc::new(Integrations::new(
            &settings
                .sources
                .iter()
                .map(|s| (s.name.clone(), s.kind))
                .collect::<Vec<_>>(),
            &providers,
            &registries,
            db.clone(),
            metrics.clone(),
        ));
        let outbox = Arc::new(Outbox {
            db: db.clone(),
            providers,
            registries,
            components: settings.components.clone(),
            public_url: settings.server.public_url.clone(),
            metrics: metrics.clone(),
            wake: wake_dispatcher.clone(),
        });
        if let Some(hints) = &hints {
            for (repository, installation) in crate::store::installations::installations(&db)
                .await
                .context("cannot read the known GitHub App installations")?
            {
                if let Ok(repo) =
                    crate::domain::RepoSlug::new(crate::domain::Provider::Github, &repository)
                {
                    hints.remember(&repo, u64::try_from(installation).unwrap_or_default());
                }
            }
        }
        let handler = options.handler.unwrap_or_else(|| {
            Arc::new(Reactor::new(outbox.clone(), hints, wake_dispatcher.clone()))
        });
        let (inbox, writer) = InboxWriter::spawn(db.clone(), settings.database.group_commit_max);

        // Its own client: recovery only speaks as the app (JWT), so it
        // shares no installation token with the posting client.
        let recovery = settings
            .github
            .as_ref()
            .map(|github| {
                crate::scm::github::GithubClient::new(github).map(|client| {
                    Arc::new(Recovery::new(
                        db.clone(),
                        Arc::new(client.with_clock(options.clock.clone())),
                        settings
                            .sources
                            .iter()
                            .filter(|s| s.kind == crate::ingest::SourceKind::Github)
                            .map(|s| s.name.clone())
                            .collect(),
                        github.recovery.clone(),
                        metrics.clone(),
                        options.clock.clone(),
                    ))
                })
            })
            .transpose()
            .context("[github]: cannot set up delivery recovery")?;

        let worker_sources: HashMap<String, SourceInfo> = settings
            .sources
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    SourceInfo {
                        kind: s.kind,
                        registry: s.registry.clone(),
                    },
                )
            })
            .collect();
        let worker = settings.worker.enabled.then(|| {
            InboxWorker::new(
                db.clone(),
                worker_sources,
                handler,
                settings.worker.clone(),
                metrics.clone(),
                wake.clone(),
            )
        });

        let dispatcher = settings.dispatcher.enabled.then(|| {
            Dispatcher::new(
                outbox.clone(),
                settings.dispatcher.clone(),
                wake_dispatcher.clone(),
            )
        });

        let server_settings = settings.server.clone();
        let github_configured = settings.github.is_some();
        let gitlab_url = settings.gitlab.as_ref().map(|g| g.url.clone());
        let state = web::Data::new(AppState {
            sources: settings
                .sources
                .into_iter()
                .map(|source| {
                    let entry = SourceEntry {
                        name: source.name.as_str().into(),
                        source,
                    };
                    (entry.name.to_string(), Arc::new(entry))
                })
                .collect(),
            inbox,
            db: db.clone(),
            metrics,
            clock: options.clock,
            max_body_bytes: server_settings.max_body_bytes,
            read_timeout: server_settings.client_timeout,
            wake_worker: wake,
            wake_dispatcher,
            admin_token: settings.admin.token,
            outbox,
            integrations: integrations.clone(),
            setup: settings.setup,
            public_url: server_settings.public_url.clone(),
            github_configured,
            dashboard: settings.dashboard,
            gitlab_url,
        });

        let listener = TcpListener::bind(server_settings.listen)
            .with_context(|| format!("cannot listen on {}", server_settings.listen))?;
        let port = listener.local_addr()?.port();
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .client_request_timeout(server_settings.client_timeout)
                .max_connections(server_settings.max_connections)
                .workers(server_settings.workers)
                .shutdown_timeout(server_settings.shutdown_timeout.as_secs())
                // Signals are handled in `run_until_stopped`, which also stops the worker.
                .disable_signals()
                .listen(listener)?
                .run();
        tracing::info!(port, "listening");
        Ok(Self {
            port,
            server,
            db,
            worker,
            dispatcher,
            writer,
            integrations,
            recovery,
            health_interval: settings.integrations.health_interval,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Missed-delivery recovery, when a GitHub App is configured (whether or
    /// not its background rounds are on), so a caller can run a round now.
    pub fn recovery(&self) -> Option<Arc<Recovery>> {
        self.recovery.clone()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: in-flight
    /// requests finish, the worker finishes the delivery in hand and
    /// releases the rest of its claim.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Like [`Self::run_until_stopped`], stopping when `stop` completes.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let checkpointer = self.db.spawn_checkpointer(shutdown.clone());
        let worker = self.worker.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let dispatcher = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(shutdown.clone())));
        let monitor = tokio::spawn(
            self.integrations
                .run_monitor(self.health_interval, shutdown.clone()),
        );
        let recovery = self
            .recovery
            .filter(|r| r.enabled())
            .map(|r| tokio::spawn(r.run(shutdown.clone())));
        let handle: ServerHandle = self.server.handle();
        let server = tokio::spawn(self.server);
        stop.await;
        tracing::info!("shutting down");
        handle.stop(true).await;
        shutdown.cancel();
        if let Some(worker) = worker {
            worker.await.context("inbox worker panicked")?;
        }
        if let Some(dispatcher) = dispatcher {
            dispatcher.await.context("outbox dispatcher panicked")?;
        }
        if let Some(recovery) = recovery {
            recovery.await.context("delivery recovery panicked")?;
        }
        monitor
            .await
            .context("integrations health monitor panicked")?;
        server.await.context("server task panicked")??;
        // The server's state (and with it the last writer handle) is gone:
        // the writer drains what is queued and ends.
        self.writer.await.context("inbox writer panicked")?;
        if let Some(checkpointer) = checkpointer {
            checkpointer.await.context("checkpointer panicked")?;
        }
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on Unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
