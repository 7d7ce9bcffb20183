//! The jobs the outbox holds: named, serialisable, idempotent values, and
//! what a release or an image push looks like on a commit, a check run and
//! a pull request.

use serde::{Deserialize, Serialize};

use crate::domain::{CommitSha, RepoSlug};
use crate::scm::{
    comment_marker, CheckConclusion, CheckRun, CommitStatus, DeploymentReport, StatusState,
};
use crate::store::jobs::NewJob;

/// The commit status context (GitHub) or name (GitLab) portcall posts.
pub const STATUS_CONTEXT: &str = "portcall/release";
/// The check run's name.
pub const CHECK_NAME: &str = "portcall / release";

/// One unit of outbound work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Read a pushed image's labels from its registry, find its source
    /// commit, create the release and enqueue what follows.
    ResolveImage {
        delivery_row: i64,
    },
    CommitStatus {
        repo: RepoSlug,
        sha: CommitSha,
        status: CommitStatus,
    },
    CheckRun {
        repo: RepoSlug,
        check: CheckRun,
    },
    /// The sticky comment of `component` on `pull_request`. With `None`,
    /// finds the open pull requests whose head is `sha` and enqueues this
    /// job for each of them, so that every upsert of one comment is
    /// sequenced with the others (see [`Job::sequence_key`]).
    PrComment {
        repo: RepoSlug,
        sha: CommitSha,
        component: String,
        pull_request: Option<u64>,
        body: String,
    },
    /// One deployment report, the `deployments` row `report_id`: on GitHub
    /// a deployment status (on the deployment the release's first report
    /// for the environment created), on GitLab a commit status. Reports of
    /// one release and environment are posted in the order they came.
    Deployment {
        repo: RepoSlug,
        release_id: i64,
        report_id: i64,
        report: DeploymentReport,
    },
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::ResolveImage { .. } => "resolve_image",
            Job::CommitStatus { .. } => "commit_status",
            Job::CheckRun { .. } => "check_run",
            Job::PrComment { .. } => "pr_comment",
            Job::Deployment { .. } => "deployment",
        }
    }

    /// Jobs with the same key run one at a time, in order, whichever
    /// replica claims them: the reports of one release and environment, so
    /// a later state never lands first; and the upserts of one pull
    /// request's sticky comment of a component, so two never both find no
    /// comment and both create one.
    pub fn sequence_key(&self) -> Option<String> {
        match self {
            Job::Deployment {
                release_id, report, ..
            } => Some(format!("deployment:{release_id}:{}", report.environment)),
            Job::PrComment {
                repo,
                component,
                pull_request: Some(number),
                ..
            } => Some(format!("comment:{repo}#{number}:{component}")),
            Job::ResolveImage { .. }
            | Job::CommitStatus { .. }
            | Job::CheckRun { .. }
            | Job::PrComment {
                pull_request: None, ..
            } => None,
        }
    }

    /// The provider repository the job acts on.
    pub fn repo(&self) -> Option<&RepoSlug> {
        match self {
            Job::ResolveImage { .. } => None,
            Job::CommitStatus { repo, .. }
            | Job::CheckRun { repo, .. }
            | Job::PrComment { repo, .. }
            | Job::Deployment { repo, .. } => Some(repo),
        }
    }

    /// The row to enqueue, deduplicated by `dedupe_key`; `skipped` records
    /// it as not to be posted, with the reason.
    pub fn into_new(
        self,
        dedupe_key: String,
        release_id: Option<i64>,
        skipped: Option<String>,
    ) -> NewJob {
        NewJob {
            kind: self.kind(),
            dedupe_key,
            payload: serde_json::to_string(&self).expect("jobs always serialize"),
            repository: self.repo().map(ToString::to_string),
            release_id,
            skipped,
            sequence_key: self.sequence_key(),
            delivery_row: None,
        }
    }
}

/// What was published, as statuses, checks and comments describe it.
#[derive(Debug, Clone)]
pub struct Published<'a> {
    pub component: &'a str,
    pub image: &'a str,
    pub tag: Option<&'a str>,
    pub digest: &'a str,
    pub commit: &'a CommitSha,
    /// `(id, name)` when the push made a release.
    pub release: Option<(i64, &'a str)>,
    /// `server.public_url`, for links.
    pub public_url: Option<&'a str>,
}

impl Published<'_> {
    fn reference(&self) -> String {
        match self.tag {
            Some(tag) => format!("{}:{tag}", self.image),
            None => format!("{}@{}", self.image, self.digest),
        }
    }

    fn link(&self) -> Option<String> {
        let base = self.public_url?;
        Some(match self.release {
            Some((id, _)) => format!("{base}/api/v1/releases/{id}"),
            None => format!("{base}/api/v1/releases?component={}", self.component),
        })
    }

    fn headline(&self) -> String {
        match self.release {
            Some((_, name)) => format!("Release {name}: {}", self.reference()),
            None => format!("Image pushed: {}", self.reference()),
        }
    }

    /// The commit status: context `portcall/release`, `success`.
    pub fn commit_status(&self) -> CommitStatus {
        CommitStatus {
            context: STATUS_CONTEXT.to_owned(),
            state: StatusState::Success,
            description: cut(&self.headline(), 140),
            target_url: self.link(),
        }
    }

    /// The Markdown table every summary shares.
    fn table(&self) -> String {
        let mut rows = vec![
            ("Component", format!("`{}`", self.component)),
            ("Image", format!("`{}`", self.image)),
        ];
        if let Some(tag) = self.tag {
            rows.push(("Tag", format!("`{tag}`")));
        }
        rows.push(("Digest", format!("`{}`", self.digest)));
        rows.push(("Commit", format!("`{}`", self.commit)));
        if let Some((_, name)) = self.release {
            rows.push(("Release", format!("`{name}`")));
        }
        let mut out = String::from("| | |\n|---|---|\n");
        for (key, value) in rows {
            out.push_str(&format!("| {key} | {value} |\n"));
        }
        out
    }

    /// The check run: `portcall / release`, completed, success.
    pub fn check_run(&self) -> CheckRun {
        CheckRun {
            name: CHECK_NAME.to_owned(),
            head_sha: self.commit.clone(),
            conclusion: CheckConclusion::Success,
            title: cut(&self.headline(), 200),
            summary: self.table(),
            details_url: self.link(),
            external_id: self.release.map(|(id, _)| format!("release-{id}")),
            annotations: Vec::new(),
        }
    }

    /// The sticky comment, found again by its marker.
    pub fn comment(&self) -> String {
        let mut body = comment_marker(self.component);
        body.push_str(&format!("\n### portcall: {}\n\n", self.headline()));
        body.push_str(&self.table());
        if let Some(link) = self.link() {
            body.push_str(&format!("\n[Details]({link})\n"));
        }
        body
    }

    /// The status, check run and comment jobs, deduplicated per release (or
    /// per component, digest and tag for a push without one), so a
    /// redelivery, a replay or a second replica posts nothing twice.
    pub fn jobs(&self, repo: &RepoSlug, skipped: Option<&str>) -> Vec<NewJob> {
        let key = match self.release {
            Some((id, _)) => format!("release:{id}"),
            None => format!(
                "push:{}:{}:{}:{}",
                self.component,
                self.digest,
                self.tag.unwrap_or("-"),
                self.commit
            ),
        };
        let release_id = self.release.map(|(id, _)| id);
        let skipped = skipped.map(str::to_owned);
        vec![
            Job::CommitStatus {
                repo: repo.clone(),
                sha: self.commit.clone(),
                status: self.commit_status(),
            }
            .into_new(format!("status:{key}"), release_id, skipped.clone()),
            Job::CheckRun {
                repo: repo.clone(),
                check: self.check_run(),
            }
            .into_new(format!("check:{key}"), release_id, skipped.clone()),
            Job::PrComment {
                repo: repo.clone(),
                sha: self.commit.clone(),
                component: self.component.to_owned(),
                pull_request: None,
                body: self.comment(),
            }
            .into_new(format!("comment:{key}"), release_id, skipped),
        ]
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(release: Option<(i64, &'static str)>) -> (CommitSha, Option<(i64, &'static str)>) {
        (
            CommitSha::parse("6113728f27ae82c7b1a177c8d03f9e96e0adf246").unwrap(),
            release,
        )
    }

    #[test]
    fn a_release_is_described_with_a_link_and_its_jobs_are_keyed_by_release() {
        let (sha, release) = published(Some((7, "hello-world-v1.2.0")));
        let p = Published {
            component: "hello-world",
            image: "registry.example.com/octo-org/hello-world",
            tag: Some("v1.2.0"),
            digest: "sha256:aaaa",
            commit: &sha,
            release,
            public_url: Some("https://portcall.example.com"),
        };
        let status = p.commit_status();
        assert_eq!(status.context, "portcall/release");
        assert_eq!(
            status.description,
            "Release hello-world-v1.2.0: registry.example.com/octo-org/hello-world:v1.2.0"
        );
        assert_eq!(
            status.target_url.as_deref(),
            Some("https://portcall.example.com/api/v1/releases/7")
        );
        assert!(p.comment().starts_with("<!-- portcall:hello-world -->\n"));
        assert!(p.check_run().summary.contains("| Digest | `sha256:aaaa` |"));
        let repo = RepoSlug::parse("github:octo-org/hello-world").unwrap();
        let keys: Vec<String> = p
            .jobs(&repo, None)
            .into_iter()
            .map(|j| j.dedupe_key)
            .collect();
        assert_eq!(
            keys,
            ["status:release:7", "check:release:7", "comment:release:7"]
        );
    }

    #[test]
    fn descriptions_are_cut_to_githubs_140_characters() {
        let (sha, _) = published(None);
        let long = format!("registry.example.com/{}", "a".repeat(200));
        let p = Published {
            component: "c",
            image: &long,
            tag: Some("latest"),
            digest: "sha256:aaaa",
            commit: &sha,
            release: None,
            public_url: None,
        };
        let description = p.commit_status().description;
        assert_eq!(description.chars().count(), 140);
        assert!(description.ends_with('…'));
        assert_eq!(p.commit_status().target_url, None);
    }

    #[test]
    fn deployment_jobs_are_keyed_per_report_and_sequenced_per_release_and_environment() {
        use crate::domain::Environment;
        use crate::scm::DeploymentState;
        let (sha, _) = published(None);
        let job = |report_id: i64, environment: &str| Job::Deployment {
            repo: RepoSlug::parse("github:octo-org/hello-world").unwrap(),
            release_id: 7,
            report_id,
            report: DeploymentReport {
                sha: sha.clone(),
                environment: Environment::parse(environment).unwrap(),
                state: DeploymentState::Success,
                url: None,
                log_url: None,
                release_id: 7,
                release_name: "hello-world-v1.2.0".into(),
                title: "Release hello-world-v1.2.0".into(),
                description: "hello-world-v1.2.0 to production: success".into(),
                deployment_id: None,
            },
        };
        let first = job(1, "production");
        let json = serde_json::to_string(&first).unwrap();
        assert!(json.contains(r#""kind":"deployment""#), "{json}");
        assert!(
            !json.contains("deployment_id"),
            "looked up when the job runs: {json}"
        );
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), first);

        let rows: Vec<NewJob> = [
            job(1, "production"),
            job(2, "production"),
            job(3, "eu/staging"),
        ]
        .into_iter()
        .map(|j| {
            let Job::Deployment { report_id, .. } = &j else {
                unreachable!()
            };
            let key = format!("deployment:{report_id}");
            j.into_new(key, Some(7), None)
        })
        .collect();
        let keys: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.dedupe_key.as_str(), r.sequence_key.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("deployment:1", Some("deployment:7:production")),
                ("deployment:2", Some("deployment:7:production")),
                ("deployment:3", Some("deployment:7:eu/staging")),
            ]
        );
        assert_eq!(
            rows[0].repository.as_deref(),
            Some("github:octo-org/hello-world")
        );
        assert_eq!(rows[0].release_id, Some(7));
    }

    #[test]
    fn the_upserts_of_one_sticky_comment_are_sequenced_and_the_lookup_is_not() {
        let (sha, _) = published(None);
        let comment = |repo: &str, component: &str, pull_request: Option<u64>| Job::PrComment {
            repo: RepoSlug::parse(repo).unwrap(),
            sha: sha.clone(),
            component: component.into(),
            pull_request,
            body: format!("<!-- portcall:{component} -->"),
        };
        let key = |job: Job| job.into_new("k".into(), None, None).sequence_key;
        assert_eq!(
            key(comment("github:octo-org/hello-world", "api", Some(7))).as_deref(),
            Some("comment:github:octo-org/hello-world#7:api")
        );
        assert_eq!(
            key(comment("gitlab:group/sub/project", "api", Some(7))).as_deref(),
            Some("comment:gitlab:group/sub/project#7:api")
        );
        assert_eq!(
            key(comment("github:octo-org/hello-world", "web", Some(7))).as_deref(),
            Some("comment:github:octo-org/hello-world#7:web"),
            "another component's comment is another comment"
        );
        assert_eq!(
            key(comment("github:octo-org/hello-world", "api", None)),
            None,
            "finding the pull requests upserts nothing"
        );
    }

    #[test]
    fn jobs_round_trip_through_json() {
        let (sha, _) = published(None);
        let job = Job::PrComment {
            repo: RepoSlug::parse("gitlab:group/sub/project").unwrap(),
            sha,
            component: "c".into(),
            pull_request: Some(3),
            body: "<!-- portcall:c -->".into(),
        };
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.contains(r#""kind":"pr_comment""#));
        assert!(json.contains(r#""repo":"gitlab:group/sub/project""#));
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
    }
}
