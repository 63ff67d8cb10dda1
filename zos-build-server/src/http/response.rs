//! Building responses: JSON, text, streamed files, and the
//! `{"status":"error"}` shape the old service answered its errors with.
//!
//! Files (logs, artifacts) are never read whole: they go out in
//! [`FILE_CHUNK`] pieces, and hyper asks for the next piece only once its
//! bounded write buffer has room, so a slow reader of a 2 GB log costs the
//! server a few hundred KiB, not 2 GB.

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use hyper::{Response, StatusCode};
use std::path::Path;

/// Bytes read from a file at once when it is streamed: what a streamed
/// response holds in memory besides hyper's write buffer.
pub const FILE_CHUNK: usize = 64 * 1024;

/// The body type of every response: a whole buffer for most routes, a stream
/// for a followed log.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The `key=value` pairs of a query string, percent-decoded (`%2F`, `+`),
/// as browsers and curl send them; a key alone has an empty value.
pub fn query_pairs(query: Option<&str>) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streamed plain-text response: hyper sends it chunked, as it comes.
pub fn text_stream(
    stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Response<Body> {
    streamed(stream, "text/plain; charset=utf-8")
}

/// A streamed response of `content_type`, never cached.
pub fn streamed(
    stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    content_type: &'static str,
) -> Response<Body> {
    let body = StreamBody::new(futures_util::StreamExt::map(stream, |chunk| {
        chunk.map(Frame::data)
    }));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `file`, from where it stands to its end, streamed in [`FILE_CHUNK`]
/// pieces as `content_type`.
pub fn file(file: tokio::fs::File, content_type: &'static str) -> Response<Body> {
    streamed(
        tokio_util::io::ReaderStream::with_capacity(file, FILE_CHUNK),
        content_type,
    )
}

/// The next `length` bytes of `file`, from where it stands (seek it
/// first), streamed in [`FILE_CHUNK`] pieces as `content_type`, with their
/// `Content-Length`: a part of a file is sent without reading the rest.
pub fn file_part(file: tokio::fs::File, length: u64, content_type: &'static str) -> Response<Body> {
    use tokio::io::AsyncReadExt;
    let mut response = streamed(
        tokio_util::io::ReaderStream::with_capacity(file.take(length), FILE_CHUNK),
        content_type,
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// `time` as an HTTP date (RFC 9110's IMF-fixdate, always GMT), as in
/// `Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT`; a time before 1970 is
/// written as 1970's first second, one after 9999 as 9999's last.
pub fn http_date(time: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // At most the last second of 9999: the format has four digits.
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(253_402_300_799);
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm,
    // in unsigned arithmetic: from 0000-03-01, eras of 400 years).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// The build log at `path` from byte `offset` to its current end, streamed
/// as text; empty when the file does not exist (a queued build has written
/// nothing yet) or ends before `offset`.
pub async fn log_file(path: &Path, offset: u64) -> std::io::Result<Response<Body>> {
    use tokio::io::AsyncSeekExt;
    let mut log = match tokio::fs::File::open(path).await {
        Ok(log) => log,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(text(StatusCode::OK, "")),
        Err(e) => return Err(e),
    };
    if offset > 0 {
        log.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    Ok(file(log, "text/plain; charset=utf-8"))
}

/// `response` with a `Link: <next>; rel="next"` header when `next` (a path
/// and query of this server) is given: where the following page is.
pub fn with_next(mut response: Response<Body>, next: Option<String>) -> Response<Body> {
    if let Some(value) =
        next.and_then(|next| HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")).ok())
    {
        response.headers_mut().insert(LINK, value);
    }
    response
}

/// `value` as JSON with `status`.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    with_type(status, body, "application/json")
}

/// `{"status":"error","message":...}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"status": "error", "message": message.into()}),
    )
}

/// `{"status":"ignored","message":...}`, 202: understood, nothing to do.
pub fn ignored(message: impl Into<String>) -> Response<Body> {
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"status": "ignored", "message": message.into()}),
    )
}

/// Plain UTF-8 text.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body, "text/plain; charset=utf-8")
}

/// 404 with a JSON error naming what was not found.
pub fn not_found(what: impl Into<String>) -> Response<Body> {
    error(StatusCode::NOT_FOUND, what)
}

/// `body` with `status` and `content_type`.
pub fn with_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::http_date;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn http_dates_are_imf_fixdates_in_gmt() {
        for (seconds, expected) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (4_107_455_999, "Sat, 27 Feb 2100 23:59:59 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(
                http_date(UNIX_EPOCH + Duration::from_secs(seconds)),
                expected
            );
        }
        assert_eq!(
            http_date(UNIX_EPOCH - Duration::from_secs(5)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(300_000_000_000)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }
}
