//! Webhook registration (`register-webhooks: true`): every tracked
//! repository gets one hook of ours delivering its pushes to
//! `<public-host><repository-push-endpoint>`, and the configuration
//! repository (when it is a GitHub `owner/name`) one delivering to
//! `<public-host><monitor-update-endpoint>`, so that tracking a repository
//! is a change of the configuration only, with no visit to GitHub's
//! settings.
//!
//! It runs at the end of every load of the configuration (start-up and each
//! reload), after the new catalog is in place, and writes one line per
//! repository into that load's log: `registered`, `updated` (with what was
//! stale), `unchanged`, or `failed: <why>`. A failure never fails the load:
//! the next load tries again.
//!
//! What "ours" means: a hook whose URL is on `public-host` (same scheme,
//! host and port, and under its path when it has one). Other hooks are
//! never changed nor deleted. Of several hooks of ours on one repository,
//! the one with the right URL (else the oldest) is kept up to date and the
//! others are left alone, which the log line says. A hook exactly at our
//! other endpoint is never repurposed (the configuration repository may be
//! tracked too, and then holds both).
//!
//! The secret: GitHub shows a hook's secret as `********`, so whether a hook
//! carries the current `webhook-secret` cannot be read back. The registrar
//! remembers, in `<data-directory>/github-webhooks.json`, a fingerprint
//! (HMAC-SHA256 keyed by the secret, never the secret itself) of the secret
//! it set on each hook. A hook of ours whose fingerprint is missing or
//! different, or that has no secret at all, is updated, so rotating
//! `webhook-secret` and restarting updates every hook once. What it cannot
//! see: a secret changed by hand on GitHub after registration. Deleting the
//! file makes the next load update every hook of ours once.
//!
//! Bounds: a repository's hooks are read 100 at a time, at most
//! [`MAX_PAGES`] pages; each call has the client's timeouts (10 s to
//! connect, 30 s in all); one load spends at most [`ROUND_BUDGET`] on
//! registration. A refused token, a rate limit or an unreachable GitHub
//! stops the round at once: the remaining repositories are `failed: not
//! tried: …` without a call.

use super::client::{GitHub, GitHubError};
use crate::config::Config;
use hmac::{Hmac, Mac};
use reqwest::{Method, Url};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zos_build_core::pipeline::JobLog;

/// Pages of 100 hooks read per repository (GitHub allows 20 hooks per event
/// and repository, so one page is the rule).
pub const MAX_PAGES: u32 = 10;
/// Hooks asked for per page.
pub const PER_PAGE: usize = 100;
/// The most time one load spends registering webhooks; the repositories
/// left are tried by the next load.
pub const ROUND_BUDGET: Duration = Duration::from_secs(120);
/// The file, in the data directory, holding the fingerprints of the secrets
/// set on our hooks.
pub const STATE_FILE: &str = "github-webhooks.json";
/// The largest state file read; a larger one is ignored (every hook of ours
/// is then updated once).
const MAX_STATE_BYTES: u64 = 1 << 20;
/// The only event our hooks are delivered.
const EVENT: &str = "push";
/// What a failed call says when the round stopped before it.
const NOT_TRIED: &str = "not tried";

/// What [`Round::ensure`] did about one repository's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// There was no hook of ours: one was created.
    Registered {
        /// Its id.
        id: u64,
    },
    /// A hook of ours was stale and was updated.
    Updated {
        /// Its id.
        id: u64,
        /// What was stale: `url`, `events`, `content type`, `active`,
        /// `secret`.
        stale: Vec<&'static str>,
    },
    /// A hook of ours is as it should be.
    Unchanged {
        /// Its id.
        id: u64,
    },
    /// Nothing could be done, and why.
    Failed(String),
}

impl HookOutcome {
    /// `registered`, `updated`, `unchanged` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            HookOutcome::Registered { .. } => "registered",
            HookOutcome::Updated { .. } => "updated",
            HookOutcome::Unchanged { .. } => "unchanged",
            HookOutcome::Failed(_) => "failed",
        }
    }
}

/// The outcome for one repository and URL, with the other hooks of ours
/// that were left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    /// The URL the hook delivers to.
    pub url: String,
    /// What was done.
    pub outcome: HookOutcome,
    /// Other hooks of ours on the repository, not touched.
    pub left_alone: Vec<u64>,
}

/// The text after `webhook of owner/name: ` in the load's log.
impl std::fmt::Display for HookReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = self.outcome.word();
        match &self.outcome {
            HookOutcome::Registered { id } | HookOutcome::Unchanged { id } => {
                write!(f, "{word} (hook {id}, {})", self.url)?
            }
            HookOutcome::Updated { id, stale } => {
                write!(f, "{word} (hook {id}, {}: {})", self.url, stale.join(", "))?
            }
            HookOutcome::Failed(reason) => write!(f, "{word}: {reason}")?,
        }
        if !self.left_alone.is_empty() {
            let ids: Vec<String> = self.left_alone.iter().map(u64::to_string).collect();
            write!(f, "; other hooks of ours left alone: {}", ids.join(", "))?;
        }
        Ok(())
    }
}

/// Webhook registration as configured: on, or refused for a reason that
/// every load repeats per repository.
#[derive(Debug, Clone)]
pub enum Webhooks {
    /// Hooks are registered.
    Register(Arc<Registrar>),
    /// `register-webhooks` is set but cannot work (no `webhook-secret`, no
    /// `public-host`): every repository gets `failed: <this>`.
    Refused(String),
}

impl Webhooks {
    /// Registration as `config` asks: None when `register-webhooks` is off
    /// or `github-token` is not set. Says once, in the server's log, why it
    /// is refused or off.
    pub fn from_config(config: &Config) -> Option<Webhooks> {
        if !config.register_webhooks {
            return None;
        }
        let Some(token) = &config.github_token else {
            tracing::warn!(
                "register-webhooks is set but github-token is not: no webhook is registered"
            );
            return None;
        };
        let refused = |reason: String| {
            tracing::warn!("register-webhooks is set but {reason}: no webhook is registered");
            Some(Webhooks::Refused(reason))
        };
        let Some(secret) = &config.webhook_secret else {
            return refused("no webhook-secret is set".into());
        };
        let Some(public_host) = &config.public_host else {
            return refused("no public-host is set".into());
        };
        let github = match GitHub::new(&config.github_api_url, token) {
            Ok(github) => github,
            Err(e) => return refused(e),
        };
        match Registrar::new(
            github,
            public_host,
            secret,
            &config.repository_push_endpoint,
            &config.monitor_update_endpoint,
            config.data_directory.join(STATE_FILE),
        ) {
            Ok(registrar) => Some(Webhooks::Register(Arc::new(registrar))),
            Err(reason) => refused(reason),
        }
    }

    /// Makes sure every repository of `tracked` has our push hook and
    /// `configuration` (the configuration repository, when it is on GitHub)
    /// its monitor-update hook; one line per repository and hook in `log`.
    /// Repositories are taken once (names compared without case, as GitHub
    /// does), in order.
    pub async fn register(
        &self,
        tracked: impl IntoIterator<Item = String>,
        configuration: Option<&str>,
        log: &mut JobLog<'_>,
    ) {
        let mut plan: BTreeMap<String, (String, Vec<Endpoint>)> = BTreeMap::new();
        for repository in tracked {
            let entry = plan
                .entry(repository.to_ascii_lowercase())
                .or_insert_with(|| (repository, Vec::new()));
            if !entry.1.contains(&Endpoint::Push) {
                entry.1.push(Endpoint::Push);
            }
        }
        if let Some(repository) = configuration {
            plan.entry(repository.to_ascii_lowercase())
                .or_insert_with(|| (repository.to_string(), Vec::new()))
                .1
                .push(Endpoint::Configuration);
        }
        if plan.is_empty() {
            return;
        }
        log.line(format!(
            "[zos-build] making sure {} repositories have our webhook",
            plan.len()
        ))
        .await;
        match self {
            Webhooks::Refused(reason) => {
                for (repository, endpoints) in plan.into_values() {
                    for _ in endpoints {
                        log.line(format!(
                            "[zos-build] webhook of {repository}: failed: {reason}"
                        ))
                        .await;
                    }
                }
            }
            Webhooks::Register(registrar) => {
                let mut round = registrar.round().await;
                for (repository, endpoints) in plan.into_values() {
                    for endpoint in endpoints {
                        let report = round.ensure(&repository, registrar.url(endpoint)).await;
                        match &report.outcome {
                            HookOutcome::Failed(reason) => {
                                tracing::warn!(%repository, error = %reason, "webhook registration failed")
                            }
                            HookOutcome::Unchanged { .. } => {}
                            outcome => {
                                tracing::info!(%repository, url = %report.url, "webhook {}", outcome.word())
                            }
                        }
                        log.line(format!("[zos-build] webhook of {repository}: {report}"))
                            .await;
                    }
                }
            }
        }
    }
}

/// Which of our endpoints a hook delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `repository-push-endpoint`, for tracked repositories.
    Push,
    /// `monitor-update-endpoint`, for the configuration repository.
    Configuration,
}

/// Makes sure repositories have our hook; see the [module documentation](self).
pub struct Registrar {
    github: GitHub,
    /// `public-host`, parsed.
    public: Url,
    secret: String,
    push_url: String,
    configuration_url: String,
    state_file: PathBuf,
}

/// Neither the secret nor the token shows.
impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("github", &self.github)
            .field("push_url", &self.push_url)
            .field("configuration_url", &self.configuration_url)
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// A registrar talking to `github`, making hooks to
    /// `<public_host><push_endpoint>` and `<public_host><configuration_endpoint>`
    /// signed with `secret`, remembering the secrets it set in `state_file`.
    /// Refused when `public_host` is not an http(s) URL or `secret` is empty.
    pub fn new(
        github: GitHub,
        public_host: &str,
        secret: &str,
        push_endpoint: &str,
        configuration_endpoint: &str,
        state_file: impl Into<PathBuf>,
    ) -> Result<Registrar, String> {
        if secret.is_empty() {
            return Err("no webhook-secret is set".into());
        }
        let base = public_host.trim_end_matches('/');
        let public = Url::parse(base)
            .ok()
            .filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            })
            .ok_or_else(|| {
                format!(
                    "public-host {:?} is not an http(s) URL such as https://build.example.org",
                    zos_build_core::redact::redact_credentials(public_host)
                )
            })?;
        Ok(Registrar {
            github,
            public,
            secret: secret.to_string(),
            push_url: format!("{base}{push_endpoint}"),
            configuration_url: format!("{base}{configuration_endpoint}"),
            state_file: state_file.into(),
        })
    }

    /// The URL hooks of `endpoint` deliver to.
    pub fn url(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Push => &self.push_url,
            Endpoint::Configuration => &self.configuration_url,
        }
    }

    /// Whether a hook delivering to `url` is ours: the same scheme, host and
    /// port as `public-host`, and a path under its path.
    pub fn is_ours(&self, url: &str) -> bool {
        let Ok(url) = Url::parse(url) else {
            return false;
        };
        let prefix = self.public.path().trim_end_matches('/');
        url.scheme() == self.public.scheme()
            && url.host_str() == self.public.host_str()
            && url.port_or_known_default() == self.public.port_or_known_default()
            && (prefix.is_empty()
                || url.path() == prefix
                || url
                    .path()
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// A round of registrations (one load's): the remembered secrets read
    /// once, one time budget, stopped by the first failure that would fail
    /// every later call too.
    pub async fn round(&self) -> Round<'_> {
        Round {
            registrar: self,
            known: read_state(&self.state_file).await,
            started: tokio::time::Instant::now(),
            stopped: None,
        }
    }

    /// Makes sure `repository` has one hook of ours delivering to `url`:
    /// a round of one.
    pub async fn ensure(&self, repository: &str, url: &str) -> HookReport {
        self.round().await.ensure(repository, url).await
    }

    /// The fingerprint of our secret set on hook `id` of `repository`.
    fn fingerprint(&self, key: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()) {
            Ok(mac) => mac,
            // HMAC takes a key of any length; never here.
            Err(_) => return String::new(),
        };
        mac.update(b"zos-build webhook ");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `text` without the secret, should an answer ever echo it.
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.secret, "***")
    }
}

/// A hook as GitHub lists it.
#[derive(Debug)]
struct Listed {
    id: u64,
    url: String,
    events: Vec<String>,
    content_type: Option<String>,
    insecure_ssl: Option<String>,
    active: bool,
    has_secret: bool,
}

impl Listed {
    /// A `web` hook with an id and a URL; None for anything else.
    fn parse(hook: &Value) -> Option<Listed> {
        let config = hook.get("config")?;
        Some(Listed {
            id: hook.get("id")?.as_u64()?,
            url: config.get("url")?.as_str()?.to_string(),
            events: hook
                .get("events")
                .and_then(Value::as_array)
                .map(|events| {
                    events
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            content_type: config
                .get("content_type")
                .and_then(Value::as_str)
                .map(str::to_string),
            insecure_ssl: match config.get("insecure_ssl") {
                Some(Value::String(value)) => Some(value.clone()),
                Some(Value::Number(value)) => Some(value.to_string()),
                _ => None,
            },
            active: hook.get("active").and_then(Value::as_bool).unwrap_or(true),
            has_secret: config
                .get("secret")
                .and_then(Value::as_str)
                .is_some_and(|secret| !secret.is_empty()),
        })
    }
}

/// One load's registrations; see [`Registrar::round`].
pub struct Round<'a> {
    registrar: &'a Registrar,
    /// `owner/name#id` (lower case) → fingerprint of the secret we set.
    known: BTreeMap<String, String>,
    started: tokio::time::Instant,
    /// Why the round stopped: later repositories are not tried.
    stopped: Option<String>,
}

impl std::fmt::Debug for Round<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Round")
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl Round<'_> {
    /// Makes sure `repository` (`owner/name`) has one hook of ours
    /// delivering to `url`: creates it, updates the hook of ours that is
    /// stale, or leaves it as it is. Never touches another hook.
    pub async fn ensure(&mut self, repository: &str, url: &str) -> HookReport {
        let mut left_alone = Vec::new();
        let outcome = match self.try_ensure(repository, url, &mut left_alone).await {
            Ok(outcome) => outcome,
            Err(reason) => HookOutcome::Failed(self.registrar.scrub(&reason)),
        };
        HookReport {
            url: url.to_string(),
            outcome,
            left_alone,
        }
    }

    async fn try_ensure(
        &mut self,
        repository: &str,
        url: &str,
        left_alone: &mut Vec<u64>,
    ) -> Result<HookOutcome, String> {
        if let Some(reason) = &self.stopped {
            return Err(format!("{NOT_TRIED}: {reason}"));
        }
        if self.started.elapsed() > ROUND_BUDGET {
            let reason = format!(
                "registration took over {}s in this load; the next load tries again",
                ROUND_BUDGET.as_secs()
            );
            self.stopped = Some(reason.clone());
            return Err(format!("{NOT_TRIED}: {reason}"));
        }
        let Some((owner, name)) = repository.split_once('/') else {
            return Err(format!("{repository:?} is not owner/name"));
        };
        let (hooks, complete) = self.list(owner, name).await?;
        let key_prefix = format!("{}#", repository.to_ascii_lowercase());
        let mut changed = self.forget_gone(&key_prefix, &hooks);

        let registrar = self.registrar;
        let others: Vec<&str> = [
            registrar.push_url.as_str(),
            registrar.configuration_url.as_str(),
        ]
        .into_iter()
        .filter(|other| *other != url)
        .collect();
        let mut ours: Vec<&Listed> = hooks
            .iter()
            .filter(|hook| registrar.is_ours(&hook.url) && !others.contains(&hook.url.as_str()))
            .collect();
        ours.sort_by_key(|hook| hook.id);
        let chosen = ours
            .iter()
            .find(|hook| hook.url == url)
            .or_else(|| ours.first())
            .copied();
        left_alone.extend(
            ours.iter()
                .map(|hook| hook.id)
                .filter(|id| Some(*id) != chosen.map(|hook| hook.id)),
        );

        let segments = ["repos", owner, name, "hooks"];
        let outcome = match chosen {
            None if !complete => {
                return Err(format!(
                    "more than {} hooks: none of ours among the first {}, so none is created",
                    MAX_PAGES as usize * PER_PAGE,
                    MAX_PAGES as usize * PER_PAGE
                ))
            }
            None => {
                let body = json!({
                    "name": "web",
                    "active": true,
                    "events": [EVENT],
                    "config": self.config(url, "0"),
                });
                let answer = registrar
                    .github
                    .call(Method::POST, &segments, Some(&body))
                    .await
                    .map_err(|e| self.failed(e))?;
                let id = answer.get("id").and_then(Value::as_u64).ok_or_else(|| {
                    "GitHub created the hook but its answer has no id".to_string()
                })?;
                self.known.insert(
                    format!("{key_prefix}{id}"),
                    registrar.fingerprint(&format!("{key_prefix}{id}")),
                );
                changed = true;
                HookOutcome::Registered { id }
            }
            Some(hook) => {
                let key = format!("{key_prefix}{}", hook.id);
                let fingerprint = registrar.fingerprint(&key);
                let mut stale = Vec::new();
                if hook.url != url {
                    stale.push("url");
                }
                if hook.events != [EVENT] {
                    stale.push("events");
                }
                if hook.content_type.as_deref() != Some("json") {
                    stale.push("content type");
                }
                if !hook.active {
                    stale.push("active");
                }
                if !hook.has_secret || self.known.get(&key) != Some(&fingerprint) {
                    stale.push("secret");
                }
                if stale.is_empty() {
                    HookOutcome::Unchanged { id: hook.id }
                } else {
                    // A config replaces the whole config on GitHub: all of
                    // it, secret included; the hook's TLS choice is kept.
                    let body = json!({
                        "active": true,
                        "events": [EVENT],
                        "config": self.config(url, hook.insecure_ssl.as_deref().unwrap_or("0")),
                    });
                    let id = hook.id.to_string();
                    let mut path = segments.to_vec();
                    path.push(&id);
                    registrar
                        .github
                        .call(Method::PATCH, &path, Some(&body))
                        .await
                        .map_err(|e| self.failed(e))?;
                    self.known.insert(key, fingerprint);
                    changed = true;
                    HookOutcome::Updated { id: hook.id, stale }
                }
            }
        };
        if changed {
            write_state(&registrar.state_file, &self.known).await;
        }
        Ok(outcome)
    }

    /// The hook's `config` as we want it.
    fn config(&self, url: &str, insecure_ssl: &str) -> Value {
        json!({
            "url": url,
            "content_type": "json",
            "insecure_ssl": insecure_ssl,
            "secret": self.registrar.secret,
        })
    }

    /// The hooks of `owner/name`, and whether they were all read.
    async fn list(&mut self, owner: &str, name: &str) -> Result<(Vec<Listed>, bool), String> {
        let mut hooks = Vec::new();
        let mut seen = HashSet::new();
        let per_page = PER_PAGE.to_string();
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let answer = self
                .registrar
                .github
                .call_with_query(
                    Method::GET,
                    &["repos", owner, name, "hooks"],
                    &[("per_page", &per_page), ("page", &page)],
                    None,
                )
                .await
                .map_err(|e| self.failed(e))?;
            let Value::Array(items) = answer else {
                return Err("GitHub's list of hooks is not a list".into());
            };
            let count = items.len();
            let mut new = 0;
            for hook in items.iter().filter_map(Listed::parse) {
                if seen.insert(hook.id) {
                    new += 1;
                    hooks.push(hook);
                }
            }
            // A short page is the last; a page of nothing new means the
            // server ignores `page`.
            if count < PER_PAGE || new == 0 {
                return Ok((hooks, true));
            }
        }
        Ok((hooks, false))
    }

    /// Forgets the secrets of hooks of the repository that are gone;
    /// whether anything was forgotten.
    fn forget_gone(&mut self, key_prefix: &str, hooks: &[Listed]) -> bool {
        let ids: HashSet<String> = hooks.iter().map(|hook| hook.id.to_string()).collect();
        let before = self.known.len();
        self.known.retain(|key, _| {
            key.strip_prefix(key_prefix)
                .is_none_or(|id| ids.contains(id))
        });
        self.known.len() != before
    }

    /// The reason of a failed call; stops the round when every later call
    /// would fail the same way.
    fn failed(&mut self, error: GitHubError) -> String {
        let reason = self.registrar.scrub(&error.to_string());
        match error {
            GitHubError::Unauthorized(_)
            | GitHubError::RateLimited { .. }
            | GitHubError::Unavailable(_) => {
                self.stopped = Some(reason.clone());
                reason
            }
            GitHubError::NotFound(_) => format!(
                "{reason}: the token needs admin rights on the repository (scope admin:repo_hook)"
            ),
            GitHubError::Refused { status: 403, .. } => {
                format!("{reason}: the token needs admin rights on the repository (scope admin:repo_hook)")
            }
            GitHubError::Refused { .. } => reason,
        }
    }
}

/// The remembered fingerprints; empty when the file is missing, too large
/// or unreadable (every hook of ours is then updated once).
async fn read_state(path: &Path) -> BTreeMap<String, String> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.len() > MAX_STATE_BYTES => {
            tracing::warn!(path = %path.display(), "the webhook state file is over 1 MiB: ignored");
            return BTreeMap::new();
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the webhook state file");
            return BTreeMap::new();
        }
    }
    let parsed = tokio::fs::read(path)
        .await
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()));
    match parsed {
        Ok(value) => value
            .get("hooks")
            .and_then(Value::as_object)
            .map(|hooks| {
                hooks
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the webhook state file is unreadable: ignored");
            BTreeMap::new()
        }
    }
}

/// Writes the fingerprints (to a temporary file renamed over the old one).
async fn write_state(path: &Path, known: &BTreeMap<String, String>) {
    let text = json!({"version": 1, "hooks": known}).to_string();
    let temporary = path.with_extension("json.tmp");
    let written = async {
        tokio::fs::write(&temporary, text).await?;
        tokio::fs::rename(&temporary, path).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the webhook state file: the next load updates the hooks again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registrar(public_host: &str) -> Registrar {
        Registrar::new(
            GitHub::new("http://127.0.0.1:1", "t").unwrap(),
            public_host,
            "s3cret",
            "/hook/monitor-watch",
            "/hook/monitor-update",
            "/nonexistent/state.json",
        )
        .unwrap()
    }

    #[test]
    fn a_hook_is_ours_on_the_same_scheme_host_port_and_path() {
        let r = registrar("https://Build.example.org/");
        assert_eq!(
            r.url(Endpoint::Push),
            "https://Build.example.org/hook/monitor-watch"
        );
        for url in [
            "https://build.example.org/hook/monitor-watch",
            "https://BUILD.example.org:443/old",
            "https://build.example.org",
        ] {
            assert!(r.is_ours(url), "{url}");
        }
        for url in [
            "http://build.example.org/hook/monitor-watch",
            "https://build.example.org:8443/hook/monitor-watch",
            "https://build.example.org.evil.example/hook",
            "https://ci.example.org/hook",
            "not a url",
        ] {
            assert!(!r.is_ours(url), "{url}");
        }
        let r = registrar("https://example.org/zos");
        assert!(r.is_ours("https://example.org/zos/hook/monitor-watch"));
        assert!(!r.is_ours("https://example.org/zosother/hook"));
        assert!(!r.is_ours("https://example.org/other-ci/hook"));
    }

    #[test]
    fn a_public_host_that_is_not_an_http_url_is_refused_and_the_secret_never_shows() {
        for host in ["build.example.org", "ftp://x", "https://x/?a=b"] {
            let github = GitHub::new("http://127.0.0.1:1", "t").unwrap();
            let err = Registrar::new(github, host, "s", "/a", "/b", "/x").unwrap_err();
            assert!(err.contains("public-host"), "{err}");
        }
        let r = registrar("https://build.example.org");
        assert!(!format!("{r:?}").contains("s3cret"));
        assert_eq!(r.scrub("echo s3cret"), "echo ***");
        let fingerprint = r.fingerprint("acme/widget#1");
        assert_eq!(fingerprint.len(), 64);
        assert!(!fingerprint.contains("s3cret"));
        assert_ne!(fingerprint, r.fingerprint("acme/widget#2"));
    }

    #[test]
    fn reports_read_as_log_lines() {
        let report = HookReport {
            url: "https://b/hook".into(),
            outcome: HookOutcome::Updated {
                id: 3,
                stale: vec!["events", "secret"],
            },
            left_alone: vec![5, 7],
        };
        assert_eq!(
            report.to_string(),
            "updated (hook 3, https://b/hook: events, secret); other hooks of ours left alone: 5, 7"
        );
        let report = HookReport {
            url: "https://b/hook".into(),
            outcome: HookOutcome::Failed("no".into()),
            left_alone: vec![],
        };
        assert_eq!(report.to_string(), "failed: no");
    }
}
