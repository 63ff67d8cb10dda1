//! Keeping credentials out of everything that is shown.
//!
//! A repository URL such as `https://user:token@git.example.org/` works with
//! git, but the credentials in it must never reach a log, an error message,
//! an API answer or the monitor page. [`redact_credentials`] rewrites any
//! text that may hold such URLs (a URL, a git error, a log line), and
//! [`credentials_of`] gives the secrets themselves to a masking sink.

/// `text` with the user information of every URL in it shown as `***`:
/// `https://user:pw@host/x` becomes `https://***@host/x`.
///
/// A URL is recognised by `://`; its user information is what comes before
/// an `@` that appears before the next `/`, `?`, `#` or whitespace.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The user information of `url` (`user:pw` of `https://user:pw@host/`),
/// and its password alone, for a masking sink; empty when there is none.
pub fn credentials_of(url: &str) -> Vec<String> {
    let Some(pos) = url.find("://") else {
        return Vec::new();
    };
    let tail = &url[pos + 3..];
    let authority_end = tail
        .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
        .unwrap_or(tail.len());
    let Some(at) = tail[..authority_end].rfind('@') else {
        return Vec::new();
    };
    let userinfo = &tail[..at];
    let mut secrets = vec![userinfo.to_string()];
    if let Some((_, password)) = userinfo.split_once(':') {
        if !password.is_empty() {
            secrets.push(password.to_string());
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_masked_wherever_it_appears() {
        assert_eq!(
            redact_credentials("https://user:pw@host/a/b"),
            "https://***@host/a/b"
        );
        assert_eq!(
            redact_credentials(
                "fatal: could not read from http://tok@h:8080/x.git, nor https://h/y"
            ),
            "fatal: could not read from http://***@h:8080/x.git, nor https://h/y"
        );
        assert_eq!(redact_credentials("file:///srv/git"), "file:///srv/git");
        assert_eq!(
            redact_credentials("https://host/a@b (mail a@b)"),
            "https://host/a@b (mail a@b)"
        );
        assert_eq!(redact_credentials("no url at all"), "no url at all");
        assert_eq!(redact_credentials("http://a@b@host/"), "http://***@host/");
    }

    #[test]
    fn credentials_are_given_to_the_masking_sink() {
        assert_eq!(
            credentials_of("https://user:password@host/"),
            ["user:password", "password"]
        );
        assert_eq!(credentials_of("https://token@host"), ["token"]);
        assert!(credentials_of("https://host/x@y").is_empty());
        assert!(credentials_of("/srv/git").is_empty());
    }
}
