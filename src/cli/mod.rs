//! The client half of the `portcall` binary: admin verbs that talk to a
//! running server over `/api/v1`, and `portcall send`, which signs and
//! sends a webhook as a provider would. `main.rs` only parses and
//! dispatches; everything here is plain functions over [`client::Api`].
//!
//! Output policy: tables (aligned, newest first, UTC timestamps) for
//! people on stdout; with `--json` the API's answer exactly as received;
//! hints (the next page's `--before`) and errors on stderr. Exit codes are
//! [`ExitCode`]'s, and the token (`PORTCALL_TOKEN`) is never printed.

pub mod client;
pub mod deliveries;
pub mod integrations;
pub mod jobs;
pub mod releases;
pub mod send;
pub mod service_accounts;
pub mod table;

use clap::{Args, Subcommand};

use client::Api;

/// What `portcall --help` says about exit codes; the README repeats it.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  an API error or any other failure (also: `send` got a non-2xx answer
     other than those below; `integrations test` found a failing step)
  2  usage or configuration error (bad flags, PORTCALL_TOKEN unset, an
     unresolvable --secret reference)
  3  not found (no such delivery, job, release, account, integration or
     webhook source)
  4  unauthorized or forbidden (the token is wrong, expired, revoked or
     lacks the scope; `send`: the signature was refused)
  5  the server is unreachable (connection refused, DNS, timeout)

The admin commands read the bearer token from PORTCALL_TOKEN and the
server's address from --url or PORTCALL_URL.";

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    NotFound = 3,
    Unauthorized = 4,
    Unreachable = 5,
}

impl ExitCode {
    /// The exit code for an HTTP answer's status.
    pub fn for_status(status: u16) -> Self {
        match status {
            200..=299 => ExitCode::Ok,
            401 | 403 => ExitCode::Unauthorized,
            404 => ExitCode::NotFound,
            _ => ExitCode::Failure,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Why a client command failed; [`CliError::exit_code`] maps it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error (`{"error":{"code","message"}}`).
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer at all. `url` never carries a query string.
    #[error("cannot reach portcall at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// An answer, but a failing one that is not an API error (a webhook
    /// refused by `send`, an integration test with a failed step).
    #[error("{message}")]
    Failed { code: ExitCode, message: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Api { status, .. } => match ExitCode::for_status(*status) {
                ExitCode::Ok => ExitCode::Failure,
                code => code,
            },
            CliError::Unreachable { .. } => ExitCode::Unreachable,
            CliError::Failed { code, .. } => *code,
            CliError::Other(_) => ExitCode::Failure,
        }
    }
}

/// Where the server is and how to print its answers; on every admin verb.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The running portcall's base URL.
    #[arg(
        long,
        global = true,
        env = "PORTCALL_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: url::Url,
    /// Print the API's JSON answer as is, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client verbs, flattened into `portcall`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The inbox: list stored webhook deliveries, show one, replay one.
    #[command(after_help = EXIT_CODES_HELP)]
    Deliveries {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        verb: deliveries::Verb,
    },
    /// The outbox: list jobs (statuses, check runs, comments), retry one.
    #[command(after_help = EXIT_CODES_HELP)]
    Jobs {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        verb: jobs::Verb,
    },
    /// Releases: list them, show one with its deployments.
    #[command(after_help = EXIT_CODES_HELP)]
    Releases {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        verb: releases::Verb,
    },
    /// Service accounts for CI and CD: create (the token is shown once),
    /// list, revoke.
    #[command(after_help = EXIT_CODES_HELP)]
    ServiceAccounts {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        verb: service_accounts::Verb,
    },
    /// Integrations: their health, a live test, and the configurable types.
    #[command(after_help = EXIT_CODES_HELP)]
    Integrations {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        verb: integrations::Verb,
    },
    /// Sign and send a webhook payload exactly as a provider would, to test
    /// a setup or reproduce a delivery.
    #[command(after_help = EXIT_CODES_HELP)]
    Send(send::Args),
}

/// Runs a client command; prints its error to stderr and gives the exit code.
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Deliveries { remote, verb } => {
            with_api(&remote, |api| deliveries::run(api, &remote, verb)).await
        }
        Command::Jobs { remote, verb } => {
            with_api(&remote, |api| jobs::run(api, &remote, verb)).await
        }
        Command::Releases { remote, verb } => {
            with_api(&remote, |api| releases::run(api, &remote, verb)).await
        }
        Command::ServiceAccounts { remote, verb } => {
            with_api(&remote, |api| service_accounts::run(api, &remote, verb)).await
        }
        Command::Integrations { remote, verb } => {
            with_api(&remote, |api| integrations::run(api, &remote, verb)).await
        }
        Command::Send(args) => send::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::Ok,
        Err(error) => {
            eprintln!("error: {error:#}");
            error.exit_code()
        }
    }
}

async fn with_api<'a, F, Fut>(remote: &'a Remote, f: F) -> Result<(), CliError>
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>> + 'a,
{
    let api = Api::from_env(&remote.url)?;
    f(api).await
}

/// Prints an answer: the raw JSON with `--json`, else what `human` makes.
fn print(remote: &Remote, answer: &client::Answer, human: impl FnOnce(&serde_json::Value)) {
    if remote.json {
        println!("{}", answer.text.trim_end());
    } else {
        human(&answer.json);
    }
}

/// The `next_before` hint of a paged list, on stderr so stdout stays a table.
fn next_page_hint(remote: &Remote, json: &serde_json::Value) {
    if !remote.json {
        if let Some(next) = json["next_before"].as_i64() {
            eprintln!("more: add --before {next}");
        }
    }
}
