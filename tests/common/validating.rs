//! A scripted origin for the HTTP-semantics tests: it holds one current representation (body,
//! `ETag`, `Last-Modified`, response fields), answers conditional requests with `304` as RFC
//! 9110 §13 says, records what every request carried, and counts its full and `304` answers,
//! so a test can tell "revalidated" (a 304) from "refetched" (a 200).

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::BoxCloneSyncService;

/// What the origin answers and has seen.
#[derive(Debug)]
pub struct State {
    pub status: u16,
    pub body: String,
    /// Sent on every answer, `304`s included (`Cache-Control`, `X-Version`...).
    pub headers: Vec<(String, String)>,
    /// Sent on full answers only.
    pub full_only: Vec<(String, String)>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Answer full responses even to conditional requests.
    pub ignore_conditions: bool,
    /// Read `If-Modified-Since` only (an origin node that does not know entity-tags).
    pub ignore_if_none_match: bool,
    /// Fail instead: a status to answer with, or an error from the service.
    pub fail_status: Option<u16>,
    pub fail_error: bool,
    /// How long to take before answering.
    pub delay: Duration,
    /// The request fields of every request, in order.
    pub seen: Vec<(Method, HeaderMap)>,
    pub full: usize,
    pub not_modified: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: 200,
            body: "version 1".into(),
            headers: vec![("cache-control".into(), "max-age=1".into())],
            full_only: vec![("content-type".into(), "text/plain".into())],
            etag: Some("\"v1\"".into()),
            last_modified: None,
            ignore_conditions: false,
            ignore_if_none_match: false,
            fail_status: None,
            fail_error: false,
            delay: Duration::ZERO,
            seen: Vec::new(),
            full: 0,
            not_modified: 0,
        }
    }
}

/// The origin; clones share its state.
#[derive(Clone, Default)]
pub struct Validating(pub Arc<Mutex<State>>);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Validating {
    pub fn new(change: impl FnOnce(&mut State)) -> Self {
        let origin = Validating::default();
        origin.set(change);
        origin
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.0.lock().unwrap());
    }

    pub fn full(&self) -> usize {
        self.0.lock().unwrap().full
    }

    pub fn not_modified(&self) -> usize {
        self.0.lock().unwrap().not_modified
    }

    pub fn calls(&self) -> usize {
        self.0.lock().unwrap().seen.len()
    }

    /// The fields of the last request that reached the origin.
    pub fn last_seen(&self) -> HeaderMap {
        let state = self.0.lock().unwrap();
        state
            .seen
            .last()
            .expect("a request reached the origin")
            .1
            .clone()
    }

    /// The origin as a tower service (its error type lets it fail like a lost connection).
    pub fn service(&self) -> BoxCloneSyncService<Request<Body>, Response<Body>, BoxError> {
        let origin = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |request: Request<Body>| {
            let origin = origin.clone();
            async move { origin.answer(request).await }
        }))
    }

    /// The origin as an axum router (for a real server).
    pub fn router(&self) -> axum::Router {
        let origin = self.clone();
        axum::Router::new().fallback(move |request: Request<Body>| {
            let origin = origin.clone();
            async move {
                match origin.answer(request).await {
                    Ok(response) => response,
                    Err(_) => Response::builder().status(502).body(Body::empty()).unwrap(),
                }
            }
        })
    }

    /// Serves the origin on 127.0.0.1.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    async fn answer(&self, request: Request<Body>) -> Result<Response<Body>, BoxError> {
        let delay = {
            let mut state = self.0.lock().unwrap();
            state
                .seen
                .push((request.method().clone(), request.headers().clone()));
            state.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.0.lock().unwrap();
        if state.fail_error {
            return Err("connection refused".into());
        }
        if let Some(status) = state.fail_status {
            let response = Response::builder()
                .status(status)
                .body(Body::from("failed"));
            return Ok(response.unwrap());
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &state.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        for (name, value) in [
            ("etag", &state.etag),
            ("last-modified", &state.last_modified),
        ] {
            if let Some(value) = value {
                headers.insert(name, HeaderValue::from_str(value).unwrap());
            }
        }
        let mut response = Response::new(Body::empty());
        if !state.ignore_conditions && not_modified(request.headers(), &state) {
            state.not_modified += 1;
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.headers_mut() = headers;
            return Ok(response);
        }
        state.full += 1;
        for (name, value) in &state.full_only {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        *response.status_mut() = StatusCode::from_u16(state.status).unwrap();
        if request.method() != Method::HEAD {
            *response.body_mut() = Body::from(state.body.clone());
        } else {
            headers.insert("content-length", state.body.len().into());
        }
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// RFC 9110 §13.1.2 (weak comparison), §13.1.3 (only without `If-None-Match`).
fn not_modified(request: &HeaderMap, state: &State) -> bool {
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if let Some(inm) = request
        .get("if-none-match")
        .filter(|_| !state.ignore_if_none_match)
    {
        let Some(etag) = &state.etag else {
            return false;
        };
        let inm = inm.to_str().unwrap();
        return inm.trim() == "*" || inm.split(',').any(|tag| weak(tag) == weak(etag));
    }
    match (request.get("if-modified-since"), &state.last_modified) {
        (Some(since), Some(modified)) => {
            let since = httpdate::parse_http_date(since.to_str().unwrap()).ok();
            let modified = httpdate::parse_http_date(modified).ok();
            matches!((since, modified), (Some(s), Some(m)) if m <= s)
        }
        _ => false,
    }
}
