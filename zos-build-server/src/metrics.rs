//! `/metrics`: the figures an operator graphs, in Prometheus' text format.
//!
//! Build counts come from the history (so they survive restarts); the
//! webhook and log-line counters count since start-up, as Prometheus
//! counters do, and so do the histograms of the builds' phases
//! (`zos_build_phase_seconds`, one series per phase: where the time of a
//! build goes, across builds).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use zos_build_core::{History, HistoryError, Phase, PhaseTimings};

/// The upper bounds (seconds) of the buckets of `zos_build_phase_seconds`:
/// from 1 ms (a fetch of a small commit, an upload) to 1 h (a kernel run);
/// `+Inf` follows.
pub const PHASE_BUCKETS: [f64; 21] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// One histogram: counts per bucket (not cumulative), the count and the sum.
#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at most `PHASE_BUCKETS[i]` and above the bucket before;
    /// the last one is `+Inf`.
    buckets: [u64; PHASE_BUCKETS.len() + 1],
    count: u64,
    sum: f64,
}

/// The durations of the builds' phases since start-up, one histogram per
/// [`Phase`]; the scheduler observes each build's when it ends.
#[derive(Debug, Default)]
pub struct PhaseHistograms {
    by_phase: Mutex<BTreeMap<Phase, Histogram>>,
}

impl PhaseHistograms {
    /// Counts the phases of one build (those it ran).
    pub fn observe(&self, phases: &PhaseTimings) {
        let mut by_phase = self.by_phase.lock().unwrap_or_else(PoisonError::into_inner);
        for (phase, elapsed) in phases.iter() {
            let seconds = elapsed.as_secs_f64();
            let histogram = by_phase.entry(phase).or_default();
            let bucket = PHASE_BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(PHASE_BUCKETS.len());
            histogram.buckets[bucket] += 1;
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    /// Appends the histograms in Prometheus' text format: every phase,
    /// observed or not, with cumulative buckets.
    fn render(&self, out: &mut String) {
        let by_phase = self
            .by_phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let _ = writeln!(
            out,
            "# HELP zos_build_phase_seconds How long the phases of builds took since start-up (fetch, create, upload, run, extract, publish)."
        );
        let _ = writeln!(out, "# TYPE zos_build_phase_seconds histogram");
        for phase in Phase::ALL {
            let histogram = by_phase.get(&phase).cloned().unwrap_or_default();
            let mut cumulative = 0;
            for (bound, n) in PHASE_BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "zos_build_phase_seconds_bucket{{phase=\"{phase}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "zos_build_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "zos_build_phase_seconds_sum{{phase=\"{phase}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "zos_build_phase_seconds_count{{phase=\"{phase}\"}} {}",
                histogram.count
            );
        }
    }
}

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
    phases: Option<&PhaseHistograms>,
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
    phases
        .unwrap_or(&PhaseHistograms::default())
        .render(&mut out);
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
        let phases = PhaseHistograms::default();
        let mut build = PhaseTimings::new();
        build.add(Phase::Fetch, std::time::Duration::from_millis(20));
        build.add(Phase::Run, std::time::Duration::from_secs(2));
        phases.observe(&build);
        build.add(Phase::Fetch, std::time::Duration::from_secs(7200));
        phases.observe(&build);
        let text = render(&history, &webhooks, &statuses, 42, Some(&phases))
            .await
            .unwrap();
        for line in [
            "# TYPE zos_build_phase_seconds histogram\n",
            "zos_build_phase_seconds_bucket{phase=\"fetch\",le=\"0.01\"} 0\n",
            "zos_build_phase_seconds_bucket{phase=\"fetch\",le=\"0.025\"} 1\n",
            "zos_build_phase_seconds_bucket{phase=\"fetch\",le=\"3600\"} 1\n",
            "zos_build_phase_seconds_bucket{phase=\"fetch\",le=\"+Inf\"} 2\n",
            "zos_build_phase_seconds_count{phase=\"fetch\"} 2\n",
            "zos_build_phase_seconds_sum{phase=\"fetch\"} 7200.0",
            "zos_build_phase_seconds_bucket{phase=\"run\",le=\"1\"} 0\n",
            "zos_build_phase_seconds_bucket{phase=\"run\",le=\"2.5\"} 2\n",
            "zos_build_phase_seconds_count{phase=\"run\"} 2\n",
            "zos_build_phase_seconds_count{phase=\"publish\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
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
