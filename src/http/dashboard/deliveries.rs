//! `GET /` (the inbox), `GET /deliveries/{id}`, `POST /deliveries/{id}/replay`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;

use super::views::{
    self, BodyView, Chrome, DeliveryDetailView, DeliveryFilters, DeliveryRow, Pager, Tab,
};
use super::{choice, html, number, page_size, path_id, see_other, text, CsrfForm, Refusal, Signed};
use crate::http::AppState;
use crate::ingest::is_credential_header;
use crate::store::deliveries::{self, Filter, ReplayError, Status};
use crate::store::{jobs, now_ms, releases};

/// What a credential header's value is shown as.
const REDACTED: &str = "[redacted]";

/// Bodies larger than this are shown in part (the API has them whole).
const BODY_SHOWN: usize = 512 * 1024;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    source: Option<String>,
    event: Option<String>,
    status: Option<String>,
    since: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// The inbox, newest first, with what each delivery caused.
pub async fn list(
    Signed(session): Signed,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let status = choice(
        "status",
        &query.status,
        Status::parse,
        "pending, processed, ignored, failed",
    )?;
    let since = choice("since", &query.since, since_ms, "1h, 24h, 7d, 30d")?;
    let before = number("before", query.before.as_deref())?;
    let limit = page_size(query.limit.as_deref())?;
    let filter = Filter {
        source: text(&query.source),
        status,
        event: text(&query.event),
        recovered: None,
        since: since.map(|ago| now_ms() - ago),
    };
    let records = deliveries::list(&state.db, filter, before, limit).await?;
    let ids: Vec<i64> = records.iter().map(|d| d.id).collect();
    let headers = deliveries::header_names(&state.db, &ids).await?;
    let caused = releases::of_deliveries(&state.db, &ids).await?;
    let job_counts = jobs::count_by_delivery(&state.db, &ids).await?;
    let rows: Vec<DeliveryRow<'_>> = records
        .iter()
        .map(|record| DeliveryRow {
            record,
            verified: verified_by(
                &state,
                &record.source,
                headers
                    .get(&record.id)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            ),
            releases: caused
                .iter()
                .filter(|r| r.delivery_row == record.id)
                .collect(),
            jobs: job_counts.get(&record.id).copied().unwrap_or(0),
        })
        .collect();
    let filters = DeliveryFilters {
        source: text(&query.source),
        event: text(&query.event),
        status: status.map(Status::as_str),
        since: text(&query.since),
    };
    let mut sources: Vec<&str> = state.sources.keys().map(String::as_str).collect();
    sources.sort_unstable();
    let keep = [
        ("source", filters.source),
        ("event", filters.event),
        ("status", filters.status),
        ("since", filters.since),
        ("limit", query.limit.as_deref().filter(|l| !l.is_empty())),
    ];
    let pages = pager("/", &keep, &ids, limit, before.is_some());
    let chrome = Chrome {
        caller: &session.caller.id,
        csrf: session.csrf(),
        tab: Tab::Deliveries,
    };
    Ok(html(views::deliveries_page(
        chrome, &sources, &filters, &rows, &pages,
    )))
}

#[derive(Debug, Deserialize)]
pub struct DetailQuery {
    replayed: Option<String>,
}

/// One delivery: headers (credentials redacted), body, history, effects.
pub async fn detail(
    Signed(session): Signed,
    id: web::Path<String>,
    query: web::Query<DetailQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let id = path_id(&id, "delivery")?;
    let delivery = deliveries::get(&state.db, id)
        .await?
        .ok_or_else(|| Refusal::not_found(format!("there is no delivery {id}")))?;
    let history = deliveries::history(&state.db, id).await?;
    let caused = releases::of_deliveries(&state.db, &[id]).await?;
    let caused_jobs = jobs::list(&state.db, None, Some(id), None, 200).await?;
    let names: Vec<String> = delivery.headers.keys().cloned().collect();
    let headers = redacted(&delivery.headers);
    let (body, body_truncated) = body_view(
        delivery.record.content_type.as_deref(),
        delivery.body.as_deref().map_err(String::as_str),
    );
    let view = DeliveryDetailView {
        record: &delivery.record,
        verified: verified_by(&state, &delivery.record.source, &names),
        headers,
        body,
        body_truncated,
        history: &history,
        releases: caused.iter().collect(),
        jobs: &caused_jobs,
    };
    let chrome = Chrome {
        caller: &session.caller.id,
        csrf: session.csrf(),
        tab: Tab::Deliveries,
    };
    let notice = query
        .replayed
        .is_some()
        .then_some("Replay queued: the worker processes the stored body again in a moment.");
    Ok(html(views::delivery_page(chrome, &view, notice)))
}

/// Queues the delivery again, then shows it.
pub async fn replay(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    signed.check(&form)?;
    let id = path_id(&id, "delivery")?;
    deliveries::replay(&state.db, id, now_ms(), &signed.0.caller.id)
        .await
        .map_err(|error| match error {
            ReplayError::NotFound(_) => Refusal::not_found(error.to_string()),
            ReplayError::InProgress(_) => {
                Refusal::page(StatusCode::CONFLICT, "Not replayed", error.to_string())
            }
            ReplayError::Store(error) => error.into(),
        })?;
    tracing::info!(delivery.row = id, caller = %signed.0.caller.id, "delivery replayed from the dashboard");
    state.wake_worker.notify_one();
    Ok(see_other(&format!("/deliveries/{id}?replayed=1")))
}

/// `1h`, `24h`, `7d`, `30d` in milliseconds.
fn since_ms(choice: &str) -> Option<i64> {
    const HOUR: i64 = 3_600_000;
    match choice {
        "1h" => Some(HOUR),
        "24h" => Some(24 * HOUR),
        "7d" => Some(7 * 24 * HOUR),
        "30d" => Some(30 * 24 * HOUR),
        _ => None,
    }
}

/// How a stored delivery was verified (every stored one passed): by its
/// source's kind and the headers it was stored with.
fn verified_by(state: &AppState, source: &str, header_names: &[String]) -> String {
    match state.sources.get(source) {
        Some(entry) => entry.source.kind.verified_by(header_names).to_owned(),
        None => format!("verified (source {source:?} is no longer configured)"),
    }
}

fn redacted(headers: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_credential_header(name) {
                REDACTED
            } else {
                value.as_str()
            };
            (name.as_str(), shown)
        })
        .collect()
}

/// The body as the page shows it: JSON pretty-printed (also a form's
/// `payload` field, as GitHub sends it), else text, else base64; at most
/// [`BODY_SHOWN`] bytes.
fn body_view(content_type: Option<&str>, body: Result<&[u8], &str>) -> (BodyView, bool) {
    let body = match body {
        Ok(body) => body,
        Err(error) => return (BodyView::Unreadable(error.to_owned()), false),
    };
    let truncated = body.len() > BODY_SHOWN;
    if !truncated {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            return (BodyView::Json { text, note: None }, false);
        }
        let form = content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form {
            let payload = form_urlencoded::parse(body).find(|(name, _)| name == "payload");
            if let Some(value) = payload
                .and_then(|(_, payload)| serde_json::from_str::<serde_json::Value>(&payload).ok())
            {
                let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                let note = Some("Sent form-encoded; the payload field is shown.".to_owned());
                return (BodyView::Json { text, note }, false);
            }
        }
    }
    let shown = &body[..body.len().min(BODY_SHOWN)];
    let view = match std::str::from_utf8(shown) {
        Ok(text) => BodyView::Text(text.to_owned()),
        // A cut may split a character: show what decodes.
        Err(e) if truncated && e.error_len().is_none() => {
            BodyView::Text(String::from_utf8_lossy(&shown[..e.valid_up_to()]).into_owned())
        }
        Err(_) => BodyView::Binary {
            bytes: body.len(),
            base64: base64::engine::general_purpose::STANDARD.encode(shown),
        },
    };
    (view, truncated)
}

/// Links to the next page (ids below the last shown) and back to the
/// first, keeping the filters.
pub(super) fn pager(
    path: &str,
    keep: &[(&str, Option<&str>)],
    ids: &[i64],
    limit: i64,
    paged: bool,
) -> Pager {
    let link = |before: Option<i64>| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in keep {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    };
    let full = usize::try_from(limit).is_ok_and(|limit| ids.len() == limit);
    Pager {
        next: ids.last().filter(|_| full).map(|last| link(Some(*last))),
        first: paged.then(|| link(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_shown_as_pretty_json_or_form_payload_or_text_or_base64() {
        let (json, _) = body_view(Some("application/json"), Ok(br#"{"a":[1]}"#));
        assert!(
            matches!(json, BodyView::Json { ref text, note: None } if text == "{\n  \"a\": [\n    1\n  ]\n}"),
            "{json:?}"
        );
        let (form, _) = body_view(
            Some("application/x-www-form-urlencoded"),
            Ok(b"payload=%7B%22zen%22%3A%22x%22%7D"),
        );
        assert!(
            matches!(form, BodyView::Json { ref text, note: Some(_) } if text.contains("\"zen\": \"x\"")),
            "{form:?}"
        );
        let (text, _) = body_view(None, Ok(b"plain <b>"));
        assert!(matches!(text, BodyView::Text(ref t) if t == "plain <b>"));
        let (binary, _) = body_view(None, Ok(&[0xff, 0xfe]));
        assert!(matches!(binary, BodyView::Binary { bytes: 2, ref base64 } if base64 == "//4="));
        let (big, truncated) = body_view(None, Ok(&vec![b'a'; BODY_SHOWN + 1]));
        assert!(truncated);
        assert!(matches!(big, BodyView::Text(ref t) if t.len() == BODY_SHOWN));
    }

    #[test]
    fn pages_link_onwards_only_when_full_and_keep_the_filters() {
        let keep = [("source", Some("github")), ("status", None)];
        let pages = pager("/", &keep, &[9, 8], 2, false);
        assert_eq!(pages.next.as_deref(), Some("/?source=github&before=8"));
        assert_eq!(pages.first, None);
        let last = pager("/", &keep, &[7], 2, true);
        assert_eq!(last.next, None);
        assert_eq!(last.first.as_deref(), Some("/?source=github"));
    }
}
