//! Parsing stored GitHub deliveries into events.
//!
//! The event name (`X-GitHub-Event`) picks the payload shape; within one
//! shape, `action` picks what happened. Each shape is read twice: first only
//! its `action`, then, for the actions portcall acts on, the few fields it
//! needs. So an action we ignore (`labeled`, `edited`, ...) becomes
//! [`Event::Unknown`] even when the rest of its payload would not parse.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::{
    CheckRunRerequested, Event, Installation, InstallationAction, InvalidId, Provider, PullRequest,
    PullRequestAction, Push, Repo, RepoSlug, TagPush,
};
use crate::ingest::{
    check_json_object, commit_sha, from_json, pushed_image, ref_name, ParseError, PushFields,
};

/// Parses the JSON document of a GitHub delivery (`json` is already taken
/// out of a form-encoded body by the caller).
pub fn parse(event: &str, json: &[u8]) -> Result<Event, ParseError> {
    match event {
        "ping" => {
            // Nothing to read, but a ping is still a JSON object.
            check_json_object(json, None).map_err(|source| ParseError::Json {
                what: "GitHub ping",
                source,
            })?;
            Ok(Event::Ping)
        }
        "push" => push(json),
        "pull_request" => pull_request(json),
        "check_run" => check_run(json),
        "check_suite" => check_suite(json),
        "installation" => installation(json),
        "package" => package("package", json),
        "registry_package" => package("registry_package", json),
        other => Ok(unknown(other, None)),
    }
}

// ---------------------------------------------------------------------------
// The payload shapes, holding only what portcall reads.

#[derive(Deserialize)]
struct ActionOnly<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    id: u64,
    #[serde(borrow)]
    full_name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

#[derive(Deserialize)]
struct PushPayload<'a> {
    #[serde(borrow, rename = "ref")]
    git_ref: Cow<'a, str>,
    #[serde(borrow)]
    before: Cow<'a, str>,
    #[serde(borrow)]
    after: Cow<'a, str>,
    #[serde(default)]
    deleted: bool,
    #[serde(borrow, default)]
    head_commit: Option<HeadCommit<'a>>,
    #[serde(borrow)]
    repository: Repository<'a>,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct HeadCommit<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PullRequestPayload<'a> {
    #[serde(borrow)]
    pull_request: PullRequestBody<'a>,
    #[serde(borrow)]
    repository: Repository<'a>,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct PullRequestBody<'a> {
    number: u64,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    html_url: Cow<'a, str>,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(borrow)]
    head: Branch<'a>,
    #[serde(borrow)]
    base: Branch<'a>,
}

#[derive(Deserialize)]
struct Branch<'a> {
    #[serde(borrow, rename = "ref")]
    git_ref: Cow<'a, str>,
    #[serde(borrow)]
    sha: Cow<'a, str>,
}

#[derive(Deserialize)]
struct CheckRunPayload<'a> {
    #[serde(borrow)]
    check_run: CheckRun<'a>,
    #[serde(borrow)]
    repository: Repository<'a>,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct CheckSuitePayload<'a> {
    #[serde(borrow)]
    check_suite: CheckSuite<'a>,
    #[serde(borrow)]
    repository: Repository<'a>,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct CheckSuite<'a> {
    id: u64,
    #[serde(borrow)]
    head_sha: Cow<'a, str>,
}

#[derive(Deserialize)]
struct CheckRun<'a> {
    id: u64,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    head_sha: Cow<'a, str>,
}

#[derive(Deserialize)]
struct InstallationPayload<'a> {
    #[serde(borrow)]
    installation: InstallationBody<'a>,
}

#[derive(Deserialize)]
struct InstallationBody<'a> {
    id: u64,
    #[serde(borrow)]
    account: Account<'a>,
}

/// A user or organisation has a `login`; an enterprise account has a `slug`.
#[derive(Deserialize)]
struct Account<'a> {
    #[serde(borrow, default)]
    login: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    slug: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------
// One function per event name.

fn push(json: &[u8]) -> Result<Event, ParseError> {
    let p: PushPayload<'_> = from_json("GitHub push", json)?;
    let before = commit_sha("before", &p.before)?;
    let after = commit_sha("after", &p.after)?;
    let deleted = p.deleted || after.is_null();

    if let Some(branch) = p.git_ref.strip_prefix("refs/heads/") {
        if deleted {
            return Ok(unknown("push", Some("of a deleted branch")));
        }
        return Ok(Event::Push(Push {
            repo: repo(&p.repository, p.installation.as_ref())?,
            branch: ref_name(branch)?,
            before: (!before.is_null()).then_some(before),
            after,
        }));
    }
    if let Some(tag) = p.git_ref.strip_prefix("refs/tags/") {
        if deleted {
            return Ok(unknown("push", Some("of a deleted tag")));
        }
        // For an annotated tag `after` is the tag object, not a commit;
        // `head_commit` is the commit the tag points to.
        let commit = match &p.head_commit {
            Some(head) => commit_sha("head_commit.id", &head.id)?,
            None => after,
        };
        return Ok(Event::TagPush(TagPush {
            repo: repo(&p.repository, p.installation.as_ref())?,
            tag: ref_name(tag)?,
            commit,
        }));
    }
    Ok(unknown(
        "push",
        Some("to a ref that is neither branch nor tag"),
    ))
}

fn pull_request(json: &[u8]) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json("GitHub pull_request", json)?;
    let known = match action.as_ref() {
        "opened" => Some(PullRequestAction::Opened),
        "reopened" => Some(PullRequestAction::Reopened),
        "synchronize" => Some(PullRequestAction::Synchronized),
        // `merged` is only known once the payload is read.
        "closed" => Some(PullRequestAction::Closed { merged: false }),
        _ => None,
    };
    let Some(mut pr_action) = known else {
        return Ok(unknown("pull_request", Some(&action)));
    };

    let p: PullRequestPayload<'_> = from_json("GitHub pull_request", json)?;
    let pr = p.pull_request;
    if let PullRequestAction::Closed { merged } = &mut pr_action {
        *merged = pr.merged.unwrap_or(false);
    }
    Ok(Event::PullRequest(PullRequest {
        repo: repo(&p.repository, p.installation.as_ref())?,
        action: pr_action,
        number: pr.number,
        head_sha: commit_sha("pull_request.head.sha", &pr.head.sha)?,
        head_ref: pr.head.git_ref.into_owned(),
        base_ref: pr.base.git_ref.into_owned(),
        title: pr.title.into_owned(),
        url: pr.html_url.into_owned(),
    }))
}

fn check_run(json: &[u8]) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json("GitHub check_run", json)?;
    if action != "rerequested" {
        return Ok(unknown("check_run", Some(&action)));
    }
    let p: CheckRunPayload<'_> = from_json("GitHub check_run", json)?;
    Ok(Event::CheckRunRerequested(CheckRunRerequested {
        repo: repo(&p.repository, p.installation.as_ref())?,
        check_run_id: p.check_run.id,
        name: p.check_run.name.into_owned(),
        head_sha: commit_sha("check_run.head_sha", &p.check_run.head_sha)?,
    }))
}

/// A whole suite re-run: the same event as a check run re-run, with an
/// empty name (every portcall check on that commit is posted again).
fn check_suite(json: &[u8]) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json("GitHub check_suite", json)?;
    if action != "rerequested" {
        return Ok(unknown("check_suite", Some(&action)));
    }
    let p: CheckSuitePayload<'_> = from_json("GitHub check_suite", json)?;
    Ok(Event::CheckRunRerequested(CheckRunRerequested {
        repo: repo(&p.repository, p.installation.as_ref())?,
        check_run_id: p.check_suite.id,
        name: String::new(),
        head_sha: commit_sha("check_suite.head_sha", &p.check_suite.head_sha)?,
    }))
}

fn installation(json: &[u8]) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json("GitHub installation", json)?;
    let action = match action.as_ref() {
        "created" => InstallationAction::Created,
        "deleted" => InstallationAction::Deleted,
        "suspend" => InstallationAction::Suspended,
        "unsuspend" => InstallationAction::Unsuspended,
        "new_permissions_accepted" => InstallationAction::NewPermissionsAccepted,
        _ => return Ok(unknown("installation", Some(&action))),
    };
    let p: InstallationPayload<'_> = from_json("GitHub installation", json)?;
    let account = p
        .installation
        .account
        .login
        .or(p.installation.account.slug)
        .filter(|name| !name.is_empty())
        .ok_or(ParseError::Field {
            field: "installation.account.login",
            source: InvalidId {
                what: "account",
                expected: "a login (user, organisation) or slug (enterprise)",
            },
        })?;
    Ok(Event::Installation(Installation {
        action,
        installation_id: p.installation.id,
        account: account.into_owned(),
    }))
}

/// A package published to GitHub Packages: for a container package, an
/// image pushed to GHCR, `ghcr.io/{owner}/{name}`, with the version's digest
/// and its container tag (none when the tag is empty). `registry_package`
/// is the older event of the same shape, the package under that key.
fn package(event: &'static str, json: &[u8]) -> Result<Event, ParseError> {
    let ActionOnly { action } = from_json("GitHub package", json)?;
    if action != "published" {
        return Ok(unknown(event, Some(&action)));
    }
    let p: PackagePayload<'_> = from_json("GitHub package", json)?;
    let Some(package) = p.package.or(p.registry_package) else {
        return Err(ParseError::Invalid(format!(
            "GitHub {event}: the payload has no package"
        )));
    };
    let is_container = |t: Option<&str>| {
        t.is_some_and(|t| t.eq_ignore_ascii_case("container") || t.eq_ignore_ascii_case("docker"))
    };
    if !is_container(package.package_type.as_deref())
        && !is_container(package.registry.as_ref().and_then(|r| r.kind.as_deref()))
    {
        let kind = package.package_type.as_deref().unwrap_or("unknown");
        return Ok(unknown(
            event,
            Some(&format!("published of a {kind} package (not a container)")),
        ));
    }
    let version = package.package_version.ok_or_else(|| {
        ParseError::Invalid(format!(
            "GitHub {event}: package.package_version is missing"
        ))
    })?;
    // A container version is named by its digest (`version`, and `name`).
    let digest = version
        .version
        .as_deref()
        .filter(|v| v.contains(':'))
        .or(version.name.as_deref())
        .unwrap_or_default();
    let metadata = version.container_metadata.as_ref();
    let tag = metadata
        .and_then(|m| m.tag.as_ref())
        .and_then(|t| t.name.as_deref());
    let media_type = metadata
        .and_then(|m| m.manifest.as_ref())
        .and_then(|m| m.media_type.as_deref());
    let repository = format!(
        "{}/{}",
        package.owner.login.to_ascii_lowercase(),
        package.name.to_ascii_lowercase()
    );
    pushed_image(
        PushFields {
            host: ("registry", Some(GHCR)),
            repository: ("package.name", &repository),
            tag: ("package.package_version.container_metadata.tag.name", tag),
            digest: ("package.package_version.version", digest),
            media_type,
        },
        None,
    )
}

/// GitHub's container registry.
pub const GHCR: &str = "ghcr.io";

#[derive(Deserialize)]
struct PackagePayload<'a> {
    #[serde(borrow, default)]
    package: Option<Package<'a>>,
    #[serde(borrow, default)]
    registry_package: Option<Package<'a>>,
}

#[derive(Deserialize)]
struct Package<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    package_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    owner: PackageOwner<'a>,
    #[serde(borrow, default)]
    package_version: Option<PackageVersion<'a>>,
    #[serde(borrow, default)]
    registry: Option<PackageRegistry<'a>>,
}

#[derive(Deserialize)]
struct PackageOwner<'a> {
    #[serde(borrow)]
    login: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PackageRegistry<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PackageVersion<'a> {
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    container_metadata: Option<ContainerMetadata<'a>>,
}

#[derive(Deserialize)]
struct ContainerMetadata<'a> {
    #[serde(borrow, default)]
    tag: Option<ContainerTag<'a>>,
    #[serde(borrow, default)]
    manifest: Option<ContainerManifest<'a>>,
}

#[derive(Deserialize)]
struct ContainerTag<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ContainerManifest<'a> {
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------
// Helpers shared by the event functions above.

fn repo(r: &Repository<'_>, installation: Option<&InstallationRef>) -> Result<Repo, ParseError> {
    Ok(Repo {
        slug: RepoSlug::new(Provider::Github, &r.full_name).map_err(|source| {
            ParseError::Field {
                field: "repository.full_name",
                source,
            }
        })?,
        id: Some(r.id),
        installation_id: installation.map(|i| i.id),
    })
}

/// `Unknown { what: "github {event} {detail}" }`. The parts come from the
/// sender, so they are cut to printable ASCII of bounded length before they
/// reach the deliveries table and the logs.
fn unknown(event: &str, detail: Option<&str>) -> Event {
    Event::unknown("github", event, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CommitSha;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/github/",
                $name
            ))
        };
    }

    fn sha(s: &str) -> CommitSha {
        CommitSha::parse(s).unwrap()
    }

    fn hello_world() -> Repo {
        Repo {
            slug: RepoSlug::new(Provider::Github, "Codertocat/Hello-World").unwrap(),
            id: Some(186853002),
            installation_id: Some(1),
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

    const GHCR_DIGEST: &str =
        "sha256:103dbadba2499628b536b96b2fe6333202c4af3f2b721b3609ed150978572708";

    fn ghcr_push(tag: Option<&str>) -> Event {
        use crate::domain::{Digest, ImageName, ImagePushed, Tag};
        Event::ImagePushed(ImagePushed {
            image: ImageName::new("ghcr.io", "octo-org/hello-world").unwrap(),
            tag: tag.map(|t| Tag::parse(t).unwrap()),
            digest: Some(Digest::parse(GHCR_DIGEST).unwrap()),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        })
    }

    #[test]
    fn a_published_container_package_is_an_image_pushed_to_ghcr() {
        assert_eq!(
            parse("package", fixture!("package.published.json")).unwrap(),
            ghcr_push(Some("v1.2.0"))
        );
        assert_eq!(
            parse(
                "registry_package",
                fixture!("registry_package.published.json")
            )
            .unwrap(),
            ghcr_push(Some("v1.2.0"))
        );
    }

    #[test]
    fn a_container_version_without_a_tag_is_a_push_by_digest() {
        let body = edited(
            fixture!("package.published.json"),
            r#""name": "v1.2.0""#,
            r#""name": """#,
        );
        assert_eq!(parse("package", &body).unwrap(), ghcr_push(None));
    }

    #[test]
    fn other_package_types_and_actions_are_recorded_not_acted_on() {
        let npm = edited(
            fixture!("package.published.json"),
            r#""package_type": "CONTAINER""#,
            r#""package_type": "npm""#,
        );
        let npm = String::from_utf8(npm).unwrap().replacen(
            r#""type": "CONTAINER""#,
            r#""type": "npm""#,
            1,
        );
        assert_eq!(
            parse("package", npm.as_bytes()).unwrap(),
            unknown("github package published of a npm package (not a container)")
        );
        let updated = edited(
            fixture!("registry_package.published.json"),
            r#""action": "published""#,
            r#""action": "updated""#,
        );
        assert_eq!(
            parse("registry_package", &updated).unwrap(),
            unknown("github registry_package updated")
        );
    }

    #[test]
    fn a_placeholder_package_digest_is_refused_naming_the_field() {
        let body = String::from_utf8(fixture!("package.published.json").to_vec())
            .unwrap()
            .replace(
                GHCR_DIGEST,
                "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
            );
        assert!(matches!(
            parse("package", body.as_bytes()),
            Err(ParseError::Field {
                field: "package.package_version.version",
                ..
            })
        ));
    }

    #[test]
    fn a_ping_is_a_ping() {
        assert_eq!(parse("ping", fixture!("ping.json")).unwrap(), Event::Ping);
    }

    #[test]
    fn a_push_creating_a_branch_has_no_before() {
        assert_eq!(
            parse("push", fixture!("push.json")).unwrap(),
            Event::Push(Push {
                repo: hello_world(),
                branch: "master".into(),
                before: None,
                after: sha("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            })
        );
    }

    #[test]
    fn a_push_to_an_existing_branch_keeps_before() {
        let body = edited(
            fixture!("push.json"),
            r#""before": "0000000000000000000000000000000000000000""#,
            r#""before": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e""#,
        );
        let Event::Push(push) = parse("push", &body).unwrap() else {
            panic!("not a push");
        };
        assert_eq!(
            push.before,
            Some(sha("f95f852bd8fca8fcc58a9a2d6c842781e32a215e"))
        );
    }

    #[test]
    fn a_push_through_a_plain_repository_hook_has_no_installation() {
        let body =
            br#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000",
            "after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "repository":{"id":7,"full_name":"octo-org/hello-world"}}"#;
        assert_eq!(
            parse("push", body).unwrap(),
            Event::Push(Push {
                repo: Repo {
                    slug: RepoSlug::new(Provider::Github, "octo-org/hello-world").unwrap(),
                    id: Some(7),
                    installation_id: None,
                },
                branch: "main".into(),
                before: None,
                after: sha("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            })
        );
    }

    #[test]
    fn a_pushed_annotated_tag_names_the_commit_not_the_tag_object() {
        assert_eq!(
            parse("push", fixture!("push.tag.json")).unwrap(),
            Event::TagPush(TagPush {
                repo: hello_world(),
                tag: "v1.2.0".into(),
                commit: sha("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            })
        );
    }

    #[test]
    fn a_pushed_tag_without_head_commit_falls_back_to_after() {
        let body = br#"{"ref":"refs/tags/v1","before":"0000000000000000000000000000000000000000",
            "after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","head_commit":null,
            "repository":{"id":7,"full_name":"octo-org/hello-world"}}"#;
        let Event::TagPush(tag) = parse("push", body).unwrap() else {
            panic!("not a tag push");
        };
        assert_eq!(tag.commit, sha("6113728f27ae82c7b1a177c8d03f9e96e0adf246"));
    }

    #[test]
    fn deleted_branches_and_tags_are_not_acted_on() {
        let null = "0000000000000000000000000000000000000000";
        let deleted_branch = edited(
            fixture!("push.json"),
            r#""after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246""#,
            &format!(r#""after": "{null}""#),
        );
        assert_eq!(
            parse("push", &deleted_branch).unwrap(),
            unknown("github push of a deleted branch")
        );
        // The flag alone is enough.
        let flagged = edited(
            fixture!("push.json"),
            r#""deleted": false"#,
            r#""deleted": true"#,
        );
        assert_eq!(
            parse("push", &flagged).unwrap(),
            unknown("github push of a deleted branch")
        );

        let deleted_tag = edited(
            fixture!("push.tag.json"),
            r#""deleted": false"#,
            r#""deleted": true"#,
        );
        assert_eq!(
            parse("push", &deleted_tag).unwrap(),
            unknown("github push of a deleted tag")
        );
    }

    #[test]
    fn a_push_to_another_kind_of_ref_is_not_acted_on() {
        let body = edited(
            fixture!("push.json"),
            "refs/heads/master",
            "refs/notes/commits",
        );
        assert_eq!(
            parse("push", &body).unwrap(),
            unknown("github push to a ref that is neither branch nor tag")
        );
    }

    fn pull_request_2(action: PullRequestAction, head_sha: &str) -> Event {
        Event::PullRequest(PullRequest {
            repo: hello_world(),
            action,
            number: 2,
            head_sha: sha(head_sha),
            head_ref: "changes".into(),
            base_ref: "master".into(),
            title: "Update the README with new information.".into(),
            url: "https://github.com/Codertocat/Hello-World/pull/2".into(),
        })
    }

    #[test]
    fn an_opened_pull_request_is_parsed_in_full() {
        assert_eq!(
            parse("pull_request", fixture!("pull_request.opened.json")).unwrap(),
            pull_request_2(
                PullRequestAction::Opened,
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            )
        );
    }

    #[test]
    fn a_synchronized_pull_request_carries_the_new_head() {
        assert_eq!(
            parse("pull_request", fixture!("pull_request.synchronize.json")).unwrap(),
            pull_request_2(
                PullRequestAction::Synchronized,
                "4ab5f4c7a1e9f0e1a8cb3c2c5d0ef3bd6a3f93e1"
            )
        );
    }

    #[test]
    fn a_merged_pull_request_is_closed_and_merged() {
        assert_eq!(
            parse("pull_request", fixture!("pull_request.closed.merged.json")).unwrap(),
            pull_request_2(
                PullRequestAction::Closed { merged: true },
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            )
        );
    }

    #[test]
    fn a_pull_request_closed_without_merging_is_closed_unmerged() {
        let body = edited(
            fixture!("pull_request.opened.json"),
            r#""action": "opened""#,
            r#""action": "closed""#,
        );
        assert_eq!(
            parse("pull_request", &body).unwrap(),
            pull_request_2(
                PullRequestAction::Closed { merged: false },
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            )
        );
    }

    #[test]
    fn a_reopened_pull_request_is_reopened() {
        let body = edited(
            fixture!("pull_request.opened.json"),
            r#""action": "opened""#,
            r#""action": "reopened""#,
        );
        assert_eq!(
            parse("pull_request", &body).unwrap(),
            pull_request_2(
                PullRequestAction::Reopened,
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            )
        );
    }

    #[test]
    fn other_pull_request_actions_are_not_acted_on_even_when_incomplete() {
        let body = edited(
            fixture!("pull_request.opened.json"),
            r#""action": "opened""#,
            r#""action": "labeled""#,
        );
        assert_eq!(
            parse("pull_request", &body).unwrap(),
            unknown("github pull_request labeled")
        );
        assert_eq!(
            parse("pull_request", br#"{"action":"edited"}"#).unwrap(),
            unknown("github pull_request edited")
        );
    }

    #[test]
    fn a_rerequested_check_run_names_the_run_and_its_commit() {
        assert_eq!(
            parse("check_run", fixture!("check_run.rerequested.json")).unwrap(),
            Event::CheckRunRerequested(CheckRunRerequested {
                repo: Repo {
                    slug: RepoSlug::new(Provider::Github, "github/hello-world").unwrap(),
                    id: Some(526),
                    installation_id: Some(1),
                },
                check_run_id: 4,
                name: "randscape".into(),
                head_sha: sha("d6fde92930d4715a2b49857d24b940956b26d2d3"),
            })
        );
    }

    #[test]
    fn other_check_run_actions_are_not_acted_on() {
        let body = edited(
            fixture!("check_run.rerequested.json"),
            r#""action": "rerequested""#,
            r#""action": "completed""#,
        );
        assert_eq!(
            parse("check_run", &body).unwrap(),
            unknown("github check_run completed")
        );
    }

    #[test]
    fn an_installation_names_its_id_and_account() {
        assert_eq!(
            parse("installation", fixture!("installation.created.json")).unwrap(),
            Event::Installation(Installation {
                action: InstallationAction::Created,
                installation_id: 957387,
                account: "Codertocat".into(),
            })
        );
    }

    #[test]
    fn every_installation_action_portcall_knows_is_mapped() {
        for (name, action) in [
            ("deleted", InstallationAction::Deleted),
            ("suspend", InstallationAction::Suspended),
            ("unsuspend", InstallationAction::Unsuspended),
            (
                "new_permissions_accepted",
                InstallationAction::NewPermissionsAccepted,
            ),
        ] {
            let body = edited(
                fixture!("installation.created.json"),
                r#""action": "created""#,
                &format!(r#""action": "{name}""#),
            );
            let Event::Installation(i) = parse("installation", &body).unwrap() else {
                panic!("{name} is not an installation");
            };
            assert_eq!(i.action, action, "{name}");
        }
    }

    #[test]
    fn a_check_suite_rerun_is_a_rerequest_without_a_name() {
        let body = br#"{"action":"rerequested","check_suite":{"id":5,"head_sha":"d6fde92930d4715a2b49857d24b940956b26d2d3"},"repository":{"id":7,"full_name":"octo/app"},"installation":{"id":9}}"#;
        let Event::CheckRunRerequested(c) = parse("check_suite", body).unwrap() else {
            panic!("not a rerequest");
        };
        assert_eq!((c.check_run_id, c.name.as_str()), (5, ""));
        assert_eq!(c.repo.installation_id, Some(9));
        assert_eq!(
            parse("check_suite", br#"{"action":"completed"}"#).unwrap(),
            unknown("github check_suite completed")
        );
    }

    #[test]
    fn an_enterprise_installation_is_named_by_its_slug() {
        let body = br#"{"action":"created","installation":{"id":9,"account":{"slug":"acme","name":"ACME"}}}"#;
        let Event::Installation(i) = parse("installation", body).unwrap() else {
            panic!("not an installation");
        };
        assert_eq!(i.account, "acme");
    }

    #[test]
    fn other_installation_actions_and_other_events_are_not_acted_on() {
        assert_eq!(
            parse("installation", br#"{"action":"added"}"#).unwrap(),
            unknown("github installation added")
        );
        assert_eq!(parse("issues", b"{}").unwrap(), unknown("github issues"));
        assert_eq!(
            parse("issues", b"not even json").unwrap(),
            unknown("github issues")
        );
    }

    #[test]
    fn unknown_names_from_the_sender_are_made_printable_and_short() {
        let body = format!(r#"{{"action":"a\nb{}"}}"#, "x".repeat(500));
        let Event::Unknown { what } = parse("pull_request", body.as_bytes()).unwrap() else {
            panic!("not unknown");
        };
        assert!(what.starts_with("github pull_request a?b"), "{what}");
        assert!(what.len() <= 130, "{}", what.len());
    }

    #[test]
    fn bad_payloads_are_errors_never_panics() {
        let push = fixture!("push.json");
        let opened = fixture!("pull_request.opened.json");
        let check_run = fixture!("check_run.rerequested.json");
        let install = fixture!("installation.created.json");
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("truncated push", "push", push[..push.len() / 2].to_vec()),
            ("empty body", "push", Vec::new()),
            ("an array", "push", b"[]".to_vec()),
            ("null", "push", b"null".to_vec()),
            ("a ping array", "ping", b"[]".to_vec()),
            ("a truncated ping", "ping", b"{\"zen\":".to_vec()),
            ("bad after", "push", edited(push, "6113728f27ae82c7b1a177c8d03f9e96e0adf246\",\n  \"repository", "nope\",\n  \"repository")),
            ("after a number", "push", edited(push, "\"after\": \"6113728f27ae82c7b1a177c8d03f9e96e0adf246\"", "\"after\": 7")),
            ("no repository", "push", br#"{"ref":"refs/heads/x","before":"0000000000000000000000000000000000000000","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#.to_vec()),
            ("bad slug", "push", edited(push, "\"full_name\": \"Codertocat/Hello-World\"", "\"full_name\": \"no-slash\"")),
            ("negative repo id", "push", edited(push, "\"id\": 186853002", "\"id\": -1")),
            ("empty branch", "push", edited(push, "refs/heads/master", "refs/heads/")),
            ("bad head_commit", "push", edited(fixture!("push.tag.json"), "\"id\": \"6113728f27ae82c7b1a177c8d03f9e96e0adf246\",\n    \"tree_id\"", "\"id\": \"zzz\",\n    \"tree_id\"")),
            ("pr array", "pull_request", b"[]".to_vec()),
            ("pr null", "pull_request", b"null".to_vec()),
            ("pr action a number", "pull_request", br#"{"action":1}"#.to_vec()),
            ("pr without pull_request", "pull_request", br#"{"action":"opened"}"#.to_vec()),
            ("pr bad head sha", "pull_request", edited(opened, "\"sha\": \"ec26c3e57ca3a959ca5aad62de7213c562f8c821\"", "\"sha\": \"ec26c3e\"")),
            ("pr number a string", "pull_request", edited(opened, "\"number\": 2,\n    \"state\"", "\"number\": \"2\",\n    \"state\"")),
            ("pr truncated", "pull_request", opened[..opened.len() - 10].to_vec()),
            ("check run bad sha", "check_run", edited(check_run, "\"head_sha\": \"d6fde92930d4715a2b49857d24b940956b26d2d3\",\n    \"external_id\"", "\"head_sha\": \"\",\n    \"external_id\"")),
            ("check run without id", "check_run", br#"{"action":"rerequested","check_run":{"name":"x","head_sha":"d6fde92930d4715a2b49857d24b940956b26d2d3"},"repository":{"id":1,"full_name":"a/b"}}"#.to_vec()),
            ("installation without account", "installation", br#"{"action":"created","installation":{"id":1}}"#.to_vec()),
            ("installation with empty account", "installation", br#"{"action":"created","installation":{"id":1,"account":{}}}"#.to_vec()),
            ("installation id a string", "installation", edited(install, "\"id\": 957387", "\"id\": \"957387\"")),
            ("installation null", "installation", b"null".to_vec()),
            ("not utf-8", "push", b"{\"ref\":\"\xff\"}".to_vec()),
            ("deep nesting where a string belongs", "push", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ];
        for (name, event, body) in cases {
            assert!(parse(event, &body).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn errors_name_the_field_that_was_wrong() {
        let body = edited(
            fixture!("pull_request.opened.json"),
            "\"sha\": \"ec26c3e57ca3a959ca5aad62de7213c562f8c821\"",
            "\"sha\": \"ec26c3e\"",
        );
        assert!(matches!(
            parse("pull_request", &body),
            Err(ParseError::Field {
                field: "pull_request.head.sha",
                ..
            })
        ));
        assert!(matches!(
            parse("push", b"{"),
            Err(ParseError::Json {
                what: "GitHub push",
                ..
            })
        ));
    }
}
