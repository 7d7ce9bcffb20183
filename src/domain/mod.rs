//! The vocabulary of portcall, free of I/O: identifiers that are parsed once
//! at the edge ([`ids`]), the normalized events every source becomes
//! ([`event`]) and the rules that turn image pushes into releases
//! ([`release`]).

pub mod event;
pub mod ids;
pub mod release;
pub mod scope;

pub use event::{
    CheckRunRerequested, Event, ImagePushed, Installation, InstallationAction, PullRequest,
    PullRequestAction, Push, Repo, TagPush,
};
pub use ids::{
    CommitSha, DeliveryId, Digest, Environment, HttpUrl, ImageName, InvalidId, Provider, RepoSlug,
    Tag,
};
pub use release::{CommitOrigin, Component, Components};
pub use scope::{Scope, Scopes};
