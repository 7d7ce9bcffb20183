//! `RegistryReader` against a real CNCF Distribution registry (pushed to
//! with skopeo, see `support_registry`), including Distribution's token
//! authentication with a token service played by wiremock; and against
//! wiremock alone for the answers a healthy registry does not give.

use base64::Engine as _;
use portcall::domain::{Digest, Tag};
use portcall::ingest::RegistryApi;
use portcall::registry::{ImageSource, RegistryError, RegistryReader};
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::free_port;
use crate::support_registry::*;

const OTHER_REVISION: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const READER: &str = "reader";
const READER_PASSWORD: &str = "s3cret-registry-pass";

fn reader(api_url: &str) -> RegistryReader {
    RegistryReader::new(&RegistryApi {
        url: api_url.to_owned(),
        username: None,
        password: None,
    })
    .expect("a valid api_url")
}

fn reader_with(api_url: &str, username: &str, password: &str) -> RegistryReader {
    RegistryReader::new(&RegistryApi {
        url: api_url.to_owned(),
        username: Some(SecretString::from(username)),
        password: Some(SecretString::from(password)),
    })
    .expect("a valid api_url")
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("a valid digest")
}

fn found(revision: &str, source: &str) -> ImageSource {
    ImageSource {
        revision: Some(revision.to_owned()),
        source: Some(source.to_owned()),
    }
}

#[tokio::test]
async fn the_labels_of_a_pushed_images_config_are_read_by_digest() {
    if !registry_tools_installed() {
        return;
    }
    let registry = Registry::start_with(RegistryOptions::default()).await;
    let image = OciImage::with_labels(&[
        (REVISION_LABEL, REVISION),
        (SOURCE_LABEL, "  https://github.com/octo-org/hello-world\n"),
    ]);
    registry.push(&image).await;

    let source = reader(&registry.api_url())
        .image_source(REPOSITORY, &digest(image.digest()))
        .await;
    assert_eq!(
        source,
        Ok(found(REVISION, SOURCE_URL)),
        "{}",
        registry.log()
    );
    registry.stop().await;
}

#[tokio::test]
async fn an_image_index_is_read_through_its_linux_amd64_manifest_and_its_annotations() {
    if !registry_tools_installed() {
        return;
    }
    let registry = Registry::start_with(RegistryOptions::default()).await;
    let image = OciImage::index(
        &[
            ManifestSpec::new("linux", "arm64")
                .label(REVISION_LABEL, OTHER_REVISION)
                .label(SOURCE_LABEL, "https://github.com/octo-org/arm"),
            ManifestSpec::linux_amd64()
                .label(REVISION_LABEL, REVISION)
                .label(SOURCE_LABEL, "https://github.com/octo-org/label-loses"),
        ],
        // An annotation on the index wins over the config's label.
        &[(SOURCE_LABEL, SOURCE_URL)],
    );
    registry.push_to(&image, REPOSITORY, "multi").await;

    let source = reader(&registry.api_url())
        .image_source(REPOSITORY, &digest(image.digest()))
        .await;
    assert_eq!(
        source,
        Ok(found(REVISION, SOURCE_URL)),
        "{}",
        registry.log()
    );
    registry.stop().await;
}

#[tokio::test]
async fn annotations_on_the_manifest_win_over_the_configs_labels() {
    if !registry_tools_installed() {
        return;
    }
    let registry = Registry::start_with(RegistryOptions::default()).await;
    let image = OciImage::single(
        ManifestSpec::linux_amd64()
            .annotation(REVISION_LABEL, REVISION)
            .label(REVISION_LABEL, OTHER_REVISION)
            .label(SOURCE_LABEL, SOURCE_URL),
    );
    registry.push(&image).await;

    let source = reader(&registry.api_url())
        .image_source(REPOSITORY, &digest(image.digest()))
        .await;
    assert_eq!(
        source,
        Ok(found(REVISION, SOURCE_URL)),
        "{}",
        registry.log()
    );
    registry.stop().await;
}

#[tokio::test]
async fn an_unknown_digest_is_a_permanent_error() {
    if !registry_tools_installed() {
        return;
    }
    let registry = Registry::start_with(RegistryOptions::default()).await;
    registry.push(&OciImage::build()).await;
    let unknown = digest(&format!("sha256:{}", "ab".repeat(32)));

    let reader = reader(&registry.api_url());
    for repository in [REPOSITORY, "octo-org/never-pushed"] {
        let error = reader
            .image_source(repository, &unknown)
            .await
            .expect_err("nothing has that digest");
        assert!(
            matches!(&error, RegistryError::Permanent(m) if m.contains("unknown")),
            "{repository}: {error:?}"
        );
    }
    registry.stop().await;
}

#[tokio::test]
async fn a_registry_that_is_not_listening_is_a_transient_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let error = reader(&url)
        .image_source(REPOSITORY, &digest(&format!("sha256:{}", "ab".repeat(32))))
        .await
        .expect_err("nothing listens there");
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn a_tag_resolves_to_the_digest_the_registry_holds_for_it() {
    if !registry_tools_installed() {
        return;
    }
    let registry = Registry::start_with(RegistryOptions::default()).await;
    let image = OciImage::build();
    registry.push(&image).await;
    let index = OciImage::index(
        &[
            ManifestSpec::linux_amd64(),
            ManifestSpec::new("linux", "arm64"),
        ],
        &[],
    );
    registry.push_to(&index, REPOSITORY, "multi").await;

    let reader = reader(&registry.api_url());
    let tag = |t: &str| Tag::parse(t).unwrap();
    assert_eq!(
        reader.resolve_tag(REPOSITORY, &tag(TAG)).await,
        Ok(digest(image.digest()))
    );
    // An index resolves to the index's own digest, not a platform's.
    assert_eq!(
        reader.resolve_tag(REPOSITORY, &tag("multi")).await,
        Ok(digest(index.digest()))
    );
    for (repository, t) in [(REPOSITORY, "v9.9.9"), ("octo-org/never-pushed", TAG)] {
        let error = reader
            .resolve_tag(repository, &tag(t))
            .await
            .expect_err("nothing has that tag");
        assert!(!error.is_transient(), "{repository}:{t}: {error:?}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn a_tag_is_resolved_with_basic_credentials_where_the_registry_demands_them() {
    if !registry_tools_installed() || !tools_installed(&["htpasswd"]) {
        return;
    }
    let registry = Registry::start_with(RegistryOptions {
        basic_auth: Some((READER.into(), READER_PASSWORD.into())),
        ..RegistryOptions::default()
    })
    .await;
    let image = OciImage::build();
    registry.push(&image).await;
    let tag = Tag::parse(TAG).unwrap();
    assert_eq!(
        reader_with(&registry.api_url(), READER, READER_PASSWORD)
            .resolve_tag(REPOSITORY, &tag)
            .await,
        Ok(digest(image.digest())),
        "{}",
        registry.log()
    );
    for anonymous_or_wrong in [
        reader(&registry.api_url()),
        reader_with(&registry.api_url(), READER, "wrong"),
    ] {
        let error = anonymous_or_wrong
            .resolve_tag(REPOSITORY, &tag)
            .await
            .expect_err("refused");
        assert!(!error.is_transient(), "{error:?}");
        assert!(!error.to_string().contains(READER_PASSWORD), "{error}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn resolving_a_tag_at_a_registry_that_is_not_listening_is_transient() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let error = reader(&url)
        .resolve_tag(REPOSITORY, &Tag::parse(TAG).unwrap())
        .await
        .expect_err("nothing listens there");
    assert!(error.is_transient(), "{error:?}");
}

// ---------------------------------------------------------------------------
// Token authentication against the real registry.

/// A token service, as Distribution's `auth: token:` expects one: ES256 JWTs
/// signed with a fresh key whose self-signed certificate is the registry's
/// `rootcertbundle` and travels in each token's `x5c` header.
struct TokenService {
    server: MockServer,
    _dir: tempfile::TempDir,
    key: jsonwebtoken::EncodingKey,
    /// The certificate, DER in standard base64, for `x5c`.
    cert_der: String,
    auth: TokenAuth,
}

const SERVICE: &str = "registry";
const ISSUER: &str = "portcall-test-token-service";

impl TokenService {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        let output = tokio::process::Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-days", "2", "-subj", "/CN=portcall test token service"])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .await
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&key_path).unwrap())
            .expect("openssl wrote a PKCS#8 EC key");
        let cert_der: String = std::fs::read_to_string(&cert_path)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();

        let server = MockServer::start().await;
        let auth = TokenAuth {
            realm: format!("{}/token", server.uri()),
            service: SERVICE.to_owned(),
            issuer: ISSUER.to_owned(),
            root_cert_bundle: cert_path,
        };
        Self {
            server,
            _dir: dir,
            key,
            cert_der,
            auth,
        }
    }

    /// A token for `actions` on [`REPOSITORY`].
    fn token(&self, actions: &[&str]) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = Some(vec![self.cert_der.clone()]);
        let claims = json!({
            "iss": ISSUER,
            "sub": READER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "access": [{"type": "repository", "name": REPOSITORY, "actions": actions}],
        });
        jsonwebtoken::encode(&header, &claims, &self.key).expect("the token signs")
    }
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[tokio::test]
async fn a_token_protected_registry_is_read_with_a_pull_token_bought_with_the_credentials() {
    if !tools_installed(&["docker-registry", "skopeo", "openssl"]) {
        return;
    }
    let tokens = TokenService::start().await;
    let pull_scope = format!("repository:{REPOSITORY}:pull");
    // The reader: its credentials, a pull scope, the registry's service name.
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("scope", pull_scope.as_str()))
        .and(query_param("service", SERVICE))
        .and(header(
            "authorization",
            basic(READER, READER_PASSWORD).as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token": tokens.token(&["pull"]),
            "expires_in": 300,
        })))
        .with_priority(1)
        // Reading the labels, then resolving a tag: each authenticates.
        .expect(1..=2)
        .named("pull token for the reader")
        .mount(&tokens.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(header("authorization", basic(READER, "wrong").as_str()))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"details": "incorrect username or password"})),
        )
        .with_priority(1)
        .expect(1)
        .named("refusal of a wrong password")
        .mount(&tokens.server)
        .await;
    // skopeo, pushing anonymously.
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token": tokens.token(&["pull", "push"]),
        })))
        .with_priority(5)
        .named("push token")
        .mount(&tokens.server)
        .await;

    let registry = Registry::start_with(RegistryOptions {
        token_auth: Some(tokens.auth.clone()),
        ..RegistryOptions::default()
    })
    .await;
    let image = OciImage::build();
    registry.push(&image).await;
    let image_digest = digest(image.digest());

    // Without a token the registry refuses: the handshake is needed.
    let challenge = reqwest::get(format!(
        "{}/v2/{REPOSITORY}/manifests/{}",
        registry.api_url(),
        image.digest()
    ))
    .await
    .unwrap();
    assert_eq!(challenge.status().as_u16(), 401);
    let www_authenticate = challenge.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        www_authenticate.starts_with(&format!(
            "Bearer realm=\"{}\",service=\"{SERVICE}\"",
            tokens.auth.realm
        )),
        "{www_authenticate}"
    );

    let token_reader = reader_with(&registry.api_url(), READER, READER_PASSWORD);
    let source = token_reader.image_source(REPOSITORY, &image_digest).await;
    assert_eq!(
        source,
        Ok(found(REVISION, SOURCE_URL)),
        "{}",
        registry.log()
    );
    // A tag is resolved through the same handshake (a payload without a
    // digest: Quay, Docker Hub, Nexus).
    assert_eq!(
        token_reader
            .resolve_tag(REPOSITORY, &Tag::parse(TAG).unwrap())
            .await,
        Ok(image_digest.clone()),
        "{}",
        registry.log()
    );

    let refused = reader_with(&registry.api_url(), READER, "wrong")
        .image_source(REPOSITORY, &image_digest)
        .await
        .expect_err("the token service refuses a wrong password");
    assert!(
        matches!(&refused, RegistryError::Permanent(m) if m.contains("incorrect username or password")),
        "{refused:?}"
    );

    tokens.server.verify().await;
    registry.stop().await;
}

// ---------------------------------------------------------------------------
// Answers a healthy registry does not give, from wiremock.

/// Wiremock as an open registry answering `GET /v2/` and, for the manifest
/// of `body`'s digest, `status` with `body`.
async fn fake_registry(status: u16, body: &str) -> (MockServer, Digest) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let digest = digest(&format!(
        "sha256:{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    ));
    Mock::given(method("GET"))
        .and(path(format!("/v2/{REPOSITORY}/manifests/{digest}")))
        .respond_with(
            ResponseTemplate::new(status)
                .insert_header("content-type", OCI_MANIFEST)
                .set_body_string(body),
        )
        .mount(&server)
        .await;
    (server, digest)
}

#[tokio::test]
async fn overload_and_server_errors_are_transient_and_refusals_permanent() {
    let errors = |code: &str| json!({"errors": [{"code": code, "message": "m"}]}).to_string();
    let cases = [
        (500, "internal error".to_owned(), true),
        (502, "<html>bad gateway</html>".to_owned(), true),
        (503, "".to_owned(), true),
        (429, errors("TOOMANYREQUESTS"), true),
        (401, errors("UNAUTHORIZED"), false),
        (403, errors("DENIED"), false),
        (404, errors("MANIFEST_UNKNOWN"), false),
        (
            200,
            "{\"schemaVersion\": 2, \"nonsense\": true}".to_owned(),
            false,
        ),
        (200, "not json".to_owned(), false),
    ];
    for (status, body, transient) in cases {
        let (server, digest) = fake_registry(status, &body).await;
        let error = reader(&server.uri())
            .image_source(REPOSITORY, &digest)
            .await
            .expect_err("the registry did not answer with an image");
        assert_eq!(
            error.is_transient(),
            transient,
            "{status} {body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_401_after_basic_authentication_is_permanent_and_never_shows_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"r\""),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v2/{REPOSITORY}/manifests/sha256:{}",
            "ab".repeat(32)
        )))
        .and(header(
            "authorization",
            basic(READER, READER_PASSWORD).as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(format!("bad credentials for {READER}:{READER_PASSWORD}")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = reader_with(&server.uri(), READER, READER_PASSWORD)
        .image_source(REPOSITORY, &digest(&format!("sha256:{}", "ab".repeat(32))))
        .await
        .expect_err("the registry refuses the credentials");
    assert!(!error.is_transient(), "{error:?}");
    assert!(!format!("{error:?}").contains(READER_PASSWORD), "{error:?}");
}
