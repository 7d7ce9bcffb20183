//! The catalog of integration types: every source kind and provider kind
//! portcall can be configured with (and the GitHub App setup that writes a
//! provider's credentials), and the configuration inputs of each, as
//! `GET /api/v1/integration-types` serves it to CLIs and UIs.
//!
//! It says what the README's configuration reference says, in data. A test
//! below keeps it honest: every key the parser accepts in `[[sources]]`,
//! `[github]`, `[gitlab]` and `[setup]` is in the catalog and the other way
//! round, and every field is in the README's table.

use serde::Serialize;

/// One kind of integration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IntegrationType {
    /// As `/api/v1/integrations` names kinds: `source:github`,
    /// `provider:gitlab`, …
    pub kind: &'static str,
    /// `source` (a webhook endpoint portcall receives on), `provider`
    /// (a service portcall posts results to) or `setup` (creating a
    /// provider's credentials).
    pub category: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Where in the configuration file it is set.
    pub section: &'static str,
    pub inputs: &'static [Input],
}

/// One configuration key of an integration type.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Input {
    /// The key, e.g. `secrets` or `app_id`.
    pub field: &'static str,
    #[serde(rename = "type")]
    pub kind: InputType,
    pub required: bool,
    /// A secret reference (`env:NAME` or `file:/path`); a literal value is
    /// refused.
    pub secret: bool,
    /// The one value this type takes (the `kind` of a source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    pub description: &'static str,
}

/// The TOML type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    String,
    Integer,
    /// An `http://` or `https://` URL.
    Url,
    /// An array of strings.
    StringList,
    /// `true` or `false`.
    Boolean,
}

const fn input(
    field: &'static str,
    kind: InputType,
    required: bool,
    secret: bool,
    description: &'static str,
) -> Input {
    Input {
        field,
        kind,
        required,
        secret,
        value: None,
        default: None,
        description,
    }
}

const SOURCE_NAME: Input = input(
    "name",
    InputType::String,
    true,
    false,
    "endpoint name: POST /webhooks/{name}; 1-63 of [a-z0-9_-]",
);

const SOURCE_SECRETS: Input = input(
    "secrets",
    InputType::StringList,
    true,
    true,
    "one or more secret references; any one may match (rotation)",
);

/// A provider's `request_timeout_secs`, defaulting to `default` seconds.
const fn provider_request_timeout(default: &'static str) -> Input {
    Input {
        default: Some(default),
        ..input(
            "request_timeout_secs",
            InputType::Integer,
            false,
            false,
            "seconds one API call may take, answer included, before it is retried (1 to 300)",
        )
    }
}

const fn source_kind(kind: &'static str) -> Input {
    Input {
        value: Some(kind),
        ..input(
            "kind",
            InputType::String,
            true,
            false,
            "the source kind: github, gitlab, distribution, standard, acr, ecr, gar, harbor, quay, dockerhub, jfrog or nexus",
        )
    }
}

const GITHUB_SOURCE: &[Input] = &[SOURCE_NAME, source_kind("github"), SOURCE_SECRETS];
const GITLAB_SOURCE: &[Input] = &[SOURCE_NAME, source_kind("gitlab"), SOURCE_SECRETS];
const STANDARD_SOURCE: &[Input] = &[SOURCE_NAME, source_kind("standard"), SOURCE_SECRETS];
const REGISTRY_HOST: Input = input(
    "registry",
    InputType::String,
    false,
    false,
    "canonical host for image names (default: the host the registry reports)",
);
/// jfrog and nexus payloads name no host: the source must.
const REGISTRY_HOST_REQUIRED: Input = input(
    "registry",
    InputType::String,
    true,
    false,
    "canonical host for image names (required: the payloads name no host)",
);
const API_URL: Input = input(
    "api_url",
    InputType::Url,
    false,
    false,
    "where manifests and configs are read (http:// or https:// host, no path); without it the source commit comes from a sha tag only, and a push without a digest cannot be resolved",
);
const USERNAME: Input = input(
    "username",
    InputType::String,
    false,
    true,
    "registry read credentials: user name (with password, both or neither)",
);
const PASSWORD: Input = input(
    "password",
    InputType::String,
    false,
    true,
    "registry read credentials: password or token (with username, both or neither)",
);
const DISTRIBUTION_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("distribution"),
    SOURCE_SECRETS,
    REGISTRY_HOST,
    API_URL,
    USERNAME,
    PASSWORD,
];
const HARBOR_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("harbor"),
    SOURCE_SECRETS,
    REGISTRY_HOST,
    API_URL,
    USERNAME,
    PASSWORD,
];
const QUAY_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("quay"),
    SOURCE_SECRETS,
    REGISTRY_HOST,
    API_URL,
    USERNAME,
    PASSWORD,
];
const DOCKERHUB_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("dockerhub"),
    SOURCE_SECRETS,
    REGISTRY_HOST,
    API_URL,
    USERNAME,
    PASSWORD,
];
const JFROG_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("jfrog"),
    SOURCE_SECRETS,
    REGISTRY_HOST_REQUIRED,
    API_URL,
    USERNAME,
    PASSWORD,
    Input {
        default: Some("false"),
        ..input(
            "signed",
            InputType::Boolean,
            false,
            false,
            "X-JFrog-Event-Auth is the hex HMAC-SHA256 of the body (Artifactory's payload signing) rather than the secret itself",
        )
    },
];
const NEXUS_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("nexus"),
    SOURCE_SECRETS,
    REGISTRY_HOST_REQUIRED,
    API_URL,
    USERNAME,
    PASSWORD,
];

const SOURCE_REGISTRY: Input = input(
    "registry",
    InputType::String,
    false,
    false,
    "canonical host for image names (default: the host the registry reports)",
);

const ACR_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("acr"),
    SOURCE_SECRETS,
    SOURCE_REGISTRY,
];
const ECR_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("ecr"),
    SOURCE_SECRETS,
    input(
        "registry",
        InputType::String,
        false,
        false,
        "canonical host for image names (default: {account}.dkr.ecr.{region}.amazonaws.com from the event)",
    ),
];
const GAR_SOURCE: &[Input] = &[
    SOURCE_NAME,
    source_kind("gar"),
    input(
        "secrets",
        InputType::StringList,
        false,
        true,
        "the ?token= form: secret references, any one may match; required unless the OIDC keys are set",
    ),
    SOURCE_REGISTRY,
    input(
        "audience",
        InputType::String,
        false,
        false,
        "OIDC: the audience set on the push subscription (with service_account and jwks_file)",
    ),
    input(
        "service_account",
        InputType::String,
        false,
        false,
        "OIDC: the email of the service account the push subscription signs as (verified)",
    ),
    input(
        "jwks_file",
        InputType::String,
        false,
        false,
        "OIDC: Google's signing keys as a JWKS file (https://www.googleapis.com/oauth2/v3/certs), read at start and again (at most once a minute) for a token naming a key it lacks",
    ),
];

const GITHUB_PROVIDER: &[Input] = &[
    input(
        "app_id",
        InputType::Integer,
        true,
        false,
        "the GitHub App that posts back",
    ),
    input(
        "private_key",
        InputType::String,
        true,
        true,
        "the App's private key, PEM",
    ),
    Input {
        default: Some("https://api.github.com"),
        ..input(
            "api_url",
            InputType::Url,
            false,
            false,
            "GitHub Enterprise Server: https://HOST/api/v3",
        )
    },
    provider_request_timeout("60"),
    Input {
        default: Some("true"),
        ..input(
            "recovery",
            InputType::Boolean,
            false,
            false,
            "ask GitHub to redeliver webhook deliveries that failed or never reached portcall",
        )
    },
    Input {
        default: Some("300"),
        ..input(
            "recovery_interval_secs",
            InputType::Integer,
            false,
            false,
            "seconds between recovery rounds (10 to 86400)",
        )
    },
    Input {
        default: Some("20"),
        ..input(
            "recovery_max_per_run",
            InputType::Integer,
            false,
            false,
            "redelivery requests per round at most (1 to 1000)",
        )
    },
];

const GITLAB_PROVIDER: &[Input] = &[
    Input {
        default: Some("https://gitlab.com"),
        ..input(
            "url",
            InputType::Url,
            false,
            false,
            "self-managed GitLab: https://gitlab.example.com",
        )
    },
    input(
        "token",
        InputType::String,
        true,
        true,
        "token that posts back (a project or group access token with the api scope)",
    ),
    provider_request_timeout("30"),
];

const SETUP: &[Input] = &[
    Input {
        default: Some("true"),
        ..input(
            "enabled",
            InputType::Boolean,
            false,
            false,
            "serve the one-click GitHub App setup at /setup/github (open while no [github] is configured, else for the admin token only); false answers 404",
        )
    },
    Input {
        default: Some("github-app"),
        ..input(
            "dir",
            InputType::String,
            false,
            false,
            "directory the new app's id, private key and webhook secret are written to (mode 0600; relative to the working directory); existing files are never replaced",
        )
    },
    input(
        "github_url",
        InputType::Url,
        false,
        false,
        "GitHub's web address the manifest is posted to (default: from github.api_url, else https://github.com)",
    ),
    input(
        "github_api_url",
        InputType::Url,
        false,
        false,
        "GitHub's API the one-time code is exchanged at (default: github.api_url, else the API of setup.github_url: https://api.github.com or https://HOST/api/v3)",
    ),
];

const CATALOG: &[IntegrationType] = &[
    IntegrationType {
        kind: "source:github",
        category: "source",
        title: "GitHub webhooks",
        description: "A GitHub App's (or a repository or organisation) webhook. Verified with X-Hub-Signature-256 (HMAC-SHA256 of the raw body); delivery id X-GitHub-Delivery, event X-GitHub-Event.",
        section: "[[sources]]",
        inputs: GITHUB_SOURCE,
    },
    IntegrationType {
        kind: "source:gitlab",
        category: "source",
        title: "GitLab webhooks",
        description: "A GitLab project, group or system hook. Verified with X-Gitlab-Token, or GitLab's signed webhooks (webhook-signature); delivery id Idempotency-Key, else X-Gitlab-Event-UUID.",
        section: "[[sources]]",
        inputs: GITLAB_SOURCE,
    },
    IntegrationType {
        kind: "source:distribution",
        category: "source",
        title: "CNCF Distribution registry notifications",
        description: "A Docker Registry v2 (CNCF Distribution) notification endpoint. Verified with Authorization: Bearer <secret>; each event is a delivery. With api_url, image labels are read for the source commit.",
        section: "[[sources]]",
        inputs: DISTRIBUTION_SOURCE,
    },
    IntegrationType {
        kind: "source:standard",
        category: "source",
        title: "Standard Webhooks sender",
        description: "Any Standard Webhooks sender (CI systems and others). Verified with webhook-id, webhook-timestamp (within 5 minutes) and webhook-signature; secrets are whsec_ followed by base64.",
        section: "[[sources]]",
        inputs: STANDARD_SOURCE,
    },
    IntegrationType {
        kind: "source:acr",
        category: "source",
        title: "Azure Container Registry webhooks",
        description: "An ACR webhook (action push). Verified with Authorization: Bearer <secret>, set as a custom header on the webhook; delivery id the event id. delete and chart_push are recorded, not acted on.",
        section: "[[sources]]",
        inputs: ACR_SOURCE,
    },
    IntegrationType {
        kind: "source:ecr",
        category: "source",
        title: "Amazon ECR via EventBridge",
        description: "ECR Image Action events sent by an EventBridge rule to an API destination. Verified with Authorization: Bearer <secret> (the connection's API key); delivery id the event id. Only PUSH with result SUCCESS is an image push.",
        section: "[[sources]]",
        inputs: ECR_SOURCE,
    },
    IntegrationType {
        kind: "source:gar",
        category: "source",
        title: "Google Artifact Registry / GCR via Pub/Sub push",
        description: "Notifications of the gcr topic delivered by a Pub/Sub push subscription. Verified with the subscription's Google OIDC token (issuer, audience, service account, expiry, against a JWKS file) or a ?token= secret in the endpoint URL; delivery id the messageId.",
        section: "[[sources]]",
        inputs: GAR_SOURCE,
    },
    IntegrationType {
        kind: "source:harbor",
        category: "source",
        title: "Harbor webhooks",
        description: "A Harbor project webhook (default JSON, CloudEvents, or Harbor 1.x). Verified with the Authorization header equal to the secret (Harbor's Auth Header); delivery id the CloudEvents id, else a hash of the body.",
        section: "[[sources]]",
        inputs: HARBOR_SOURCE,
    },
    IntegrationType {
        kind: "source:quay",
        category: "source",
        title: "Quay notifications",
        description: "A Quay repository notification (Webhook POST). Quay cannot sign requests: the secret is the ?token= in the URL. repo_push has no digest: it is resolved from the registry (api_url).",
        section: "[[sources]]",
        inputs: QUAY_SOURCE,
    },
    IntegrationType {
        kind: "source:dockerhub",
        category: "source",
        title: "Docker Hub webhooks",
        description: "A Docker Hub repository webhook. Docker Hub cannot sign requests: the secret is the ?token= in the URL. The push has no digest: it is resolved from the registry (api_url); callback_url is never called.",
        section: "[[sources]]",
        inputs: DOCKERHUB_SOURCE,
    },
    IntegrationType {
        kind: "source:jfrog",
        category: "source",
        title: "JFrog Artifactory webhooks",
        description: "An Artifactory webhook of the docker domain (pushed). Verified with X-JFrog-Event-Auth: the secret, or its HMAC-SHA256 of the body with signed = true.",
        section: "[[sources]]",
        inputs: JFROG_SOURCE,
    },
    IntegrationType {
        kind: "source:nexus",
        category: "source",
        title: "Sonatype Nexus webhooks",
        description: "A Nexus Repository webhook capability (rm:repository:component). Verified with X-Nexus-Webhook-Signature (hex HMAC-SHA1 of the body); delivery id X-Nexus-Webhook-Delivery. Components have no digest: it is resolved from the registry (api_url).",
        section: "[[sources]]",
        inputs: NEXUS_SOURCE,
    },
    IntegrationType {
        kind: "provider:github",
        category: "provider",
        title: "GitHub App",
        description: "Posts commit statuses, check runs and sticky pull request comments as a GitHub App (installation tokens minted from an RS256 app JWT).",
        section: "[github]",
        inputs: GITHUB_PROVIDER,
    },
    IntegrationType {
        kind: "provider:gitlab",
        category: "provider",
        title: "GitLab",
        description: "Posts commit statuses, emulated check runs and sticky merge request notes with a GitLab token.",
        section: "[gitlab]",
        inputs: GITLAB_PROVIDER,
    },
    IntegrationType {
        kind: "setup:github",
        category: "setup",
        title: "GitHub App setup",
        description: "Creates the GitHub App from its manifest (GET /setup/github, GitHub's App-manifest flow) and writes its credentials to files that [github] and the github source then reference.",
        section: "[setup]",
        inputs: SETUP,
    },
];

/// Every integration type: sources, then providers, then the GitHub App setup.
pub fn catalog() -> &'static [IntegrationType] {
    CATALOG
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use super::*;
    use crate::config::{RawGithub, RawGitlab, RawSetup, RawSource};
    use crate::ingest::SourceKind;

    /// A deserializer that only records the field names a struct asks for
    /// (serde's derive hands them to `deserialize_struct`), then stops.
    struct FieldNames<'a>(&'a mut Vec<&'static str>);

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only a struct's field names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(de::Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    /// The keys the configuration parser accepts for `T`.
    fn parser_keys<'de, T: Deserialize<'de>>() -> BTreeSet<&'static str> {
        let mut fields = Vec::new();
        let _ = T::deserialize(FieldNames(&mut fields));
        assert!(!fields.is_empty(), "not a struct");
        fields.into_iter().collect()
    }

    fn catalog_keys(category: &str) -> BTreeSet<&'static str> {
        catalog()
            .iter()
            .filter(|t| t.kind.starts_with(category))
            .flat_map(|t| t.inputs.iter().map(|i| i.field))
            .collect()
    }

    #[test]
    fn every_key_the_parser_accepts_is_in_the_catalog_and_no_other() {
        assert_eq!(catalog_keys("source:"), parser_keys::<RawSource>());
        assert_eq!(catalog_keys("provider:github"), parser_keys::<RawGithub>());
        assert_eq!(catalog_keys("provider:gitlab"), parser_keys::<RawGitlab>());
        assert_eq!(catalog_keys("setup:"), parser_keys::<RawSetup>());
    }

    #[test]
    fn every_source_kind_the_parser_knows_has_a_type_and_fixes_its_kind() {
        for kind in SourceKind::ALL {
            let name = format!("source:{kind}");
            let entry = catalog()
                .iter()
                .find(|t| t.kind == name)
                .unwrap_or_else(|| panic!("{name} is missing"));
            let fixed = entry.inputs.iter().find(|i| i.field == "kind").unwrap();
            assert_eq!(fixed.value, Some(kind.as_str()));
        }
        assert_eq!(catalog().len(), SourceKind::ALL.len() + 3);
        // Each type lists a field once; every secret is a string or strings.
        for entry in catalog() {
            let fields: BTreeSet<_> = entry.inputs.iter().map(|i| i.field).collect();
            assert_eq!(fields.len(), entry.inputs.len(), "{}", entry.kind);
            for input in entry.inputs.iter().filter(|i| i.secret) {
                assert!(matches!(
                    input.kind,
                    InputType::String | InputType::StringList
                ));
            }
        }
    }

    #[test]
    fn every_field_is_in_the_readme_configuration_table() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
        for entry in catalog() {
            for input in entry.inputs {
                let field = input.field;
                let found = rows.iter().any(|row| match entry.section {
                    // "| `[[sources]] name` |", "| `[[sources]] username`, `password` |"
                    "[[sources]]" => {
                        row.starts_with("| `[[sources]]")
                            && (row.contains(&format!("`[[sources]] {field}`"))
                                || row.contains(&format!("`{field}`")))
                    }
                    // "| `github.app_id` |"
                    section => {
                        row.contains(&format!("`{}.{field}`", section.trim_matches(['[', ']'])))
                    }
                });
                assert!(found, "{} {} is not in the README", entry.kind, input.field);
            }
        }
    }
}
