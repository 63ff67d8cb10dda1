//! One test per rule of a branch file, with the exact text users see.

use super::*;

const FILE: &str = "org/repo/master.yaml";

fn check(text: &str) -> BranchFile {
    parse_branch_file(text, FILE)
}

/// Every problem as the linter prints it.
fn lines(parsed: &BranchFile) -> Vec<String> {
    parsed.problems.iter().map(ToString::to_string).collect()
}

/// The single problem of a file, as printed.
fn only(text: &str) -> String {
    let parsed = check(text);
    let lines = lines(&parsed);
    assert_eq!(lines.len(), 1, "expected one problem, got {lines:#?}");
    lines.into_iter().next().unwrap_or_default()
}

const VALID: &str = "\
# a comment
buildscripts:
  - autobuild/build.sh
  - tools/release.sh

autobuild/build.sh:
  archives: /tmp/archives
  artifact: result.tar.gz

tools/release.sh:
  baseimage: ubuntu:18.04
  archives: /tmp/archives
  artifact: release.tar.gz
  tag: special-tag
  format: binary
";

#[test]
fn valid_file_gives_builds_in_order_with_defaults() {
    let parsed = check(VALID);
    assert!(parsed.is_valid(), "{:#?}", parsed.problems);
    assert!(parsed.problems.is_empty());
    let mut first = BuildScript::new("autobuild/build.sh", "result.tar.gz");
    first.archives = "/tmp/archives".into();
    let mut second = BuildScript::new("tools/release.sh", "release.tar.gz");
    second.archives = "/tmp/archives".into();
    second.baseimage = "ubuntu:18.04".into();
    second.tag = Some("special-tag".into());
    second.format = Format::Binary;
    assert_eq!(parsed.builds, vec![first, second]);
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let parsed = check("buildscripts: [a.sh]\na.sh: {artifact: a.tar.gz}\n");
    assert_eq!(parsed.builds, vec![BuildScript::new("a.sh", "a.tar.gz")]);
    let build = &parsed.builds[0];
    assert_eq!(build.archives, "/target");
    assert_eq!(build.baseimage, "ubuntu:16.04");
    assert_eq!(build.format, Format::Flist);
    assert_eq!(build.tag, None);
}

#[test]
fn tag_without_value_means_no_tag() {
    let parsed = check("buildscripts: [a.sh]\na.sh:\n  artifact: a.tar.gz\n  tag:\n");
    assert!(parsed.is_valid(), "{:#?}", parsed.problems);
    assert_eq!(parsed.builds[0].tag, None);
}

#[test]
fn quoted_numbers_are_strings() {
    let parsed = check("buildscripts: ['1.sh']\n'1.sh':\n  artifact: '2'\n  tag: \"2018\"\n");
    assert!(parsed.is_valid(), "{:#?}", parsed.problems);
    assert_eq!(parsed.builds[0].tag.as_deref(), Some("2018"));
}

#[test]
fn crlf_and_bom_are_accepted() {
    let text = "\u{feff}buildscripts:\r\n  - a.sh\r\na.sh:\r\n  artifact: a.tar.gz\r\n";
    let parsed = check(text);
    assert!(parsed.is_valid(), "{:#?}", parsed.problems);
}

// ---- the file as a whole ----

#[test]
fn over_one_mib_is_rejected_unparsed() {
    let mut text = String::from("buildscripts: [a.sh]\na.sh: {artifact: a}\n");
    text.push_str(&"#".repeat(MAX_FILE_SIZE));
    assert_eq!(
        only(&text),
        format!(
            "{FILE}: error: file is {} bytes; a branch file may be at most 1048576 bytes (1 MiB)",
            text.len()
        )
    );
    let parsed = parse_branch_bytes(text.as_bytes(), FILE);
    assert!(!parsed.is_valid());
    // Exactly 1 MiB is still fine (as far as size goes).
    let exact = format!("# {}\n", "x".repeat(MAX_FILE_SIZE - 3));
    assert_eq!(exact.len(), MAX_FILE_SIZE);
    assert!(!lines(&check(&exact))[0].contains("bytes"));
}

#[test]
fn non_utf8_is_rejected_with_position() {
    let bytes = b"buildscripts:\n  - a\xffb.sh\n";
    let parsed = parse_branch_bytes(bytes, FILE);
    assert_eq!(
        lines(&parsed),
        vec![format!(
            "{FILE}:2:6: error: file is not valid UTF-8 (byte 0xff)"
        )]
    );
    assert!(parsed.builds.is_empty());
}

#[test]
fn syntax_error_has_line_and_column() {
    let text = "buildscripts:\n  - a.sh\na.sh:\n  artifact: a\n   archives: /x\n";
    assert_eq!(
        only(text),
        format!(
            "{FILE}:5:12: error: YAML syntax error: mapping values are not allowed in this context"
        )
    );
}

#[test]
fn unclosed_flow_is_a_syntax_error() {
    let line = only("buildscripts: [a.sh\n");
    assert!(line.starts_with(&format!("{FILE}:")), "{line}");
    assert!(line.contains(": error: YAML syntax error: "), "{line}");
}

#[test]
fn empty_file_is_an_error() {
    assert_eq!(
        only(""),
        format!("{FILE}: error: file is empty: expected a mapping with 'buildscripts'")
    );
    assert_eq!(
        only("# nothing but a comment\n"),
        format!("{FILE}: error: file is empty: expected a mapping with 'buildscripts'")
    );
}

#[test]
fn two_documents_are_an_error() {
    let line = only("buildscripts: [a.sh]\na.sh: {artifact: a}\n---\nx: 1\n");
    assert_eq!(
        line,
        format!("{FILE}:3:1: error: a branch file holds one YAML document; found a second one")
    );
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(
        only("- a.sh\n- b.sh\n"),
        format!(
            "{FILE}:1:1: error: the top level must be a mapping (with 'buildscripts' and \
             the settings of each script), found a sequence"
        )
    );
    assert!(only("just text\n").ends_with("found a string"));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("buildscripts: {}{}\n", "[".repeat(200), "]".repeat(200));
    let parsed = check(&text);
    assert!(!parsed.is_valid());
    assert_eq!(parsed.problems.len(), 1);

    let mut block = String::from("buildscripts: [a.sh]\na.sh:\n");
    for depth in 1..100 {
        block.push_str(&"  ".repeat(depth));
        block.push_str("k:\n");
    }
    assert_eq!(
        only(&block),
        format!("{FILE}:66:130: error: YAML nesting is deeper than 64 levels")
    );
}

#[test]
fn alias_bomb_is_an_error_not_a_hang() {
    let mut text = String::from(
        "buildscripts: [a.sh]\na.sh: {artifact: a}\nl0: &l0 [x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..30 {
        let p = format!("*l{}", level - 1);
        text.push_str(&format!(
            "l{level}: &l{level} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n"
        ));
    }
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(parse_branch_file(&text, FILE));
    });
    let parsed = result
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("an alias bomb must not hang the parser");
    let lines = lines(&parsed);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].ends_with("error: alias expansion exceeds 100000 nodes"),
        "{}",
        lines[0]
    );
}

#[test]
fn aliases_within_budget_work() {
    let text = "buildscripts: [a.sh, b.sh]\n\
                a.sh: &common\n  artifact: x.tar.gz\n  archives: /tmp/archives\n\
                b.sh: *common\n";
    let parsed = check(text);
    assert!(parsed.is_valid(), "{:#?}", parsed.problems);
    assert_eq!(parsed.builds[1].archives, "/tmp/archives");
}

#[test]
fn duplicate_keys_are_errors() {
    let text = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  artifact: b\n";
    assert_eq!(
        only(text),
        format!("{FILE}:4:3: error: duplicate key 'artifact' (first at line 3, column 3)")
    );
    let text = "buildscripts: [a.sh]\na.sh: {artifact: a}\nbuildscripts: [b.sh]\n";
    assert_eq!(
        only(text),
        format!("{FILE}:3:1: error: duplicate key 'buildscripts' (first at line 1, column 1)")
    );
}

// ---- buildscripts ----

#[test]
fn buildscripts_is_required() {
    let parsed = check("a.sh:\n  artifact: a\n");
    assert_eq!(
        lines(&parsed),
        vec![
            format!("{FILE}:1:1: error: missing required key 'buildscripts'"),
            format!(
                "{FILE}:1:1: warning: unknown top-level key 'a.sh' is ignored: it is neither \
                 'buildscripts' nor a listed script"
            ),
        ]
    );
}

#[test]
fn buildscripts_must_be_a_sequence() {
    assert_eq!(
        only("buildscripts: a.sh\n"),
        format!(
            "{FILE}:1:15: error: 'buildscripts' must be a sequence of script paths, found a string"
        )
    );
    assert_eq!(
        only("buildscripts:\n"),
        format!("{FILE}:1:1: error: 'buildscripts' must be a sequence of script paths, found null")
    );
    assert!(only("buildscripts: {a: b}\n").ends_with("found a mapping"));
}

#[test]
fn buildscripts_must_not_be_empty() {
    assert_eq!(
        only("buildscripts: []\n"),
        format!("{FILE}:1:15: error: 'buildscripts' is empty: list at least one script")
    );
}

#[test]
fn buildscripts_entries_must_be_non_empty_strings() {
    let text = "buildscripts:\n  - 42\n  - ''\n  - [x]\n  - a.sh\na.sh: {artifact: a}\n";
    assert_eq!(
        lines(&check(text)),
        vec![
            format!("{FILE}:2:5: error: 'buildscripts' entries must be non-empty strings, found an integer"),
            format!("{FILE}:3:5: error: 'buildscripts' entries must be non-empty strings, found an empty string"),
            format!("{FILE}:4:5: error: 'buildscripts' entries must be non-empty strings, found a sequence"),
        ]
    );
}

#[test]
fn buildscripts_must_not_repeat() {
    let text = "buildscripts:\n  - a.sh\n  - a.sh\na.sh: {artifact: a}\n";
    assert_eq!(
        only(text),
        format!("{FILE}:3:5: error: script 'a.sh' is listed twice in 'buildscripts' (first at line 2, column 5)")
    );
}

// ---- each listed script has settings ----

#[test]
fn listed_script_without_settings_names_the_script() {
    let text = "buildscripts:\n  - a.sh\n  - b.sh\na.sh: {artifact: a}\n";
    assert_eq!(
        only(text),
        format!(
            "{FILE}:3:5: error: script 'b.sh' is listed in 'buildscripts' but has no settings \
             (no top-level key 'b.sh')"
        )
    );
}

#[test]
fn misspelt_settings_get_a_suggestion() {
    let text = "\
buildscripts:
  - autobuild/x.sh

autobuid/x.sh:
  artifact: x.tar.gz
";
    let parsed = check(text);
    assert_eq!(
        lines(&parsed),
        vec![
            format!(
                "{FILE}:2:5: error: script 'autobuild/x.sh' is listed in 'buildscripts' but has \
                 no settings (no top-level key 'autobuild/x.sh'); did you mean 'autobuid/x.sh'?"
            ),
            format!(
                "{FILE}:4:1: warning: unknown top-level key 'autobuid/x.sh' is ignored: it is \
                 neither 'buildscripts' nor a listed script"
            ),
        ]
    );
    assert!(parsed.builds.is_empty());
}

#[test]
fn suggestion_only_within_three_edits_and_never_a_listed_script() {
    // 4 edits away: no suggestion.
    let text = "buildscripts: [abcd.sh]\nwxyz.sh: {artifact: a}\n";
    assert!(!lines(&check(text))[0].contains("did you mean"));
    // The nearest unlisted key is suggested, not the other listed script.
    let text = "buildscripts: [a1.sh, a2.sh]\na2.sh: {artifact: a}\na3.sh: {artifact: a}\n";
    assert!(lines(&check(text))[0].ends_with("did you mean 'a3.sh'?"));
}

#[test]
fn settings_must_be_a_mapping() {
    assert_eq!(
        only("buildscripts: [a.sh]\na.sh:\n"),
        format!("{FILE}:2:1: error: settings of script 'a.sh' must be a mapping, found null")
    );
    assert_eq!(
        only("buildscripts: [a.sh]\na.sh: [artifact]\n"),
        format!("{FILE}:2:7: error: settings of script 'a.sh' must be a mapping, found a sequence")
    );
}

// ---- artifact ----

#[test]
fn artifact_is_required() {
    assert_eq!(
        only("buildscripts: [a.sh]\na.sh:\n  archives: /tmp\n"),
        format!("{FILE}:2:1: error: script 'a.sh': missing required key 'artifact'")
    );
}

#[test]
fn artifact_must_be_a_non_empty_plain_file_name() {
    let base = "buildscripts: [a.sh]\na.sh:\n  artifact: ";
    assert_eq!(
        only(&format!("{base}42\n")),
        format!("{FILE}:3:13: error: script 'a.sh': 'artifact' must be a string, found an integer")
    );
    assert_eq!(
        only(&format!("{base}''\n")),
        format!("{FILE}:3:13: error: script 'a.sh': 'artifact' must not be empty")
    );
    assert_eq!(
        only(&format!("{base}out/a.tar.gz\n")),
        format!(
            "{FILE}:3:13: error: script 'a.sh': 'artifact' must be a plain file name without '/', \
             found 'out/a.tar.gz'"
        )
    );
    assert!(only(&format!("{base}..\n")).ends_with("'artifact' must be a file name, found '..'"));
    assert_eq!(
        only("buildscripts: [a.sh]\na.sh:\n  artifact:\n"),
        format!("{FILE}:3:3: error: script 'a.sh': 'artifact' must be a string, found null")
    );
}

// ---- archives ----

#[test]
fn archives_must_be_absolute() {
    let base = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  archives: ";
    assert_eq!(
        only(&format!("{base}tmp/archives\n")),
        format!("{FILE}:4:13: error: script 'a.sh': 'archives' must be an absolute path, found 'tmp/archives'")
    );
    assert_eq!(
        only(&format!("{base}[/tmp]\n")),
        format!("{FILE}:4:13: error: script 'a.sh': 'archives' must be a string, found a sequence")
    );
    assert_eq!(
        only(&format!("{base}\n")),
        format!(
            "{FILE}:4:3: error: script 'a.sh': 'archives' must be a string, found null \
             (leave the key out to use the default '/target')"
        )
    );
    let parsed = check(&format!("{base}/tmp/archives/\n"));
    assert_eq!(parsed.builds[0].archives, "/tmp/archives/");
}

// ---- baseimage ----

#[test]
fn baseimage_must_be_a_non_empty_string() {
    let base = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  baseimage: ";
    assert_eq!(
        only(&format!("{base}\"\"\n")),
        format!("{FILE}:4:14: error: script 'a.sh': 'baseimage' must not be empty")
    );
    assert_eq!(
        only(&format!("{base}16.04\n")),
        format!("{FILE}:4:14: error: script 'a.sh': 'baseimage' must be a string, found a number")
    );
    assert_eq!(
        check(&format!("{base}alpine\n")).builds[0].baseimage,
        "alpine"
    );
}

// ---- tag ----

#[test]
fn tag_must_be_a_simple_word() {
    let base = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  tag: ";
    assert_eq!(
        only(&format!("{base}my tag\n")),
        format!(
            "{FILE}:4:8: error: script 'a.sh': 'tag' must be letters, digits, '.', '_' or '-', \
             found 'my tag'"
        )
    );
    assert!(only(&format!("{base}a/b\n")).ends_with("found 'a/b'"));
    assert!(only(&format!("{base}''\n")).ends_with("found ''"));
    assert_eq!(
        only(&format!("{base}2018\n")),
        format!("{FILE}:4:8: error: script 'a.sh': 'tag' must be a string, found an integer")
    );
    assert_eq!(
        check(&format!("{base}v1.2_rc-3\n")).builds[0]
            .tag
            .as_deref(),
        Some("v1.2_rc-3")
    );
}

// ---- format ----

#[test]
fn format_is_flist_or_binary() {
    let base = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  format: ";
    assert_eq!(
        check(&format!("{base}flist\n")).builds[0].format,
        Format::Flist
    );
    assert_eq!(
        check(&format!("{base}binary\n")).builds[0].format,
        Format::Binary
    );
    assert_eq!(
        only(&format!("{base}tarball\n")),
        format!("{FILE}:4:11: error: script 'a.sh': 'format' must be 'flist' or 'binary', found 'tarball'")
    );
    assert_eq!(
        only(&format!("{base}true\n")),
        format!("{FILE}:4:11: error: script 'a.sh': 'format' must be a string, found a boolean")
    );
}

// ---- warnings ----

#[test]
fn stray_top_level_key_is_a_warning() {
    let text = "buildscripts: [a.sh]\ntag: release\na.sh: {artifact: a}\n";
    let parsed = check(text);
    assert!(parsed.is_valid());
    assert_eq!(parsed.builds.len(), 1);
    assert_eq!(
        lines(&parsed),
        vec![format!(
            "{FILE}:2:1: warning: unknown top-level key 'tag' is ignored: it is neither \
             'buildscripts' nor a listed script"
        )]
    );
}

#[test]
fn forgotten_script_is_a_warning() {
    let text = "buildscripts: [a.sh]\na.sh: {artifact: a}\nb.sh: {artifact: b}\n";
    let parsed = check(text);
    assert!(parsed.is_valid());
    assert_eq!(parsed.warnings().count(), 1);
    assert!(lines(&parsed)[0].contains("unknown top-level key 'b.sh'"));
}

#[test]
fn old_keys_in_settings_are_warnings() {
    let text = "\
buildscripts:
 - jumpscale.sh

jumpscale.sh:
  archives: /tmp/archives
  artifact: jumpscale-sandbox.tar.gz
  dependencies:
  - jumpscale/core9
  kernel: yes
  target: /x
";
    let parsed = check(text);
    assert!(parsed.is_valid());
    assert_eq!(parsed.builds.len(), 1);
    assert_eq!(
        lines(&parsed),
        vec![
            format!(
                "{FILE}:7:3: warning: script 'jumpscale.sh': unknown key 'dependencies' is ignored"
            ),
            format!("{FILE}:9:3: warning: script 'jumpscale.sh': unknown key 'kernel' is ignored"),
            format!("{FILE}:10:3: warning: script 'jumpscale.sh': unknown key 'target' is ignored"),
        ]
    );
}

#[test]
fn misspelt_setting_key_gets_a_suggestion() {
    let text = "buildscripts: [a.sh]\na.sh:\n  artifact: a\n  baseimg: alpine\n";
    assert_eq!(
        only(text),
        format!("{FILE}:4:3: warning: script 'a.sh': unknown key 'baseimg' is ignored; did you mean 'baseimage'?")
    );
}

#[test]
fn scripts_publishing_the_same_name_get_a_warning() {
    // a.sh and c.sh have no tag, b.sh and d.sh the same one; e.sh is alone.
    let text = "\
buildscripts: [a.sh, b.sh, c.sh, d.sh, e.sh]
a.sh: {artifact: a.tar.gz}
b.sh: {artifact: b.tar.gz, tag: release}
c.sh: {artifact: c, format: binary, tag: ~}
d.sh: {artifact: d.tar.gz, tag: release}
e.sh: {artifact: e.tar.gz, tag: Release}
";
    let parsed = check(text);
    assert!(parsed.is_valid(), "a warning only");
    assert_eq!(parsed.builds.len(), 5);
    assert_eq!(
        lines(&parsed),
        vec![
            format!(
                "{FILE}:4:1: warning: scripts 'a.sh' and 'c.sh' publish the same artifact \
                 name; give one a 'tag'"
            ),
            format!(
                "{FILE}:5:1: warning: scripts 'b.sh' and 'd.sh' publish the same artifact \
                 name (both have tag 'release'); give one a different 'tag'"
            ),
        ]
    );
}

#[test]
fn shared_settings_through_an_alias_collide_too() {
    let text = "buildscripts: [a.sh, b.sh]\na.sh: &s {artifact: x}\nb.sh: *s\n";
    assert_eq!(
        only(text),
        format!(
            "{FILE}:3:1: warning: scripts 'a.sh' and 'b.sh' publish the same artifact name; \
             give one a 'tag'"
        )
    );
}

// ---- all problems, not only the first ----

#[test]
fn every_problem_of_a_file_is_reported_in_order() {
    let text = "\
buildscripts:
  - a.sh
  - b.sh
  - c.sh
stray: 1
a.sh:
  archives: relative
b.sh:
  artifact: x/y
  format: zip
c.sh:
  artifact: c
  extra: 1
";
    let parsed = check(text);
    assert!(!parsed.is_valid());
    assert!(parsed.builds.is_empty(), "a rejected file has no builds");
    assert_eq!(
        lines(&parsed),
        vec![
            format!("{FILE}:5:1: warning: unknown top-level key 'stray' is ignored: it is neither 'buildscripts' nor a listed script"),
            format!("{FILE}:6:1: error: script 'a.sh': missing required key 'artifact'"),
            format!("{FILE}:7:13: error: script 'a.sh': 'archives' must be an absolute path, found 'relative'"),
            format!("{FILE}:9:13: error: script 'b.sh': 'artifact' must be a plain file name without '/', found 'x/y'"),
            format!("{FILE}:10:11: error: script 'b.sh': 'format' must be 'flist' or 'binary', found 'zip'"),
            format!("{FILE}:13:3: warning: script 'c.sh': unknown key 'extra' is ignored"),
        ]
    );
    assert_eq!(parsed.errors().count(), 4);
    assert_eq!(parsed.warnings().count(), 2);
}

#[test]
fn garbage_never_panics() {
    // A handful of hostile or odd inputs: each must give a verdict, not a panic.
    let inputs = [
        "?",
        ":",
        "- - - -",
        "{",
        "}",
        "]",
        "&a",
        "*a",
        "!!binary x",
        "%YAML 1.2\n---\na: 1",
        "? [a, b]\n: c\n",
        "buildscripts: [a.sh]\n? a.sh\n: {artifact: a}\n",
        "\t",
        "'",
        "\"\\u00",
        "buildscripts: &a [*a]",
        "a: |\n  x\n b",
        "--- !!map\n? a\n",
        "...",
        "buildscripts: [a.sh]\na.sh: {artifact: a, ? [x]: y}\n",
        "\u{0}",
        "a: b: c",
    ];
    for input in inputs {
        let parsed = check(input);
        assert!(
            parsed.is_valid() || parsed.errors().count() > 0,
            "{input:?} gave no verdict"
        );
    }
}
