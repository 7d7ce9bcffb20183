//! GitLab adapter (gitlab crate): filled in by the GitLab adapter work.
