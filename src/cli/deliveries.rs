//! `portcall deliveries list|show|replay`: the inbox.

use clap::Subcommand;
use serde_json::Value;

use super::client::Api;
use super::table::{self, cell, rows, text, time};
use super::{next_page_hint, print, CliError, Remote};

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Stored deliveries, newest first.
    List {
        /// Only this source (its name in /webhooks/{source}).
        #[arg(long)]
        source: Option<String>,
        /// Only this status.
        #[arg(long, value_parser = ["pending", "processed", "ignored", "failed"])]
        status: Option<String>,
        /// Only this event (e.g. push).
        #[arg(long)]
        event: Option<String>,
        /// Only deliveries that missed-delivery recovery asked GitHub to
        /// redeliver.
        #[arg(long)]
        recovered: bool,
        /// At most this many (1–500; the server's default is 50).
        #[arg(long)]
        limit: Option<i64>,
        /// Only deliveries older than this id: the next page.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// One delivery with its headers (credentials redacted) and body.
    Show { id: String },
    /// Process a delivery again from its stored body (idempotent: no
    /// duplicate release, job or comment).
    Replay { id: String },
}

pub async fn run(api: Api, remote: &Remote, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::List {
            source,
            status,
            event,
            recovered,
            limit,
            before,
        } => {
            let answer = api
                .get(
                    &["deliveries"],
                    &[
                        ("source", source),
                        ("status", status),
                        ("event", event),
                        ("recovered", recovered.then(|| "true".to_owned())),
                        ("limit", limit.map(|n| n.to_string())),
                        ("before", before.map(|n| n.to_string())),
                    ],
                )
                .await?;
            print(remote, &answer, |json| {
                let rows: Vec<Vec<String>> = rows(&json["deliveries"])
                    .map(|d| {
                        vec![
                            cell(&d["id"]),
                            cell(&d["source"]),
                            cell(&d["event"]),
                            cell(&d["status"]),
                            cell(&d["attempts"]),
                            time(&d["received_at"]),
                            cell(&d["delivery_id"]),
                            cell(
                                d.get("last_error")
                                    .filter(|e| !e.is_null())
                                    .unwrap_or(&d["outcome"]),
                            ),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "SOURCE",
                        "EVENT",
                        "STATUS",
                        "ATTEMPTS",
                        "RECEIVED (UTC)",
                        "DELIVERY",
                        "OUTCOME",
                    ],
                    &rows,
                    "no deliveries",
                );
            });
            next_page_hint(remote, &answer.json);
        }
        Verb::Show { id } => {
            let answer = api.get(&["deliveries", &id], &[]).await?;
            print(remote, &answer, |d| {
                table::print_fields(&fields(d));
                println!("headers:");
                if let Some(headers) = d["headers"].as_object() {
                    for (name, value) in headers {
                        println!("  {name}: {}", value.as_str().unwrap_or_default());
                    }
                }
                println!("body ({}):", cell(&d["body_format"]));
                let body = match &d["body"] {
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string_pretty(other).unwrap_or_default(),
                };
                println!("{body}");
            });
        }
        Verb::Replay { id } => {
            let answer = api.post(&["deliveries", &id, "replay"], None).await?;
            print(remote, &answer, |d| {
                println!(
                    "delivery {} queued for replay (status {})",
                    cell(&d["id"]),
                    cell(&d["status"])
                );
            });
        }
    }
    Ok(())
}

fn fields(d: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("id", text(&d["id"])),
        ("source", text(&d["source"])),
        ("delivery", text(&d["delivery_id"])),
        ("event", text(&d["event"])),
        ("status", text(&d["status"])),
        ("attempts", text(&d["attempts"])),
        ("event kind", text(&d["event_kind"])),
        ("outcome", text(&d["outcome"])),
        ("last error", text(&d["last_error"])),
        ("content type", text(&d["content_type"])),
        ("received (UTC)", time(&d["received_at"])),
        ("processed (UTC)", time(&d["processed_at"])),
    ]
}
