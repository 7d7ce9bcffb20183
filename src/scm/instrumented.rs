//! Metrics and spans around every provider call, as a decorator: the
//! adapters stay free of instrumentation and every call is counted, however
//! the dispatcher reaches it (atlantis' `instrumented_client.go`).

use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument as _;

use super::{
    CheckRun, CommentAction, CommitStatus, DeploymentError, DeploymentReport, ScmClient, ScmError,
};
use crate::domain::{CommitSha, RepoSlug};
use crate::telemetry::Metrics;

/// An [`ScmClient`] that counts each call in `scm_annotation_total
/// {provider,operation,status}`, times it in
/// `scm_annotation_duration_seconds{provider,operation}`, and runs it in a
/// span named `scm` with `provider`, `operation`, `repo.slug` and, where
/// known, `commit` and `pr`.
pub struct Instrumented {
    inner: std::sync::Arc<dyn ScmClient>,
    provider: &'static str,
    metrics: Metrics,
}

impl Instrumented {
    /// Wraps `inner`, the client of `provider` (`github`, `gitlab`).
    pub fn new(
        inner: std::sync::Arc<dyn ScmClient>,
        provider: &'static str,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner,
            provider,
            metrics,
        }
    }

    async fn observe<T, E>(
        &self,
        operation: &'static str,
        span: tracing::Span,
        call: impl std::future::Future<Output = Result<T, E>>,
        error_of: impl Fn(&E) -> &ScmError,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call.instrument(span).await;
        let status = match &result {
            Ok(_) => "success",
            Err(error) if error_of(error).is_transient() => "transient",
            Err(_) => "permanent",
        };
        self.metrics
            .scm_annotations
            .with_label_values(&[self.provider, operation, status])
            .inc();
        self.metrics
            .scm_annotation_duration
            .with_label_values(&[self.provider, operation])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    fn span(&self, operation: &'static str, repo: &RepoSlug) -> tracing::Span {
        tracing::info_span!(
            "scm",
            provider = self.provider,
            operation,
            repo.slug = %repo,
            commit = tracing::field::Empty,
            pr = tracing::field::Empty,
        )
    }
}

fn itself(error: &ScmError) -> &ScmError {
    error
}

#[async_trait]
impl ScmClient for Instrumented {
    async fn post_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), ScmError> {
        let span = self.span("commit_status", repo);
        span.record("commit", sha.as_str());
        self.observe(
            "commit_status",
            span,
            self.inner.post_status(repo, sha, status),
            itself,
        )
        .await
    }

    async fn status_is_current(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<bool, ScmError> {
        let span = self.span("commit_status_lookup", repo);
        span.record("commit", sha.as_str());
        self.observe(
            "commit_status_lookup",
            span,
            self.inner.status_is_current(repo, sha, status),
            itself,
        )
        .await
    }

    async fn check_run_exists(&self, repo: &RepoSlug, check: &CheckRun) -> Result<bool, ScmError> {
        let span = self.span("check_run_lookup", repo);
        span.record("commit", check.head_sha.as_str());
        self.observe(
            "check_run_lookup",
            span,
            self.inner.check_run_exists(repo, check),
            itself,
        )
        .await
    }

    async fn create_check_run(&self, repo: &RepoSlug, check: &CheckRun) -> Result<(), ScmError> {
        let span = self.span("check_run", repo);
        span.record("commit", check.head_sha.as_str());
        self.observe(
            "check_run",
            span,
            self.inner.create_check_run(repo, check),
            itself,
        )
        .await
    }

    /// Forwarded as such (not the default's two calls), so that an
    /// adapter's own way of completing a check run is the one that runs.
    async fn create_check_run_again(
        &self,
        repo: &RepoSlug,
        check: &CheckRun,
    ) -> Result<bool, ScmError> {
        let span = self.span("check_run", repo);
        span.record("commit", check.head_sha.as_str());
        self.observe(
            "check_run",
            span,
            self.inner.create_check_run_again(repo, check),
            itself,
        )
        .await
    }

    async fn open_pull_requests(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<Vec<u64>, ScmError> {
        let span = self.span("list_pull_requests", repo);
        span.record("commit", sha.as_str());
        self.observe(
            "list_pull_requests",
            span,
            self.inner.open_pull_requests(repo, sha),
            itself,
        )
        .await
    }

    async fn upsert_comment(
        &self,
        repo: &RepoSlug,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentAction, ScmError> {
        let span = self.span("comment", repo);
        span.record("pr", number);
        self.observe(
            "comment",
            span,
            self.inner.upsert_comment(repo, number, marker, body),
            itself,
        )
        .await
    }

    async fn report_deployment(
        &self,
        repo: &RepoSlug,
        deployment: &DeploymentReport,
    ) -> Result<Option<u64>, DeploymentError> {
        let span = self.span("deployment", repo);
        span.record("commit", deployment.sha.as_str());
        self.observe(
            "deployment",
            span,
            self.inner.report_deployment(repo, deployment),
            |e: &DeploymentError| &e.error,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Provider;
    use crate::scm::{CheckConclusion, StatusState};

    /// Succeeds at statuses, fails transiently at listing pull requests and
    /// permanently at everything else.
    struct Fake;

    #[async_trait]
    impl ScmClient for Fake {
        async fn post_status(
            &self,
            _: &RepoSlug,
            _: &CommitSha,
            _: &CommitStatus,
        ) -> Result<(), ScmError> {
            Ok(())
        }
        async fn create_check_run(&self, _: &RepoSlug, _: &CheckRun) -> Result<(), ScmError> {
            Err(ScmError::permanent(Some(422), "no"))
        }
        /// Its own: the check run is there already.
        async fn create_check_run_again(
            &self,
            _: &RepoSlug,
            _: &CheckRun,
        ) -> Result<bool, ScmError> {
            Ok(false)
        }
        async fn open_pull_requests(
            &self,
            _: &RepoSlug,
            _: &CommitSha,
        ) -> Result<Vec<u64>, ScmError> {
            Err(ScmError::transient("later", None))
        }
        async fn upsert_comment(
            &self,
            _: &RepoSlug,
            _: u64,
            _: &str,
            _: &str,
        ) -> Result<CommentAction, ScmError> {
            Err(ScmError::permanent(Some(404), "gone"))
        }
        async fn report_deployment(
            &self,
            _: &RepoSlug,
            _: &DeploymentReport,
        ) -> Result<Option<u64>, DeploymentError> {
            Err(ScmError::transient("later", None).into())
        }
    }

    #[tokio::test]
    async fn every_call_is_counted_by_provider_operation_and_status_and_timed() {
        let metrics = Metrics::new();
        let client = Instrumented::new(Arc::new(Fake), "gitlab", metrics.clone());
        let repo = RepoSlug::new(Provider::Gitlab, "group/project").unwrap();
        let sha = CommitSha::parse("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c").unwrap();
        let status = CommitStatus {
            context: "portcall/release".into(),
            state: StatusState::Success,
            description: "released".into(),
            target_url: None,
        };
        client.post_status(&repo, &sha, &status).await.unwrap();
        client.post_status(&repo, &sha, &status).await.unwrap();
        let check = CheckRun {
            name: "portcall / release".into(),
            head_sha: sha.clone(),
            conclusion: CheckConclusion::Success,
            title: "t".into(),
            summary: "s".into(),
            details_url: None,
            external_id: None,
            annotations: Vec::new(),
        };
        assert!(client.create_check_run(&repo, &check).await.is_err());
        assert!(
            !client.create_check_run_again(&repo, &check).await.unwrap(),
            "the adapter's own, not the default's lookup and create"
        );
        assert!(client.open_pull_requests(&repo, &sha).await.is_err());
        assert!(client.upsert_comment(&repo, 7, "m", "m").await.is_err());

        let count = |operation: &str, status: &str| {
            metrics
                .scm_annotations
                .with_label_values(&["gitlab", operation, status])
                .get()
        };
        assert_eq!(count("commit_status", "success"), 2);
        assert_eq!(count("check_run", "permanent"), 1);
        assert_eq!(count("check_run", "success"), 1);
        assert_eq!(count("list_pull_requests", "transient"), 1);
        assert_eq!(count("comment", "permanent"), 1);
        let timed = metrics
            .scm_annotation_duration
            .with_label_values(&["gitlab", "commit_status"])
            .get_sample_count();
        assert_eq!(timed, 2);
    }
}
