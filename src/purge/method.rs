//! The `PURGE` method, when enabled (`CacheLayer::purge_method`): answered by the cache itself.

use http::{Response, request};
use http_body::Body;
use std::sync::Arc;

use crate::cache::{Cache, Disposition};
use crate::key::Target;
use crate::observe::Invalidation;
use crate::semantics::CacheStatus;
use crate::{CacheBody, Store, invalidate};

/// A `PURGE` request, answered by the cache itself (see `CacheLayer::purge_method`).
pub(crate) async fn answer<St, ResB, E>(
    cache: Arc<Cache<St>>,
    request: request::Parts,
) -> Result<Response<CacheBody<ResB>>, E>
where
    St: Store + ?Sized,
    ResB: Body,
{
    let allowed = cache
        .purge_token
        .as_ref()
        .is_some_and(|token| token.authorizes(&request.headers));
    let answer = if !allowed {
        super::reply::unauthorized()
    } else {
        match Target::of(&request) {
            Ok(target) => {
                let tag = invalidate::uri_tag(&target.authority, &target.path);
                let purged = cache.invalidate(Invalidation::Purge, &[&tag]).await;
                super::reply::text(http::StatusCode::OK, format!("purged {purged} entries\n"))
            }
            Err(_) => super::reply::text(http::StatusCode::BAD_REQUEST, "invalid Host\n"),
        }
    };
    let mut answer = answer.map(|body| CacheBody::buffered(body, None));
    cache.mark(answer.headers_mut(), Disposition::Bypass);
    // Answered by the cache itself: neither a hit nor forwarded.
    let status = CacheStatus {
        detail: Some("purge"),
        ..CacheStatus::default()
    };
    cache.status(answer.headers_mut(), status);
    Ok(answer)
}
