//! Which component a pushed image belongs to, where its source commit comes
//! from, and when a push becomes a release. No I/O: the worker feeds these
//! rules what it read and stores what they decide.

use std::fmt;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::ids::{CommitSha, ImageName, RepoSlug, Tag};

/// A deployable thing: images under one prefix, built from one repository.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    /// `registry/path`, lower case, without a trailing `/`.
    pub image: String,
    pub repository: RepoSlug,
    release_tags: GlobSet,
    /// Effects are recorded as `skipped` instead of being posted.
    pub offline: bool,
}

impl Component {
    /// `release_tags` are globs (`v*`, `release-*`); an invalid one is an
    /// error naming it.
    pub fn new(
        name: &str,
        image: &str,
        repository: RepoSlug,
        release_tags: &[String],
        offline: bool,
    ) -> Result<Self, globset::Error> {
        let mut set = GlobSetBuilder::new();
        for pattern in release_tags {
            set.add(Glob::new(pattern)?);
        }
        Ok(Self {
            name: name.to_owned(),
            image: image.trim_end_matches('/').to_ascii_lowercase(),
            repository,
            release_tags: set.build()?,
            offline,
        })
    }

    /// Whether pushing `tag` creates a release.
    pub fn is_release_tag(&self, tag: &Tag) -> bool {
        self.release_tags.is_match(tag.as_str())
    }

    /// Whether `image` is this component's prefix or below it, at a path
    /// boundary (`reg/app` owns `reg/app` and `reg/app/x`, not `reg/apple`).
    fn owns(&self, image: &str) -> bool {
        image
            .strip_prefix(&self.image)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The configured components.
#[derive(Debug, Clone, Default)]
pub struct Components(Vec<Component>);

impl Components {
    pub fn new(components: Vec<Component>) -> Self {
        Self(components)
    }

    /// The component whose `image` is the longest prefix of `image`.
    pub fn for_image(&self, image: &ImageName) -> Option<&Component> {
        let full = image.to_string();
        self.0
            .iter()
            .filter(|c| c.owns(&full))
            .max_by_key(|c| c.image.len())
    }

    pub fn get(&self, name: &str) -> Option<&Component> {
        self.0.iter().find(|c| c.name == name)
    }

    /// The components built from `repository`.
    pub fn of_repository<'a>(
        &'a self,
        repository: &'a RepoSlug,
    ) -> impl Iterator<Item = &'a Component> + 'a {
        self.0.iter().filter(move |c| &c.repository == repository)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Component> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a source commit was learnt from, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOrigin {
    /// The image's `org.opencontainers.image.revision` label or annotation.
    Label,
    /// A tag that is itself a full commit sha.
    Tag,
    /// A CI build event that linked the digest to a commit.
    Build,
}

impl CommitOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitOrigin::Label => "label",
            CommitOrigin::Tag => "tag",
            CommitOrigin::Build => "build",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [CommitOrigin::Label, CommitOrigin::Tag, CommitOrigin::Build]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for CommitOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The source commit of an image from what is known about it: the revision
/// label if it is a full sha, else a tag that is one, else a build event's.
/// A short or malformed revision label is passed over: statuses and checks
/// need the full sha.
pub fn source_commit(
    revision_label: Option<&str>,
    tag: Option<&Tag>,
    from_build: Option<CommitSha>,
) -> Option<(CommitSha, CommitOrigin)> {
    let sha = |s: &str| CommitSha::parse(s).ok().filter(|sha| !sha.is_null());
    if let Some(sha) = revision_label.and_then(sha) {
        return Some((sha, CommitOrigin::Label));
    }
    if let Some(sha) = tag.and_then(|t| sha(t.as_str())) {
        return Some((sha, CommitOrigin::Tag));
    }
    from_build.map(|sha| (sha, CommitOrigin::Build))
}

/// A release's name: `{component}-{tag}`.
pub fn release_name(component: &str, tag: &Tag) -> String {
    format!("{component}-{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str, image: &str, tags: &[&str]) -> Component {
        Component::new(
            name,
            image,
            RepoSlug::parse("github:octo-org/hello-world").unwrap(),
            &tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            false,
        )
        .unwrap()
    }

    fn image(s: &str) -> ImageName {
        let (registry, repository) = s.split_once('/').unwrap();
        ImageName::new(registry, repository).unwrap()
    }

    #[test]
    fn the_longest_prefix_at_a_path_boundary_wins() {
        let components = Components::new(vec![
            component("org", "registry.example.com/octo-org", &[]),
            component("hello", "registry.example.com/octo-org/hello", &[]),
            component("hello-web", "registry.example.com/octo-org/hello/web", &[]),
        ]);
        let name = |s: &str| components.for_image(&image(s)).map(|c| c.name.as_str());
        assert_eq!(name("registry.example.com/octo-org/hello"), Some("hello"));
        assert_eq!(
            name("registry.example.com/octo-org/hello/api"),
            Some("hello")
        );
        assert_eq!(
            name("registry.example.com/octo-org/hello/web"),
            Some("hello-web")
        );
        assert_eq!(
            name("registry.example.com/octo-org/hello-world"),
            Some("org")
        );
        assert_eq!(name("registry.example.com/other/hello"), None);
        assert_eq!(name("other.example.com/octo-org/hello"), None);
    }

    #[test]
    fn release_tags_are_globs() {
        let c = component("hello", "r.example.com/hello", &["v*", "release-?"]);
        let matches = |t: &str| c.is_release_tag(&Tag::parse(t).unwrap());
        assert!(matches("v1.2.0"));
        assert!(matches("release-1"));
        assert!(!matches("latest"));
        assert!(!matches("release-10"));
        assert!(!component("x", "r.example.com/x", &[]).is_release_tag(&Tag::parse("v1").unwrap()));
        assert!(Component::new(
            "bad",
            "r.example.com/bad",
            RepoSlug::parse("github:a/b").unwrap(),
            &["v[".to_string()],
            false
        )
        .is_err());
    }

    #[test]
    fn the_source_commit_prefers_the_label_then_a_sha_tag_then_a_build() {
        let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        let other = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
        let tag = Tag::parse(other).unwrap();
        let build = CommitSha::parse(&"b".repeat(40)).unwrap();
        assert_eq!(
            source_commit(Some(sha), Some(&tag), Some(build.clone())),
            Some((CommitSha::parse(sha).unwrap(), CommitOrigin::Label))
        );
        assert_eq!(
            source_commit(Some("6113728"), Some(&tag), None),
            Some((CommitSha::parse(other).unwrap(), CommitOrigin::Tag))
        );
        assert_eq!(
            source_commit(None, Some(&Tag::parse("v1").unwrap()), Some(build.clone())),
            Some((build, CommitOrigin::Build))
        );
        assert_eq!(source_commit(Some(&"0".repeat(40)), None, None), None);
    }
}
