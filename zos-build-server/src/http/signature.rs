//! GitHub webhook signatures: `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body with the webhook's secret.
//!
//! The old service accepted any request; anyone who knew the URL could start
//! builds. The comparison is constant-time (`verify_slice`), so timing does
//! not reveal how much of a forged signature was right. Hex goes through the
//! `hex` crate and the admin token's comparison through `subtle`: both are
//! easy to get subtly wrong by hand (odd lengths, a comparison the optimiser
//! turns back into an early exit).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header GitHub signs with.
pub const HEADER: &str = "x-hub-signature-256";

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// Not `sha256=` and 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header")]
    Malformed,
    /// Well-formed, but not the body's signature with our secret.
    #[error("wrong X-Hub-Signature-256 signature")]
    Mismatch,
}

/// Checks `header` (the header's value, if any) against `body` and `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digits = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    // Exactly 32 bytes: any other length, or a non-hex digit, is malformed.
    let mut expected = [0u8; 32];
    hex::decode_to_slice(digits, &mut expected).map_err(|_| SignatureError::Malformed)?;
    let mut mac = hmac_of(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body`: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_of(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn hmac_of(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// Whether two secrets are equal, in time that depends on neither: both are
/// hashed first, so even their lengths do not leak through timing.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.as_slice().ct_eq(expected.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"tokem"));
        assert!(!same_secret(b"token", b"token2"));
        assert!(!same_secret(b"", b"token"));
    }

    #[test]
    fn matches_githubs_documented_example() {
        // The example of GitHub's "Validating webhook deliveries" page.
        let header = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            header,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert_eq!(
            verify(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(header.as_bytes())
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_signatures() {
        let good = sign(b"s", b"body");
        assert_eq!(verify(b"s", b"body", None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"s", b"body", Some(b"sha1=00")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s", b"body", Some(b"sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s", b"body", Some(b"sha256=00")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"t", b"body", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s", b"body!", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"s",
                b"body",
                Some(good.to_uppercase().replace("SHA256", "sha256").as_bytes())
            ),
            Ok(())
        );
    }
}
