//! Requests that pass the cache by: sent to the inner service as they are. A write among them
//! (any method not known to be safe) that succeeds invalidates what it changed.

use http::{Request, Response, request};
use http_body::Body;
use std::sync::Arc;
use std::time::Instant;
use tower_service::Service;

use crate::cache::{Cache, Disposition};
use crate::invalidate;
use crate::key::{Target, normalize_path, normalized_head, original_uri};
use crate::observe::{Invalidation, OriginCall};
use crate::semantics::{CacheStatus, Forward};
use crate::{BypassReason, CacheBody, CacheOverride, Store};

/// What a request passing by may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writes {
    /// What its method says: a method not known to be safe may have changed its target URI
    /// and what its response names.
    ByMethod,
    /// Nothing: a read that could not use the cache (a query too large to key, say).
    Nothing,
    /// What its response names, not its own URI, which names an endpoint rather than a
    /// resource: a write on a query route (a GraphQL mutation).
    WhatItNames,
}

/// A request that does not use the cache. If it may change something (`writes`) and the
/// origin answers 2xx or 3xx, what it changed is invalidated before the response is returned
/// (RFC 9111 §4.4): the target URI, same-host `Location` and `Content-Location` URIs, and the
/// tags the response names in the tag header. Error answers invalidate nothing.
pub(crate) async fn pass_through<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    mut inner: S,
    request: Request<ReqB>,
    reason: BypassReason,
    writes: Writes,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    ResB: Body,
{
    let (parts, body) = request.into_parts();
    let write = (writes != Writes::Nothing && !invalidate::is_safe(&parts.method))
        .then(|| normalized_head(&parts));
    let called = Instant::now();
    let response = inner.call(Request::from_parts(parts, body)).await;
    cache
        .observe
        .origin_answered(OriginCall::Bypass, &response, called);
    let response = response?;
    let (mut parts, body) = response.into_parts();
    CacheOverride::take(&mut parts, cache.override_header.as_ref());
    if let Some(write) = write {
        let tags = cache.written_tags(&write, &mut parts, writes == Writes::ByMethod);
        if parts.status.is_success() || parts.status.is_redirection() {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            cache.invalidate(Invalidation::Write, &tags).await;
        }
    } else {
        cache.strip_tag_header(&mut parts.headers);
    }
    cache.strip_targeted(&mut parts.headers);
    cache.mark(&mut parts.headers, Disposition::Bypass);
    let forward = match reason {
        BypassReason::Method => Forward::Method,
        _ => Forward::Bypass,
    };
    let status = CacheStatus {
        fwd: Some(forward),
        fwd_status: Some(parts.status.as_u16()),
        detail: Some(reason.as_str()),
        ..CacheStatus::default()
    };
    cache.status(&mut parts.headers, status);
    Ok(Response::from_parts(parts, CacheBody::origin(body)))
}

impl<St: ?Sized> Cache<St> {
    /// The tags a write covers: its target URI (`its_uri`), same-host locations, and the tags
    /// the response names (the tag header is removed from the response unless configured
    /// otherwise).
    fn written_tags(
        &self,
        request: &request::Parts,
        response: &mut http::response::Parts,
        its_uri: bool,
    ) -> Vec<String> {
        let path = normalize_path(original_uri(request).path());
        let mut tags = Vec::new();
        for authority in Target::written_authorities(request) {
            if its_uri {
                tags.push(invalidate::uri_tag(&authority, &path));
            }
            for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
                let values = response.headers.get_all(name).iter();
                tags.extend(
                    values
                        .filter_map(|v| v.to_str().ok())
                        .filter_map(|v| invalidate::location_tag(&authority, &path, v)),
                );
            }
        }
        let policy = self.policies.get(self.policies.select(request));
        if let Some(tagger) = &policy.invalidate_with {
            let derived = tagger.0.tags(request, response);
            let (valid, invalid): (Vec<String>, Vec<String>) = derived
                .into_iter()
                .partition(|t| invalidate::is_valid_tag(t));
            if !invalid.is_empty() {
                tracing::warn!(
                    count = invalid.len(),
                    "invalid tags from invalidate_with skipped"
                );
            }
            tags.extend(valid);
        }
        match self.take_tag_header(response) {
            Ok(named) => tags.extend(named),
            Err(bad) => tracing::warn!(
                ?bad,
                "bad purge tags on a write's response; only its URI is invalidated"
            ),
        }
        tags
    }
}
