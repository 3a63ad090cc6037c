//! The subscription task of a tiered store: keeps the subscription to invalidations up, and
//! applies every invalidation another instance publishes to this instance's L1.

use futures_util::StreamExt;
use std::sync::Weak;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::message::{decode_tags, key_tag};
use super::state::{State, nanos};
use crate::StoreKey;
use crate::store::Store;

/// The pub/sub channel (under the Redis store's prefix) invalidations are published on.
pub(super) const CHANNEL: &str = "invalidations";

/// Applies an invalidation from another instance to L1.
async fn apply(shared: &State, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let mut parts = text.splitn(3, ' ');
    let (Some(from), Some(kind)) = (parts.next(), parts.next()) else {
        return;
    };
    if u64::from_str_radix(from, 16).ok() == Some(shared.instance) {
        return;
    }
    let rest = parts.next().unwrap_or("");
    // Counted as it arrives: from here, no request joins a flight that began before it, even
    // while L1 is being invalidated below.
    shared.remote.fetch_add(1, SeqCst);
    shared.note_invalidation();
    // Recorded before L1 is touched, as this instance's own invalidations are.
    match kind {
        "tags" => match decode_tags(rest) {
            Some(tags) => {
                shared.generations.record(tags.iter().copied());
                let _ = shared.l1.invalidate_tags(&tags).await;
            }
            None => {
                // Unreadable: it named something, so everything goes (safe, never stale).
                shared.generations.record_everything();
                let _ = shared.l1.clear().await;
            }
        },
        "key" => {
            if let Ok(hash) = u128::from_str_radix(rest, 16) {
                let key = StoreKey::from_u128(hash);
                shared.generations.record([key_tag(key).as_str()]);
                let _ = shared.l1.remove(key).await;
            }
        }
        "clear" => {
            shared.generations.record_everything();
            let _ = shared.l1.clear().await;
        }
        _ => {}
    }
    // And once applied: whoever sees this count sees L1 without what the message named.
    shared.applied.fetch_add(1, SeqCst);
}

/// Keeps the subscription up for as long as the store lives: on every loss, clears L1 and
/// stops using it (or, serving locally while disconnected, keeps it, and clears it once the
/// bound has passed, as nothing in it from before the loss may be served then); on every
/// (re)subscription, clears it once more and starts using it again.
pub(super) async fn subscribe(store: Weak<State>) {
    let mut backoff = Duration::from_millis(50);
    // L1 was cleared since the loss, once past the bound.
    let mut past_bound_cleared = false;
    loop {
        let (client, channel) = match store.upgrade() {
            Some(shared) => (shared.l2.client().clone(), shared.l2.channel(CHANNEL)),
            None => return,
        };
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), connected).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                {
                    let Some(shared) = store.upgrade() else {
                        return;
                    };
                    // Whatever was in L1 may have missed invalidations before this point.
                    shared.note_invalidation();
                    shared.generations.record_everything();
                    let _ = shared.l1.clear().await;
                    shared.resubscribed.fetch_add(1, SeqCst);
                    shared.subscribed.store(true, SeqCst);
                    past_bound_cleared = false;
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(shared) = store.upgrade() else {
                        return;
                    };
                    apply(&shared, message.get_payload_bytes()).await;
                }
                tracing::warn!("cache invalidation subscription lost; memory tier cleared");
            }
            Ok(Err(error)) => tracing::debug!(%error, "cannot subscribe to cache invalidations"),
            Err(_) => tracing::debug!("subscribing to cache invalidations timed out"),
        }
        {
            let Some(shared) = store.upgrade() else {
                return;
            };
            if shared.subscribed.load(SeqCst) {
                // The bound of local serving counts from here, set before L1 serves by it.
                shared.lost_at.store(shared.monotonic(), SeqCst);
                shared.note_invalidation();
                shared.subscribed.store(false, SeqCst);
            }
            // Messages may be lost while cut off: a remote invalidation.
            shared.remote.fetch_add(1, SeqCst);
            shared.generations.record_everything();
            match shared.local_bound() {
                None => {
                    let _ = shared.l1.clear().await;
                }
                Some(bound) if !past_bound_cleared => {
                    // Memory only (lookups check the bound): what L1 held from before the
                    // loss would otherwise take room from the fills made since.
                    let lost = shared.lost_at.load(SeqCst);
                    if lost != 0 && shared.monotonic() >= lost.saturating_add(nanos(bound)) {
                        let _ = shared.l1.clear().await;
                        past_bound_cleared = true;
                    }
                }
                Some(_) => {}
            }
            shared.applied.fetch_add(1, SeqCst);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
