//! A real headless Chromium for the monitor page's tests and benchmark:
//! Debian's `chromium`, driven over WebDriver by `chromedriver` (started on
//! a free loopback port), with the flags that keep it off the network, a
//! fresh profile, and nothing left running afterwards.
//!
//! chromedriver and every browser it starts run in a process group of
//! their own; [`Driver::stop`] checks that they all quit, and dropping a
//! [`Driver`] that was not stopped (a test that failed) kills the group and
//! the crash handlers that left it.

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest chromedriver is waited for.
const START: Duration = Duration::from_secs(30);

/// Polls `probe` every 100 ms until it gives a value; fails after `limit`
/// with `what` and the last thing `probe` saw.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < limit,
            "{what}: not after {limit:?}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free loopback port (free when asked; chromedriver binds it just after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pids of the live processes (zombies are gone already, waiting only to
/// be reaped) that are in process group `group`, or whose command line
/// names `dir`: Chromium's crash handlers leave the group (a session of
/// their own) but keep their database under `dir`.
pub fn processes_of(group: u32, dir: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let dir = dir.as_os_str().as_encoded_bytes();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parens.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let in_group = fields.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(group);
        let names_dir = std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|line| line.windows(dir.len()).any(|w| w == dir));
        if in_group || names_dir {
            found.push(pid);
        }
    }
    found
}

/// chromedriver and every browser it starts, in a process group of their
/// own with a fresh profile directory. Dropped (a failing test too), the
/// whole group is killed.
pub struct Driver {
    /// chromedriver, the leader of the group; `None` once reaped.
    child: Option<Child>,
    port: u16,
    /// The profile (`--user-data-dir`) and chromedriver's output.
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and waits until it is ready.
    pub async fn start() -> Driver {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: these browser tests need Debian's {package}; \
                 run scripts/test.sh, which installs chromium and chromium-driver"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("profile")).unwrap();
        let output = std::fs::File::create(dir.path().join("chromedriver.out")).unwrap();
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            // Chromium's configuration and cache (its crash database among
            // them) under `dir` too, not in the user's home.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            // Its own group: the browser processes it starts are in it too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} (run scripts/test.sh): {e}"));
        let driver = Driver {
            child: Some(child),
            port,
            dir,
        };
        let status = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        until(START, "chromedriver answers /status", || async {
            let answer = http.get(&status).send().await.map_err(|e| e.to_string())?;
            let body: Value = answer.json().await.map_err(|e| e.to_string())?;
            if body["value"]["ready"] == true {
                Ok(())
            } else {
                Err(format!("{body}\n{}", driver.output()))
            }
        })
        .await;
        driver
    }

    /// What chromedriver printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.out")).unwrap_or_default()
    }

    /// Starts a headless Chromium with the flags that keep it off the
    /// network (and `extra` flags), and a session on it.
    pub async fn session(&self, extra: &[&str]) -> Client {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--no-first-run".to_string(),
            // performance.memory exact and current (not rounded, not cached).
            "--enable-precise-memory-info".to_string(),
            format!(
                "--user-data-dir={}",
                self.dir.path().join("profile").display()
            ),
            "--window-size=1280,1000".to_string(),
        ]
        .into_iter()
        .chain(extra.iter().map(|flag| flag.to_string()))
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        // A dialog that opens stays open, so that a test can see it.
        capabilities.insert("unhandledPromptBehavior".to_string(), json!("ignore"));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session (is {CHROMIUM} working? scripts/test.sh installs it): \
                     {e}\n{}",
                    self.output()
                )
            })
    }

    /// Ends the session, checks that Chromium quit (nothing but chromedriver
    /// left), then stops chromedriver and checks that nothing is left.
    pub async fn stop(mut self, client: Client) {
        let group = self.child.as_ref().expect("chromedriver runs").id();
        let dir = self.dir.path().to_path_buf();
        let running = processes_of(group, &dir);
        assert!(
            running.len() > 1,
            "Chromium runs under chromedriver: {running:?}"
        );
        client
            .close()
            .await
            .unwrap_or_else(|e| panic!("closing the WebDriver session failed: {e}"));
        until(Duration::from_secs(10), "Chromium quits", || async {
            let left = processes_of(group, &dir);
            if left == [group] {
                Ok(())
            } else {
                Err(format!("processes {left:?} besides chromedriver {group}"))
            }
        })
        .await;
        let mut child = self.child.take().expect("chromedriver runs");
        child.kill().unwrap();
        child.wait().unwrap();
        until(Duration::from_secs(10), "chromedriver stopped", || async {
            let left = processes_of(group, &dir);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("processes {left:?}"))
            }
        })
        .await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Not stopped (a test failed): the group by its id, while
        // chromedriver is not reaped yet (so the id cannot be reused), and
        // the crash handlers that left it, by theirs.
        if let Some(mut child) = self.child.take() {
            let group = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
            for pid in processes_of(group, self.dir.path()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
