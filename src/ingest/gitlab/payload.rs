//! Parsing stored GitLab deliveries into events.
//!
//! Dispatch is on the body's `object_kind`, not on `X-Gitlab-Event`: project,
//! group and system hooks all carry it, while a system hook's header is
//! always `System Hook`. The header (or a system hook's `event_name`) only
//! names what was not acted on.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::{
    Event, Provider, PullRequest, PullRequestAction, Push, Repo, RepoSlug, TagPush,
};
use crate::ingest::{check_json_object, commit_sha, from_json, ref_name, ParseError};

/// Parses a GitLab delivery; `event` is the `X-Gitlab-Event` header.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    // Every field of `Head` is optional, and serde reads a struct from an
    // array too: `[]` would pass as an empty head. Refuse non-objects first.
    check_json_object(body, None).map_err(|source| ParseError::Json {
        what: "GitLab webhook",
        source,
    })?;
    let head: Head<'_> = from_json("GitLab webhook", body)?;
    match head.object_kind.as_deref() {
        Some("push") => push(body),
        Some("tag_push") => tag_push(body),
        Some("merge_request") => merge_request(body),
        _ => {
            let kind = head
                .object_kind
                .or(head.event_name)
                .unwrap_or(Cow::Borrowed(event));
            Ok(unknown(&kind, None))
        }
    }
}

// ---------------------------------------------------------------------------
// The payload shapes, holding only what portcall reads.

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    object_kind: Option<Cow<'a, str>>,
    /// Set by system hooks, some of which have no `object_kind`.
    #[serde(borrow, default)]
    event_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Project<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(borrow)]
    path_with_namespace: Cow<'a, str>,
}

/// A push or a tag push: both have the same shape.
#[derive(Deserialize)]
struct PushPayload<'a> {
    #[serde(borrow, rename = "ref")]
    git_ref: Cow<'a, str>,
    #[serde(borrow)]
    before: Cow<'a, str>,
    #[serde(borrow)]
    after: Cow<'a, str>,
    /// The commit the ref now points to; `null` when the ref was deleted.
    #[serde(borrow, default)]
    checkout_sha: Option<Cow<'a, str>>,
    #[serde(default)]
    project_id: Option<u64>,
    #[serde(borrow)]
    project: Project<'a>,
}

#[derive(Deserialize)]
struct MergeRequestHead<'a> {
    #[serde(borrow)]
    object_attributes: &'a RawValue,
}

#[derive(Deserialize)]
struct MergeRequestAction<'a> {
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    /// The previous head, present on an `update` that added commits.
    #[serde(borrow, default)]
    oldrev: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MergeRequestPayload<'a> {
    #[serde(borrow)]
    project: Project<'a>,
    #[serde(borrow)]
    object_attributes: MergeRequestAttributes<'a>,
}

#[derive(Deserialize)]
struct MergeRequestAttributes<'a> {
    iid: u64,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    source_branch: Cow<'a, str>,
    #[serde(borrow)]
    target_branch: Cow<'a, str>,
    #[serde(borrow)]
    last_commit: LastCommit<'a>,
}

#[derive(Deserialize)]
struct LastCommit<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

// ---------------------------------------------------------------------------
// One function per object kind.

fn push(body: &[u8]) -> Result<Event, ParseError> {
    let p: PushPayload<'_> = from_json("GitLab push", body)?;
    let before = commit_sha("before", &p.before)?;
    let after = commit_sha("after", &p.after)?;
    let Some(branch) = p.git_ref.strip_prefix("refs/heads/") else {
        return Ok(unknown("push", Some("to a ref that is not a branch")));
    };
    if after.is_null() || p.checkout_sha.is_none() {
        return Ok(unknown("push", Some("of a deleted branch")));
    }
    Ok(Event::Push(Push {
        repo: repo(p.project_id, &p.project)?,
        branch: ref_name(branch)?,
        before: (!before.is_null()).then_some(before),
        after,
    }))
}

fn tag_push(body: &[u8]) -> Result<Event, ParseError> {
    let p: PushPayload<'_> = from_json("GitLab tag push", body)?;
    let Some(tag) = p.git_ref.strip_prefix("refs/tags/") else {
        return Ok(unknown("tag_push", Some("to a ref that is not a tag")));
    };
    // `after` is the tag object for an annotated tag; `checkout_sha` is the
    // commit, and is null when the tag was deleted.
    let Some(checkout_sha) = p.checkout_sha else {
        return Ok(unknown("tag_push", Some("of a deleted tag")));
    };
    let commit = commit_sha("checkout_sha", &checkout_sha)?;
    if commit.is_null() {
        return Ok(unknown("tag_push", Some("of a deleted tag")));
    }
    Ok(Event::TagPush(TagPush {
        repo: repo(p.project_id, &p.project)?,
        tag: ref_name(tag)?,
        commit,
    }))
}

fn merge_request(body: &[u8]) -> Result<Event, ParseError> {
    let head: MergeRequestHead<'_> = from_json("GitLab merge request", body)?;
    // Every field of `MergeRequestAction` is optional: refuse `[]` here.
    if !head.object_attributes.get().starts_with('{') {
        return Err(ParseError::Invalid(
            "GitLab merge request: object_attributes is not a JSON object".into(),
        ));
    }
    let MergeRequestAction { action, oldrev } = from_json(
        "GitLab merge request",
        head.object_attributes.get().as_bytes(),
    )?;
    let has_new_commits = oldrev.is_some_and(|rev| !rev.is_empty());
    let pr_action = match action.as_deref() {
        Some("open") => PullRequestAction::Opened,
        Some("reopen") => PullRequestAction::Reopened,
        // An update without `oldrev` changed the title, labels, ...: no new code.
        Some("update") if has_new_commits => PullRequestAction::Synchronized,
        Some("close") => PullRequestAction::Closed { merged: false },
        Some("merge") => PullRequestAction::Closed { merged: true },
        other => return Ok(unknown("merge_request", other)),
    };

    let p: MergeRequestPayload<'_> = from_json("GitLab merge request", body)?;
    let mr = p.object_attributes;
    Ok(Event::PullRequest(PullRequest {
        repo: repo(None, &p.project)?,
        action: pr_action,
        number: mr.iid,
        head_sha: commit_sha("object_attributes.last_commit.id", &mr.last_commit.id)?,
        head_ref: mr.source_branch.into_owned(),
        base_ref: mr.target_branch.into_owned(),
        title: mr.title.into_owned(),
        url: mr.url.into_owned(),
    }))
}

// ---------------------------------------------------------------------------
// Helpers shared by the functions above.

/// The project an event happened in. `project_id` (push events) wins over
/// `project.id`; GitLab has no App installations.
fn repo(project_id: Option<u64>, project: &Project<'_>) -> Result<Repo, ParseError> {
    Ok(Repo {
        slug: RepoSlug::new(Provider::Gitlab, &project.path_with_namespace).map_err(|source| {
            ParseError::Field {
                field: "project.path_with_namespace",
                source,
            }
        })?,
        id: project_id.or(project.id),
        installation_id: None,
    })
}

/// `Unknown { what: "gitlab {kind} {detail}" }`. The parts come from the
/// sender, so they are cut to printable ASCII of bounded length before they
/// reach the deliveries table and the logs.
fn unknown(kind: &str, detail: Option<&str>) -> Event {
    Event::unknown("gitlab", kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CommitSha;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/gitlab/",
                $name
            ))
        };
    }

    fn sha(s: &str) -> CommitSha {
        CommitSha::parse(s).unwrap()
    }

    fn repo(path: &str, id: u64) -> Repo {
        Repo {
            slug: RepoSlug::new(Provider::Gitlab, path).unwrap(),
            id: Some(id),
            installation_id: None,
        }
    }

    fn unknown(what: &str) -> Event {
        Event::Unknown { what: what.into() }
    }

    /// The same JSON with one substring replaced, for variants of a fixture.
    fn edited(fixture: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(fixture).unwrap();
        assert!(text.contains(from), "{from:?} not in fixture");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn a_push_hook_becomes_a_push() {
        assert_eq!(
            parse("Push Hook", fixture!("push.json")).unwrap(),
            Event::Push(Push {
                repo: repo("mike/diaspora", 15),
                branch: "master".into(),
                before: Some(sha("95790bf891e76fee5e1747ab589903a6a1f80f22")),
                after: sha("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
            })
        );
    }

    #[test]
    fn a_push_creating_a_branch_has_no_before() {
        let body = edited(
            fixture!("push.json"),
            "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "0000000000000000000000000000000000000000",
        );
        let Event::Push(push) = parse("Push Hook", &body).unwrap() else {
            panic!("not a push");
        };
        assert_eq!(push.before, None);
    }

    #[test]
    fn a_system_hook_push_is_dispatched_on_the_body() {
        let Event::Push(push) = parse("System Hook", fixture!("push.json")).unwrap() else {
            panic!("not a push");
        };
        assert_eq!(push.repo, repo("mike/diaspora", 15));
    }

    #[test]
    fn a_deleted_branch_is_not_acted_on() {
        let body = edited(
            fixture!("push.json"),
            r#""after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#,
            r#""after": "0000000000000000000000000000000000000000""#,
        );
        let body = edited(
            &body,
            r#""checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#,
            r#""checkout_sha": null"#,
        );
        assert_eq!(
            parse("Push Hook", &body).unwrap(),
            unknown("gitlab push of a deleted branch")
        );
    }

    #[test]
    fn a_tag_push_names_the_checked_out_commit() {
        assert_eq!(
            parse("Tag Push Hook", fixture!("tag_push.json")).unwrap(),
            Event::TagPush(TagPush {
                repo: repo("jsmith/example", 1),
                tag: "v1.0.0".into(),
                commit: sha("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"),
            })
        );
    }

    #[test]
    fn an_annotated_tag_push_names_the_commit_not_the_tag_object() {
        let body = edited(
            fixture!("tag_push.json"),
            r#""after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7""#,
            r#""after": "a8f5b3e2c6d94f0b7e1c2d3a4b5c6d7e8f901234""#,
        );
        let Event::TagPush(tag) = parse("Tag Push Hook", &body).unwrap() else {
            panic!("not a tag push");
        };
        assert_eq!(tag.commit, sha("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"));
    }

    #[test]
    fn a_deleted_tag_is_not_acted_on() {
        let body = edited(
            fixture!("tag_push.json"),
            r#""checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7""#,
            r#""checkout_sha": null"#,
        );
        assert_eq!(
            parse("Tag Push Hook", &body).unwrap(),
            unknown("gitlab tag_push of a deleted tag")
        );
    }

    fn merge_request_1(action: PullRequestAction, head_sha: &str) -> Event {
        Event::PullRequest(PullRequest {
            repo: repo("gitlabhq/gitlab-test", 1),
            action,
            number: 1,
            head_sha: sha(head_sha),
            head_ref: "ms-viewport".into(),
            base_ref: "master".into(),
            title: "MS-Viewport".into(),
            url: "http://example.com/diaspora/merge_requests/1".into(),
        })
    }

    #[test]
    fn an_opened_merge_request_is_an_opened_pull_request() {
        assert_eq!(
            parse("Merge Request Hook", fixture!("merge_request.open.json")).unwrap(),
            merge_request_1(
                PullRequestAction::Opened,
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
            )
        );
    }

    #[test]
    fn an_update_with_new_commits_is_synchronized() {
        assert_eq!(
            parse("Merge Request Hook", fixture!("merge_request.update.json")).unwrap(),
            merge_request_1(
                PullRequestAction::Synchronized,
                "7c2e6a5b2f1b0c9e8d4a3f6b5c4d3e2f1a0b9c8d"
            )
        );
    }

    #[test]
    fn an_update_without_new_commits_is_not_acted_on() {
        let body = edited(
            fixture!("merge_request.update.json"),
            r#""oldrev": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7","#,
            "",
        );
        assert_eq!(
            parse("Merge Request Hook", &body).unwrap(),
            unknown("gitlab merge_request update")
        );
    }

    #[test]
    fn a_merged_merge_request_is_closed_and_merged() {
        assert_eq!(
            parse("Merge Request Hook", fixture!("merge_request.merge.json")).unwrap(),
            merge_request_1(
                PullRequestAction::Closed { merged: true },
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
            )
        );
    }

    #[test]
    fn closed_and_reopened_merge_requests_are_mapped() {
        for (name, action) in [
            ("close", PullRequestAction::Closed { merged: false }),
            ("reopen", PullRequestAction::Reopened),
        ] {
            let body = edited(
                fixture!("merge_request.open.json"),
                r#""action": "open""#,
                &format!(r#""action": "{name}""#),
            );
            assert_eq!(
                parse("Merge Request Hook", &body).unwrap(),
                merge_request_1(action, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
                "{name}"
            );
        }
    }

    #[test]
    fn other_merge_request_actions_are_not_acted_on_even_when_incomplete() {
        let body = edited(
            fixture!("merge_request.open.json"),
            r#""action": "open""#,
            r#""action": "approved""#,
        );
        assert_eq!(
            parse("Merge Request Hook", &body).unwrap(),
            unknown("gitlab merge_request approved")
        );
        assert_eq!(
            parse(
                "Merge Request Hook",
                br#"{"object_kind":"merge_request","object_attributes":{}}"#
            )
            .unwrap(),
            unknown("gitlab merge_request")
        );
    }

    #[test]
    fn other_kinds_are_named_by_object_kind_then_event_name_then_header() {
        assert_eq!(
            parse("Pipeline Hook", br#"{"object_kind":"pipeline"}"#).unwrap(),
            unknown("gitlab pipeline")
        );
        assert_eq!(
            parse("System Hook", br#"{"event_name":"repository_update"}"#).unwrap(),
            unknown("gitlab repository_update")
        );
        assert_eq!(
            parse("Job Hook", b"{}").unwrap(),
            unknown("gitlab Job Hook")
        );
    }

    #[test]
    fn bad_payloads_are_errors_never_panics() {
        let push = fixture!("push.json");
        let tag = fixture!("tag_push.json");
        let mr = fixture!("merge_request.open.json");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated push", push[..push.len() / 2].to_vec()),
            ("empty body", Vec::new()),
            ("an array", b"[]".to_vec()),
            ("null", b"null".to_vec()),
            ("a string", b"\"push\"".to_vec()),
            ("object_kind a number", br#"{"object_kind":1}"#.to_vec()),
            ("push without fields", br#"{"object_kind":"push"}"#.to_vec()),
            ("bad before", edited(push, "95790bf891e76fee5e1747ab589903a6a1f80f22", "95790bf")),
            ("after null", edited(push, r#""after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#, r#""after": null"#)),
            ("bad project path", edited(push, r#""path_with_namespace":"mike/diaspora""#, r#""path_with_namespace":"diaspora""#)),
            ("project id a string", edited(push, r#""project_id": 15"#, r#""project_id": "15""#)),
            ("no project", br#"{"object_kind":"push","ref":"refs/heads/a","before":"0000000000000000000000000000000000000000","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}"#.to_vec()),
            ("empty branch", edited(push, "refs/heads/master", "refs/heads/")),
            ("bad checkout_sha", edited(tag, r#""checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7""#, r#""checkout_sha": "v1.0.0""#)),
            ("checkout_sha a number", edited(tag, r#""checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7""#, r#""checkout_sha": 1"#)),
            ("truncated tag push", tag[..tag.len() - 3].to_vec()),
            ("mr without attributes", br#"{"object_kind":"merge_request"}"#.to_vec()),
            ("mr attributes an array", br#"{"object_kind":"merge_request","object_attributes":[]}"#.to_vec()),
            ("mr bad last commit", edited(mr, r#""id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#, r#""id": "da15608""#)),
            ("mr iid negative", edited(mr, r#""iid": 1"#, r#""iid": -1"#)),
            ("mr without last commit", br#"{"object_kind":"merge_request","project":{"id":1,"path_with_namespace":"a/b"},"object_attributes":{"action":"open","iid":1,"title":"t","url":"u","source_branch":"s","target_branch":"t"}}"#.to_vec()),
            ("mr title null", edited(mr, r#""title": "MS-Viewport""#, r#""title": null"#)),
            ("deep nesting where a string belongs", format!("{{\"object_kind\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ];
        for (name, body) in cases {
            assert!(parse("Push Hook", &body).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn errors_name_the_field_that_was_wrong() {
        let body = edited(
            fixture!("merge_request.open.json"),
            r#""id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#,
            r#""id": "da15608""#,
        );
        assert!(matches!(
            parse("Merge Request Hook", &body),
            Err(ParseError::Field {
                field: "object_attributes.last_commit.id",
                ..
            })
        ));
    }
}
