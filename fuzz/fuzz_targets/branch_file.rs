//! The branch-file parser on arbitrary bytes: `parse_branch_bytes` (and, for
//! UTF-8 input, `parse_branch_file`) must give a verdict, never panic, stay
//! within its time and memory bounds (run with `-rss_limit_mb`), and keep
//! the promises its callers rely on.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use zos_flist_config::{parse_branch_bytes, parse_branch_file, BranchFile, Problem};

const FILE: &str = "acme/widget/master.yaml";

fuzz_target!(|data: &[u8]| {
    let parsed = parse_branch_bytes(data, FILE);
    check(&parsed, data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            parse_branch_file(text, FILE),
            parsed,
            "bytes and text agree"
        );
    }
    assert_eq!(parse_branch_bytes(data, FILE), parsed, "deterministic");
});

fn check(parsed: &BranchFile, data: &[u8]) {
    assert_eq!(parsed.file, FILE);
    // YAML breaks lines at `\n`, `\r` and `\r\n`.
    let lines = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 1;
    for problem in &parsed.problems {
        check_problem(problem, lines);
    }
    let order: Vec<_> = parsed
        .problems
        .iter()
        .map(|p| (p.line.is_some(), p.line, p.column))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "problems in file order"
    );
    assert_eq!(parsed.is_valid(), parsed.errors().next().is_none());

    if !parsed.is_valid() {
        assert!(parsed.builds.is_empty(), "a rejected file builds nothing");
        return;
    }
    // A valid file lists at least one script, and every listed script has
    // checked settings.
    assert!(!parsed.builds.is_empty(), "a valid file builds something");
    let mut scripts = HashSet::new();
    for build in &parsed.builds {
        assert!(!build.script.is_empty());
        assert!(scripts.insert(build.script.as_str()), "scripts are unique");
        assert!(!build.artifact.is_empty() && !build.artifact.contains('/'));
        assert!(build.artifact != "." && build.artifact != "..");
        assert!(build.archives.starts_with('/'));
        assert!(!build.baseimage.is_empty());
        if let Some(tag) = &build.tag {
            assert!(!tag.is_empty());
            assert!(tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
        }
    }
    // One collision warning per script whose tag an earlier script has.
    let tags: HashSet<Option<&str>> = parsed.builds.iter().map(|b| b.tag.as_deref()).collect();
    let collisions = parsed
        .warnings()
        .filter(|w| {
            w.message.starts_with("scripts '")
                && w.message.contains("' publish the same artifact name")
        })
        .count();
    assert_eq!(collisions, parsed.builds.len() - tags.len());
}

fn check_problem(problem: &Problem, lines: usize) {
    assert_eq!(problem.file, FILE);
    assert!(!problem.message.is_empty());
    assert_eq!(problem.line.is_some(), problem.column.is_some());
    if let (Some(line), Some(column)) = (problem.line, problem.column) {
        assert!(line >= 1 && column >= 1, "{problem}");
        assert!(line <= lines, "{problem}: the file has {lines} lines");
    }
}
