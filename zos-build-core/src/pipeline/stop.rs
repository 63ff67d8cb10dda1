//! How a job is stopped: a cancellation token and, when it was stopped for
//! itself, why.

use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// A job's cancellation: its token and the reason it was cancelled for.
///
/// Why a reason beside the token: a build stopped because a newer push
/// superseded it, stopped by an administrator and stopped because the
/// process shuts down all see the same cancelled token, but end differently
/// (`cancelled` with the reason, or interrupted). A token cancelled without a
/// reason (a parent token: the shutdown) has none. Cheap to clone; clones
/// share the token and the reason.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Stop {
    /// A stop of its own.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop cancelled with `token` (a child of a shutdown token, say) too.
    pub fn with_token(token: CancellationToken) -> Stop {
        Stop {
            token,
            reason: Arc::default(),
        }
    }

    /// Cancels with `reason` (the first reason given is kept); false when
    /// it was cancelled already.
    pub fn cancel(&self, reason: &str) -> bool {
        let _ = self.reason.set(reason.to_string());
        let fresh = !self.token.is_cancelled();
        self.token.cancel();
        fresh
    }

    /// The token, for whatever waits on it.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether it was cancelled, for a reason or by its parent.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was cancelled; None when only a parent token cancelled it.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept_and_a_parent_gives_none() {
        let stop = Stop::new();
        assert!(stop.cancel("superseded"));
        assert!(!stop.cancel("by hand"));
        assert_eq!(stop.reason(), Some("superseded"));

        let parent = CancellationToken::new();
        let child = Stop::with_token(parent.child_token());
        parent.cancel();
        assert!(child.is_cancelled());
        assert_eq!(child.reason(), None);
    }
}
