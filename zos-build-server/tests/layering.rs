//! The server's modules import one way:
//! `http → state → {scheduler, reloader} → {live, catalog, config}`,
//! with `views` (the JSON shapes) used by `http` only, and the crate root
//! (`lib.rs`) as the one place that wires `server` to `http`. Plain reading
//! of the source files: a new import against the rule fails here.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(path relative to src/, text without comment lines)` of every source file.
fn files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code: Vec<&str> = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect();
            let relative = path.strip_prefix(&src).unwrap().display().to_string();
            (relative, code.join("\n"))
        })
        .collect()
}

fn uses(code: &str, module: &str) -> bool {
    code.contains(&format!("crate::{module}"))
        || code.contains(&format!("use {module}::"))
        || code.contains(&format!("super::{module}"))
}

#[test]
fn nothing_outside_http_imports_http() {
    let files = files();
    assert!(files.len() > 10, "the sources were found: {files:?}");
    for (path, code) in &files {
        if path.starts_with("http/") || path == "lib.rs" || path == "main.rs" {
            continue;
        }
        assert!(!uses(code, "http"), "{path} imports crate::http");
    }
}

#[test]
fn views_are_used_by_http_only() {
    for (path, code) in &files() {
        if path.starts_with("http/") || path == "lib.rs" || path == "views.rs" {
            continue;
        }
        assert!(!uses(code, "views"), "{path} imports crate::views");
    }
}

#[test]
fn the_scheduler_and_the_reloader_sit_below_the_state() {
    for (path, code) in &files() {
        let below = [
            "scheduler.rs",
            "reloader.rs",
            "kernel.rs",
            "github/mod.rs",
            "github/client.rs",
            "github/statuses.rs",
            "github/hooks.rs",
            "live.rs",
            "catalog.rs",
            "config.rs",
        ];
        if below.contains(&path.as_str()) {
            assert!(!uses(code, "state"), "{path} imports crate::state");
            assert!(!uses(code, "server"), "{path} imports crate::server");
        }
    }
}
