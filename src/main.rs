//! The `portcall` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use portcall::cli;
use portcall::config::Settings;
use portcall::startup::Application;
use portcall::store::Db;
use portcall::telemetry;

/// Receives signed webhooks from source control and container registries,
/// stores every delivery durably, and processes it in the background.
#[derive(Debug, Parser)]
#[command(name = "portcall", version, about, long_about = None, after_help = cli::EXIT_CODES_HELP)]
struct Cli {
    /// The TOML configuration file. Every key can be overridden with an
    /// environment variable PORTCALL__SECTION__KEY (e.g.
    /// PORTCALL__DATABASE__URL). Without a file, built-in defaults apply.
    #[arg(
        long,
        short,
        global = true,
        env = "PORTCALL_CONFIG",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,

    /// How log lines on standard error are written.
    #[arg(
        long,
        global = true,
        env = "PORTCALL_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Server(ServerCommand),
    #[command(flatten)]
    Client(Box<cli::Command>),
    /// Print a shell completion script: `portcall completions bash >
    /// /etc/bash_completion.d/portcall`, `… zsh > ~/.zfunc/_portcall`,
    /// `… fish > ~/.config/fish/completions/portcall.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The commands that read the configuration and run the service's code.
#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Run migrations, then serve webhooks and process the inbox until
    /// SIGTERM or SIGINT (in-flight requests finish; unstarted work is
    /// released for other replicas).
    Serve,
    /// Apply pending database migrations and exit. `serve` does this too;
    /// use it to migrate ahead of a rollout.
    Migrate,
    /// Validate the configuration and resolve every secret reference; print
    /// every problem found and exit non-zero if there is any.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(command) => run_server(cli.config.as_deref(), cli.log_format, command),
        Command::Client(command) => run_client(*command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "portcall",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// Runs `serve`, `migrate` or `check-config` with the configuration.
fn run_server(
    config: Option<&std::path::Path>,
    log_format: telemetry::LogFormat,
    command: ServerCommand,
) -> ExitCode {
    telemetry::init_tracing(log_format);
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => {
            eprint!("{error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            ServerCommand::Serve => {
                let app = Application::build(settings).await?;
                app.run_until_stopped().await
            }
            ServerCommand::Migrate => {
                let db = Db::connect(&settings.database).await?;
                db.migrate().await.context("cannot migrate the database")?;
                println!("migrations applied");
                Ok(())
            }
            ServerCommand::CheckConfig => {
                println!(
                    "configuration OK: {} sources, {} components, database {}",
                    settings.sources.len(),
                    settings.components.len(),
                    redact_url(&settings.database.url)
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command (no configuration file, no tracing: it prints).
fn run_client(command: cli::Command) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli::run(command)).into(),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
