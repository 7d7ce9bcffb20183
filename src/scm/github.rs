//! GitHub adapter (octocrab): filled in by the GitHub adapter work.
