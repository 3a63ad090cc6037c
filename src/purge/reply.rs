//! The admin service's plain answers: text, JSON, `401`, `405`.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// `401`, saying only that a token is needed.
pub(crate) fn unauthorized() -> Response<Bytes> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required\n",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"cache purge\""),
    );
    response
}

/// A plain text answer.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    with_type(status, body.into(), "text/plain; charset=utf-8")
}

/// A JSON answer (indented: operators read it with `curl` as often as with `jq`).
pub(crate) fn json(value: &serde_json::Value) -> Response<Bytes> {
    let mut body = serde_json::to_vec_pretty(value).expect("a JSON value serializes");
    body.push(b'\n');
    with_type(StatusCode::OK, body.into(), "application/json")
}

/// `405`, with the methods this path takes.
pub(crate) fn not_allowed(allow: &'static str, hint: &'static str) -> Response<Bytes> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, hint);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
