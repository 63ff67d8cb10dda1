//! The server's settings: one YAML file, overridable key by key from the
//! environment, with defaults that let the server start with no file at all.
//!
//! Why it is shaped this way: the old service read a Python module, so a typo
//! in a setting was silently ignored and a wrong value crashed it later. Here
//! every key is known (an unknown one is an error naming it), every value is
//! checked once at start-up (the error names the key and says what was
//! expected), and the rest of the server only sees the typed [`Config`].
//!
//! Sources, later ones winning: the embedded defaults, the file given with
//! `--config`, then `ZOS_BUILD_<KEY>` environment variables (the key upper-cased
//! with `-` as `_`: `http-port` is `ZOS_BUILD_HTTP_PORT`). An empty variable
//! counts as unset. Every value may be written as a string, so environment
//! variables need no special syntax: lists are comma-separated.

use serde::Deserialize;
use serde_yaml::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zos_build_core::redact::redact_credentials;

/// Where the server keeps its files when nothing else is configured.
pub const DEFAULT_DATA_DIRECTORY: &str = "./data";
/// The old service's port.
pub const DEFAULT_HTTP_PORT: u16 = 5560;
/// Builds running at once, unless configured.
pub const DEFAULT_MAX_CONCURRENT_BUILDS: usize = 2;
/// The old service's limit: 45 minutes.
pub const DEFAULT_MAXIMUM_EXECUTION_TIME: Duration = Duration::from_secs(45 * 60);

/// The old service's memory limit of a build container: 16 GiB.
pub const DEFAULT_BUILD_MEMORY_LIMIT: u64 = 16 << 30;
/// Processes (and threads) a build container may hold at once: enough for
/// any compiler, few enough that a fork bomb stays inside its container.
pub const DEFAULT_BUILD_PIDS_LIMIT: i64 = 4096;
/// Bytes of log one build may print before it is stopped.
pub const DEFAULT_LOG_SIZE_LIMIT: u64 = 256 << 20;
/// Connections served at once; later ones wait in the kernel's backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a push of a commit already built counts as a replay.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Builds per branch whose logs are kept.
pub const DEFAULT_KEEP_BUILDS_PER_BRANCH: usize = 50;
/// How often leftover containers and work directories are looked for.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a build waits for an unreachable Docker daemon.
pub const DEFAULT_DOCKER_WAIT: Duration = Duration::from_secs(10 * 60);

/// Paths the server answers itself; a configurable endpoint may not take one.
const FIXED_ROUTES: &[&str] = &[
    "/hook/kernel",
    "/build/status",
    "/build/history",
    "/build/history/full",
    "/healthz",
];

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, is not a mapping, or has an unknown key.
    #[error("configuration file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line when the parser knows it.
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("invalid value for `{key}` (from {source_name}): {message}")]
    Invalid {
        /// The key, as written in the file.
        key: &'static str,
        /// Where the value came from: the file or the environment variable.
        source_name: String,
        /// What was expected.
        message: String,
    },
}

/// The settings as written: every key optional, unknown keys rejected.
///
/// Values stay untyped here so that the same conversion (and the same error,
/// naming the key) applies to the file and to the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    logs_directory: Option<Value>,
    kernel_directory: Option<Value>,
    binary_directory: Option<Value>,
    artifacts_directory: Option<Value>,
    data_directory: Option<Value>,
    http_listen: Option<Value>,
    http_port: Option<Value>,
    public_host: Option<Value>,
    github_token: Option<Value>,
    configuration_repository: Option<Value>,
    monitor_update_endpoint: Option<Value>,
    repository_push_endpoint: Option<Value>,
    extra_hosts: Option<Value>,
    maximum_execution_time: Option<Value>,
    container_name_prefix: Option<Value>,
    webhook_secret: Option<Value>,
    git_base_url: Option<Value>,
    max_concurrent_builds: Option<Value>,
    build_memory_limit: Option<Value>,
    build_cpus: Option<Value>,
    docker_host: Option<Value>,
    admin_token: Option<Value>,
    on_shutdown: Option<Value>,
    allow_unsigned_webhooks: Option<Value>,
    replay_window: Option<Value>,
    log_size_limit: Option<Value>,
    max_connections: Option<Value>,
    build_pids_limit: Option<Value>,
    build_capabilities: Option<Value>,
    keep_builds_per_branch: Option<Value>,
    sweep_interval: Option<Value>,
    docker_wait: Option<Value>,
    log_format: Option<Value>,
    zerohub_website: Option<Value>,
    zerohub_token: Option<Value>,
    zerohub_username: Option<Value>,
    github_api_url: Option<Value>,
    github_status_context: Option<Value>,
    register_webhooks: Option<Value>,
    kernel_targets: Option<Value>,
    kernel_cache_path: Option<Value>,
}

/// Every key, in documentation order, with its slot in [`RawConfig`].
fn slots(raw: &mut RawConfig) -> [(&'static str, &mut Option<Value>); 41] {
    [
        ("data-directory", &mut raw.data_directory),
        ("logs-directory", &mut raw.logs_directory),
        ("kernel-directory", &mut raw.kernel_directory),
        ("binary-directory", &mut raw.binary_directory),
        ("artifacts-directory", &mut raw.artifacts_directory),
        ("http-listen", &mut raw.http_listen),
        ("http-port", &mut raw.http_port),
        ("public-host", &mut raw.public_host),
        ("github-token", &mut raw.github_token),
        (
            "configuration-repository",
            &mut raw.configuration_repository,
        ),
        ("monitor-update-endpoint", &mut raw.monitor_update_endpoint),
        (
            "repository-push-endpoint",
            &mut raw.repository_push_endpoint,
        ),
        ("extra-hosts", &mut raw.extra_hosts),
        ("maximum-execution-time", &mut raw.maximum_execution_time),
        ("container-name-prefix", &mut raw.container_name_prefix),
        ("webhook-secret", &mut raw.webhook_secret),
        ("git-base-url", &mut raw.git_base_url),
        ("max-concurrent-builds", &mut raw.max_concurrent_builds),
        ("build-memory-limit", &mut raw.build_memory_limit),
        ("build-cpus", &mut raw.build_cpus),
        ("docker-host", &mut raw.docker_host),
        ("admin-token", &mut raw.admin_token),
        ("on-shutdown", &mut raw.on_shutdown),
        ("allow-unsigned-webhooks", &mut raw.allow_unsigned_webhooks),
        ("replay-window", &mut raw.replay_window),
        ("log-size-limit", &mut raw.log_size_limit),
        ("max-connections", &mut raw.max_connections),
        ("build-pids-limit", &mut raw.build_pids_limit),
        ("build-capabilities", &mut raw.build_capabilities),
        ("keep-builds-per-branch", &mut raw.keep_builds_per_branch),
        ("sweep-interval", &mut raw.sweep_interval),
        ("docker-wait", &mut raw.docker_wait),
        ("log-format", &mut raw.log_format),
        ("zerohub-website", &mut raw.zerohub_website),
        ("zerohub-token", &mut raw.zerohub_token),
        ("zerohub-username", &mut raw.zerohub_username),
        ("github-api-url", &mut raw.github_api_url),
        ("github-status-context", &mut raw.github_status_context),
        ("register-webhooks", &mut raw.register_webhooks),
        ("kernel-targets", &mut raw.kernel_targets),
        ("kernel-cache-path", &mut raw.kernel_cache_path),
    ]
}

/// Every configuration key, in documentation order.
pub fn keys() -> Vec<&'static str> {
    slots(&mut RawConfig::default())
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// The environment variable that sets `key`: `http-port` → `ZOS_BUILD_HTTP_PORT`.
pub fn env_var_name(key: &str) -> String {
    format!("ZOS_BUILD_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// What a shutdown (SIGTERM, Ctrl-C) does to the builds that are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnShutdown {
    /// Stop them at once (they end `error`, "interrupted by server
    /// shutdown", their containers removed): a quick restart.
    #[default]
    Cancel,
    /// Let them run to their end, starting nothing new: a restart that
    /// loses no work, as long as the builds take.
    Finish,
}

/// The form of the server's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The server's settings, checked.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Root of everything the server writes (the history database lives here).
    pub data_directory: PathBuf,
    /// One log file per build.
    pub logs_directory: PathBuf,
    /// Kernels of the kernel pipeline.
    pub kernel_directory: PathBuf,
    /// Artifacts of the `binary` format.
    pub binary_directory: PathBuf,
    /// Published artifacts (the local publisher).
    pub artifacts_directory: PathBuf,
    /// Address the HTTP server binds to.
    pub http_listen: IpAddr,
    /// Port the HTTP server binds to (0: any free port).
    pub http_port: u16,
    /// Public base URL of this server, for links in GitHub statuses.
    pub public_host: Option<String>,
    /// Token for the GitHub API; without it nothing is sent to GitHub.
    pub github_token: Option<String>,
    /// The configuration repository: `owner/name` or a local directory.
    pub configuration_repository: Option<String>,
    /// Path of the configuration repository's webhook.
    pub monitor_update_endpoint: String,
    /// Path of the tracked repositories' webhook.
    pub repository_push_endpoint: String,
    /// Extra `/etc/hosts` entries of build containers: `(name, address)`.
    pub extra_hosts: Vec<(String, String)>,
    /// A build running longer is killed and marked `error`.
    pub maximum_execution_time: Duration,
    /// Build containers are named `<prefix><build id>`.
    pub container_name_prefix: String,
    /// Secret of GitHub webhook signatures; without it no signature is checked.
    pub webhook_secret: Option<String>,
    /// Where repositories are fetched from: `<git-base-url>/<owner>/<repo>`.
    pub git_base_url: String,
    /// Builds running at once; the others wait as `queued`.
    pub max_concurrent_builds: usize,
    /// Memory limit of a build container, in bytes.
    pub build_memory_limit: u64,
    /// CPU limit of a build container.
    pub build_cpus: Option<f64>,
    /// Docker daemon address; the local socket (or `DOCKER_HOST`) when unset.
    pub docker_host: Option<String>,
    /// Token required by write actions of the API.
    pub admin_token: Option<String>,
    /// What a shutdown does to running builds.
    pub on_shutdown: OnShutdown,
    /// Accept webhooks without a signature when no `webhook-secret` is set
    /// (a closed network only).
    pub allow_unsigned_webhooks: bool,
    /// A push of a repository, branch and commit already queued, running or
    /// built within this window starts nothing.
    pub replay_window: Duration,
    /// Bytes of log one build may print; at the limit it is stopped.
    pub log_size_limit: u64,
    /// HTTP connections served at once.
    pub max_connections: usize,
    /// Processes a build container may hold at once.
    pub build_pids_limit: i64,
    /// Linux capabilities added to build containers (none by default).
    pub build_capabilities: Vec<String>,
    /// Builds per branch whose logs and work directories are kept.
    pub keep_builds_per_branch: usize,
    /// How often the periodic sweep runs.
    pub sweep_interval: Duration,
    /// How long a build waits for an unreachable Docker daemon.
    pub docker_wait: Duration,
    /// The form of the server's own log.
    pub log_format: LogFormat,
    /// The Zero-OS Hub flists are uploaded to (`format: flist`); without it
    /// they go to the local artifacts directory.
    pub zerohub_website: Option<String>,
    /// The hub's API token (a JWT), sent as `Authorization: bearer`.
    pub zerohub_token: Option<String>,
    /// The hub account flists are uploaded to (the `active-user` cookie);
    /// the token's own account when unset.
    pub zerohub_username: Option<String>,
    /// GitHub's REST API (GitHub Enterprise's, or a test server's).
    pub github_api_url: String,
    /// The commit status contexts are `<github-status-context>/<script>`.
    pub github_status_context: String,
    /// Make sure every tracked repository has our webhook.
    pub register_webhooks: bool,
    /// The repositories whose pushes build kernels.
    pub kernel_targets: Vec<crate::kernel::KernelTarget>,
    /// Where a kernel build's cache volume is mounted in its container.
    pub kernel_cache_path: String,
}

/// Secrets are never printed: `Debug` (and so `--check-config`) shows
/// `<set>` for them, and URLs with their credentials masked.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |value: &Option<String>| if value.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("data_directory", &self.data_directory)
            .field("logs_directory", &self.logs_directory)
            .field("kernel_directory", &self.kernel_directory)
            .field("binary_directory", &self.binary_directory)
            .field("artifacts_directory", &self.artifacts_directory)
            .field("http_listen", &self.http_listen)
            .field("http_port", &self.http_port)
            .field(
                "public_host",
                &self.public_host.as_deref().map(redact_credentials),
            )
            .field("github_token", &secret(&self.github_token))
            .field(
                "configuration_repository",
                &self
                    .configuration_repository
                    .as_deref()
                    .map(redact_credentials),
            )
            .field("monitor_update_endpoint", &self.monitor_update_endpoint)
            .field("repository_push_endpoint", &self.repository_push_endpoint)
            .field("extra_hosts", &self.extra_hosts)
            .field("maximum_execution_time", &self.maximum_execution_time)
            .field("container_name_prefix", &self.container_name_prefix)
            .field("webhook_secret", &secret(&self.webhook_secret))
            .field("git_base_url", &redact_credentials(&self.git_base_url))
            .field("max_concurrent_builds", &self.max_concurrent_builds)
            .field("build_memory_limit", &self.build_memory_limit)
            .field("build_cpus", &self.build_cpus)
            .field(
                "docker_host",
                &self.docker_host.as_deref().map(redact_credentials),
            )
            .field("admin_token", &secret(&self.admin_token))
            .field(
                "zerohub_website",
                &self.zerohub_website.as_deref().map(redact_credentials),
            )
            .field("zerohub_token", &secret(&self.zerohub_token))
            .field("zerohub_username", &self.zerohub_username)
            .field("github_api_url", &redact_credentials(&self.github_api_url))
            .field("github_status_context", &self.github_status_context)
            .field("register_webhooks", &self.register_webhooks)
            .field("kernel_targets", &self.kernel_targets)
            .field("kernel_cache_path", &self.kernel_cache_path)
            .field("on_shutdown", &self.on_shutdown)
            .field("allow_unsigned_webhooks", &self.allow_unsigned_webhooks)
            .field("replay_window", &self.replay_window)
            .field("log_size_limit", &self.log_size_limit)
            .field("max_connections", &self.max_connections)
            .field("build_pids_limit", &self.build_pids_limit)
            .field("build_capabilities", &self.build_capabilities)
            .field("keep_builds_per_branch", &self.keep_builds_per_branch)
            .field("sweep_interval", &self.sweep_interval)
            .field("docker_wait", &self.docker_wait)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default(), "default")
            .unwrap_or_else(|e| unreachable!("the embedded defaults are valid: {e}"))
    }
}

impl Config {
    /// Loads `file` (when given) and the `ZOS_BUILD_*` variables of the
    /// process environment over the defaults.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`], reading variables through `env` (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (mut raw, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                (parse_file(&text, path)?, path.display().to_string())
            }
            None => (RawConfig::default(), "default".to_string()),
        };
        // Remember which keys the environment set, to name it in errors.
        let mut from_env = Vec::new();
        for (key, slot) in slots(&mut raw) {
            let name = env_var_name(key);
            if let Some(value) = env(&name).filter(|v| !v.is_empty()) {
                *slot = Some(Value::String(value));
                from_env.push((key, name));
            }
        }
        Config::from_raw(raw, &origin).map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => {
                let source_name = from_env
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, name)| format!("environment variable {name}"))
                    .unwrap_or(origin.clone());
                ConfigError::Invalid {
                    key,
                    source_name,
                    message,
                }
            }
            other => other,
        })
    }

    /// Parses the text of a configuration file on its own (no environment).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_raw(parse_file(text, path)?, &path.display().to_string())
    }

    fn from_raw(raw: RawConfig, origin: &str) -> Result<Config, ConfigError> {
        let v = Values { origin };
        let data_directory = v
            .path("data-directory", raw.data_directory)?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIRECTORY));
        let below = |name: &str| data_directory.join(name);
        let monitor_update_endpoint = v
            .endpoint("monitor-update-endpoint", raw.monitor_update_endpoint)?
            .unwrap_or_else(|| "/hook/monitor-update".into());
        let repository_push_endpoint = v
            .endpoint("repository-push-endpoint", raw.repository_push_endpoint)?
            .unwrap_or_else(|| "/hook/monitor-watch".into());
        if monitor_update_endpoint == repository_push_endpoint {
            return Err(v.invalid(
                "repository-push-endpoint",
                format!("{repository_push_endpoint:?} is also the monitor-update-endpoint"),
            ));
        }
        let logs_directory = v
            .path("logs-directory", raw.logs_directory)?
            .unwrap_or_else(|| below("logs"));
        let kernel_directory = v
            .path("kernel-directory", raw.kernel_directory)?
            .unwrap_or_else(|| below("kernels"));
        let binary_directory = v
            .path("binary-directory", raw.binary_directory)?
            .unwrap_or_else(|| below("binaries"));
        let artifacts_directory = v
            .path("artifacts-directory", raw.artifacts_directory)?
            .unwrap_or_else(|| below("artifacts"));
        let config = Config {
            data_directory,
            logs_directory,
            kernel_directory,
            binary_directory,
            artifacts_directory,
            http_listen: v
                .parsed(
                    "http-listen",
                    raw.http_listen,
                    "an IP address such as 127.0.0.1",
                )?
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            http_port: v
                .parsed("http-port", raw.http_port, "a port number from 0 to 65535")?
                .unwrap_or(DEFAULT_HTTP_PORT),
            public_host: v.string("public-host", raw.public_host)?,
            github_token: v.string("github-token", raw.github_token)?,
            configuration_repository: v
                .string("configuration-repository", raw.configuration_repository)?,
            monitor_update_endpoint,
            repository_push_endpoint,
            extra_hosts: v.extra_hosts(raw.extra_hosts)?,
            maximum_execution_time: v
                .duration("maximum-execution-time", raw.maximum_execution_time)?
                .unwrap_or(DEFAULT_MAXIMUM_EXECUTION_TIME),
            container_name_prefix: v
                .container_name_prefix(raw.container_name_prefix)?
                .unwrap_or_else(|| "zos-build-".into()),
            webhook_secret: v.string("webhook-secret", raw.webhook_secret)?,
            git_base_url: v
                .string("git-base-url", raw.git_base_url)?
                .map(|url| url.trim_end_matches('/').to_string())
                .unwrap_or_else(|| "https://github.com".into()),
            max_concurrent_builds: v
                .parsed::<usize>(
                    "max-concurrent-builds",
                    raw.max_concurrent_builds,
                    "a whole number of at least 1",
                )?
                .map(|n| {
                    if n == 0 {
                        Err(v.invalid("max-concurrent-builds", "must be at least 1".to_string()))
                    } else {
                        Ok(n)
                    }
                })
                .transpose()?
                .unwrap_or(DEFAULT_MAX_CONCURRENT_BUILDS),
            build_memory_limit: v
                .bytes("build-memory-limit", raw.build_memory_limit)?
                .unwrap_or(DEFAULT_BUILD_MEMORY_LIMIT),
            build_cpus: v.cpus(raw.build_cpus)?,
            docker_host: v.string("docker-host", raw.docker_host)?,
            admin_token: v.string("admin-token", raw.admin_token)?,
            on_shutdown: match v.string("on-shutdown", raw.on_shutdown)?.as_deref() {
                None | Some("cancel") => OnShutdown::Cancel,
                Some("finish") => OnShutdown::Finish,
                Some(other) => {
                    return Err(v.invalid(
                        "on-shutdown",
                        format!("expected cancel or finish, found {other:?}"),
                    ))
                }
            },
            allow_unsigned_webhooks: v
                .parsed(
                    "allow-unsigned-webhooks",
                    raw.allow_unsigned_webhooks,
                    "true or false",
                )?
                .unwrap_or(false),
            replay_window: v
                .duration("replay-window", raw.replay_window)?
                .unwrap_or(DEFAULT_REPLAY_WINDOW),
            log_size_limit: v
                .bytes("log-size-limit", raw.log_size_limit)?
                .unwrap_or(DEFAULT_LOG_SIZE_LIMIT),
            max_connections: v
                .at_least_one("max-connections", raw.max_connections)?
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            build_pids_limit: v
                .at_least_one("build-pids-limit", raw.build_pids_limit)?
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                .unwrap_or(DEFAULT_BUILD_PIDS_LIMIT),
            build_capabilities: v.capabilities(raw.build_capabilities)?,
            keep_builds_per_branch: v
                .at_least_one("keep-builds-per-branch", raw.keep_builds_per_branch)?
                .unwrap_or(DEFAULT_KEEP_BUILDS_PER_BRANCH),
            sweep_interval: v
                .duration("sweep-interval", raw.sweep_interval)?
                .unwrap_or(DEFAULT_SWEEP_INTERVAL),
            docker_wait: v
                .duration("docker-wait", raw.docker_wait)?
                .unwrap_or(DEFAULT_DOCKER_WAIT),
            log_format: match v.string("log-format", raw.log_format)?.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(v.invalid(
                        "log-format",
                        format!("expected text or json, found {other:?}"),
                    ))
                }
            },
            zerohub_website: v.string("zerohub-website", raw.zerohub_website)?,
            zerohub_token: v.string("zerohub-token", raw.zerohub_token)?,
            zerohub_username: v.string("zerohub-username", raw.zerohub_username)?,
            github_api_url: v
                .string("github-api-url", raw.github_api_url)?
                .unwrap_or_else(|| crate::github::client::DEFAULT_API_URL.into()),
            github_status_context: v
                .string("github-status-context", raw.github_status_context)?
                .map(|c| c.trim_matches('/').to_string())
                .unwrap_or_else(|| "zos-build".into()),
            register_webhooks: v
                .parsed("register-webhooks", raw.register_webhooks, "true or false")?
                .unwrap_or(false),
            kernel_targets: match raw.kernel_targets {
                None | Some(Value::Null) => crate::kernel::KernelTarget::defaults(),
                Some(value) => crate::kernel::KernelTarget::parse_list(value)
                    .map_err(|e| v.invalid("kernel-targets", e))?,
            },
            kernel_cache_path: match v.string("kernel-cache-path", raw.kernel_cache_path)? {
                None => crate::kernel::DEFAULT_CACHE_PATH.into(),
                Some(path) if path.starts_with('/') && !path.split('/').any(|p| p == "..") => path,
                Some(path) => {
                    return Err(v.invalid(
                        "kernel-cache-path",
                        format!("{path:?} is not an absolute path without `..`"),
                    ))
                }
            },
        };
        if let Some(token) = &config.github_token {
            if let Err(e) = crate::github::GitHub::new(&config.github_api_url, token) {
                return Err(v.invalid("github-api-url", e));
            }
        }
        if config.github_status_context.is_empty() {
            return Err(v.invalid("github-status-context", "must not be empty".into()));
        }
        if config.zerohub_website.is_some() != config.zerohub_token.is_some() {
            let (key, other) = if config.zerohub_website.is_some() {
                ("zerohub-token", "zerohub-website")
            } else {
                ("zerohub-website", "zerohub-token")
            };
            return Err(v.invalid(key, format!("required when `{other}` is set")));
        }
        if let Err(e) = config.hub_publisher() {
            return Err(v.invalid("zerohub-website", e.to_string()));
        }
        Ok(config)
    }

    /// The Zero-OS Hub publisher of `zerohub-website`, `zerohub-token` and
    /// `zerohub-username`; None when no hub is configured.
    pub fn hub_publisher(
        &self,
    ) -> Result<Option<zos_build_core::HubPublisher>, zos_build_core::PublishError> {
        let (Some(website), Some(token)) = (&self.zerohub_website, &self.zerohub_token) else {
            return Ok(None);
        };
        zos_build_core::HubPublisher::builder(website, token)
            .username(self.zerohub_username.clone())
            .build()
            .map(Some)
    }

    /// Every secret of the configuration, to be masked wherever text from a
    /// build or a remote might echo it: the webhook secret, the tokens, and
    /// the credentials in `git-base-url`.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = [
            &self.webhook_secret,
            &self.admin_token,
            &self.github_token,
            &self.zerohub_token,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        secrets.extend(zos_build_core::redact::credentials_of(&self.git_base_url));
        secrets.extend(self.git_credentials());
        secrets
    }

    /// git as the server runs it: in `<data-directory>/git`, allowed only
    /// the transport of `git-base-url`, and with `github-token` as its
    /// credentials when `git-base-url` is GitHub's (private repositories).
    pub fn git(&self) -> zos_build_core::git::Git {
        let git =
            zos_build_core::git::Git::new(self.data_directory.join("git"), &self.git_base_url);
        match self.git_credentials() {
            Some(credentials) => {
                git.with_http_header(format!("Authorization: Basic {credentials}"))
            }
            None => git,
        }
    }

    /// `x-access-token:<github-token>` in base64, as git sends it to GitHub,
    /// when `github-token` is set and `git-base-url` is GitHub's (the token
    /// must never travel to another host).
    fn git_credentials(&self) -> Option<String> {
        use base64::Engine;
        let token = self.github_token.as_ref()?;
        let github = matches!(
            self.git_base_url.trim_end_matches('/'),
            "https://github.com" | "https://www.github.com"
        );
        github.then(|| {
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
        })
    }

    /// The SQLite file of the build history.
    pub fn history_path(&self) -> PathBuf {
        self.data_directory.join("history.sqlite3")
    }

    /// The log file of build `id` (an id already checked by
    /// [`zos_build_core::history::is_valid_build_id`]): written by the
    /// pipeline, served by `/report/<id>`.
    pub fn build_log_path(&self, id: &str) -> PathBuf {
        self.logs_directory.join(format!("{id}.log"))
    }

    /// The scratch directory of build `id` (source checkout and extracted
    /// artifacts), removed when the build ends.
    pub fn build_work_directory(&self, id: &str) -> PathBuf {
        self.data_directory.join("work").join(id)
    }
}

fn parse_file(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    };
    // An empty file (or one holding only comments) means "all defaults".
    let value: Value = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    match value {
        Value::Null => Ok(RawConfig::default()),
        // Parsed again from the text (not the value) so that errors carry the line.
        Value::Mapping(_) => serde_yaml::from_str(text).map_err(|e| syntax(e.to_string())),
        _ => Err(syntax(
            "the file must be a mapping of `key: value` lines".into(),
        )),
    }
}

/// Converts raw values, naming the key in every error.
struct Values<'a> {
    origin: &'a str,
}

impl Values<'_> {
    fn invalid(&self, key: &'static str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key,
            source_name: self.origin.to_string(),
            message,
        }
    }

    /// A scalar as text; `null` is unset. Lists and mappings are refused.
    fn scalar(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<String>, ConfigError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => {
                Err(self.invalid(key, "expected a single value, not a list or mapping".into()))
            }
        }
    }

    fn string(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<String>, ConfigError> {
        match self.scalar(key, value)? {
            Some(s) if s.trim().is_empty() => Err(self.invalid(key, "must not be empty".into())),
            other => Ok(other),
        }
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        key: &'static str,
        value: Option<Value>,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.scalar(key, value)?
            .map(|s| {
                s.trim()
                    .parse::<T>()
                    .map_err(|_| self.invalid(key, format!("expected {expected}, found {s:?}")))
            })
            .transpose()
    }

    fn path(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key, value)?.map(PathBuf::from))
    }

    fn endpoint(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(path) = self.string(key, value)? else {
            return Ok(None);
        };
        let ok = path.starts_with('/')
            && path.len() > 1
            && !path.ends_with('/')
            && !path.split('/').any(|c| c == "." || c == "..")
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        if !ok {
            return Err(self.invalid(
                key,
                format!("{path:?} must be a path such as /hook/monitor-watch (letters, digits, '-', '_', '.', no trailing '/')"),
            ));
        }
        if FIXED_ROUTES.contains(&path.as_str())
            || path.starts_with("/build/")
            || path.starts_with("/report/")
        {
            return Err(self.invalid(key, format!("{path:?} is taken by a built-in route")));
        }
        Ok(Some(path))
    }

    fn extra_hosts(&self, value: Option<Value>) -> Result<Vec<(String, String)>, ConfigError> {
        const KEY: &str = "extra-hosts";
        let entries = match value {
            // A mapping `name: address` is a list of `name:address`.
            Some(Value::Mapping(map)) => map
                .into_iter()
                .map(|(name, address)| match (name, address) {
                    (Value::String(n), Value::String(a)) => Ok(format!("{n}:{a}")),
                    (n, a) => Err(self.invalid(
                        KEY,
                        format!("expected `name: address` text entries, found {n:?}: {a:?}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            other => self.list(KEY, other, "entries like \"hub.local:10.0.0.5\"")?,
        };
        entries
            .into_iter()
            .map(|entry| {
                // The name never holds ':'; an IPv6 address does.
                let parsed = entry.split_once(':').and_then(|(name, address)| {
                    let name = name.trim();
                    let address = address.trim().parse::<IpAddr>().ok()?;
                    let name_ok = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                    name_ok.then(|| (name.to_string(), address.to_string()))
                });
                parsed.ok_or_else(|| {
                    self.invalid(
                        KEY,
                        format!("{entry:?} is not `hostname:ip-address` (e.g. hub.local:10.0.0.5)"),
                    )
                })
            })
            .collect()
    }

    fn duration(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = self.scalar(key, value)? else {
            return Ok(None);
        };
        let duration = parse_duration(&text).ok_or_else(|| {
            self.invalid(
                key,
                format!("expected seconds or a duration such as 45m, 1h30m, 90s; found {text:?}"),
            )
        })?;
        if duration.is_zero() {
            return Err(self.invalid(key, "must be longer than zero".into()));
        }
        Ok(Some(duration))
    }

    fn bytes(&self, key: &'static str, value: Option<Value>) -> Result<Option<u64>, ConfigError> {
        let Some(text) = self.scalar(key, value)? else {
            return Ok(None);
        };
        match parse_bytes(&text) {
            Some(0) | None => Err(self.invalid(
                key,
                format!("expected a size in bytes or with a unit (512M, 16G), above zero; found {text:?}"),
            )),
            Some(n) => Ok(Some(n)),
        }
    }

    /// A list of text entries: a YAML sequence of strings, or one string of
    /// comma-separated entries (what an environment variable holds); unset
    /// is empty. `expected` says what an entry looks like, for errors.
    fn list(
        &self,
        key: &'static str,
        value: Option<Value>,
        expected: &str,
    ) -> Result<Vec<String>, ConfigError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            Some(Value::Sequence(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => {
                        Err(self.invalid(key, format!("expected {expected}, found {other:?}")))
                    }
                })
                .collect(),
            Some(other) => Err(self.invalid(key, format!("expected a list, found {other:?}"))),
        }
    }

    /// A whole number of at least 1.
    fn at_least_one(
        &self,
        key: &'static str,
        value: Option<Value>,
    ) -> Result<Option<usize>, ConfigError> {
        match self.parsed::<usize>(key, value, "a whole number of at least 1")? {
            Some(0) => Err(self.invalid(key, "must be at least 1".to_string())),
            other => Ok(other),
        }
    }

    /// Linux capability names (`SYS_ADMIN`, `CAP_NET_ADMIN`), stored without
    /// the `CAP_` prefix, as Docker takes them.
    fn capabilities(&self, value: Option<Value>) -> Result<Vec<String>, ConfigError> {
        const KEY: &str = "build-capabilities";
        let names = self.list(KEY, value, "capability names such as SYS_ADMIN")?;
        names
            .into_iter()
            .map(|name| {
                let upper = name.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix("CAP_").unwrap_or(&upper).to_string();
                let ok = !bare.is_empty()
                    && bare.len() <= 32
                    && bare.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                if ok {
                    Ok(bare)
                } else {
                    Err(self.invalid(
                        KEY,
                        format!("{name:?} is not a capability name such as SYS_ADMIN"),
                    ))
                }
            })
            .collect()
    }

    fn cpus(&self, value: Option<Value>) -> Result<Option<f64>, ConfigError> {
        const KEY: &str = "build-cpus";
        let cpus: Option<f64> = self.parsed(KEY, value, "a number of CPUs such as 2 or 0.5")?;
        match cpus {
            Some(c) if !(c.is_finite() && c > 0.0 && c <= 1024.0) => {
                Err(self.invalid(KEY, format!("{c} is not a number of CPUs above zero")))
            }
            other => Ok(other),
        }
    }

    fn container_name_prefix(&self, value: Option<Value>) -> Result<Option<String>, ConfigError> {
        const KEY: &str = "container-name-prefix";
        let Some(prefix) = self.string(KEY, value)? else {
            return Ok(None);
        };
        let ok = prefix.len() <= 64
            && prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(self.invalid(
                KEY,
                format!("{prefix:?} must be up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (Docker's container name rule)"),
            ));
        }
        Ok(Some(prefix))
    }
}

/// `2700`, `45m`, `1h30m`, `90s`, `1h 5m 10s`: whole seconds, or hours,
/// minutes and seconds read by `humantime`.
///
/// Two rules on top of humantime: a plain number is seconds, as in the old
/// service's settings (humantime alone wants a unit); and the units are the
/// documented `h`, `m` and `s` only. humantime would also take `M` (its
/// month) and names such as `minutes`, and in a file where `512M` is a size,
/// `45M` is far more likely a slip for minutes than a wish for 45 months.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let documented_units = text
        .split(|c: char| !c.is_alphabetic())
        .all(|unit| matches!(unit, "" | "h" | "m" | "s"));
    if !documented_units {
        return None;
    }
    humantime::parse_duration(text).ok()
}

/// `1073741824`, `512M`, `16G`, `16GiB`, `2 g`, `1.5G`: binary units.
///
/// `bytesize` reads `16G` as 16·10⁹ bytes (SI), while here, as in the old
/// service and in Docker's own `--memory 16g`, `16G` means 16 GiB. So the
/// unit is first rewritten to its binary name (`G`, `GB` and `GiB` all become
/// `GiB`), and bytesize parses the result. bytesize saturates where the
/// product overflows; that maximum is refused rather than taken as a limit.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => "B",
        "k" | "kb" | "kib" => "KiB",
        "m" | "mb" | "mib" => "MiB",
        "g" | "gb" | "gib" => "GiB",
        "t" | "tb" | "tib" => "TiB",
        _ => return None,
    };
    let size: bytesize::ByteSize = format!("{number}{unit}").parse().ok()?;
    (size.as_u64() != u64::MAX).then_some(size.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn yaml(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("test.yaml"))
    }

    fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zos-build.yaml");
        std::fs::write(&path, text).unwrap();
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(Some(&path), |name| vars.get(name).cloned())
    }

    fn invalid_key(result: Result<Config, ConfigError>) -> (&'static str, String) {
        match result {
            Err(ConfigError::Invalid { key, message, .. }) => (key, message),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load_with_env(None, |_| None).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.http_port, 5560);
        assert_eq!(config.http_listen.to_string(), "127.0.0.1");
        assert_eq!(config.data_directory, PathBuf::from("./data"));
        assert_eq!(config.logs_directory, PathBuf::from("./data/logs"));
        assert_eq!(
            config.artifacts_directory,
            PathBuf::from("./data/artifacts")
        );
        assert_eq!(config.monitor_update_endpoint, "/hook/monitor-update");
        assert_eq!(config.repository_push_endpoint, "/hook/monitor-watch");
        assert_eq!(config.maximum_execution_time, Duration::from_secs(2700));
        assert_eq!(config.git_base_url, "https://github.com");
        assert_eq!(config.webhook_secret, None);
        assert_eq!(config.github_token, None);
        assert_eq!(config.docker_host, None);
        assert_eq!(
            config.history_path(),
            PathBuf::from("./data/history.sqlite3")
        );
    }

    #[test]
    fn the_security_defaults_hold_without_a_file() {
        let config = Config::default();
        assert!(!config.allow_unsigned_webhooks);
        assert_eq!(config.build_memory_limit, 16 << 30);
        assert_eq!(config.build_pids_limit, 4096);
        assert!(config.build_capabilities.is_empty());
        assert_eq!(config.log_size_limit, 256 << 20);
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.replay_window, Duration::from_secs(24 * 3600));
        assert_eq!(config.keep_builds_per_branch, 50);
        let caps = yaml("build-capabilities: [sys_admin, CAP_NET_ADMIN]\n").unwrap();
        assert_eq!(caps.build_capabilities, ["SYS_ADMIN", "NET_ADMIN"]);
        let caps = yaml("build-capabilities: \"SYS_ADMIN, MKNOD\"\n").unwrap();
        assert_eq!(caps.build_capabilities, ["SYS_ADMIN", "MKNOD"]);
    }

    #[test]
    fn an_empty_file_means_defaults() {
        assert_eq!(yaml("# nothing here\n").unwrap(), Config::default());
    }

    #[test]
    fn every_key_is_read_from_the_file() {
        let config = yaml(
            r#"
data-directory: /srv/zos
logs-directory: /var/log/zos
kernel-directory: /srv/kernels
binary-directory: /srv/bin
artifacts-directory: /srv/artifacts
http-listen: 0.0.0.0
http-port: 8080
public-host: https://build.example.org
github-token: ghp_x
configuration-repository: threefoldtech/bootstrap-config
monitor-update-endpoint: /hooks/config
repository-push-endpoint: /hooks/push
extra-hosts: ["hub.local:10.0.0.5", "db:fd00::1"]
maximum-execution-time: 1h30m
container-name-prefix: flist-
webhook-secret: s3cret
git-base-url: file:///srv/git/
max-concurrent-builds: 4
build-memory-limit: 16G
build-cpus: 1.5
docker-host: tcp://127.0.0.1:2375
admin-token: adm
on-shutdown: finish
"#,
        )
        .unwrap();
        assert_eq!(config.data_directory, PathBuf::from("/srv/zos"));
        assert_eq!(config.logs_directory, PathBuf::from("/var/log/zos"));
        assert_eq!(config.http_listen.to_string(), "0.0.0.0");
        assert_eq!(config.http_port, 8080);
        assert_eq!(config.monitor_update_endpoint, "/hooks/config");
        assert_eq!(
            config.extra_hosts,
            [
                ("hub.local".to_string(), "10.0.0.5".to_string()),
                ("db".to_string(), "fd00::1".to_string())
            ]
        );
        assert_eq!(config.maximum_execution_time, Duration::from_secs(5400));
        assert_eq!(config.container_name_prefix, "flist-");
        assert_eq!(config.git_base_url, "file:///srv/git");
        assert_eq!(config.max_concurrent_builds, 4);
        assert_eq!(config.build_memory_limit, 16 << 30);
        assert_eq!(config.build_cpus, Some(1.5));
        assert_eq!(config.admin_token.as_deref(), Some("adm"));
        assert_eq!(config.on_shutdown, OnShutdown::Finish);
        assert_eq!(config.webhook_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn directories_follow_the_data_directory_unless_set() {
        let config = yaml("data-directory: /srv/zos\nlogs-directory: /logs\n").unwrap();
        assert_eq!(config.logs_directory, PathBuf::from("/logs"));
        assert_eq!(
            config.artifacts_directory,
            PathBuf::from("/srv/zos/artifacts")
        );
        assert_eq!(config.kernel_directory, PathBuf::from("/srv/zos/kernels"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = yaml("http-port: 80\nhttp-prot: 80\n").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        assert!(
            text.contains("http-prot") && text.contains("test.yaml"),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_mapping_is_refused() {
        let err = yaml("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
        let err = yaml("http-port: [1\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (text, key) in [
            ("http-port: 70000\n", "http-port"),
            ("http-port: eighty\n", "http-port"),
            ("http-listen: localhost\n", "http-listen"),
            (
                "maximum-execution-time: 45 minutes\n",
                "maximum-execution-time",
            ),
            ("maximum-execution-time: 0\n", "maximum-execution-time"),
            ("max-concurrent-builds: 0\n", "max-concurrent-builds"),
            ("max-concurrent-builds: -1\n", "max-concurrent-builds"),
            ("build-memory-limit: 16Q\n", "build-memory-limit"),
            ("build-cpus: 0\n", "build-cpus"),
            ("extra-hosts: [nocolon]\n", "extra-hosts"),
            ("extra-hosts: [\"a:not-an-ip\"]\n", "extra-hosts"),
            ("monitor-update-endpoint: hook\n", "monitor-update-endpoint"),
            (
                "repository-push-endpoint: /a/../b\n",
                "repository-push-endpoint",
            ),
            (
                "repository-push-endpoint: /build/status\n",
                "repository-push-endpoint",
            ),
            (
                "repository-push-endpoint: /hook/monitor-update\n",
                "repository-push-endpoint",
            ),
            ("container-name-prefix: \"-x\"\n", "container-name-prefix"),
            ("webhook-secret: \"\"\n", "webhook-secret"),
            ("github-token: [a, b]\n", "github-token"),
            ("log-format: xml\n", "log-format"),
            (
                "build-capabilities: [\"SYS ADMIN\"]\n",
                "build-capabilities",
            ),
            ("build-capabilities: {a: b}\n", "build-capabilities"),
            ("build-pids-limit: 0\n", "build-pids-limit"),
            ("log-size-limit: 0\n", "log-size-limit"),
            (
                "allow-unsigned-webhooks: maybe\n",
                "allow-unsigned-webhooks",
            ),
            ("replay-window: soon\n", "replay-window"),
        ] {
            let (got, message) = invalid_key(yaml(text));
            assert_eq!(got, key, "{text}: {message}");
            assert!(!message.is_empty());
        }
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("2700"), Some(Duration::from_secs(2700)));
        assert_eq!(parse_duration("45m"), Some(Duration::from_secs(2700)));
        assert_eq!(parse_duration("1h 5m 10s"), Some(Duration::from_secs(3910)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("5m3"), None);
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45M"), None, "not months");
        assert_eq!(parse_duration("45 minutes"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(
            yaml("maximum-execution-time: 30s\n")
                .unwrap()
                .maximum_execution_time,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("16GiB"), Some(16 << 30));
        assert_eq!(parse_bytes("2 g"), Some(2 << 30));
        assert_eq!(parse_bytes("G"), None);
        assert_eq!(parse_bytes("99999999999999T"), None);
        assert_eq!(parse_bytes("16G"), Some(16 << 30), "binary, not SI");
        assert_eq!(parse_bytes("16 GB"), Some(16 << 30));
        assert_eq!(parse_bytes("1.5G"), Some(3 << 29));
        assert_eq!(parse_bytes("-1G"), None);
        assert_eq!(parse_bytes("16X"), None);
    }

    #[test]
    fn environment_overrides_the_file_and_is_named_in_errors() {
        let config = with_env(
            "http-port: 8080\nwebhook-secret: from-file\n",
            &[
                ("ZOS_BUILD_HTTP_PORT", "9090"),
                ("ZOS_BUILD_EXTRA_HOSTS", "a:10.0.0.1, b:10.0.0.2"),
                ("ZOS_BUILD_MAXIMUM_EXECUTION_TIME", "10m"),
                ("ZOS_BUILD_GITHUB_TOKEN", ""),
            ],
        )
        .unwrap();
        assert_eq!(config.http_port, 9090);
        assert_eq!(config.webhook_secret.as_deref(), Some("from-file"));
        assert_eq!(config.extra_hosts.len(), 2);
        assert_eq!(config.maximum_execution_time, Duration::from_secs(600));
        assert_eq!(config.github_token, None, "an empty variable is unset");

        let err = with_env("", &[("ZOS_BUILD_HTTP_PORT", "x")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("http-port") && text.contains("ZOS_BUILD_HTTP_PORT"),
            "{text}"
        );
        let err = with_env("http-port: x\n", &[]).unwrap_err();
        assert!(err.to_string().contains("zos-build.yaml"), "{err}");
    }

    #[test]
    fn every_key_has_an_environment_variable_and_a_documented_entry() {
        let docs = include_str!("../../docs/server-configuration.md");
        let example = include_str!("../../examples/zos-build.yaml");
        for key in keys() {
            assert!(
                docs.contains(&format!("`{key}`")),
                "{key} is not documented"
            );
            assert!(
                docs.contains(&env_var_name(key)),
                "{key}'s variable is not documented"
            );
            assert!(
                example.contains(&format!("{key}:")),
                "{key} is missing from the example"
            );
        }
        assert_eq!(env_var_name("http-port"), "ZOS_BUILD_HTTP_PORT");
        // The example file itself must load.
        Config::from_yaml(example, Path::new("examples/zos-build.yaml")).unwrap();
    }

    #[test]
    fn github_token_is_git_credentials_for_github_only_and_a_secret() {
        let yaml = "github-token: ghp_secret\n";
        let config = Config::from_yaml(yaml, Path::new("t.yaml")).unwrap();
        let git = format!("{:?}", config.git());
        assert!(git.contains("<set>"), "{git}");
        // base64("x-access-token:ghp_secret")
        let basic = "eC1hY2Nlc3MtdG9rZW46Z2hwX3NlY3JldA==";
        assert!(
            config.secrets().iter().any(|s| s == basic),
            "masked in logs"
        );
        assert!(config.secrets().iter().any(|s| s == "ghp_secret"));
        for base in ["https://git.example.org", "file:///srv/git"] {
            let yaml = format!("github-token: ghp_secret\ngit-base-url: {base}\n");
            let config = Config::from_yaml(&yaml, Path::new("t.yaml")).unwrap();
            assert!(!format!("{:?}", config.git()).contains("<set>"), "{base}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err =
            Config::load_with_env(Some(Path::new("/nonexistent/zos.yaml")), |_| None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/zos.yaml"), "{err}");
    }
}
