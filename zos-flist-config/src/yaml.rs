//! A small YAML tree that remembers where each node came from.
//!
//! `serde_yaml` and friends hand back values without positions, but every
//! problem we report must point at a line and a column. So we drive the
//! event-based parser of `yaml-rust2` ourselves and build a tree of
//! [`Node`]s, each carrying its [`Mark`].
//!
//! Building is iterative (an explicit stack, never recursion) and bounded,
//! because the input comes from whoever can push to the configuration
//! repository:
//! - nesting deeper than [`MAX_DEPTH`] stops the parse (no stack or memory
//!   blow-up from `[[[[…`);
//! - anchors and aliases are expanded by copying, and the copies are
//!   budgeted twice ("billion laughs" stops early): in nodes, at most
//!   [`MAX_COPIED_NODES`] in all, which bounds the tree's structure; and in
//!   bytes of text (scalars and keys), at most [`expansion_budget`] of the
//!   file's size: [`EXPANSION_FACTOR`] × its size, and never less than
//!   [`MIN_EXPANSION_BUDGET`] so that a small file may still share a few
//!   settings. Counting nodes alone let 99,000 aliases of one 500,000-byte
//!   string (an 896 KB file) ask for 50 GB; counting bytes stops it at the
//!   alias that crosses the line. Every node knows the node count and the
//!   text bytes of its subtree, so an alias is priced before anything is
//!   copied, and a refused alias copies nothing. Remembering an anchored
//!   node is a copy too and is charged alike (nested anchors would
//!   otherwise copy one subtree once per level);
//! - a file holds one document.
//!
//! Scalars are typed with the YAML 1.2 core schema (`null`, `~` and the empty
//! value are null; `true`/`false`, integers and floats are what they look
//! like; everything else, and everything quoted or tagged `!!str`, is a
//! string), so that a number where a string is expected can be reported.
//!
//! Duplicate keys in a mapping are reported (the first one is kept) rather
//! than silently letting one win, as most YAML loaders do.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted in one file.
pub const MAX_DEPTH: usize = 64;

/// How many nodes anchors and aliases may copy, in all, in one file.
pub const MAX_COPIED_NODES: usize = 100_000;

/// How many bytes of text anchors and aliases may copy, in all, per byte of
/// the file (see [`expansion_budget`]).
pub const EXPANSION_FACTOR: usize = 16;

/// The least byte budget of any file (1 MiB): a file of a few lines may still
/// copy its shared settings a few times.
pub const MIN_EXPANSION_BUDGET: usize = 1024 * 1024;

/// How many bytes of text (scalars and keys) anchors and aliases may copy, in
/// all, in a file of `file_size` bytes: [`EXPANSION_FACTOR`] × `file_size`,
/// and at least [`MIN_EXPANSION_BUDGET`].
pub fn expansion_budget(file_size: usize) -> usize {
    file_size
        .saturating_mul(EXPANSION_FACTOR)
        .max(MIN_EXPANSION_BUDGET)
}

/// A position in the source text, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub line: usize,
    pub column: usize,
    /// Offset in characters, used only to order marks.
    index: usize,
}

impl Mark {
    fn from_marker(marker: &Marker) -> Mark {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Mark {
            line: marker.line(),
            column: marker.col() + 1,
            index: marker.index(),
        }
    }

    /// `(line, column)`, as [`Problem::new`](crate::Problem::new) takes it.
    pub fn position(self) -> (usize, usize) {
        (self.line, self.column)
    }

    /// The position just past the last character of `text`. yaml-rust2
    /// reads a text that does not end with a line break as if it did, so
    /// an error at the end of `[a` would point at line 2 of a one-line file;
    /// [`Mark::within`] brings such marks back to this one.
    fn end_of(text: &str) -> Mark {
        let (mut line, mut column, mut index) = (1, 1, 0);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            index += 1;
            // A break is `\n`, `\r` or `\r\n`, as yaml-rust2 counts them.
            if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                line += 1;
                column = 1;
            } else if c != '\r' {
                column += 1;
            }
        }
        Mark {
            line,
            column,
            index,
        }
    }

    /// This mark, or `end` if this one lies past it.
    fn within(self, end: Mark) -> Mark {
        if (self.line, self.column) > (end.line, end.column) {
            end
        } else {
            self
        }
    }
}

/// The type of a scalar under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar { text: String, kind: ScalarKind },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub mark: Mark,
    /// Number of nodes in this subtree, itself included: the price of copying it.
    size: usize,
    /// Bytes of text (scalars and keys) in this subtree: the other price.
    bytes: usize,
}

impl Node {
    /// What this node is, with an article, for messages: "a string", "null"…
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Scalar { kind, .. } => match kind {
                ScalarKind::Null => "null",
                ScalarKind::Bool => "a boolean",
                ScalarKind::Int => "an integer",
                ScalarKind::Float => "a number",
                ScalarKind::Str => "a string",
            },
            Value::Sequence(_) => "a sequence",
            Value::Mapping(_) => "a mapping",
        }
    }

    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar {
                text,
                kind: ScalarKind::Str,
            } => Some(text),
            _ => None,
        }
    }

    /// The text of any scalar (used for mapping keys, where `1:` still names
    /// something).
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                kind: ScalarKind::Null,
                ..
            }
        )
    }
}

/// Why a text could not be turned into a tree: one fatal problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fatal {
    pub mark: Option<Mark>,
    pub message: String,
}

/// A problem found while building that does not stop the build (duplicate keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub mark: Mark,
    pub message: String,
}

/// The result of reading one YAML text.
#[derive(Debug)]
pub(crate) struct Document {
    /// The root node; `None` for a text with no document (empty, or comments only).
    pub root: Option<Node>,
    pub issues: Vec<Issue>,
}

/// A collection being filled, waiting for its end event.
enum Open {
    Sequence {
        items: Vec<Node>,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Scalar keys seen so far, with where they were first seen.
        seen: HashMap<String, Mark>,
        /// The entry being skipped because its key is a duplicate.
        skipping: bool,
    },
}

struct Frame {
    open: Open,
    mark: Mark,
    anchor: usize,
    size: usize,
    bytes: usize,
}

/// Parse `text` into a tree, within the bounds above.
pub(crate) fn parse(text: &str) -> Result<Document, Fatal> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        copied: Copied {
            nodes: 0,
            bytes: 0,
            file_size: text.len(),
            max_bytes: expansion_budget(text.len()),
        },
        issues: Vec::new(),
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    let end = Mark::end_of(text);
    let mut documents = 0usize;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| Fatal {
            mark: Some(Mark::from_marker(e.marker()).within(end)),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let mark = Mark::from_marker(&marker).within(end);
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(Fatal {
                        mark: Some(mark),
                        message: "a branch file holds one YAML document; found a second one"
                            .to_string(),
                    });
                }
            }
            Event::Alias(id) => {
                let node = builder.alias(id, mark)?;
                builder.complete(node, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let kind = scalar_kind(&text, style, tag.as_ref());
                let node = Node {
                    bytes: text.len(),
                    value: Value::Scalar { text, kind },
                    mark,
                    size: 1,
                };
                builder.complete(node, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Open::Sequence { items: Vec::new() }, mark, anchor)?
            }
            Event::MappingStart(anchor, _) => builder.open(
                Open::Mapping {
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                    skipping: false,
                },
                mark,
                anchor,
            )?,
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
        }
    }
    Ok(Document {
        root: builder.root,
        issues: builder.issues,
    })
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    copied: Copied,
    issues: Vec<Issue>,
    root: Option<Node>,
}

impl Builder {
    fn open(&mut self, open: Open, mark: Mark, anchor: usize) -> Result<(), Fatal> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Fatal {
                mark: Some(mark),
                message: format!("YAML nesting is deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push(Frame {
            open,
            mark,
            anchor,
            size: 1,
            bytes: 0,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), Fatal> {
        let Some(frame) = self.stack.pop() else {
            return Err(Fatal {
                mark: None,
                message: "YAML parser reported the end of a collection that was never opened"
                    .to_string(),
            });
        };
        let value = match frame.open {
            Open::Sequence { items } => Value::Sequence(items),
            Open::Mapping { entries, .. } => Value::Mapping(entries),
        };
        let mark = match &value {
            // A block mapping's start event is marked after its first key;
            // point at whichever comes first.
            Value::Mapping(entries) => match entries.first() {
                Some((key, _)) if key.mark.index < frame.mark.index => key.mark,
                _ => frame.mark,
            },
            _ => frame.mark,
        };
        let node = Node {
            value,
            mark,
            size: frame.size,
            bytes: frame.bytes,
        };
        self.complete(node, frame.anchor)
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<Node, Fatal> {
        let Some(target) = self.anchors.get(&id) else {
            // The parser rejects unknown anchors; an anchor we do not have yet
            // is one still open: the alias points inside its own anchor.
            return Err(Fatal {
                mark: Some(mark),
                message: "YAML alias refers to a node that contains it".to_string(),
            });
        };
        // Priced from the sizes the target already knows: a refused alias
        // copies nothing.
        self.copied.charge(target, mark)?;
        let mut node = target.clone();
        node.mark = mark;
        Ok(node)
    }

    /// A node is complete: remember it under its anchor, then hand it to its parent.
    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), Fatal> {
        if anchor != 0 {
            // Remembering the anchor is a copy too (nested anchors would
            // otherwise copy one subtree once per level).
            self.copied.charge(&node, node.mark)?;
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(node.size);
        parent.bytes = parent.bytes.saturating_add(node.bytes);
        match &mut parent.open {
            Open::Sequence { items } => items.push(node),
            Open::Mapping {
                entries,
                key,
                seen,
                skipping,
            } => match key.take() {
                None => {
                    *skipping = false;
                    if let Some(text) = node.scalar_text() {
                        if let Some(first) = seen.get(text) {
                            self.issues.push(Issue {
                                mark: node.mark,
                                message: format!(
                                    "duplicate key '{text}' (first at line {}, column {})",
                                    first.line, first.column
                                ),
                            });
                            *skipping = true;
                        } else {
                            seen.insert(text.to_string(), node.mark);
                        }
                    }
                    *key = Some(node);
                }
                Some(k) => {
                    if !*skipping {
                        entries.push((k, node));
                    }
                    *skipping = false;
                }
            },
        }
        Ok(())
    }
}

/// What anchors and aliases have copied so far in one file, against its budget.
struct Copied {
    nodes: usize,
    bytes: usize,
    /// The size of the file, in bytes, for the message.
    file_size: usize,
    /// [`expansion_budget`] of the file.
    max_bytes: usize,
}

impl Copied {
    /// Account for copying `node` (at `mark`); refuse before the copy is made
    /// when it would pass either budget.
    fn charge(&mut self, node: &Node, mark: Mark) -> Result<(), Fatal> {
        let nodes = self.nodes.saturating_add(node.size);
        let bytes = self.bytes.saturating_add(node.bytes);
        let message = if bytes > self.max_bytes {
            let limit = self.max_bytes;
            if limit > MIN_EXPANSION_BUDGET {
                format!(
                    "alias expansion exceeds {limit} bytes ({EXPANSION_FACTOR} × the file's \
                     size of {} bytes): anchors and aliases copy too much text",
                    self.file_size
                )
            } else {
                format!(
                    "alias expansion exceeds {limit} bytes (1 MiB, the limit for files of \
                     up to {} bytes): anchors and aliases copy too much text",
                    MIN_EXPANSION_BUDGET / EXPANSION_FACTOR
                )
            }
        } else if nodes > MAX_COPIED_NODES {
            format!("alias expansion exceeds {MAX_COPIED_NODES} nodes")
        } else {
            self.nodes = nodes;
            self.bytes = bytes;
            return Ok(());
        };
        Err(Fatal {
            mark: Some(mark),
            message,
        })
    }
}

/// Type a scalar under the YAML 1.2 core schema.
fn scalar_kind(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> ScalarKind {
    if let Some(tag) = tag {
        if tag.handle == "tag:yaml.org,2002:" && tag.suffix == "str" {
            return ScalarKind::Str;
        }
    }
    if style != TScalarStyle::Plain {
        return ScalarKind::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => ScalarKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => ScalarKind::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => ScalarKind::Float,
        _ if is_int(text) => ScalarKind::Int,
        _ if is_float(text) => ScalarKind::Float,
        _ => ScalarKind::Str,
    }
}

fn is_int(text: &str) -> bool {
    let all = |s: &str, f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
    if let Some(octal) = text.strip_prefix("0o") {
        return all(octal, |c| c.is_digit(8));
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return all(hex, |c| c.is_ascii_hexdigit());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    all(digits, |c| c.is_ascii_digit())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let text = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).expect("parses").root.expect("has a document")
    }

    fn kind(text: &str) -> ScalarKind {
        match root(text).value {
            Value::Scalar { kind, .. } => kind,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn core_schema_types() {
        assert_eq!(kind("~"), ScalarKind::Null);
        assert_eq!(kind("null"), ScalarKind::Null);
        assert_eq!(kind("true"), ScalarKind::Bool);
        assert_eq!(kind("123"), ScalarKind::Int);
        assert_eq!(kind("-0x1f"), ScalarKind::Str, "sign only on decimal");
        assert_eq!(kind("0x1f"), ScalarKind::Int);
        assert_eq!(kind("0o17"), ScalarKind::Int);
        assert_eq!(kind("1.5"), ScalarKind::Float);
        assert_eq!(kind("1e3"), ScalarKind::Float);
        assert_eq!(kind(".5"), ScalarKind::Float);
        assert_eq!(kind("-.inf"), ScalarKind::Float);
        assert_eq!(kind("."), ScalarKind::Str);
        assert_eq!(kind("1.2.3"), ScalarKind::Str);
        assert_eq!(kind("ubuntu:16.04"), ScalarKind::Str);
        assert_eq!(kind("0-db.tar.gz"), ScalarKind::Str);
        assert_eq!(
            kind("yes"),
            ScalarKind::Str,
            "YAML 1.1 booleans are strings"
        );
        assert_eq!(kind("'123'"), ScalarKind::Str);
        assert_eq!(kind("\"true\""), ScalarKind::Str);
        assert_eq!(kind("!!str 123"), ScalarKind::Str);
    }

    #[test]
    fn empty_text_has_no_document() {
        assert!(parse("").expect("parses").root.is_none());
        assert!(parse("# only a comment\n").expect("parses").root.is_none());
    }

    #[test]
    fn marks_are_one_based() {
        let node = root("a: b\nkey/with/slash: value\n");
        let Value::Mapping(entries) = node.value else {
            panic!("mapping expected")
        };
        assert_eq!(node.mark.position(), (1, 1));
        assert_eq!(entries[1].0.mark.position(), (2, 1));
        assert_eq!(entries[1].0.as_str(), Some("key/with/slash"));
        assert_eq!(entries[1].1.mark.position(), (2, 17));
    }

    #[test]
    fn columns_count_characters() {
        let node = root("ä: x\nb: y\n");
        let Value::Mapping(entries) = node.value else {
            panic!("mapping expected")
        };
        assert_eq!(entries[0].1.mark.position(), (1, 4));
    }

    #[test]
    fn syntax_error_has_position() {
        let fatal = parse("a: b\n c: [\n").expect_err("syntax error");
        assert_eq!(fatal.mark.map(Mark::position), Some((2, 3)));
        assert_eq!(
            fatal.message,
            "YAML syntax error: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn duplicate_keys_are_issues_and_first_wins() {
        let doc = parse("a: 1\nb: 2\na: 3\n").expect("parses");
        assert_eq!(
            doc.issues,
            vec![Issue {
                mark: Mark {
                    line: 3,
                    column: 1,
                    index: 10
                },
                message: "duplicate key 'a' (first at line 1, column 1)".to_string()
            }]
        );
        let Some(Node {
            value: Value::Mapping(entries),
            ..
        }) = doc.root
        else {
            panic!("mapping expected")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].1.scalar_text(), Some("1"));
    }

    #[test]
    fn aliases_are_copied() {
        let node = root("a: &x {k: v}\nb: *x\n");
        let Value::Mapping(entries) = node.value else {
            panic!("mapping expected")
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        assert_eq!(entries[1].1.mark.position(), (2, 4));
    }

    #[test]
    fn marks_never_point_past_the_end_of_the_text() {
        // Found by the branch_file fuzz target: `[d\x0fi` (no line break)
        // was reported at line 2 of a one-line file.
        let at = |text: &str| parse(text).expect_err("unclosed").mark.map(Mark::position);
        assert_eq!(at("[d\x0fi"), Some((1, 5)));
        assert_eq!(at("[a"), Some((1, 3)));
        assert_eq!(at("a: [ä"), Some((1, 6)), "columns count characters");
        assert_eq!(at("[a\n"), Some((2, 1)), "the line after the last break");
        assert_eq!(at("x:\r\n  [a"), Some((2, 5)));
        assert_eq!(at("x:\r  [a"), Some((2, 5)), "a lone CR breaks a line too");
        assert_eq!(at("- [a\n\n\n"), Some((4, 1)));
    }

    #[test]
    fn second_document_is_fatal() {
        let fatal = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert_eq!(fatal.mark.map(Mark::position), Some((2, 1)));
        assert!(fatal.message.contains("second"), "{}", fatal.message);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let text = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let fatal = parse(&text).expect_err("too deep");
        assert_eq!(fatal.message, "YAML nesting is deeper than 64 levels");
        assert_eq!(fatal.mark.map(Mark::position), Some((1, 65)));

        // Far deeper: the scanner's own flow limit (255) may answer first;
        // either way it is an error with a position, not a crash.
        let text = "[".repeat(1_000_000);
        let fatal = parse(&text).expect_err("too deep");
        assert!(fatal.mark.is_some());

        let mut block = String::new();
        for depth in 0..200 {
            block.push_str(&" ".repeat(depth));
            block.push_str("k:\n");
        }
        let fatal = parse(&block).expect_err("too deep");
        assert_eq!(fatal.message, "YAML nesting is deeper than 64 levels");

        // 64 levels are fine.
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut previous = 'a';
        for name in 'b'..='z' {
            text.push_str(&format!(
                "{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, \
                 *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            ));
            previous = name;
        }
        let started = std::time::Instant::now();
        let fatal = parse(&text).expect_err("bomb");
        assert_eq!(fatal.message, "alias expansion exceeds 100000 nodes");
        assert!(fatal.mark.is_some());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// The bomb of issue 9: few nodes, each a copy of one large string.
    fn byte_bomb(length: usize, aliases: usize) -> String {
        let mut text = format!("a: &a \"{}\"\nb: [", "A".repeat(length));
        for i in 0..aliases {
            text.push_str(if i == 0 { "*a" } else { ", *a" });
        }
        text.push_str("]\n");
        text
    }

    #[test]
    fn alias_bomb_in_bytes_is_refused_at_the_alias_that_crosses_the_budget() {
        let text = byte_bomb(500_000, 99_000);
        assert!(
            text.len() > 890_000 && text.len() < 1024 * 1024,
            "{}",
            text.len()
        );
        let fatal = parse(&text).expect_err("bomb");
        assert_eq!(
            fatal.message,
            format!(
                "alias expansion exceeds {} bytes (16 × the file's size of {} bytes): \
                 anchors and aliases copy too much text",
                16 * text.len(),
                text.len()
            )
        );
        // Anchoring the string copies it once (500,000 bytes); then each
        // alias copies it again: the 28th alias passes 16 × ~896 KB.
        let budget = 16 * text.len();
        let crossing = (budget - 500_000) / 500_000 + 1;
        let column = "b: [".len() + (crossing - 1) * ", ".len() + (crossing - 1) * 2 + 1;
        assert_eq!(fatal.mark.map(Mark::position), Some((2, column)));
    }

    #[test]
    fn small_files_get_the_floor_of_one_mebibyte() {
        assert_eq!(expansion_budget(0), MIN_EXPANSION_BUDGET);
        assert_eq!(expansion_budget(65_536), MIN_EXPANSION_BUDGET);
        assert_eq!(expansion_budget(65_537), 16 * 65_537);
        assert_eq!(expansion_budget(usize::MAX), usize::MAX);

        // 10 aliases of a 50,000-byte string: 550,000 bytes copied in a
        // file of 50 KB (16 × would be 800 KB): within the floor.
        let text = byte_bomb(50_000, 10);
        let doc = parse(&text).expect("within the floor");
        let Some(Node {
            value: Value::Mapping(entries),
            ..
        }) = doc.root
        else {
            panic!("mapping expected")
        };
        let Value::Sequence(items) = &entries[1].1.value else {
            panic!("sequence expected")
        };
        assert_eq!(items.len(), 10);
        assert_eq!(items[9].scalar_text().map(str::len), Some(50_000));

        // 20 aliases: 1,050,000 bytes, past the floor.
        let text = byte_bomb(50_000, 20);
        let fatal = parse(&text).expect_err("past the floor");
        assert_eq!(
            fatal.message,
            "alias expansion exceeds 1048576 bytes (1 MiB, the limit for files of up to \
             65536 bytes): anchors and aliases copy too much text"
        );
        // The anchor and 20 copies of 50,000 bytes pass 1 MiB: the 20th alias.
        assert_eq!(fatal.mark.map(Mark::position), Some((2, 5 + 19 * 4)));
    }

    #[test]
    fn keys_and_nested_copies_count_in_bytes() {
        // A mapping whose key is long (an explicit key: implicit ones stop
        // at 1024 characters): copying it copies the key too.
        let key = "k".repeat(50_000);
        let mut text = format!("a: &a {{? {key} : 1}}\nb: [");
        for i in 0..30 {
            text.push_str(if i == 0 { "*a" } else { ", *a" });
        }
        text.push_str("]\n");
        let fatal = parse(&text).expect_err("keys are text");
        assert!(
            fatal
                .message
                .starts_with("alias expansion exceeds 1048576 bytes"),
            "{}",
            fatal.message
        );

        // Nested anchors each remember a copy of the subtree below them.
        let text = format!(
            "a: &a \"{}\"\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: &d [*c, *c]\n",
            "A".repeat(60_000)
        );
        let fatal = parse(&text).expect_err("nested copies add up");
        assert_eq!(fatal.mark.map(|m| m.line), Some(4));
    }

    #[test]
    fn self_referencing_alias_is_fatal() {
        let fatal = parse("a: &x [*x]\n").expect_err("recursive");
        assert_eq!(
            fatal.message,
            "YAML alias refers to a node that contains it"
        );
    }
}
