//! `portcall releases list|show`.

use clap::Subcommand;
use serde_json::Value;

use super::client::Api;
use super::table::{self, cell, rows, short, text, time};
use super::{next_page_hint, print, CliError, Remote};

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Releases, newest first.
    List {
        /// Only this component's releases.
        #[arg(long)]
        component: Option<String>,
        /// At most this many (1–500; the server's default is 50).
        #[arg(long)]
        limit: Option<i64>,
        /// Only releases older than this id: the next page.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// One release with its deployments, newest first.
    Show { id: String },
}

pub async fn run(api: Api, remote: &Remote, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::List {
            component,
            limit,
            before,
        } => {
            let answer = api
                .get(
                    &["releases"],
                    &[
                        ("component", component),
                        ("limit", limit.map(|n| n.to_string())),
                        ("before", before.map(|n| n.to_string())),
                    ],
                )
                .await?;
            print(remote, &answer, |json| {
                let rows: Vec<Vec<String>> = rows(&json["releases"])
                    .map(|r| {
                        vec![
                            cell(&r["id"]),
                            cell(&r["name"]),
                            cell(&r["component"]),
                            cell(&r["tag"]),
                            short(&r["digest"]),
                            short(&r["commit"]),
                            time(&r["created_at"]),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "NAME",
                        "COMPONENT",
                        "TAG",
                        "DIGEST",
                        "COMMIT",
                        "CREATED (UTC)",
                    ],
                    &rows,
                    "no releases",
                );
            });
            next_page_hint(remote, &answer.json);
        }
        Verb::Show { id } => {
            let answer = api.get(&["releases", &id], &[]).await?;
            print(remote, &answer, show);
        }
    }
    Ok(())
}

fn show(r: &Value) {
    table::print_fields(&[
        ("id", text(&r["id"])),
        ("name", text(&r["name"])),
        ("component", text(&r["component"])),
        ("image", text(&r["image"])),
        ("tag", text(&r["tag"])),
        ("digest", text(&r["digest"])),
        ("repository", text(&r["repository"])),
        ("commit", text(&r["commit"])),
        ("source", text(&r["source_url"])),
        ("created (UTC)", time(&r["created_at"])),
    ]);
    if let Some(metadata) = r.get("metadata").filter(|m| !m.is_null()) {
        println!("metadata: {metadata}");
    }
    let deployments: Vec<Vec<String>> = rows(&r["deployments"])
        .map(|d| {
            vec![
                text(&d["environment"]),
                text(&d["state"]),
                time(&d["reported_at"]),
                text(&d["url"]),
            ]
        })
        .collect();
    println!();
    table::print(
        &["ENVIRONMENT", "STATE", "REPORTED (UTC)", "URL"],
        &deployments,
        "no deployments",
    );
}
