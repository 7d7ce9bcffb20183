//! `portcall send`: sign a payload with a source kind's scheme and POST it
//! to `/webhooks/{source}`, exactly as that provider would.

use std::io::Read as _;
use std::path::PathBuf;

use crate::config::{resolve_secret, ProcessEnv};
use crate::ingest::sign::{self, Outgoing};
use crate::ingest::{HookSecret, SourceKind};

use super::client::{exchange, http_client};
use super::{CliError, ExitCode};

const KINDS: [&str; 12] = [
    "github",
    "gitlab",
    "distribution",
    "standard",
    "acr",
    "ecr",
    "gar",
    "harbor",
    "quay",
    "dockerhub",
    "jfrog",
    "nexus",
];

/// Headers are set per kind: github `X-Hub-Signature-256`,
/// `X-GitHub-Event`, `X-GitHub-Delivery`; gitlab `X-Gitlab-Token` (or with
/// --signed the Standard Webhooks headers), `X-Gitlab-Event`,
/// `X-Gitlab-Event-UUID` and `Idempotency-Key`; distribution, acr, ecr
/// `Authorization: Bearer`; harbor `Authorization` (the secret verbatim);
/// jfrog `X-JFrog-Event-Auth` (with --signed its HMAC form); nexus
/// `X-Nexus-Webhook-Signature` and `X-Nexus-Webhook-Delivery`; standard
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`; quay, dockerhub
/// and gar (its ?token= form) the secret as `?token=`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  GH_HOOK_SECRET=… portcall send --kind github --event push \\\n    --secret env:GH_HOOK_SECRET fixtures/github/push.json"
)]
pub struct Args {
    /// The source kind whose signing scheme to use.
    #[arg(long, value_parser = KINDS)]
    pub kind: String,
    /// The secret, as a reference: env:NAME or file:/path (never a literal).
    #[arg(long, value_name = "REF")]
    pub secret: String,
    /// The event name the provider sends in its header (github: push,
    /// pull_request, …; gitlab: "Push Hook", …; nexus: rm:repository:component).
    /// Required for github and gitlab.
    #[arg(long)]
    pub event: Option<String>,
    /// The delivery id, for the kinds that send one in a header (github,
    /// gitlab, standard, nexus); default: a fresh UUID. Send the same id
    /// twice to see the duplicate answer.
    #[arg(long, value_name = "ID")]
    pub delivery_id: Option<String>,
    /// The source's name in /webhooks/{source}; default: the kind.
    #[arg(long)]
    pub source: Option<String>,
    /// jfrog: sign X-JFrog-Event-Auth (a source with signed = true);
    /// gitlab: use GitLab's signed webhooks instead of X-Gitlab-Token.
    #[arg(long)]
    pub signed: bool,
    /// The body's Content-Type; default application/json (e.g.
    /// application/x-www-form-urlencoded for a GitHub `payload=` body,
    /// application/cloudevents+json for Harbor's CloudEvents format).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// The running portcall's base URL.
    #[arg(
        long,
        env = "PORTCALL_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: url::Url,
    /// The payload file, sent byte for byte; `-` reads stdin.
    pub payload: PathBuf,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let kind: SourceKind = args
        .kind
        .parse()
        .map_err(|()| CliError::Usage(format!("unknown kind {:?}", args.kind)))?;
    let secret = resolve_secret(&args.secret, &ProcessEnv)
        .map_err(|e| CliError::Usage(format!("--secret: {e}")))?;
    let secret = HookSecret::new(secret);
    if sign::requires_event(kind) && args.event.is_none() {
        return Err(CliError::Usage(format!(
            "--event is required for {kind} (e.g. {})",
            if kind == SourceKind::Github {
                "push"
            } else {
                "\"Push Hook\""
            }
        )));
    }
    if args.delivery_id.is_some() && !sign::takes_delivery_id(kind) {
        return Err(CliError::Usage(format!(
            "{kind} senders send no delivery id; portcall takes it from the body"
        )));
    }
    if args.signed && !matches!(kind, SourceKind::Jfrog | SourceKind::Gitlab) {
        return Err(CliError::Usage(
            "--signed applies to jfrog and gitlab only".into(),
        ));
    }
    let body = read_payload(&args.payload)?;
    let delivery_id = sign::takes_delivery_id(kind).then(|| {
        args.delivery_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    });
    let signed = sign::sign(
        kind,
        &secret,
        &Outgoing {
            body: &body,
            event: args.event.as_deref(),
            delivery_id: delivery_id.as_deref(),
            signed: args.signed,
            now_unix: chrono::Utc::now().timestamp(),
        },
    );
    let source = args.source.unwrap_or_else(|| kind.as_str().to_owned());
    let mut url = args.url.clone();
    url.set_query(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["webhooks", &source]);
    }
    let shown = url.clone();
    if let Some(token) = &signed.query_token {
        url.query_pairs_mut().append_pair("token", token);
    }
    let mut request = http_client()?.post(url).body(body);
    for (name, value) in &signed.headers {
        let value = match &args.content_type {
            Some(content_type) if *name == "Content-Type" => content_type,
            _ => value,
        };
        request = request.header(*name, value);
    }
    let answer = exchange(request, &shown).await?;
    let reason = reqwest_oci::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or_default();
    println!("HTTP {} {reason}", answer.status);
    if !answer.text.is_empty() {
        println!("{}", answer.text.trim_end());
    }
    if let Some(id) = &delivery_id {
        eprintln!("sent {kind} delivery {id} to {shown}");
    }
    match ExitCode::for_status(answer.status) {
        ExitCode::Ok => Ok(()),
        code => Err(CliError::Failed {
            code,
            message: format!("{shown} answered HTTP {}", answer.status),
        }),
    }
}

fn read_payload(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| CliError::Usage(format!("cannot read the payload from stdin: {e}")))?;
        Ok(body)
    } else {
        std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_list_is_every_source_kind() {
        let all: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(all, KINDS);
    }
}
