//! The cryptographic comparisons every verifier shares. All of them run in
//! constant time with respect to the secret and the received credential.

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::HookSecret;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `received` is a valid HMAC-SHA256 of `body` under any of `secrets`.
/// Every secret is tried, so the time taken does not tell which one matched.
pub(crate) fn any_hmac_sha256_matches(
    secrets: &[HookSecret],
    body: &[u8],
    received: &[u8],
) -> bool {
    secrets.iter().fold(false, |found, secret| {
        let expected = hmac_sha256(secret.value.expose_secret().as_bytes(), &[body]);
        found | bool::from(expected.ct_eq(received))
    })
}

/// HMAC-SHA1 of `body` under `key` (Nexus signs with SHA-1).
pub(crate) fn hmac_sha1(key: &[u8], body: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Whether `received` is a valid HMAC-SHA1 of `body` under any of `secrets`
/// (Nexus signs with SHA-1). Every secret is tried.
pub(crate) fn any_hmac_sha1_matches(secrets: &[HookSecret], body: &[u8], received: &[u8]) -> bool {
    secrets.iter().fold(false, |found, secret| {
        let expected = hmac_sha1(secret.value.expose_secret().as_bytes(), body);
        found | bool::from(expected.ct_eq(received))
    })
}

/// Whether `received` equals any of `secrets`. Both sides are hashed first so
/// the comparison does not even leak the secrets' length.
pub(crate) fn any_token_matches(secrets: &[HookSecret], received: &[u8]) -> bool {
    let received = Sha256::digest(received);
    secrets.iter().fold(false, |found, secret| {
        let expected = Sha256::digest(secret.value.expose_secret().as_bytes());
        found | bool::from(expected.ct_eq(&received))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> HookSecret {
        HookSecret::new(s.into())
    }

    #[test]
    fn hmac_matches_githubs_published_vector() {
        let mac = hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World!"]);
        assert_eq!(
            hex::encode(mac),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn any_of_several_secrets_may_match() {
        let secrets = [secret("old"), secret("new")];
        let mac = hmac_sha256(b"new", &[b"body"]);
        assert!(any_hmac_sha256_matches(&secrets, b"body", &mac));
        assert!(!any_hmac_sha256_matches(&secrets[..1], b"body", &mac));
        assert!(!any_hmac_sha256_matches(&secrets, b"other body", &mac));
    }

    #[test]
    fn tokens_compare_whole_values() {
        let secrets = [secret("s3cret")];
        assert!(any_token_matches(&secrets, b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3CRET"] {
            assert!(!any_token_matches(&secrets, wrong));
        }
    }
}
