//! Revalidating a stored response (RFC 9111 §4.3). A fetch that had a stored response in hand
//! sent its validators (`fetch.rs`); here the origin's answer refreshes it: a `304` confirms it
//! (§4.3.4), a `200` to `HEAD` that describes it refreshes its head (§4.3.5). Either way the
//! stored body is kept, its fields are updated from the new head (§3.2), and its freshness
//! is computed anew from them.

use http::header::HeaderMap;
use http::{Response, response};
use std::sync::Arc;
use std::time::SystemTime;

use crate::bounds::CachedBody;
use crate::cache::{Cache, Disposition};
use crate::flow::answer::Served;
use crate::flow::background::Behind;
use crate::flow::coalesce::{FlightGuard, Shared};
use crate::flow::fill::Miss;
use crate::flow::persist::Complete;
use crate::flow::tally;
use crate::observe::{Outcome, StoreOp};
use crate::semantics;
use crate::{CacheBody, CacheOverride, Entry, NotStoredReason, Store, StoreKey, invalidate};

impl<St: Store + ?Sized> Cache<St> {
    /// The origin's `304` to the validators of `prior`, the stored response this fetch
    /// revalidated: `prior` with its fields updated and its freshness renewed answers the
    /// request and its waiters, and is stored again (behind the response). When the updated
    /// head may no longer be stored (it says `no-store` now...), the client still gets the
    /// confirmed body under it, and the stored response is removed.
    pub(crate) async fn revalidated<B: CachedBody>(
        self: &Arc<Self>,
        behind: &Behind,
        mut miss: Miss,
        mut update: response::Parts,
        prior: Arc<Entry>,
        overrides: CacheOverride,
        guard: Option<FlightGuard>,
    ) -> Response<CacheBody<B>> {
        let Some(stored) = prior.stored() else {
            unreachable!("only a stored response is revalidated")
        };
        let (head, forward) = (miss.request.head, miss.request.forward);
        let tagged = self.carry_tags(&mut miss, &mut update, &prior);
        let fields = self.without_placeholder(&stored.headers);
        let merged = semantics::freshened(stored.status, &fields, &update);
        let body = || match head {
            true => CacheBody::empty(),
            false => CacheBody::buffered(stored.body.clone(), stored.trailers.clone()),
        };
        // §4.3.4: a 304 whose strong validator is not the stored one does not select it.
        let selected = semantics::selects(&stored.headers, &update.headers);
        let refreshed = match (tagged, selected) {
            (Ok(()), true) => self.refreshed(&miss, &merged, &prior, overrides),
            (Err(reason), _) => Err(reason),
            (Ok(()), false) => Err(NotStoredReason::Incomplete),
        };
        let complete = match refreshed {
            Ok(complete) => complete,
            Err(reason) => {
                // Waiters ask the origin themselves: the stored response was not confirmed
                // for them (never stand it in for a failure either).
                if let Some(guard) = guard {
                    guard.publish(Shared::Pass);
                }
                // Only what the response says removes the stored one: never a reason of
                // this request's own (its spelling, its `no-store`, its credentials).
                if !selected || reason.is_unshareable() {
                    self.remove_off_path(StoreKey::of(prior.key())).await;
                }
                let mut parts = merged;
                self.mark(&mut parts.headers, Disposition::Miss);
                self.leaving(&mut parts, forward, Err(reason));
                let mut response = Response::from_parts(parts, body());
                tally::mark(&mut response, Outcome::Revalidated);
                return response;
            }
        };
        if let Some(guard) = &guard {
            guard.share(complete.shared());
        }
        let served = Served::Revalidated(forward);
        let response = self.answer(&complete.entry, head, SystemTime::now(), served);
        self.write_behind(behind, miss, complete, guard).await;
        response.unwrap_or_else(|| {
            let mut response = Response::from_parts(merged, body());
            tally::mark(&mut response, Outcome::Revalidated);
            response
        })
    }

    /// The tags of the refreshed entry: those the fill took (its URI's), the stored entry's
    /// own (the origin's and the policy's, from its first fill), and those the update names in
    /// the tag header (taken out of it, as from any response).
    fn carry_tags(
        &self,
        miss: &mut Miss,
        update: &mut response::Parts,
        prior: &Entry,
    ) -> Result<(), NotStoredReason> {
        let named = self
            .take_tag_header(update)
            .map_err(|_| NotStoredReason::Tags)?;
        let carried = prior.tags().filter(|tag| !invalidate::is_internal(tag));
        for tag in carried.map(str::to_owned).chain(named) {
            if !miss.tags.contains(&tag) {
                miss.tags.push(tag);
            }
        }
        let origin = miss.tags.iter().filter(|t| !invalidate::is_internal(t));
        if origin.count() > invalidate::MAX_TAGS {
            return Err(NotStoredReason::Tags);
        }
        Ok(())
    }

    /// A `200` answer to a `HEAD` request that went forward with `prior` in hand (§4.3.5): if
    /// it describes `prior` (the same strong validator, the same length), its fields refresh
    /// it; if it shows `prior` is out of date, `prior` is removed; if it lacks what would
    /// tell (a server may leave out `ETag` or `Content-Length` on `HEAD`, RFC 9110 §9.3.2),
    /// `prior` is left as it is. The client gets the origin's answer.
    pub(crate) async fn head_answered<B: CachedBody>(
        self: &Arc<Self>,
        behind: &Behind,
        mut miss: Miss,
        mut parts: response::Parts,
        body: B,
        prior: Arc<Entry>,
        overrides: CacheOverride,
    ) -> Response<CacheBody<B>> {
        let Some(stored) = prior.stored() else {
            unreachable!("only a stored response is revalidated")
        };
        let tagged = self.carry_tags(&mut miss, &mut parts, &prior);
        let matched = semantics::head_matches(&stored.headers, stored.body.len(), &parts.headers);
        let refreshed = match (matched, tagged) {
            (Some(true), Ok(())) => {
                let fields = self.without_placeholder(&stored.headers);
                let merged = semantics::freshened(stored.status, &fields, &parts);
                self.refreshed(&miss, &merged, &prior, overrides).ok()
            }
            _ => None,
        };
        self.leaving(&mut parts, miss.request.forward, Err(NotStoredReason::Head));
        match (refreshed, matched) {
            (Some(complete), _) => self.write_behind(behind, miss, complete, None).await,
            (None, Some(false)) => self.remove_off_path(StoreKey::of(prior.key())).await,
            (None, _) => {}
        }
        Response::from_parts(parts, CacheBody::origin(body))
    }

    /// `prior` under the head `merged` (its status and fields updated), if that may be stored:
    /// the entry to write.
    fn refreshed(
        &self,
        miss: &Miss,
        merged: &response::Parts,
        prior: &Entry,
        overrides: CacheOverride,
    ) -> Result<Complete, NotStoredReason> {
        let Some(stored) = prior.stored() else {
            unreachable!("only a stored response is revalidated")
        };
        let policy = self.policies.get(miss.request.policy);
        let received = self.received(miss, merged);
        let decision = semantics::decide(policy, miss.request.facts, &received, overrides)
            .inspect_err(|reason| self.not_stored(*reason))?;
        let head = self.head(miss, merged, Some(stored.body.len() as u64), decision);
        let trailers: Option<HeaderMap> = stored.trailers.clone();
        let mut complete = self.complete(miss, head, stored.body.clone(), trailers);
        complete.replaces = Some(prior.stored_at());
        Ok(complete)
    }

    /// Writes a refreshed entry behind the response (bounded like every write), tells the
    /// requests that join meanwhile whether the store kept it, and releases the fill's claim.
    async fn write_behind(
        self: &Arc<Self>,
        behind: &Behind,
        miss: Miss,
        complete: Complete,
        guard: Option<FlightGuard>,
    ) {
        let cache = Arc::clone(self);
        let writes = behind.writes.clone();
        let settling = self.unsettled.enter();
        let task = async move {
            let _settling = settling;
            match writes.try_acquire() {
                Some(_permit) => {
                    let storing = guard.and_then(FlightGuard::storing);
                    let kept = cache.write(&miss, &complete).await;
                    if let Some(storing) = storing {
                        storing.publish(if kept {
                            complete.shared()
                        } else {
                            Shared::LookAgain
                        });
                    }
                }
                None => cache.observe.dropped(),
            }
            if let Some(key) = miss.claim {
                cache.store.release_fill(key).await;
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(task);
        } else {
            task.await;
        }
    }

    /// Removes a stored response the origin no longer confirms, off the response path when
    /// there is a runtime.
    async fn remove_off_path(self: &Arc<Self>, key: StoreKey) {
        let cache = Arc::clone(self);
        let settling = self.unsettled.enter();
        let task = async move {
            let _settling = settling;
            if let Err(error) = cache.store.remove(key).await {
                cache.store_error(StoreOp::Remove, &error);
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(task);
        } else {
            task.await;
        }
    }
}
