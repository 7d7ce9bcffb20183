//! The vocabulary of portcall, free of I/O: identifiers that are parsed once
//! at the edge ([`ids`]) and the normalized events every source becomes
//! ([`event`]).

pub mod event;
pub mod ids;

pub use event::{
    CheckRunRerequested, Event, ImagePushed, Installation, InstallationAction, PullRequest,
    PullRequestAction, Push, Repo, TagPush,
};
pub use ids::{CommitSha, DeliveryId, Digest, ImageName, InvalidId, Provider, RepoSlug, Tag};
