//! `portcall jobs list|retry`: the outbox.

use clap::Subcommand;

use super::client::Api;
use super::table::{self, cell, rows, time};
use super::{next_page_hint, print, CliError, Remote};

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Outbox jobs (statuses, check runs, comments, deployments), newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = ["pending", "done", "dead", "skipped"])]
        state: Option<String>,
        /// At most this many (1–500; the server's default is 50).
        #[arg(long)]
        limit: Option<i64>,
        /// Only jobs older than this id: the next page.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// Put a finished job (dead, skipped or done) back in the queue.
    Retry { id: String },
}

pub async fn run(api: Api, remote: &Remote, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::List {
            state,
            limit,
            before,
        } => {
            let answer = api
                .get(
                    &["jobs"],
                    &[
                        ("state", state),
                        ("limit", limit.map(|n| n.to_string())),
                        ("before", before.map(|n| n.to_string())),
                    ],
                )
                .await?;
            print(remote, &answer, |json| {
                let rows: Vec<Vec<String>> = rows(&json["jobs"])
                    .map(|j| {
                        vec![
                            cell(&j["id"]),
                            cell(&j["kind"]),
                            cell(&j["state"]),
                            cell(&j["attempts"]),
                            cell(&j["repository"]),
                            cell(&j["release_id"]),
                            time(&j["updated_at"]),
                            // Why it failed, else what it did (or why it
                            // was skipped).
                            cell(
                                j.get("last_error")
                                    .filter(|e| !e.is_null())
                                    .unwrap_or(&j["result"]),
                            ),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "KIND",
                        "STATE",
                        "ATTEMPTS",
                        "REPOSITORY",
                        "RELEASE",
                        "UPDATED (UTC)",
                        "RESULT",
                    ],
                    &rows,
                    "no jobs",
                );
            });
            next_page_hint(remote, &answer.json);
        }
        Verb::Retry { id } => {
            let answer = api.post(&["jobs", &id, "retry"], None).await?;
            print(remote, &answer, |j| {
                println!(
                    "job {} queued again (state {})",
                    cell(&j["id"]),
                    cell(&j["state"])
                );
            });
        }
    }
    Ok(())
}
