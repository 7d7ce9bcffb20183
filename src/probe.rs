//! Live checks of the services portcall calls out to: the GitHub App, the
//! GitLab token, a registry's read API.
//!
//! Each adapter implements [`HealthCheck`] with its own client, base URL and
//! credentials, so a check exercises exactly the path real work takes. A
//! check answers three questions in order, each only if the one before
//! passed:
//!
//! 1. **connectivity**: did the service answer at all (and how fast)?
//! 2. **authentication**: did it accept portcall's credentials?
//! 3. **functionality** (only for [`Depth::Full`]): does a representative
//!    read work (the App's installations, the token's projects, the
//!    registry's catalog)?
//!
//! Messages say what was asked and what came back; they never contain a
//! credential.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

/// How an integration is doing, as `/api/v1/integrations` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Reached and accepted our credentials; for a webhook source, a
    /// verified delivery arrived in the last 24 hours.
    Healthy,
    /// Reachable but in trouble: 5xx, rate limited, or the functional read
    /// failed; for a webhook source, more refused requests than verified
    /// ones since start.
    Degraded,
    /// Unreachable, or our credentials are refused.
    Unhealthy,
    /// Not checked yet, or nothing to tell (a source with no recent delivery).
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

/// How far a check goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Connectivity and authentication: one cheap call, what the
    /// background monitor runs periodically.
    Health,
    /// Also the functional read: `POST /api/v1/integrations/{name}/test`.
    Full,
}

/// The result of one step of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Not run: an earlier step failed, or it does not apply.
    Skipped,
}

/// One step of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub status: StepStatus,
    /// For connectivity: how long the service took to answer (or to fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub message: String,
}

impl Step {
    pub fn ok(message: impl Into<String>) -> Self {
        Self::new(StepStatus::Ok, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(StepStatus::Failed, message)
    }

    pub fn skipped(message: impl Into<String>) -> Self {
        Self::new(StepStatus::Skipped, message)
    }

    fn new(status: StepStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            latency_ms: None,
            message: message.into(),
        }
    }

    fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

/// How the call that presents portcall's credentials went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No answer: connection refused, DNS, TLS, a timeout.
    Unreachable(String),
    /// An answer refusing the call: 401, 403, 404 and other 4xx.
    Refused(String),
    /// An answer saying the service is in trouble: 5xx, 429, a rate limit,
    /// an unreadable body.
    Trouble(String),
    /// Credentials accepted; what the service said about us.
    Accepted(String),
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub connectivity: Step,
    pub authentication: Step,
    pub functionality: Step,
    #[serde(skip)]
    pub health: Health,
}

impl Probe {
    /// From the authenticating call and how long it took. Functionality is
    /// `skipped` until [`Probe::with_functionality`].
    pub fn from_answer(latency: Duration, answer: Answer) -> Self {
        let not_run = |why: &str| Step::skipped(why);
        let (connectivity, authentication, health) = match answer {
            Answer::Unreachable(message) => (
                Step::failed(message),
                not_run("not run: the service could not be reached"),
                Health::Unhealthy,
            ),
            Answer::Refused(message) => (
                Step::ok("the service answered"),
                Step::failed(message),
                Health::Unhealthy,
            ),
            Answer::Trouble(message) => (
                Step::ok("the service answered"),
                Step::failed(message),
                Health::Degraded,
            ),
            Answer::Accepted(message) => (
                Step::ok("the service answered"),
                Step::ok(message),
                Health::Healthy,
            ),
        };
        Self {
            connectivity: connectivity.with_latency(latency),
            authentication,
            functionality: not_run(if health == Health::Healthy {
                "not run: only a full test reads data"
            } else {
                "not run: authentication did not succeed"
            }),
            health,
        }
    }

    /// Whether the credentials were accepted (so a functional read may run).
    pub fn authenticated(&self) -> bool {
        self.authentication.status == StepStatus::Ok
    }

    /// Records the functional read: `Ok` with what it found, `Err` with why
    /// it failed (which makes a healthy integration degraded).
    pub fn with_functionality(mut self, result: Result<String, String>) -> Self {
        self.functionality = match result {
            Ok(message) => Step::ok(message),
            Err(message) => {
                if self.health == Health::Healthy {
                    self.health = Health::Degraded;
                }
                Step::failed(message)
            }
        };
        self
    }

    /// The one line that explains [`Self::health`]: the first failed
    /// step's message, else the authentication's.
    pub fn summary(&self) -> &str {
        [
            &self.connectivity,
            &self.authentication,
            &self.functionality,
        ]
        .into_iter()
        .find(|step| step.status == StepStatus::Failed)
        .unwrap_or(&self.authentication)
        .message
        .as_str()
    }
}

/// A service portcall can check live. Implemented by each outbound adapter
/// with the client it posts or reads with.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks connectivity and authentication, and with [`Depth::Full`] a
    /// functional read. Never fails: every problem is a finding.
    async fn probe(&self, depth: Depth) -> Probe;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_sets_the_steps_and_the_health() {
        let ms = Duration::from_millis(12);
        let down = Probe::from_answer(ms, Answer::Unreachable("connection refused".into()));
        assert_eq!(down.health, Health::Unhealthy);
        assert_eq!(down.connectivity.status, StepStatus::Failed);
        assert_eq!(down.connectivity.latency_ms, Some(12));
        assert_eq!(down.authentication.status, StepStatus::Skipped);
        assert_eq!(down.summary(), "connection refused");

        let refused = Probe::from_answer(ms, Answer::Refused("401 Bad credentials".into()));
        assert_eq!(refused.health, Health::Unhealthy);
        assert_eq!(refused.connectivity.status, StepStatus::Ok);
        assert_eq!(refused.authentication.status, StepStatus::Failed);
        assert!(!refused.authenticated());

        let trouble = Probe::from_answer(ms, Answer::Trouble("503".into()));
        assert_eq!(trouble.health, Health::Degraded);

        let fine = Probe::from_answer(ms, Answer::Accepted("as octoapp".into()));
        assert_eq!(fine.health, Health::Healthy);
        assert!(fine.authenticated());
        assert_eq!(fine.summary(), "as octoapp");
        let broken = fine.with_functionality(Err("no installations".into()));
        assert_eq!(broken.health, Health::Degraded);
        assert_eq!(broken.summary(), "no installations");
    }

    #[test]
    fn steps_serialize_as_the_api_shows_them() {
        let probe = Probe::from_answer(Duration::from_millis(3), Answer::Accepted("yes".into()))
            .with_functionality(Ok("2 installations".into()));
        assert_eq!(
            serde_json::to_value(&probe).unwrap(),
            serde_json::json!({
                "connectivity": {"status": "ok", "latencyMs": 3, "message": "the service answered"},
                "authentication": {"status": "ok", "message": "yes"},
                "functionality": {"status": "ok", "message": "2 installations"},
            })
        );
    }
}
