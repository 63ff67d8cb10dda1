//! What the client knows of a build: the object the server sends for one
//! (`/api/builds/<id>`, the entries of `/build/history`, the values of
//! `/build/status`), read leniently.
//!
//! The server is the authority on its own JSON: `status --json` and
//! `history --json` print it untouched. This type only holds the fields the
//! client uses to decide something (which build to follow, whether it has
//! ended, how it ended) or to show in a table; unknown fields are ignored
//! and a status this client does not know yet is kept as text, so a newer
//! server does not break an older client.

use serde::Deserialize;

/// The state of a build, as the server names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    /// Waiting for a free slot.
    Queued,
    /// Fetching the source, pulling the base image.
    Initializing,
    /// A kernel build's `initializing` (the old kernel pipeline's word).
    Preparing,
    /// The build script runs.
    Building,
    /// A kernel build's container is committed as its base image.
    Committing,
    /// Finished, artifact published.
    Success,
    /// Finished with an error.
    Error,
    /// Stopped (superseded by a newer push, or cancelled by hand).
    Cancelled,
    /// A status this client does not know.
    Other(String),
}

impl BuildStatus {
    /// The status named `name` on the wire.
    pub fn parse(name: &str) -> BuildStatus {
        match name {
            "queued" => BuildStatus::Queued,
            "initializing" => BuildStatus::Initializing,
            "preparing" => BuildStatus::Preparing,
            "building" => BuildStatus::Building,
            "committing" => BuildStatus::Committing,
            "success" => BuildStatus::Success,
            "error" => BuildStatus::Error,
            "cancelled" => BuildStatus::Cancelled,
            other => BuildStatus::Other(other.to_string()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Initializing => "initializing",
            BuildStatus::Preparing => "preparing",
            BuildStatus::Building => "building",
            BuildStatus::Committing => "committing",
            BuildStatus::Success => "success",
            BuildStatus::Error => "error",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::Other(name) => name,
        }
    }

    /// Whether the build has ended (and its log is complete).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            BuildStatus::Success | BuildStatus::Error | BuildStatus::Cancelled
        )
    }

    /// Whether nothing of the build script has run yet: the time a spinner
    /// is shown.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            BuildStatus::Queued | BuildStatus::Initializing | BuildStatus::Preparing
        )
    }
}

impl<'de> Deserialize<'de> for BuildStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(BuildStatus::parse(&name))
    }
}

/// One build as the server describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// The build id.
    pub id: String,
    /// Where it stands.
    pub status: BuildStatus,
    /// `OWNER/REPO/BRANCH`.
    #[serde(default)]
    pub name: String,
    /// The build script's tag, if it has one.
    #[serde(default)]
    pub tag: Option<String>,
    /// Unix seconds when it started running.
    #[serde(default)]
    pub started: Option<f64>,
    /// Unix seconds when it ended.
    #[serde(default)]
    pub ended: Option<f64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The published artifact's name, with the old service's prefix
    /// (`flist/<name>.md`, `binary/<name>`) for hub and binary artifacts.
    #[serde(default)]
    pub artifact: Option<String>,
    /// The published artifact's bare name (servers since the hub publisher).
    #[serde(default)]
    pub artifact_name: Option<String>,
    /// Where the build's latest GitHub commit status is: `queued`, `sent`,
    /// `retrying (429)`, `failed (401)`; None when it has none, or the
    /// server is older than commit statuses.
    #[serde(default)]
    pub github: Option<String>,
}

impl Build {
    /// The artifact's name as people want it: bare when the server says it,
    /// else `artifact` as sent.
    pub fn artifact_shown(&self) -> Option<&str> {
        self.artifact_name.as_deref().or(self.artifact.as_deref())
    }

    /// Where the build's commit status is, when it is worth saying: not
    /// when it was sent (the normal case), nor when there is none.
    pub fn github_pending(&self) -> Option<&str> {
        self.github
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "sent")
    }
}

/// The builds of a `/build/status` object (keyed by id), oldest start first,
/// queued builds (not started yet) last.
pub fn from_status_object(value: &serde_json::Value) -> Result<Vec<Build>, serde_json::Error> {
    let mut builds: Vec<Build> = match value.as_object() {
        Some(map) => map
            .values()
            .map(Build::deserialize)
            .collect::<Result<_, _>>()?,
        // Not an object: let serde say what it is.
        None => serde_json::from_value::<std::collections::BTreeMap<String, Build>>(value.clone())?
            .into_values()
            .collect(),
    };
    builds.sort_by(|a, b| {
        let key = |b: &Build| (b.started.is_none(), b.started.unwrap_or(0.0));
        let (a_key, b_key) = (key(a), key(b));
        a_key
            .0
            .cmp(&b_key.0)
            .then(a_key.1.total_cmp(&b_key.1))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(builds)
}

/// The builds of a JSON array (`/build/history`, `/api/builds`), in order.
pub fn from_array(value: &serde_json::Value) -> Result<Vec<Build>, serde_json::Error> {
    Vec::<Build>::deserialize(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_kept() {
        for name in [
            "queued",
            "initializing",
            "preparing",
            "building",
            "committing",
            "success",
            "error",
            "cancelled",
        ] {
            assert_eq!(BuildStatus::parse(name).as_str(), name);
        }
        let other = BuildStatus::parse("paused");
        assert_eq!(other, BuildStatus::Other("paused".into()));
        assert!(!other.is_finished());
        assert!(BuildStatus::Cancelled.is_finished());
        assert!(!BuildStatus::Building.is_finished());
        assert!(BuildStatus::Initializing.is_waiting());
        assert!(!BuildStatus::Building.is_waiting());
    }

    #[test]
    fn a_build_reads_with_nulls_and_extra_fields() {
        let build: Build = serde_json::from_value(json!({
            "id": "ab12", "status": "queued", "name": "o/r/master", "monitor": "",
            "docker": "system", "started": null, "ended": null, "error": null,
            "commits": [], "artifact": null, "tag": null, "baseimage": "ubuntu:22.04",
        }))
        .expect("reads");
        assert_eq!(build.id, "ab12");
        assert_eq!(build.status, BuildStatus::Queued);
        assert_eq!(build.started, None);
        assert_eq!(build.tag, None);
        assert_eq!(build.github, None, "a server older than commit statuses");
    }

    #[test]
    fn the_commit_status_is_worth_saying_until_it_is_sent() {
        let github = |value: serde_json::Value| {
            let build: Build =
                serde_json::from_value(json!({"id": "a", "status": "success", "github": value}))
                    .expect("reads");
            build.github_pending().map(str::to_string)
        };
        assert_eq!(github(json!(null)), None);
        assert_eq!(github(json!("sent")), None);
        assert_eq!(github(json!("")), None);
        assert_eq!(github(json!("queued")).as_deref(), Some("queued"));
        assert_eq!(
            github(json!("retrying (429)")).as_deref(),
            Some("retrying (429)")
        );
        assert_eq!(
            github(json!("failed (401)")).as_deref(),
            Some("failed (401)")
        );
    }

    #[test]
    fn status_objects_are_sorted_by_start_with_queued_last() {
        let value = json!({
            "c": {"id": "c", "status": "queued", "started": null},
            "b": {"id": "b", "status": "building", "started": 200},
            "a": {"id": "a", "status": "initializing", "started": 100},
        });
        let ids: Vec<_> = from_status_object(&value)
            .expect("reads")
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(from_status_object(&json!([1, 2])).is_err());
    }
}
