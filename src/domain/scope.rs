//! What a caller of `/api/v1` may do. Every route requires one scope; the
//! admin token holds them all.

use std::fmt;
use std::str::FromStr;

/// A permission a service-account token can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    ReleaseCreate,
    ReleaseRead,
    CiEventCreate,
    DeploymentReport,
    /// Everything else: deliveries, jobs, integrations, service accounts.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::ReleaseCreate,
        Scope::ReleaseRead,
        Scope::CiEventCreate,
        Scope::DeploymentReport,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReleaseCreate => "release:create",
            Scope::ReleaseRead => "release:read",
            Scope::CiEventCreate => "ci-event:create",
            Scope::DeploymentReport => "deployment:report",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; expected one of release:create, release:read, ci-event:create, deployment:report, admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, UnknownScope> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.chars().take(64).collect()))
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The scopes a caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Every scope (the admin token, or a token with `admin`).
    pub fn all() -> Self {
        Self(Scope::ALL.to_vec())
    }

    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// Parses a space-separated list, as stored.
    pub fn parse_list(list: &str) -> Result<Self, UnknownScope> {
        list.split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// Whether the caller may use a route requiring `scope`: `admin`
    /// implies every other scope.
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The space-separated form that is stored.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_sort_and_dedupe_and_admin_implies_all() {
        let s = Scopes::parse_list("release:read release:create release:read").unwrap();
        assert_eq!(s.to_list(), "release:create release:read");
        assert!(s.allows(Scope::ReleaseRead));
        assert!(!s.allows(Scope::CiEventCreate));
        assert!(Scopes::parse_list("admin")
            .unwrap()
            .allows(Scope::DeploymentReport));
        let err = Scopes::parse_list("release:read release:delete").unwrap_err();
        assert_eq!(err, UnknownScope("release:delete".into()));
    }
}
