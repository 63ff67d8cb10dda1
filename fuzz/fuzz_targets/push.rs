//! The webhook's pure parts on arbitrary input: the push-payload parser
//! (`http::parse_push`) and the signature check (`http::signature`).
//!
//! The input is split in three: a secret, an `X-Hub-Signature-256` header
//! value, and a body. Invariants: nothing panics; a parsed push names an
//! `owner/name` repository, a 40-digit lower-case commit unless the ref was
//! deleted, and the branch its ref names; an arbitrary header verifies only
//! if it is the body's signature; the real signature always verifies.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zos_build_core::{CommitId, RepositoryName};
use zos_build_server::http::{parse_push, signature};

fuzz_target!(|data: &[u8]| {
    let (secret, rest) = split(data);
    let (header, body) = split(rest);

    if let Ok(push) = parse_push(body) {
        let name = push.repository.as_str();
        assert_eq!(RepositoryName::parse(name).as_ref(), Ok(&push.repository));
        assert_eq!(
            push.branch.as_deref(),
            push.git_ref.strip_prefix("refs/heads/"),
            "{push:?}"
        );
        assert_eq!(push.commit.is_none(), push.deleted, "{push:?}");
        if let Some(commit) = &push.commit {
            let digits = commit.as_str();
            assert_eq!(digits.len(), 40, "{push:?}");
            assert!(
                digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{push:?}"
            );
            assert_eq!(CommitId::parse(digits).as_ref(), Ok(commit));
            assert_eq!(commit.short().len(), 10);
        }
        // What the parser keeps is JSON again.
        let _ = serde_json::to_string(&push.commits).expect("commits serialise");
    }

    let good = signature::sign(secret, body);
    assert_eq!(
        signature::verify(secret, body, Some(good.as_bytes())),
        Ok(())
    );
    let verdict = signature::verify(secret, body, Some(header));
    if verdict.is_ok() {
        // Only the body's own signature (hex in either case) verifies.
        assert_eq!(
            String::from_utf8_lossy(header).to_ascii_lowercase(),
            good,
            "a forged signature verified"
        );
    }
    assert!(signature::verify(secret, body, None).is_err());
    let _ = signature::same_secret(secret, header);
    assert!(signature::same_secret(secret, secret));
});

/// The input up to the first `0xff` byte, and the rest after it.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}
