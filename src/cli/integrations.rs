//! `portcall integrations list|test|types`.

use clap::Subcommand;
use serde_json::Value;

use super::client::Api;
use super::table::{self, cell, rows, time};
use super::{print, CliError, ExitCode, Remote};

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Every configured source, provider and registry with its last known
    /// health.
    List,
    /// Test one integration now: connectivity, authentication and a
    /// functional read. Exits 1 when a step fails.
    Test { name: String },
    /// The integration types portcall can be configured with; with a KIND
    /// (e.g. source:github, or github when unambiguous), its configuration
    /// inputs.
    Types { kind: Option<String> },
}

pub async fn run(api: Api, remote: &Remote, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::List => {
            let answer = api.get(&["integrations"], &[]).await?;
            print(remote, &answer, |json| {
                let rows: Vec<Vec<String>> = rows(&json["integrations"])
                    .map(|i| {
                        vec![
                            cell(&i["name"]),
                            cell(&i["kind"]),
                            cell(&i["health"]),
                            time(&i["checked_at"]),
                            cell(&i["message"]),
                        ]
                    })
                    .collect();
                table::print(
                    &["NAME", "KIND", "HEALTH", "CHECKED (UTC)", "MESSAGE"],
                    &rows,
                    "no integrations",
                );
            });
        }
        Verb::Test { name } => {
            let answer = api.post(&["integrations", &name, "test"], None).await?;
            print(remote, &answer, |r| {
                table::print_fields(&[
                    ("name", cell(&r["name"])),
                    ("kind", cell(&r["kind"])),
                    ("health", cell(&r["health"])),
                ]);
                let steps: Vec<Vec<String>> = ["connectivity", "authentication", "functionality"]
                    .iter()
                    .map(|step| {
                        vec![
                            (*step).to_owned(),
                            cell(&r[step]["status"]),
                            r[step]["latencyMs"]
                                .as_u64()
                                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
                            cell(&r[step]["message"]),
                        ]
                    })
                    .collect();
                println!();
                table::print(&["STEP", "STATUS", "LATENCY", "MESSAGE"], &steps, "");
            });
            let failed = ["connectivity", "authentication", "functionality"]
                .iter()
                .find(|step| answer.json[**step]["status"] == "failed");
            if let Some(step) = failed {
                return Err(CliError::Failed {
                    code: ExitCode::Failure,
                    message: format!("integration {name:?}: the {step} step failed"),
                });
            }
        }
        Verb::Types { kind: None } => {
            let answer = api.get(&["integration-types"], &[]).await?;
            print(remote, &answer, |json| {
                let rows: Vec<Vec<String>> = rows(&json["types"])
                    .map(|t| {
                        vec![
                            cell(&t["kind"]),
                            cell(&t["category"]),
                            cell(&t["section"]),
                            cell(&t["title"]),
                        ]
                    })
                    .collect();
                table::print(&["KIND", "CATEGORY", "SECTION", "TITLE"], &rows, "no types");
            });
        }
        Verb::Types { kind: Some(kind) } => {
            let answer = api.get(&["integration-types"], &[]).await?;
            let found = find_type(&answer.json, &kind)?;
            if remote.json {
                println!("{found}");
            } else {
                describe(found);
            }
        }
    }
    Ok(())
}

/// The type named `kind` exactly, or the one whose name after `:` it is.
fn find_type<'a>(json: &'a Value, kind: &str) -> Result<&'a Value, CliError> {
    let types: Vec<&Value> = rows(&json["types"]).collect();
    if let Some(exact) = types.iter().find(|t| t["kind"] == kind) {
        return Ok(exact);
    }
    let suffix: Vec<&&Value> = types
        .iter()
        .filter(|t| {
            t["kind"]
                .as_str()
                .and_then(|k| k.split_once(':'))
                .is_some_and(|(_, name)| name == kind)
        })
        .collect();
    match suffix.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::Failed {
            code: ExitCode::NotFound,
            message: format!(
                "no integration type {kind:?}; `portcall integrations types` lists them"
            ),
        }),
        several => Err(CliError::Usage(format!(
            "{kind:?} is ambiguous: {}",
            several
                .iter()
                .map(|t| cell(&t["kind"]))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn describe(t: &Value) {
    table::print_fields(&[
        ("kind", cell(&t["kind"])),
        ("category", cell(&t["category"])),
        ("title", cell(&t["title"])),
        ("section", cell(&t["section"])),
    ]);
    println!("{}", t["description"].as_str().unwrap_or_default());
    println!();
    let yes = |v: &Value| if v == true { "yes" } else { "no" }.to_owned();
    let inputs: Vec<Vec<String>> = rows(&t["inputs"])
        .map(|i| {
            vec![
                cell(&i["field"]),
                cell(&i["type"]),
                yes(&i["required"]),
                yes(&i["secret"]),
                cell(i.get("value").or(i.get("default")).unwrap_or(&Value::Null)),
                table::one_line(i["description"].as_str().unwrap_or_default(), 200),
            ]
        })
        .collect();
    table::print(
        &[
            "FIELD",
            "TYPE",
            "REQUIRED",
            "SECRET",
            "DEFAULT",
            "DESCRIPTION",
        ],
        &inputs,
        "no inputs",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_type_is_found_by_its_kind_or_an_unambiguous_name() {
        let types = json!({"types": [
            {"kind": "source:github"}, {"kind": "provider:github"}, {"kind": "source:nexus"}
        ]});
        assert_eq!(
            find_type(&types, "source:github").unwrap()["kind"],
            "source:github"
        );
        assert_eq!(find_type(&types, "nexus").unwrap()["kind"], "source:nexus");
        assert_eq!(
            find_type(&types, "github").unwrap_err().exit_code(),
            ExitCode::Usage
        );
        assert_eq!(
            find_type(&types, "svn").unwrap_err().exit_code(),
            ExitCode::NotFound
        );
    }
}
