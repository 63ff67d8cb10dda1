//! `/metrics`: the figures an operator graphs, in Prometheus' text format.
//!
//! Build counts come from the history (so they survive restarts); the
//! webhook and log-line counters count since start-up, as Prometheus
//! counters do.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use zos_build_core::{History, HistoryError};

/// Webhook requests by the HTTP status they were answered with.
#[derive(Debug, Default)]
pub struct WebhookCounter {
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl WebhookCounter {
    /// Counts one webhook request answered with `status`.
    pub fn count(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<u16, u64> {
        self.by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Commit statuses sent to GitHub since start-up: sent, retried (each
/// failed attempt that will be tried again) and failed (given up).
#[derive(Debug, Default)]
pub struct StatusCounters {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl StatusCounters {
    /// One status delivered.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One attempt failed; the status is tried again.
    pub fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// One status given up.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a webhook answer with `status` means, for the `outcome` label.
fn outcome(status: u16) -> &'static str {
    match status {
        200 | 201 => "accepted",
        202 => "ignored",
        400 => "bad_request",
        401 => "unauthorized",
        413 => "too_large",
        _ => "other",
    }
}

/// The metrics text.
pub async fn render(
    history: &History,
    webhooks: &WebhookCounter,
    statuses: &StatusCounters,
    log_lines: u64,
) -> Result<String, HistoryError> {
    let by_status = history.count_by_status().await?;
    let count = |wanted: &[&str]| -> u64 {
        by_status
            .iter()
            .filter(|(s, _)| wanted.contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP zos_build_builds Builds in the history, by status."
    );
    let _ = writeln!(out, "# TYPE zos_build_builds gauge");
    for status in [
        "queued",
        "initializing",
        "preparing",
        "building",
        "committing",
        "success",
        "error",
        "cancelled",
    ] {
        let _ = writeln!(
            out,
            "zos_build_builds{{status=\"{status}\"}} {}",
            count(&[status])
        );
    }
    let _ = writeln!(
        out,
        "# HELP zos_build_queue_length Builds waiting for a slot."
    );
    let _ = writeln!(out, "# TYPE zos_build_queue_length gauge");
    let _ = writeln!(out, "zos_build_queue_length {}", count(&["queued"]));
    let _ = writeln!(
        out,
        "# HELP zos_build_running Builds initializing, preparing, building or committing."
    );
    let _ = writeln!(out, "# TYPE zos_build_running gauge");
    let _ = writeln!(
        out,
        "zos_build_running {}",
        count(&["initializing", "preparing", "building", "committing"])
    );
    let _ = writeln!(
        out,
        "# HELP zos_build_log_lines_total Log lines of all builds since start-up."
    );
    let _ = writeln!(out, "# TYPE zos_build_log_lines_total counter");
    let _ = writeln!(out, "zos_build_log_lines_total {log_lines}");
    let _ = writeln!(out, "# HELP zos_build_webhook_requests_total Webhook requests since start-up, by outcome and HTTP status.");
    let _ = writeln!(out, "# TYPE zos_build_webhook_requests_total counter");
    for (status, n) in webhooks.snapshot() {
        let _ = writeln!(
            out,
            "zos_build_webhook_requests_total{{outcome=\"{}\",status=\"{status}\"}} {n}",
            outcome(status)
        );
    }
    let _ = writeln!(
        out,
        "# HELP zos_build_github_statuses_total Commit statuses since start-up: sent, retried (failed attempts tried again) and failed (given up)."
    );
    let _ = writeln!(out, "# TYPE zos_build_github_statuses_total counter");
    for (outcome, counter) in [
        ("sent", &statuses.sent),
        ("retried", &statuses.retried),
        ("failed", &statuses.failed),
    ] {
        let _ = writeln!(
            out,
            "zos_build_github_statuses_total{{outcome=\"{outcome}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    Ok(out)
}

/// The live feed's metrics: its subscribers, the bytes it holds for those
/// that have not read them yet, and how often one fell behind and read
/// from a log file instead.
pub fn live_feed(live: &crate::live::Live) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP zos_build_live_subscribers Websocket clients and log followers of the live feed."
    );
    let _ = writeln!(out, "# TYPE zos_build_live_subscribers gauge");
    let _ = writeln!(out, "zos_build_live_subscribers {}", live.subscribers());
    let _ = writeln!(out, "# HELP zos_build_live_held_bytes Bytes of live events kept for subscribers that have not read them (at most 32 MiB).");
    let _ = writeln!(out, "# TYPE zos_build_live_held_bytes gauge");
    let _ = writeln!(out, "zos_build_live_held_bytes {}", live.held());
    let _ = writeln!(out, "# HELP zos_build_live_catch_ups_total Times a websocket client fell behind the feed and read the lines it missed from a log file.");
    let _ = writeln!(out, "# TYPE zos_build_live_catch_ups_total counter");
    let _ = writeln!(out, "zos_build_live_catch_ups_total {}", live.catch_ups());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_counts_and_counters() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let webhooks = WebhookCounter::default();
        webhooks.count(401);
        webhooks.count(401);
        webhooks.count(200);
        let statuses = StatusCounters::default();
        statuses.retried();
        let text = render(&history, &webhooks, &statuses, 42).await.unwrap();
        assert!(
            text.contains("zos_build_github_statuses_total{outcome=\"retried\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("zos_build_builds{status=\"success\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("zos_build_queue_length 0\n"), "{text}");
        assert!(text.contains("zos_build_log_lines_total 42\n"), "{text}");
        assert!(
            text.contains(
                "zos_build_webhook_requests_total{outcome=\"unauthorized\",status=\"401\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "zos_build_webhook_requests_total{outcome=\"accepted\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
    }
}
