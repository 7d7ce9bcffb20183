//! `portcall service-accounts create|list|revoke`.

use clap::Subcommand;
use serde_json::json;

use super::client::Api;
use super::table::{self, cell, rows, time};
use super::{print, CliError, Remote};

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create an account; its token is printed this once (stored hashed).
    Create {
        /// A name people recognise, e.g. the CI pipeline's.
        #[arg(long)]
        name: String,
        /// A scope the token grants; repeat for several.
        #[arg(long = "scope", required = true, value_name = "SCOPE",
              value_parser = ["release:read", "release:create", "ci-event:create", "deployment:report", "admin"])]
        scopes: Vec<String>,
        /// What the account is for.
        #[arg(long)]
        description: Option<String>,
        /// A lifetime: a number and d, h, m or s (e.g. 365d). Without it the
        /// token does not expire.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// Every account, without tokens.
    List,
    /// Revoke an account at once: its token's next request is 401.
    Revoke { id: String },
}

pub async fn run(api: Api, remote: &Remote, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::Create {
            name,
            scopes,
            description,
            expires_in,
        } => {
            let mut body = json!({"name": name, "scopes": scopes});
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            if let Some(expires_in) = expires_in {
                body["expiresIn"] = json!(expires_in);
            }
            let answer = api.post(&["service-accounts"], Some(&body)).await?;
            print(remote, &answer, |a| {
                table::print_fields(&[
                    ("id", cell(&a["id"])),
                    ("name", cell(&a["name"])),
                    ("scopes", cell(&a["scopes"])),
                    ("expires (UTC)", time(&a["expires_at"])),
                    // Shown this once: the server keeps only its hash.
                    ("token", a["token"].as_str().unwrap_or_default().to_owned()),
                ]);
                eprintln!("note: the token is shown this once; store it now");
            });
        }
        Verb::List => {
            let answer = api.get(&["service-accounts"], &[]).await?;
            print(remote, &answer, |json| {
                let mut accounts: Vec<&serde_json::Value> =
                    rows(&json["service_accounts"]).collect();
                accounts.sort_by_key(|a| std::cmp::Reverse(a["created_at"].as_i64()));
                let rows: Vec<Vec<String>> = accounts
                    .into_iter()
                    .map(|a| {
                        vec![
                            cell(&a["id"]),
                            cell(&a["name"]),
                            cell(&a["scopes"]),
                            time(&a["created_at"]),
                            time(&a["expires_at"]),
                            time(&a["revoked_at"]),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "NAME",
                        "SCOPES",
                        "CREATED (UTC)",
                        "EXPIRES (UTC)",
                        "REVOKED (UTC)",
                    ],
                    &rows,
                    "no service accounts",
                );
            });
        }
        Verb::Revoke { id } => {
            api.delete(&["service-accounts", &id]).await?;
            if remote.json {
                // 204 has no body; scripts get an object all the same.
                println!("{}", json!({"id": id, "revoked": true}));
            } else {
                println!("service account {id} revoked");
            }
        }
    }
    Ok(())
}
