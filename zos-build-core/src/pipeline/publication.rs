//! Publishing a build's artifact, and moving its link forward only.

use super::{JobInfo, JobLog, PublishedArtifact};
use crate::history::ArtifactKind;
use crate::{BuildOutcome, History, PublishRequest, Published, Publisher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// One artifact of a build going to one [`Publisher`] under one name, and
/// optionally the link to move onto it.
pub struct Publication {
    publisher: Arc<dyn Publisher>,
    kind: ArtifactKind,
    artifact: usize,
    name: String,
    link: Option<(String, LinkRule)>,
    derive: Option<Arc<dyn Derive>>,
}

/// Makes the file to publish from a build's artifact: a kernel flist from a
/// kernel ([`KernelFlist`](super::KernelFlist)). Runs in a blocking task.
pub trait Derive: Send + Sync {
    /// What it makes, for the log.
    fn describe(&self) -> String;

    /// Writes the derived file into `dir` (a fresh directory of the job's)
    /// from `artifact`; returns its path.
    fn derive(&self, artifact: &Path, dir: &Path) -> std::io::Result<PathBuf>;
}

/// When a link moves.
#[derive(Clone)]
enum LinkRule {
    /// Every time (an embedder's single build).
    Always,
    /// Only for the newest push of its branch, as the history knows it.
    ForwardOnly(ForwardLinks),
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("kind", &self.kind)
            .field("artifact", &self.artifact)
            .field("name", &self.name)
            .field("link", &self.link.as_ref().map(|(name, _)| name))
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// The build's first artifact, published by `publisher` (a destination
    /// of `kind`) as `name`, moving no link.
    pub fn new(publisher: Arc<dyn Publisher>, kind: ArtifactKind, name: impl Into<String>) -> Self {
        Publication {
            publisher,
            kind,
            artifact: 0,
            name: name.into(),
            link: None,
            derive: None,
        }
    }

    /// Publishes what `derive` makes from the artifact instead of the
    /// artifact itself.
    pub fn derived(mut self, derive: Arc<dyn Derive>) -> Self {
        self.derive = Some(derive);
        self
    }

    /// Publishes the `index`-th artifact of the spec instead of the first.
    pub fn artifact(mut self, index: usize) -> Self {
        self.artifact = index;
        self
    }

    /// Moves `link` onto the published file every time.
    pub fn link(mut self, link: impl Into<String>) -> Self {
        self.link = Some((link.into(), LinkRule::Always));
        self
    }

    /// Moves `link` onto the published file only when no newer push of the
    /// branch has moved it already, as `links` records it.
    pub fn link_forward_only(mut self, link: impl Into<String>, links: ForwardLinks) -> Self {
        self.link = Some((link.into(), LinkRule::ForwardOnly(links)));
        self
    }

    /// Publishes, then moves the link if the rule lets it. The error is one
    /// line for the build's ending.
    pub(super) async fn run(
        &self,
        outcome: &BuildOutcome,
        job: &JobInfo,
        log: &mut JobLog<'_>,
    ) -> Result<PublishedArtifact, String> {
        let Some(artifact) = outcome.artifacts.get(self.artifact) else {
            return Err("the build produced no artifact".into());
        };
        let derived;
        let artifact: &Path = match &self.derive {
            None => artifact,
            Some(derive) => {
                log.line(format!("[zos-build] making {}", derive.describe()))
                    .await;
                let (derive, from) = (derive.clone(), artifact.clone());
                let dir = artifact
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(format!(".derived-{}", self.name));
                derived = tokio::task::spawn_blocking(move || derive.derive(&from, &dir))
                    .await
                    .map_err(|e| format!("cannot make {}: {e}", self.name))?
                    .map_err(|e| format!("cannot make {}: {e}", self.name))?;
                &derived
            }
        };
        log.line(format!(
            "[zos-build] publishing {} ({})",
            self.name,
            self.kind.as_str()
        ))
        .await;
        let mut published = self
            .publisher
            .publish(&PublishRequest::new(artifact, &self.name))
            .await
            .map_err(|e| format!("cannot publish the artifact: {e}"))?;
        log.line(format!("[zos-build] published {}", published.location))
            .await;
        if let Some((link, rule)) = &self.link {
            published.link = match rule {
                LinkRule::Always => self.move_link(&published, link).await?,
                LinkRule::ForwardOnly(links) => {
                    links.advance(self, &published, link, &job.id, log).await?
                }
            };
            match &published.link {
                Some(moved) => {
                    log.line(format!(
                        "[zos-build] link {} now points at {}",
                        moved.name, moved.target
                    ))
                    .await
                }
                None if matches!(rule, LinkRule::Always) => {}
                None => {
                    log.line(format!(
                        "[zos-build] link {link} left alone: a newer push of the branch moved it already"
                    ))
                    .await
                }
            }
        }
        Ok(PublishedArtifact {
            kind: self.kind,
            published,
        })
    }

    async fn move_link(
        &self,
        published: &Published,
        link: &str,
    ) -> Result<Option<crate::PublishedLink>, String> {
        self.publisher
            .move_link(published, link)
            .await
            .map_err(|e| format!("cannot move link {link}: {e}"))
    }
}

/// The forward-only rule of links, kept in the [`History`]: a link moves
/// only for a build recorded after the one it points at (a newer push), so
/// an older build that finishes last leaves it alone, across restarts too.
///
/// Deciding and moving happen under a lock per link (in this process), so
/// two builds finishing at once cannot pass each other between the check
/// and the move. Cheap to clone; clones share the locks.
#[derive(Clone)]
pub struct ForwardLinks {
    history: History,
    locks: Arc<Mutex<LinkLocks>>,
}

/// One lock per link (publisher kind and name), while someone holds it.
type LinkLocks = HashMap<(ArtifactKind, String), Arc<tokio::sync::Mutex<()>>>;

impl std::fmt::Debug for ForwardLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardLinks")
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl ForwardLinks {
    /// Links recorded in `history`.
    pub fn new(history: History) -> ForwardLinks {
        ForwardLinks {
            history,
            locks: Arc::default(),
        }
    }

    async fn advance(
        &self,
        publication: &Publication,
        published: &Published,
        link: &str,
        build_id: &str,
        log: &mut JobLog<'_>,
    ) -> Result<Option<crate::PublishedLink>, String> {
        let key = (publication.kind, link.to_string());
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.lock().await;
        let history_error = |e: crate::HistoryError| format!("cannot decide on link {link}: {e}");
        let may_move = self
            .history
            .link_may_move(publication.kind, link, build_id)
            .await
            .map_err(history_error)?;
        if !may_move {
            return Ok(None);
        }
        let moved = publication.move_link(published, link).await?;
        if let Some(moved) = &moved {
            if let Err(e) = self
                .history
                .record_link(publication.kind, link, &moved.target, build_id)
                .await
            {
                // The link moved; only its memory is lost. Say so, go on.
                log.line(format!("[zos-build] cannot record link {link}: {e}"))
                    .await;
            }
        }
        drop(guard);
        // Drop the lock's entry when nobody else holds or waits for it.
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.get(&key).is_some_and(|l| Arc::strong_count(l) <= 2) {
            locks.remove(&key);
        }
        Ok(moved)
    }
}
