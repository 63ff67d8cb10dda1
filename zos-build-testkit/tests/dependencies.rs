//! Every dependency of the workspace is explained in docs/architecture.md,
//! section "Dependencies": a new one cannot come without its reason.

use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys of the `[workspace.dependencies]` table of a Cargo.toml.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[workspace.dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .collect()
}

/// The text of the `## <title>` section of a Markdown document.
fn section<'a>(markdown: &'a str, title: &str) -> Option<&'a str> {
    let heading = format!("\n## {title}\n");
    let start = markdown.find(&heading)? + heading.len();
    let rest = &markdown[start..];
    Some(rest.find("\n## ").map_or(rest, |end| &rest[..end]))
}

#[test]
fn every_workspace_dependency_says_why_in_the_architecture_doc() {
    let dependencies = workspace_dependencies(&read("Cargo.toml"));
    assert!(
        dependencies.len() > 20 && dependencies.iter().any(|d| d == "tokio"),
        "the [workspace.dependencies] table was not read: {dependencies:?}"
    );
    let doc = read("docs/architecture.md");
    let section = section(&doc, "Dependencies")
        .expect("docs/architecture.md has a \"## Dependencies\" section");
    let missing: Vec<_> = dependencies
        .iter()
        .filter(|name| !section.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "add a line saying why to \"## Dependencies\" in docs/architecture.md for: {missing:?}"
    );
}

#[test]
fn the_helpers_read_what_they_claim() {
    let manifest = "[workspace]\nmembers = []\n\n[workspace.dependencies]\n# a comment\na = \"1\"\nb-c = { version = \"2\" }\n\n[workspace.lints.rust]\nx = \"warn\"\n";
    assert_eq!(workspace_dependencies(manifest), ["a", "b-c"]);
    let doc = "# T\n\n## One\n1\n## Two\n2\n";
    assert_eq!(section(doc, "One"), Some("1"));
    assert_eq!(section(doc, "Two"), Some("2\n"));
    assert_eq!(section(doc, "Three"), None);
}
