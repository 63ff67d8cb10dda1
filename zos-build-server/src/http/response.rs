//! Building responses: JSON, text, and the `{"status":"error"}` shape the old
//! service answered its errors with.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The body type of every response.
pub type Body = Full<Bytes>;

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

fn with_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
