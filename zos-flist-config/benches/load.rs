//! Times `Catalog::load` over a generated configuration repository of
//! 10,000 branch files, against reading the same files without parsing.
//!
//! Run: `cargo bench -p zos-flist-config --bench load` (release build).
//! Not a test: it prints figures, it asserts nothing about time. The
//! figures are recorded in `docs/benchmarks.md`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use zos_flist_config::Catalog;

const FILES: usize = 10_000;
const RUNS: usize = 9;

fn main() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = generate(dir.path()) {
        eprintln!("cannot generate branch files: {e}");
        std::process::exit(2);
    }

    // Warm the page cache, and check the load is what we think it is.
    let catalog = match Catalog::load(dir.path()) {
        Ok(catalog) => catalog,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(2);
        }
    };
    assert_eq!(catalog.reports().len(), FILES);
    assert_eq!(catalog.branches().count(), FILES - FILES / 100);
    let bytes = read_all(dir.path());

    let load = median(|| {
        let started = Instant::now();
        let catalog = Catalog::load(dir.path());
        let elapsed = started.elapsed();
        assert!(catalog.is_ok());
        elapsed
    });
    let read = median(|| {
        let started = Instant::now();
        let total = read_all(dir.path());
        let elapsed = started.elapsed();
        assert_eq!(total, bytes);
        elapsed
    });
    let cat = median(|| {
        let started = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg("find . -type f -print0 | xargs -0 cat > /dev/null")
            .current_dir(dir.path())
            .status();
        let elapsed = started.elapsed();
        assert!(status.is_ok_and(|s| s.success()));
        elapsed
    });

    println!("{FILES} branch files, {bytes} bytes, median of {RUNS} runs:");
    println!(
        "  Catalog::load                          {:>8.1} ms",
        ms(load)
    );
    println!(
        "  walk + read every file (std::fs)       {:>8.1} ms  (load is {:.1}x)",
        ms(read),
        ms(load) / ms(read)
    );
    println!(
        "  find | xargs cat >/dev/null            {:>8.1} ms  (load is {:.2}x)",
        ms(cat),
        ms(load) / ms(cat)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort_unstable();
    times[RUNS / 2]
}

/// 100 orgs × 10 repositories × 10 branches, shaped like real files: one or
/// two scripts, comments, a `tag:` without value, a nested branch name, and
/// one file in a hundred broken (a misspelt script name).
fn generate(root: &Path) -> std::io::Result<()> {
    for i in 0..FILES {
        let org = i / 100;
        let repo = (i / 10) % 10;
        let branch = i % 10;
        let name = if branch == 9 {
            format!("release/v{i}.yaml")
        } else {
            format!("branch-{i}.yaml")
        };
        let path = root.join(format!("org-{org}/repo-{repo}/{name}"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let listed = if i % 100 == 42 {
            "autobuid"
        } else {
            "autobuild"
        };
        let text = format!(
            "# branch file {i}\n\
             buildscripts:\n  - autobuild/flist.sh\n  - utils/release.sh\n\n\
             {listed}/flist.sh:\n  baseimage: ubuntu:18.04\n  archives: /tmp/archives\n  \
             artifact: repo-{repo}.tar.gz\n  tag:\n\n\
             utils/release.sh:\n  archives: /tmp/archives\n  artifact: release-{i}.tar.gz\n  \
             tag: release\n  format: binary\n"
        );
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// Walk the tree and read every file: the I/O that any loader must do.
fn read_all(dir: &Path) -> usize {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => total += read_all(&path),
            Ok(_) => total += std::fs::read(&path).map_or(0, |b| b.len()),
            Err(_) => {}
        }
    }
    total
}
