//! The dashboard's HTML, from plain data: no I/O, no decisions beyond how
//! to show a value. maud escapes every interpolation, so a payload that
//! holds `<script>` is shown as text; nothing here uses `PreEscaped`.

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::integrations::Integration;
use crate::probe::{Step, StepStatus};
use crate::store::deliveries::{DeliveryRecord, HistoryEntry};
use crate::store::deployments::Deployment;
use crate::store::jobs::{JobRecord, JobState};
use crate::store::releases::{CausedRelease, Release};

/// The page a view belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Deliveries,
    Releases,
    Jobs,
    Integrations,
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone, Copy)]
pub struct Chrome<'a> {
    pub caller: &'a str,
    pub csrf: &'a str,
    pub tab: Tab,
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · portcall" }
                link rel="stylesheet" href="/ui/style.css";
                script src="/ui/app.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation, then `content`.
fn layout(chrome: Chrome<'_>, title: &str, notice: Option<&str>, content: Markup) -> Markup {
    let tab = |tab: Tab, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(chrome.tab == tab).then_some("page")] { (label) }
        }
    };
    document(
        title,
        html! {
            header {
                nav #nav {
                    span.brand { "portcall" }
                    (tab(Tab::Deliveries, "/", "Deliveries"))
                    (tab(Tab::Releases, "/releases", "Releases"))
                    (tab(Tab::Jobs, "/jobs", "Jobs"))
                    (tab(Tab::Integrations, "/integrations", "Integrations"))
                    form #logout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(chrome.csrf);
                        span.caller { (chrome.caller) }
                        button type="submit" { "Sign out" }
                    }
                }
            }
            main {
                h1 { (title) }
                @if let Some(notice) = notice {
                    p.notice #notice role="status" { (notice) }
                }
                (content)
            }
        },
    )
}

/// An error page (signed in or not).
pub fn error_page(title: &str, message: &str) -> Markup {
    document(
        title,
        html! {
            main {
                h1 { (title) }
                p #error { (message) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}

/// The sign-in page.
pub fn login_page(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    document(
        "Sign in",
        html! {
            main.narrow {
                h1 { "Sign in to portcall" }
                @if let Some(error) = error {
                    p.error #login-error role="alert" { (error) }
                }
                form #login method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Admin token, or a service-account token with scope admin" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button #login-submit type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A time, in UTC as sent; `app.js` shows it in the viewer's zone.
fn time(ms: i64) -> Markup {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(at) => html! {
            time datetime=(at.to_rfc3339_opts(SecondsFormat::Millis, true)) {
                (at.format("%Y-%m-%d %H:%M:%S UTC"))
            }
        },
        None => html! { "—" },
    }
}

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// The first `max` characters of `text`, the whole in a tooltip when cut.
fn clipped(text: &str, max: usize) -> Markup {
    if text.chars().count() <= max {
        html! { (text) }
    } else {
        let cut: String = text.chars().take(max).collect();
        html! { span title=(text) { (cut) "…" } }
    }
}

/// Links to the next page and back to the first, by keyset cursor.
#[derive(Debug, Default)]
pub struct Pager {
    pub next: Option<String>,
    pub first: Option<String>,
}

fn pager(pager: &Pager) -> Markup {
    html! {
        @if pager.next.is_some() || pager.first.is_some() {
            nav.pager aria-label="pages" {
                @if let Some(first) = &pager.first {
                    a #first-page href=(first) { "« Newest" }
                }
                @if let Some(next) = &pager.next {
                    a #next-page href=(next) { "Older »" }
                }
            }
        }
    }
}

fn select(
    name: &str,
    label: &str,
    any: &str,
    options: &[(&str, &str)],
    chosen: Option<&str>,
) -> Markup {
    html! {
        label {
            span { (label) }
            select name=(name) {
                option value="" { (any) }
                @for (value, text) in options {
                    option value=(value) selected[chosen == Some(*value)] { (text) }
                }
            }
        }
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

// ---------------------------------------------------------------------------
// Deliveries

/// The filters of the deliveries page, as the viewer set them.
#[derive(Debug, Default)]
pub struct DeliveryFilters<'a> {
    pub source: Option<&'a str>,
    pub event: Option<&'a str>,
    pub status: Option<&'a str>,
    pub since: Option<&'a str>,
}

/// The choices of the time filter: value, label.
pub const SINCE: &[(&str, &str)] = &[
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
];

/// One delivery row with what it caused.
#[derive(Debug)]
pub struct DeliveryRow<'a> {
    pub record: &'a DeliveryRecord,
    /// How it was verified: the credential headers it came with.
    pub verified: String,
    pub releases: Vec<&'a CausedRelease>,
    pub jobs: i64,
}

pub fn deliveries_page(
    chrome: Chrome<'_>,
    sources: &[&str],
    filters: &DeliveryFilters<'_>,
    rows: &[DeliveryRow<'_>],
    pages: &Pager,
) -> Markup {
    let source_options: Vec<(&str, &str)> = sources.iter().map(|s| (*s, *s)).collect();
    let statuses = [
        ("pending", "pending"),
        ("processed", "processed"),
        ("ignored", "ignored"),
        ("failed", "failed"),
    ];
    let content = html! {
        p.lead { "Every webhook portcall verified and stored, newest first. A request that fails verification is answered 401 and not stored; see the verification metrics." }
        form #filters .filters method="get" action="/" {
            (select("source", "Source", "any source", &source_options, filters.source))
            label {
                span { "Event" }
                input type="text" name="event" value=[filters.event] placeholder="push, image_pushed…";
            }
            (select("status", "Status", "any status", &statuses, filters.status))
            (select("since", "Received", "any time", SINCE, filters.since))
            button #filter-submit type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p #empty { "No deliveries match." }
        } @else {
            div.scroll {
                table #deliveries {
                    thead { tr {
                        th { "Received" } th { "Source" } th { "Event" } th { "Delivery" }
                        th { "Verified" } th { "Status" } th { "Outcome" } th { "Caused" }
                    } }
                    tbody {
                        @for row in rows {
                            (delivery_row(row))
                        }
                    }
                }
            }
        }
        (pager(pages))
    };
    layout(chrome, "Deliveries", None, content)
}

fn delivery_row(row: &DeliveryRow<'_>) -> Markup {
    let d = row.record;
    let status = d.status.as_str();
    html! {
        tr.delivery data-id=(d.id) data-status=(status) {
            td.received { (time(d.received_at)) }
            td.source { (d.source) }
            td.event {
                (d.event)
                @if let Some(kind) = d.event_kind.as_deref().filter(|k| *k != d.event) {
                    br; small { (kind) }
                }
            }
            td.delivery-id {
                a.delivery-link href={ "/deliveries/" (d.id) } { (clipped(&d.delivery_id, 40)) }
            }
            td.verified { span.ok { "✓" } " " (row.verified) }
            td.status { (badge(status, status)) }
            td.outcome {
                @if let Some(outcome) = &d.outcome {
                    (clipped(outcome, 140))
                } @else if let Some(error) = &d.last_error {
                    span.error-text { (clipped(error, 140)) }
                }
            }
            td.caused { (caused_links(d.id, &row.releases, row.jobs)) }
        }
    }
}

fn release_link(release: &CausedRelease) -> Markup {
    html! {
        a.release-link href={ "/releases?component=" (urlencoded(&release.component)) "#release-" (release.id) } {
            (release.name)
        }
    }
}

fn caused_links(delivery: i64, releases: &[&CausedRelease], jobs: i64) -> Markup {
    html! {
        @for release in releases {
            (release_link(release)) " "
        }
        @if jobs > 0 {
            a.jobs-link href={ "/jobs?delivery=" (delivery) } {
                (jobs) @if jobs == 1 { " job" } @else { " jobs" }
            }
        }
        @if releases.is_empty() && jobs == 0 { span.muted { "—" } }
    }
}

fn urlencoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// What the delivery detail page shows of a stored body.
#[derive(Debug)]
pub enum BodyView {
    /// Pretty-printed JSON; `note` says where it came from when not the
    /// raw body (a form's `payload` field).
    Json {
        text: String,
        note: Option<String>,
    },
    Text(String),
    /// Not UTF-8: its size and base64.
    Binary {
        bytes: usize,
        base64: String,
    },
    Unreadable(String),
}

/// Everything the delivery detail page shows.
#[derive(Debug)]
pub struct DeliveryDetailView<'a> {
    pub record: &'a DeliveryRecord,
    pub verified: String,
    /// Header name and value, credentials already redacted.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: BodyView,
    /// Shown only in part when very large.
    pub body_truncated: bool,
    pub history: &'a [HistoryEntry],
    pub releases: Vec<&'a CausedRelease>,
    pub jobs: &'a [JobRecord],
}

pub fn delivery_page(
    chrome: Chrome<'_>,
    view: &DeliveryDetailView<'_>,
    notice: Option<&str>,
) -> Markup {
    let d = view.record;
    let title = format!("Delivery {}", d.delivery_id);
    let content = html! {
        dl #summary .summary {
            dt { "Source" } dd { (d.source) }
            dt { "Event" } dd {
                (d.event)
                @if let Some(kind) = &d.event_kind { " (" (kind) ")" }
            }
            dt { "Verified" } dd { span.ok { "✓" } " " (view.verified) }
            dt { "Status" } dd { (badge(d.status.as_str(), d.status.as_str())) }
            dt { "Attempts" } dd { (d.attempts) }
            dt { "Received" } dd { (time(d.received_at)) }
            @if let Some(at) = d.processed_at {
                dt { "Processed" } dd { (time(at)) }
            }
            @if let Some(outcome) = &d.outcome {
                dt { "Outcome" } dd { (outcome) }
            }
            @if let Some(error) = &d.last_error {
                dt { "Last error" } dd.error-text { (error) }
            }
            @if let Some(owner) = &d.lease_owner {
                dt { "Held by" } dd { (owner) }
            }
            dt { "Row" } dd { (d.id) }
        }
        form #replay .inline method="post" action={ "/deliveries/" (d.id) "/replay" } {
            (csrf_field(chrome.csrf))
            button #replay-submit type="submit" { "Replay" }
            span.muted { " Processes the stored body again; every effect is idempotent, so nothing is posted twice." }
        }
        section #caused {
            h2 { "What it caused" }
            @if view.releases.is_empty() && view.jobs.is_empty() {
                p.muted { "No release and no outbound job." }
            }
            @if !view.releases.is_empty() {
                p { "Releases: " @for release in &view.releases { (release_link(release)) " " } }
            }
            @if !view.jobs.is_empty() {
                (jobs_table(view.jobs, chrome.csrf))
            }
        }
        section {
            h2 { "Processing history" }
            ol #history .history {
                li.received { (time(d.received_at)) " " (badge("received", "received")) " verified and stored" }
                @for entry in view.history {
                    li.attempt {
                        (time(entry.at)) " " (badge(&entry.action, &entry.action))
                        @if let Some(detail) = &entry.detail { " " (detail) }
                        @if let Some(actor) = &entry.actor { " " span.muted { "by " (actor) } }
                    }
                }
            }
        }
        section {
            h2 { "Headers" }
            div.scroll {
                table #headers .headers {
                    tbody {
                        @for (name, value) in &view.headers {
                            tr { th { (name) } td { (value) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Body" }
            @match &view.body {
                BodyView::Json { text, note } => {
                    @if let Some(note) = note { p.muted { (note) } }
                    pre #body { (text) }
                }
                BodyView::Text(text) => { pre #body { (text) } }
                BodyView::Binary { bytes, base64 } => {
                    p.muted { "Not text: " (bytes) " bytes, shown as base64." }
                    pre #body { (base64) }
                }
                BodyView::Unreadable(error) => { p #body .error-text { "The stored body cannot be read: " (error) } }
            }
            @if view.body_truncated { p.muted { "Only the beginning of a large body is shown; GET /api/v1/deliveries/" (d.id) " has it whole." } }
        }
    };
    layout(chrome, &title, notice, content)
}

// ---------------------------------------------------------------------------
// Jobs

pub fn jobs_page(
    chrome: Chrome<'_>,
    state: Option<&str>,
    delivery: Option<i64>,
    jobs: &[JobRecord],
    pages: &Pager,
    notice: Option<&str>,
) -> Markup {
    let states = [
        ("pending", "pending"),
        ("done", "done"),
        ("dead", "dead"),
        ("skipped", "skipped"),
    ];
    let content = html! {
        p.lead { "The outbox: every call to a provider or registry portcall decided to make. Dead jobs failed for good; Retry queues one again." }
        form #filters .filters method="get" action="/jobs" {
            (select("state", "State", "any state", &states, state))
            @if let Some(delivery) = delivery {
                input type="hidden" name="delivery" value=(delivery);
            }
            button #filter-submit type="submit" { "Filter" }
        }
        @if let Some(delivery) = delivery {
            p.muted { "Only the jobs delivery row " a href={ "/deliveries/" (delivery) } { (delivery) } " caused. " a href="/jobs" { "Show all" } }
        }
        @if jobs.is_empty() {
            p #empty { "No jobs match." }
        } @else {
            (jobs_table(jobs, chrome.csrf))
        }
        (pager(pages))
    };
    layout(chrome, "Jobs", notice, content)
}

fn jobs_table(jobs: &[JobRecord], csrf: &str) -> Markup {
    html! {
        div.scroll {
            table #jobs {
                thead { tr {
                    th { "Job" } th { "Kind" } th { "State" } th { "Repository" } th { "Attempts" }
                    th { "Updated" } th { "Result or last error" } th { "" }
                } }
                tbody {
                    @for job in jobs {
                        tr.job data-id=(job.id) data-state=(job.state.as_str()) {
                            td { (job.id) }
                            td.kind {
                                details {
                                    summary { (job.kind) }
                                    pre.payload { (serde_json::to_string_pretty(&job.payload).unwrap_or_default()) }
                                }
                            }
                            td.state { (badge(job.state.as_str(), job.state.as_str())) }
                            td.repository { (job.repository.as_deref().unwrap_or("—")) }
                            td.attempts { (job.attempts) }
                            td.updated { (time(job.updated_at)) }
                            td.last-error {
                                @if let Some(error) = &job.last_error {
                                    span.error-text { (clipped(error, 300)) }
                                } @else if let Some(result) = &job.result {
                                    (clipped(result, 300))
                                }
                            }
                            td.actions {
                                @if job.state == JobState::Dead {
                                    form.retry method="post" action={ "/jobs/" (job.id) "/retry" } {
                                        (csrf_field(csrf))
                                        button.retry-submit type="submit" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Releases

/// One release with its links.
#[derive(Debug)]
pub struct ReleaseRow<'a> {
    pub release: &'a Release,
    /// The commit's page on its provider, when known.
    pub commit_url: Option<String>,
    pub deployments: &'a [Deployment],
}

pub fn releases_page(
    chrome: Chrome<'_>,
    components: &[&str],
    component: Option<&str>,
    rows: &[ReleaseRow<'_>],
    pages: &Pager,
) -> Markup {
    let options: Vec<(&str, &str)> = components.iter().map(|c| (*c, *c)).collect();
    let content = html! {
        p.lead { "Images pushed with a release tag, per component, and where they were deployed." }
        form #filters .filters method="get" action="/releases" {
            (select("component", "Component", "every component", &options, component))
            button #filter-submit type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p #empty { "No releases yet." }
        } @else {
            div.scroll {
                table #releases {
                    thead { tr {
                        th { "Release" } th { "Component" } th { "Tag" } th { "Digest" }
                        th { "Commit" } th { "Created" } th { "Deployments" }
                    } }
                    tbody {
                        @for row in rows { (release_row(row)) }
                    }
                }
            }
        }
        (pager(pages))
    };
    layout(chrome, "Releases", None, content)
}

fn release_row(row: &ReleaseRow<'_>) -> Markup {
    let r = row.release;
    let short_digest: String = r.digest.chars().take(19).collect();
    html! {
        tr.release id={ "release-" (r.id) } data-id=(r.id) {
            td.name { (r.name) }
            td.component { (r.component) }
            td.tag { code { (r.tag) } }
            td.digest { code title=(r.digest) { (short_digest) "…" } }
            td.commit {
                @match (&r.commit_sha, &row.commit_url) {
                    (Some(sha), Some(url)) => { a.commit-link href=(url) { code { (sha.chars().take(12).collect::<String>()) } } }
                    (Some(sha), None) => { code { (sha.chars().take(12).collect::<String>()) } }
                    (None, _) => { span.muted { "unknown" } }
                }
                br; small.muted { (r.repository) }
            }
            td.created { (time(r.created_at)) }
            td.deployments {
                @if row.deployments.is_empty() { span.muted { "—" } }
                ul.plain {
                    @for d in row.deployments {
                        li {
                            (d.environment) " " (badge(&d.state, &d.state)) " " (time(d.reported_at))
                            @if let Some(url) = d.url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
                                " " a href=(url) rel="noopener noreferrer" { "open" }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Integrations

/// A test's result, shown above the list.
#[derive(Debug)]
pub struct TestResult<'a> {
    pub name: &'a str,
    pub health: &'a str,
    pub steps: [(&'static str, &'static str, &'a Step); 3],
}

pub fn integrations_page(
    chrome: Chrome<'_>,
    integrations: &[Integration],
    test: Option<&TestResult<'_>>,
) -> Markup {
    let content = html! {
        p.lead { "Every configured source, provider and registry, with its health from the last check. Test runs a full check now: connectivity, authentication, and a read that needs the configured permissions." }
        @if let Some(test) = test {
            section #test-result .test-result {
                h2 { "Test of " (test.name) ": " (badge(test.health, test.health)) }
                ol.plain {
                    @for (id, label, step) in &test.steps {
                        li id=(id) {
                            strong { (label) } " "
                            span class={ "step-status badge " (step_status(step.status)) } { (step_status(step.status)) }
                            " " (step.message)
                            @if let Some(ms) = step.latency_ms { " " span.muted { "(" (ms) " ms)" } }
                        }
                    }
                }
            }
        }
        div.scroll {
            table #integrations {
                thead { tr {
                    th { "Name" } th { "Kind" } th { "Health" } th { "Last check" } th { "Message" } th { "" }
                } }
                tbody {
                    @for i in integrations {
                        tr.integration data-name=(i.name) {
                            td.name { (i.name) }
                            td.kind { (i.kind.as_str()) }
                            td.health { (badge(i.health.as_str(), i.health.as_str())) }
                            td.checked {
                                @match i.checked_at { Some(at) => { (time(at)) } None => { span.muted { "never" } } }
                            }
                            td.message { (i.message) }
                            td.actions {
                                form.test method="post" action={ "/integrations/" (urlencoded(&i.name)) "/test" } {
                                    (csrf_field(chrome.csrf))
                                    button.test-submit type="submit" { "Test" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(chrome, "Integrations", None, content)
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Ok => "ok",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_is_escaped_everywhere_it_is_shown() {
        let hostile = "<script>alert(1)</script>\"'&";
        let page = error_page(hostile, hostile).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;"),
            "{page}"
        );
        let login = login_page("c", "/\"><script>", Some(hostile)).into_string();
        assert!(!login.contains("<script>"), "{login}");
    }

    #[test]
    fn times_are_sent_in_utc_for_the_browser_to_localise() {
        let t = time(1_764_708_655_123).into_string();
        assert_eq!(
            t,
            r#"<time datetime="2025-12-02T20:50:55.123Z">2025-12-02 20:50:55 UTC</time>"#
        );
    }

    #[test]
    fn long_text_is_clipped_with_the_whole_in_a_tooltip() {
        assert_eq!(clipped("short", 10).into_string(), "short");
        assert_eq!(
            clipped("abcdefghij<", 3).into_string(),
            r#"<span title="abcdefghij&lt;">abc…</span>"#
        );
    }
}
