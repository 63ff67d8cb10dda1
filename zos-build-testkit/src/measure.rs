//! What the benchmarks read about the machine and the processes they
//! measure: the load average, a process's memory and CPU time from
//! `/proc`, medians, the `docker run` they compare with, and the processes
//! they start (stopped on every way out). Every benchmark prints these the
//! same way, so their figures compare.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process the benchmark started: stopped with SIGTERM when dropped (a
/// panic too), and killed if it has not exited 30 s later.
#[derive(Debug)]
pub struct StopOnDrop(pub Child);

impl StopOnDrop {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "process {} did not stop within 30 s of SIGTERM: killing it",
            self.pid()
        );
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long `docker run --rm <args>` takes, its output thrown away: the
/// reference the benchmarks compare with. Fails unless it succeeds within
/// `limit`.
pub async fn docker_run(args: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut child = tokio::process::Command::new("docker")
        .args(["run", "--rm"])
        .args(args)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("docker run");
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .expect("docker run finished in time")
        .expect("docker run");
    assert!(status.success(), "docker run {args:?} failed: {status}");
    start.elapsed()
}

/// The three load averages, as `/proc/loadavg` gives them ("0.52 1.10 1.40").
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A field of `/proc/<pid>/status` in KiB (`"VmRSS:"`, `"VmHWM:"`), or a
/// count (`"Threads:"`); 0 when the process or the field is gone.
pub fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// User plus system CPU time of a process so far (`/proc/<pid>/stat`,
/// fields 14 and 15, in ticks of 1/100 s on Linux).
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: count the fields after its ')'.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The median of `samples` (the upper one of an even count).
///
/// # Panics
/// When `samples` is empty: a benchmark that measured nothing is a bug.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Seconds with three decimals ("0.367s").
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_from_proc() {
        let me = std::process::id();
        assert!(status_field(me, "VmRSS:") > 0);
        assert!(status_field(me, "Threads:") >= 1);
        assert_eq!(status_field(u32::MAX, "VmRSS:"), 0);
        assert_eq!(load_average().split(' ').count(), 3);
        let spin = std::time::Instant::now();
        while cpu_of(me) < Duration::from_millis(20) && spin.elapsed() < Duration::from_secs(5) {}
        assert!(cpu_of(me) >= Duration::from_millis(20));
        assert_eq!(
            median(vec![
                Duration::from_secs(3),
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]),
            Duration::from_secs(2)
        );
        assert_eq!(secs(Duration::from_millis(367)), "0.367s");
        assert_eq!(mib(1536), "1.5 MiB");
    }
}
