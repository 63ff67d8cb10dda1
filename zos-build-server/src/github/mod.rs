//! Everything zos-build says to GitHub, through its REST API: commit
//! statuses ([`statuses`]) and webhook registration ([`hooks`]).
//!
//! Without `github-token` nothing here runs: start-up says so once, and
//! everything else works as before. The token is sent as a bearer header
//! only (never in a URL), is masked in every log, and never leaves the
//! configured API host (redirects are not followed).

pub mod client;
pub mod hooks;
pub mod statuses;

pub use client::{GitHub, GitHubError};
pub use hooks::{HookOutcome, HookReport, Registrar, Webhooks};
pub use statuses::{Sender, Statuses};
