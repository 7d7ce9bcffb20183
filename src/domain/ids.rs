//! Identifiers as newtypes with private fields: once a value of one of these
//! types exists, it is known to be well-formed.

use std::fmt;

/// Why a string was refused as an identifier. The offending value is not
/// included: it may come from an unauthenticated sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {expected}")]
pub struct InvalidId {
    pub what: &'static str,
    pub expected: &'static str,
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A sender's id for one delivery (`X-GitHub-Delivery`, `Idempotency-Key`,
/// a Distribution event id, `webhook-id`): 1 to 200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(String);
string_newtype!(DeliveryId);

impl DeliveryId {
    pub const MAX_LEN: usize = 200;

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok =
            !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId {
                what: "delivery id",
                expected: "1 to 200 visible ASCII characters",
            })
        }
    }
}

/// A git commit id: 40 (SHA-1) or 64 (SHA-256 repositories) hex digits,
/// kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitSha(String);
string_newtype!(CommitSha);

impl CommitSha {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(InvalidId {
                what: "commit sha",
                expected: "40 or 64 hexadecimal digits",
            })
        }
    }

    /// Git's "no commit" value, sent as `before` of a new branch and `after`
    /// of a deleted one.
    pub fn is_null(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }
}

/// A content digest as OCI registries write it: `sha256:` and 64 lower-case
/// hex digits, or `sha512:` and 128.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);
string_newtype!(Digest);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let hex_len = match s.split_once(':') {
            Some(("sha256", hex)) => (hex.len() == 64).then_some(hex),
            Some(("sha512", hex)) => (hex.len() == 128).then_some(hex),
            _ => None,
        };
        match hex_len {
            Some(hex) if hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                Ok(Self(s.to_owned()))
            }
            _ => Err(InvalidId {
                what: "digest",
                expected: "sha256: and 64 lower-case hex digits (or sha512: and 128)",
            }),
        }
    }
}

/// An image tag, with the OCI distribution spec's grammar:
/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);
string_newtype!(Tag);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && s.len() <= 128 {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId {
                what: "tag",
                expected: "1 to 128 of [A-Za-z0-9._-], not starting with . or -",
            })
        }
    }
}

/// The source-control provider a repository lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Github,
    Gitlab,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A repository on a provider: `owner/repo` on GitHub, `group/sub/project`
/// on GitLab. Written `github:octo-org/hello-world` in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoSlug {
    provider: Provider,
    path: String,
}

impl RepoSlug {
    pub fn new(provider: Provider, path: &str) -> Result<Self, InvalidId> {
        let segments: Vec<&str> = path.split('/').collect();
        let count_ok = match provider {
            Provider::Github => segments.len() == 2,
            Provider::Gitlab => segments.len() >= 2,
        };
        let segment_ok = |s: &&str| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if count_ok && segments.iter().all(segment_ok) {
            Ok(Self {
                provider,
                path: path.to_owned(),
            })
        } else {
            Err(InvalidId {
                what: "repository",
                expected: match provider {
                    Provider::Github => "owner/repo",
                    Provider::Gitlab => "group/project (subgroups allowed)",
                },
            })
        }
    }

    /// Parses `github:owner/repo` or `gitlab:group/sub/project`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let invalid = InvalidId {
            what: "repository",
            expected: "github:owner/repo or gitlab:group/project",
        };
        match s.split_once(':') {
            Some(("github", path)) => Self::new(Provider::Github, path),
            Some(("gitlab", path)) => Self::new(Provider::Gitlab, path),
            _ => Err(invalid),
        }
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.path)
    }
}

/// An image's name without tag or digest: the registry host (with port, if
/// any) and the repository path, e.g. `registry.example.com` and
/// `octo-org/hello-world`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    registry: String,
    repository: String,
}

impl ImageName {
    pub fn new(registry: &str, repository: &str) -> Result<Self, InvalidId> {
        let host_ok = !registry.is_empty()
            && registry.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        // Distribution's path grammar: lower-case components separated by '/',
        // each made of [a-z0-9] runs joined by '.', '_', '__' or '-'.
        let repo_ok = !repository.is_empty()
            && repository.len() <= 255
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                    && c.as_bytes()[0].is_ascii_alphanumeric()
                    && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
            });
        if !host_ok {
            return Err(InvalidId {
                what: "registry host",
                expected: "a host name with an optional :port",
            });
        }
        if !repo_ok {
            return Err(InvalidId {
                what: "image repository",
                expected: "lower-case path components of [a-z0-9._-]",
            });
        }
        Ok(Self {
            registry: registry.to_ascii_lowercase(),
            repository: repository.to_owned(),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// A deployment environment as CD names it (`production`, `eu/staging`,
/// `review/feature-1.2`): 1 to 255 characters of `[A-Za-z0-9._/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Environment(String);
string_newtype!(Environment);

impl Environment {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId {
                what: "environment",
                expected: "1 to 255 characters of [A-Za-z0-9._/-]",
            })
        }
    }
}

/// An absolute `http` or `https` URL with a host and without credentials,
/// kept as it was written: links shown next to a deployment, which anyone
/// who can read the repository sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);
string_newtype!(HttpUrl);

impl HttpUrl {
    /// Longer URLs are refused rather than cut: a cut link leads nowhere.
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = s.len() <= Self::MAX_LEN
            && !s.contains(|c: char| c.is_whitespace() || c.is_control())
            && url::Url::parse(s).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|host| !host.is_empty())
                    && url.username().is_empty()
                    && url.password().is_none()
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId {
                what: "URL",
                expected: "an absolute http:// or https:// URL with a host, no credentials, at most 2048 characters",
            })
        }
    }
}

/// Serializes an identifier as its string form and parses it back, so a
/// stored job can only hold well-formed values.
macro_rules! serde_as_string {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(CommitSha);
serde_as_string!(Digest);
serde_as_string!(Tag);
serde_as_string!(RepoSlug);
serde_as_string!(Environment);
serde_as_string!(HttpUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_visible_ascii_of_bounded_length() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_ok());
        for bad in ["", "has space", "tab\there", "é", &"x".repeat(201)] {
            assert!(DeliveryId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn commit_shas_are_40_or_64_hex_and_lower_cased() {
        let sha = CommitSha::parse("0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C").unwrap();
        assert_eq!(sha.as_str(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert!(CommitSha::parse(&"a".repeat(64)).is_ok());
        assert!(CommitSha::parse(&"0".repeat(40)).unwrap().is_null());
        for bad in ["", "abc", &"g".repeat(40), &"a".repeat(41)] {
            assert!(CommitSha::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn digests_need_algorithm_and_exact_lower_case_hex() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(Digest::parse(&good).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:".to_owned(),
            "ab".repeat(32),
            format!("sha256:{}", "AB".repeat(32)),
            format!("md5:{}", "ab".repeat(32)),
            format!("sha256:{}", "ab".repeat(33)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for good in ["v1.2.0", "latest", "_x", "A-b_c.d"] {
            assert!(Tag::parse(good).is_ok(), "{good:?} refused");
        }
        let long = "a".repeat(129);
        for bad in ["", ".v1", "-v1", "v1/2", "sha256:abc", long.as_str()] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repo_slugs_parse_provider_prefixed_paths() {
        let gh = RepoSlug::parse("github:octo-org/hello-world").unwrap();
        assert_eq!(
            (gh.provider(), gh.path()),
            (Provider::Github, "octo-org/hello-world")
        );
        let gl = RepoSlug::parse("gitlab:group/sub/project").unwrap();
        assert_eq!(gl.to_string(), "gitlab:group/sub/project");
        for bad in [
            "octo-org/hello-world",
            "github:a/b/c",
            "github:a",
            "gitlab:../x",
            "bitbucket:a/b",
            "github:a/b c",
        ] {
            assert!(RepoSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn environments_are_1_to_255_of_a_small_alphabet() {
        let longest = "e".repeat(255);
        for good in [
            "production",
            "eu/staging",
            "review/feature-1.2_x",
            longest.as_str(),
        ] {
            assert_eq!(Environment::parse(good).unwrap().as_str(), good);
        }
        let long = "e".repeat(256);
        for bad in [
            "",
            "prod uction",
            "prod:1",
            "prod\n",
            "é",
            "a?b",
            long.as_str(),
        ] {
            assert!(Environment::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn http_urls_are_absolute_web_links_without_credentials() {
        for good in [
            "https://hello.example.com",
            "http://10.0.0.1:8080/path?q=1#frag",
            "https://ci.example.com/builds/12345/log",
        ] {
            assert_eq!(
                HttpUrl::parse(good).unwrap().as_str(),
                good,
                "kept as written"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "",
            "example.com",
            "/relative/path",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "https://",
            "https://user:secret@example.com/",
            "https://token@example.com/",
            "https://example.com/a b",
            long.as_str(),
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_names_lower_case_the_host_and_check_the_path() {
        let img = ImageName::new("Registry.Example.com:5000", "octo-org/hello-world").unwrap();
        assert_eq!(
            img.to_string(),
            "registry.example.com:5000/octo-org/hello-world"
        );
        assert!(ImageName::new("r.example", "Upper/case").is_err());
        assert!(ImageName::new("r.example", "a//b").is_err());
        assert!(ImageName::new("", "a").is_err());
    }
}
