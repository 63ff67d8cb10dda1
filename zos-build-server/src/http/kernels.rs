//! `/kernels/`: the kernel directory (`kernel-directory`), read-only, for
//! the Zero-OS nodes that boot from it by URL (iPXE, the bootstrap
//! service) and for people looking for a kernel.
//!
//! The kernel pipeline writes `zero-os-<branch>-generic-<commit10>.efi`
//! there (under a hidden name first) and moves the relative links
//! `zero-os-<branch>-generic.efi` and `zero-os-<branch>.efi` onto it. This
//! module only reads:
//!
//! - `/kernels/` (and `/kernels`) lists the directory: a plain HTML page,
//!   or JSON when `Accept` asks for `application/json`; name, size, date and
//!   link target, sorted by name, hidden names left out, at most
//!   [`MAX_LISTED`] entries read;
//! - `/kernels/<name>` is a file, or a link followed one step to a file of
//!   the same directory, by the rule of [`super::files`], streamed with its
//!   length and validators (`ETag`, `Last-Modified`). A `GET` may ask for
//!   one byte range (iPXE resumes and probes): only that part is read
//!   (a seek, then at most its length); several ranges get the whole file
//!   (RFC 9110 allows it). A `HEAD` answers the headers of the whole file
//!   (Range is defined for `GET` only, RFC 9110 §14.2).
//!
//! Any other method is a 405 with `Allow: GET, HEAD`.

use super::files::{self, Found, Opened, MAX_LISTED};
use super::response::{self, Body};
use bytes::Bytes;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_LENGTH,
    CONTENT_RANGE, ETAG, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use hyper::{HeaderMap, Method, Response, StatusCode};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The methods `/kernels/` answers.
pub const ALLOWED: &str = "GET, HEAD";

/// The most characters of a link's target shown in a listing: a target the
/// rule serves is a plain name, at most 255 bytes; a longer one is cut.
const MAX_TARGET_SHOWN: usize = 255;

/// Answers a request for `/kernels<rest>` (`rest` is empty or starts with
/// `/`) from `dir`.
pub async fn handle(
    dir: &Path,
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut answer = response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/kernels/ is read-only: GET or HEAD",
        );
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOWED));
        return answer;
    }
    match rest.strip_prefix('/') {
        // Links relative to the page's own address, so that the page works
        // behind a proxy that serves it under a prefix.
        None => listing(dir, "kernels/", wants_json(headers)).await,
        Some("") => listing(dir, "", wants_json(headers)).await,
        Some(name) => kernel(dir, name, method, headers).await,
    }
}

/// Whether the client's `Accept` asks for `application/json` (with a
/// non-zero `q`).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|parameter| {
                parameter
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/json") && !refused
        })
}

/// `GET`/`HEAD /kernels/<name>`.
async fn kernel(dir: &Path, name: &str, method: &Method, headers: &HeaderMap) -> Response<Body> {
    if !files::is_plain(name) {
        return response::not_found("no such kernel");
    }
    let (mut file, metadata) = match files::open(dir, name).await {
        Ok(Opened::File { file, metadata }) => (*file, metadata),
        Ok(Opened::Absent | Opened::Refused) => return response::not_found("no such kernel"),
        Err(e) => {
            tracing::error!(path = %dir.join(name).display(), error = %e, "cannot read a kernel");
            return response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the kernel cannot be read",
            );
        }
    };
    let size = metadata.len();
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let validators = Validators {
        etag: etag(&metadata, modified),
        last_modified: response::http_date(modified),
    };
    let content_type = if name.ends_with(".efi") {
        "application/efi"
    } else {
        "application/octet-stream"
    };

    if validators.matches_if_none_match(headers) {
        let mut answer = response::with_type(StatusCode::NOT_MODIFIED, Bytes::new(), content_type);
        validators.add_to(&mut answer);
        return answer;
    }
    let range = if method == Method::GET {
        requested_range(headers, &validators, size)
    } else {
        Range::Whole
    };
    let mut answer = match range {
        Range::Whole if method == Method::HEAD => {
            let mut answer = response::with_type(StatusCode::OK, Bytes::new(), content_type);
            let headers = answer.headers_mut();
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            answer
        }
        // At most the length seen when the file was opened: a file that
        // grows is not sent past it.
        Range::Whole => response::file_part(file, size, content_type),
        Range::Part { first, last } => {
            use tokio::io::AsyncSeekExt;
            if let Err(e) = file.seek(std::io::SeekFrom::Start(first)).await {
                tracing::error!(path = %dir.join(name).display(), error = %e, "cannot seek in a kernel");
                return response::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the kernel cannot be read",
                );
            }
            let mut answer = response::file_part(file, last - first + 1, content_type);
            *answer.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                &mut answer,
                CONTENT_RANGE,
                &format!("bytes {first}-{last}/{size}"),
            );
            answer
        }
        Range::Unsatisfiable => {
            let mut answer = response::error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is not within the kernel's {size} bytes"),
            );
            set(&mut answer, CONTENT_RANGE, &format!("bytes */{size}"));
            answer
        }
    };
    validators.add_to(&mut answer);
    answer
        .headers_mut()
        .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    answer
}

/// Inserts `name: value` when `value` is a valid header value (it always
/// is: it is made of digits, names of `[A-Za-z0-9._-]` and ASCII).
fn set(answer: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        answer.headers_mut().insert(name, value);
    }
}

/// A strong `ETag` of the file: its inode, size and modification time, so
/// it changes when the file is replaced or rewritten (and, for a link,
/// when the link moves to another file).
fn etag(metadata: &std::fs::Metadata, modified: SystemTime) -> String {
    use std::os::unix::fs::MetadataExt;
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}-{nanos:x}\"", metadata.ino(), metadata.len())
}

/// The validators of a served file.
struct Validators {
    etag: String,
    last_modified: String,
}

impl Validators {
    fn add_to(&self, answer: &mut Response<Body>) {
        set(answer, ETAG, &self.etag);
        set(answer, LAST_MODIFIED, &self.last_modified);
    }

    /// Whether `If-None-Match` names this file's `ETag` (weakly compared,
    /// as RFC 9110 wants for it) or is `*`: then the client's copy is
    /// current (304).
    fn matches_if_none_match(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
    }

    /// Whether an `If-Range` holds this file's `ETag` or its
    /// `Last-Modified` exactly: only then is a range of it what the client
    /// asks for (otherwise its copy is of another file: it gets the whole).
    fn matches_if_range(&self, value: &str) -> bool {
        let value = value.trim();
        value == self.etag || value == self.last_modified
    }
}

/// What a `GET` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// The whole file: no `Range`, one that cannot be parsed, several
    /// ranges, or an `If-Range` of another version.
    Whole,
    /// Bytes `first` to `last`, both included, within the file.
    Part { first: u64, last: u64 },
    /// A range that starts past the end of the file (or asks for its last
    /// 0 bytes, or any byte of an empty file): 416.
    Unsatisfiable,
}

/// The range a `GET` asks for, taking `If-Range` into account.
fn requested_range(headers: &HeaderMap, validators: &Validators, size: u64) -> Range {
    let mut ranges = headers.get_all(RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return Range::Whole;
    };
    if let Some(if_range) = headers.get(IF_RANGE) {
        if !if_range
            .to_str()
            .is_ok_and(|value| validators.matches_if_range(value))
        {
            return Range::Whole;
        }
    }
    range
        .to_str()
        .map_or(Range::Whole, |range| parse_range(range, size))
}

/// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size`
/// bytes (RFC 9110 §14.1.2). Anything else is answered with the whole file,
/// as the RFC allows: another unit, a malformed range, several ranges.
fn parse_range(header: &str, size: u64) -> Range {
    let header = header.trim();
    let Some(spec) = header
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .and_then(|_| header.get(6..))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Range::Whole;
    };
    /// A run of ASCII digits; a number past `u64::MAX` is `u64::MAX`
    /// (beyond any file, which is what it means).
    fn number(digits: &str) -> Option<u64> {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().unwrap_or(u64::MAX))
    }
    match (first, last) {
        ("", suffix) => match number(suffix) {
            None => Range::Whole,
            Some(0) => Range::Unsatisfiable,
            Some(_) if size == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part {
                first: size.saturating_sub(n),
                last: size - 1,
            },
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return Range::Whole;
            };
            let last = match last {
                "" => u64::MAX,
                last => match number(last) {
                    Some(last) if last >= first => last,
                    _ => return Range::Whole,
                },
            };
            if first >= size {
                Range::Unsatisfiable
            } else {
                Range::Part {
                    first,
                    last: last.min(size - 1),
                }
            }
        }
    }
}

/// One line of a listing.
struct Entry {
    name: String,
    /// The link's target as written in the link (cut), for a link.
    target: Option<String>,
    /// Size and modification time of the file served under this name (the
    /// target's, for a link); `None` for a link the rule does not follow.
    file: Option<(u64, SystemTime)>,
}

/// `GET /kernels/`: the listing, as HTML (links to `<base><name>`) or JSON.
async fn listing(dir: &Path, base: &'static str, json: bool) -> Response<Body> {
    let read = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || read_listing(&dir)).await
    };
    let (entries, truncated) = match read {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => {
            tracing::error!(path = %dir.display(), error = %e, "cannot list the kernels");
            return response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the kernels cannot be listed",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "listing the kernels failed");
            return response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the kernels cannot be listed",
            );
        }
    };
    let mut answer = if json {
        listing_json(&entries, truncated)
    } else {
        let mut answer = response::with_type(
            StatusCode::OK,
            listing_html(&entries, truncated, base),
            "text/html; charset=utf-8",
        );
        // A page of names and numbers: no script, no frame, no fetch.
        answer.headers_mut().insert(
            hyper::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
        answer
    };
    let headers = answer.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    answer
}

/// The plain names of `dir` that are files or links, at most
/// [`MAX_LISTED`] entries read, sorted by name; and whether more were left
/// unread. A missing directory is empty (the pipeline has not written yet).
/// Blocking.
fn read_listing(dir: &Path) -> std::io::Result<(Vec<Entry>, bool)> {
    let reader = match std::fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut truncated = false;
    for (read, entry) in reader.enumerate() {
        if read >= MAX_LISTED {
            truncated = true;
            break;
        }
        let Ok(entry) = entry else { continue };
        // Hidden names (writes in progress) and names the rule would not
        // serve are left out.
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|name| files::is_plain(name))
            .map(str::to_string)
        else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let target = if kind.is_symlink() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            Some(match target.char_indices().nth(MAX_TARGET_SHOWN) {
                Some((cut, _)) => format!("{}…", &target[..cut]),
                None => target.into_owned(),
            })
        } else if kind.is_file() {
            None
        } else {
            continue;
        };
        let file = match files::find(dir, &name) {
            Ok(Found::File { metadata, .. }) => {
                Some((metadata.len(), metadata.modified().unwrap_or(UNIX_EPOCH)))
            }
            _ => None,
        };
        if target.is_none() && file.is_none() {
            continue; // removed meanwhile
        }
        entries.push(Entry { name, target, file });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, truncated))
}

/// `time` in RFC 3339, UTC, to the second, within what the format holds
/// (1970 to 9999).
fn rfc3339(time: SystemTime) -> String {
    let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_seconds(time.clamp(UNIX_EPOCH, latest)).to_string()
}

/// `{"kernels":[{"name","type","size","modified","target"}],"truncated",
/// "limit"}`: `type` is `file` or `link`; `size` and `modified` (RFC 3339)
/// are the served file's, `null` for a link that is not served; `target`
/// is a link's target, `null` for a file.
fn listing_json(entries: &[Entry], truncated: bool) -> Response<Body> {
    let kernels: Vec<serde_json::Value> = entries
        .iter()
        .map(|entry| {
            serde_json::json!({
                "name": entry.name,
                "type": if entry.target.is_some() { "link" } else { "file" },
                "size": entry.file.map(|(size, _)| size),
                "modified": entry.file.map(|(_, modified)| rfc3339(modified)),
                "target": entry.target,
            })
        })
        .collect();
    response::json(
        StatusCode::OK,
        &serde_json::json!({"kernels": kernels, "truncated": truncated, "limit": MAX_LISTED}),
    )
}

/// `text` with HTML's special characters escaped, for text and attribute
/// values alike.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The listing as a plain HTML page: one table, no script.
fn listing_html(entries: &[Entry], truncated: bool, base: &str) -> String {
    use std::fmt::Write;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Kernels</title>\
         <style>body{font-family:sans-serif}td,th{padding:0 1em;text-align:left}\
         td.size{text-align:right}</style></head><body>\n<h1>Kernels</h1>\n",
    );
    if entries.is_empty() {
        page.push_str("<p>No kernel yet.</p>\n");
    } else {
        page.push_str(
            "<table>\n<thead><tr><th>Name</th><th>Size (bytes)</th><th>Date (UTC)</th>\
             <th>Link target</th></tr></thead>\n<tbody>\n",
        );
        for entry in entries {
            let name = escape(&entry.name);
            let (size, date) = match entry.file {
                Some((size, modified)) => (size.to_string(), rfc3339(modified)),
                None => ("-".to_string(), "-".to_string()),
            };
            let target = match &entry.target {
                Some(target) if entry.file.is_some() => format!("→ {}", escape(target)),
                Some(target) => format!("→ {} (not served)", escape(target)),
                None => String::new(),
            };
            let _ = writeln!(
                page,
                "<tr><td><a href=\"{base}{name}\">{name}</a></td><td class=\"size\">{size}</td>\
                 <td>{date}</td><td>{target}</td></tr>"
            );
        }
        page.push_str("</tbody>\n</table>\n");
    }
    if truncated {
        let _ = writeln!(
            page,
            "<p>Only the first {MAX_LISTED} entries of the directory were read: \
             this listing is incomplete.</p>"
        );
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let part = |first, last| Range::Part { first, last };
        for (header, expected) in [
            ("bytes=2-5", part(2, 5)),
            ("bytes=4-", part(4, 9)),
            ("bytes=-3", part(7, 9)),
            ("bytes=-30", part(0, 9)),
            ("bytes=0-0", part(0, 0)),
            ("bytes=9-9", part(9, 9)),
            ("bytes=5-100", part(5, 9)),
            ("bytes=5-99999999999999999999999", part(5, 9)),
            ("BYTES=1-2", part(1, 2)),
            (" bytes=1-2 ", part(1, 2)),
            ("bytes=10-", Range::Unsatisfiable),
            ("bytes=100-200", Range::Unsatisfiable),
            ("bytes=99999999999999999999999-", Range::Unsatisfiable),
            ("bytes=-0", Range::Unsatisfiable),
            ("bytes=5-2", Range::Whole),
            ("bytes=0-1,4-5", Range::Whole),
            ("bytes=a-b", Range::Whole),
            ("bytes=-", Range::Whole),
            ("bytes=+1-2", Range::Whole),
            ("bytes= 1-2", Range::Whole),
            ("bytes=1", Range::Whole),
            ("items=1-2", Range::Whole),
            ("", Range::Whole),
            ("bytés=1-2", Range::Whole),
        ] {
            assert_eq!(parse_range(header, 10), expected, "{header:?}");
        }
        assert_eq!(parse_range("bytes=-1", 0), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
    }

    #[test]
    fn json_is_chosen_only_when_asked_for() {
        let accept = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
            wants_json(&headers)
        };
        assert!(accept("application/json"));
        assert!(accept("text/plain, Application/JSON; q=0.5"));
        assert!(!accept("application/json;q=0"));
        assert!(!accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!accept("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let entries = [Entry {
            name: "a.efi".into(),
            target: Some("<script>alert('x')</script>&\"".into()),
            file: None,
        }];
        let page = listing_html(&entries, true, "");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        assert!(page.contains("not served"));
        assert!(page.contains("incomplete"));
    }
}
