//! The memory store's own tests: ttl, capacity, the tag index under racing puts, metrics.

use super::*;
use crate::entry::StoredResponse;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::time::{Instant, SystemTime};

fn entry(body: usize, tags: &[&str]) -> Arc<Entry> {
    response(HeaderMap::new(), Bytes::from(vec![7u8; body]), tags)
}

/// A response entry fresh for a minute.
fn response(headers: HeaderMap, body: Bytes, tags: &[&str]) -> Arc<Entry> {
    Arc::new(
        Entry::response(
            Bytes::from_static(b"key"),
            StoredResponse {
                status: StatusCode::OK,
                headers,
                body,
                trailers: None,
                shared_with_credentials: false,
                must_revalidate: false,
                immutable: false,
            },
            SystemTime::now(),
            crate::entry::Lifetime::fresh(Duration::from_secs(60)),
            0,
        )
        .with_tags(tags.iter().copied()),
    )
}

fn key(i: u64) -> StoreKey {
    StoreKey::of(&i.to_le_bytes())
}

#[tokio::test]
async fn put_get_remove() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    store
        .put(key(1), entry(10, &[]), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.get(key(1)).await.unwrap().is_some());
    assert!(store.get(key(2)).await.unwrap().is_none());
    store.remove(key(1)).await.unwrap();
    assert!(store.get(key(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn get_now_answers_without_waiting() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    assert!(matches!(store.get_now(key(1)), Some(Ok(None))));
    store
        .put(key(1), entry(10, &[]), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(store.get_now(key(1)), Some(Ok(Some(_)))));
}

#[tokio::test]
async fn entries_expire_after_their_own_ttl() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    store
        .put(key(1), entry(10, &[]), Duration::from_millis(50))
        .await
        .unwrap();
    store
        .put(key(2), entry(10, &[]), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(store.get(key(1)).await.unwrap().is_none());
    assert!(store.get(key(2)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_removed_entry_is_let_go_while_moka_still_holds_its_slot() {
    // moka drops its copies of removed values later (by epochs, in batches: under churn on
    // several threads, tens of megabytes of 64 KiB bodies); the store empties the slot as
    // soon as moka reports the removal, so the entry goes then.
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    let e = entry(10, &["t"]);
    store
        .put(key(1), Arc::clone(&e), Duration::from_secs(60))
        .await
        .unwrap();
    let slot = store.cache.get(&key(1)).await.unwrap();
    store.invalidate_tags(&["t"]).await.unwrap();
    store.run_pending_tasks().await;
    assert!(slot.entry().is_none());
    assert_eq!(Arc::strong_count(&e), 1);
}

#[tokio::test]
async fn puts_keep_the_store_near_its_capacity_between_maintenance_runs() {
    let capacity = 1 << 20;
    let store = MemoryStore::with_capacity_bytes(capacity);
    let big = u64::from(weigh(&entry(64 << 10, &[])));
    for i in 0..100 {
        store
            .put(key(i), entry(64 << 10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        let held = store.metrics().weighted_bytes;
        assert!(
            held <= capacity + capacity / 64 + big,
            "{held} after {i} puts"
        );
    }
}

#[tokio::test]
async fn capacity_is_in_bytes() {
    let store = MemoryStore::builder()
        .capacity_bytes(100_000)
        .eviction(Eviction::Lru)
        .build();
    for i in 0..100 {
        store
            .put(key(i), entry(10_000, &[]), Duration::from_secs(60))
            .await
            .unwrap();
    }
    store.run_pending_tasks().await;
    let m = store.metrics();
    assert!(m.weighted_bytes <= 100_000, "{m:?}");
    assert!(m.entries <= 10, "{m:?}");
    assert!(m.evictions >= 90, "{m:?}");
}

#[tokio::test]
async fn tags_invalidate_only_their_entries() {
    let store = MemoryStore::with_capacity_bytes(64 << 20);
    for i in 0..1000 {
        let tags: &[&str] = if i % 2 == 0 {
            &["even", "all"]
        } else {
            &["all"]
        };
        store
            .put(key(i), entry(10, tags), Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert_eq!(store.invalidate_tags(&["even"]).await.unwrap(), 500);
    assert!(store.get(key(0)).await.unwrap().is_none());
    assert!(store.get(key(1)).await.unwrap().is_some());
    assert_eq!(store.invalidate_tags(&["all", "nope"]).await.unwrap(), 500);
    store.run_pending_tasks().await;
    assert_eq!(store.tags.len(), 0);
}

#[tokio::test]
async fn replacing_an_entry_keeps_the_new_tags() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    store
        .put(key(1), entry(10, &["a", "old"]), Duration::from_secs(60))
        .await
        .unwrap();
    store
        .put(key(1), entry(10, &["a"]), Duration::from_secs(60))
        .await
        .unwrap();
    store.run_pending_tasks().await;
    assert_eq!(store.invalidate_tags(&["old"]).await.unwrap(), 0);
    assert_eq!(store.invalidate_tags(&["a"]).await.unwrap(), 1);
}

/// Two puts of one key racing (threads released by a barrier), then an invalidation of the
/// tag both carry: the entry must not survive it, whichever put won. Keyed by (tag, key)
/// alone, the index named the losing insert about 4% of the rounds and dropped the pair
/// when that insert was replaced.
#[tokio::test]
async fn racing_puts_of_one_key_stay_invalidatable_by_tag() {
    const ROUNDS: usize = 3000;
    let mut survived = 0;
    for _ in 0..ROUNDS {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let puts: Vec<_> = (0..2)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let put = store.put(key(1), entry(10, &["t"]), Duration::from_secs(60));
                    barrier.wait();
                    runtime.block_on(put).unwrap();
                })
            })
            .collect();
        for put in puts {
            put.join().unwrap();
        }
        store.run_pending_tasks().await;
        store.invalidate_tags(&["t"]).await.unwrap();
        if store.get(key(1)).await.unwrap().is_some() {
            survived += 1;
        }
    }
    assert_eq!(
        survived, 0,
        "{survived} of {ROUNDS} entries outlived their tag's invalidation"
    );
}

/// A removal reported late (the replaced insert's triples still in the index) does not
/// make an invalidation of a tag only the old insert carried remove the new one.
#[tokio::test]
async fn a_tag_only_the_replaced_insert_carried_leaves_the_new_one() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    for tags in [&["a", "old"][..], &["a"]] {
        store
            .put(key(1), entry(10, tags), Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert_eq!(store.invalidate_tags(&["old"]).await.unwrap(), 0);
    assert!(store.get(key(1)).await.unwrap().is_some());
    assert_eq!(store.invalidate_tags(&["a"]).await.unwrap(), 1);
    store.run_pending_tasks().await;
    assert_eq!(store.tags.len(), 0);
}

#[tokio::test]
async fn expired_entries_leave_the_tag_index() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    for i in 0..100 {
        store
            .put(key(i), entry(10, &["t"]), Duration::from_millis(20))
            .await
            .unwrap();
    }
    // moka's timer wheel works in ~1 s steps: expired entries leave within a few of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.tags.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.run_pending_tasks().await;
    }
    assert_eq!(store.tags.len(), 0);
}

#[tokio::test]
async fn clear_empties_everything() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    store
        .put(key(1), entry(10, &["t"]), Duration::from_secs(60))
        .await
        .unwrap();
    store
        .put(key(2), entry(10, &[]), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.clear().await.unwrap(), 2, "how many it removed");
    assert!(store.get(key(1)).await.unwrap().is_none());
    assert_eq!(store.invalidate_tags(&["t"]).await.unwrap(), 0);
    assert_eq!(store.metrics().entries, 0);
    assert_eq!(store.clear().await.unwrap(), 0);
}

#[tokio::test]
async fn metrics_count_puts_at_once_and_every_removal() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    for i in 0..3 {
        store
            .put(key(i), entry(100, &["t"]), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let m = store.metrics();
    assert_eq!(m.entries, 3, "no maintenance needed: {m:?}");
    assert_eq!(m.weighted_bytes, 3 * u64::from(weigh(&entry(100, &["t"]))));
    // Replaced, removed, invalidated.
    store
        .put(key(0), entry(100, &[]), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.metrics().entries, 3);
    store.remove(key(0)).await.unwrap();
    assert_eq!(store.metrics().entries, 2);
    store.invalidate_tags(&["t"]).await.unwrap();
    store.run_pending_tasks().await;
    assert_eq!(store.metrics(), StoreMetrics::new(0, 0, 0));
}

// The threads' hit fronts (`front.rs`).

fn front_hit(store: &MemoryStore, at: StoreKey) -> Option<Arc<Entry>> {
    match store.get_now(at) {
        Some(Ok(found)) => found,
        _ => panic!("the memory store answers at once"),
    }
}

fn entry_with_body(body: &'static [u8], tags: &[&str]) -> Arc<Entry> {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", http::HeaderValue::from_static("text/plain"));
    headers.insert("x-custom", http::HeaderValue::from_str("v").unwrap());
    response(headers, Bytes::from_static(body), tags)
}

#[tokio::test]
async fn a_second_hit_comes_from_a_private_copy_with_the_same_fields() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    let stored = entry_with_body(b"body", &[]);
    store
        .put(key(1), Arc::clone(&stored), Duration::from_secs(60))
        .await
        .unwrap();
    let first = front_hit(&store, key(1)).unwrap();
    assert!(Arc::ptr_eq(&first, &stored), "the first hit is moka's");
    let second = front_hit(&store, key(1)).unwrap();
    assert!(
        !Arc::ptr_eq(&second, &stored),
        "the second is the front's copy"
    );
    let (a, b) = (stored.stored().unwrap(), second.stored().unwrap());
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.body, b.body);
    assert_eq!(stored.key(), second.key());
    for (name, value) in &b.headers {
        let original = &a.headers[name];
        assert_ne!(
            value.as_bytes().as_ptr(),
            original.as_bytes().as_ptr(),
            "{name}"
        );
    }
    assert_eq!(
        a.body.as_ptr(),
        b.body.as_ptr(),
        "the body is shared, not copied"
    );
    assert!(store.front.held() > 0);
}

#[tokio::test]
async fn the_front_never_answers_what_was_replaced_removed_invalidated_or_cleared() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    let put = |body: &'static [u8]| {
        let store = store.clone();
        async move {
            store
                .put(
                    key(1),
                    entry_with_body(body, &["t"]),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
    };
    let body = |store: &MemoryStore| front_hit(store, key(1)).map(|e| e.body().unwrap().clone());
    put(b"one").await;
    body(&store);
    assert_eq!(body(&store).unwrap(), "one");
    put(b"two").await;
    assert_eq!(body(&store).unwrap(), "two", "replaced");
    assert_eq!(body(&store).unwrap(), "two");
    store.remove(key(1)).await.unwrap();
    assert!(body(&store).is_none(), "removed");
    put(b"three").await;
    body(&store);
    assert_eq!(body(&store).unwrap(), "three");
    store.invalidate_tags(&["t"]).await.unwrap();
    assert!(body(&store).is_none(), "invalidated");
    put(b"four").await;
    body(&store);
    assert_eq!(body(&store).unwrap(), "four");
    store.clear().await.unwrap();
    assert!(body(&store).is_none(), "cleared");
    assert_eq!(store.front.held(), 0, "and let go of");
}

#[tokio::test]
async fn the_front_lets_go_of_evicted_entries_and_stays_within_its_budget() {
    // Room for about 200 entries of 4 KiB; this thread's front holds a sixteenth of that.
    let store = MemoryStore::builder()
        .capacity_bytes(1 << 20)
        .eviction(Eviction::Lru)
        .build();
    let ttl = Duration::from_secs(60);
    for i in 0..40 {
        store.put(key(i), entry(4 << 10, &[]), ttl).await.unwrap();
        front_hit(&store, key(i));
        front_hit(&store, key(i));
        assert!(store.front.held() <= store.front.budget());
    }
    assert!(
        store.front.held() > store.front.budget() / 2,
        "the front was used"
    );
    // Least-recently-used eviction removes those first; the front is not asked meanwhile.
    for i in 40..600 {
        store.put(key(i), entry(4 << 10, &[]), ttl).await.unwrap();
    }
    store.run_pending_tasks().await;
    let live: Vec<u64> = (0..600)
        .filter(|i| store.cache.contains_key(&key(*i)))
        .collect();
    assert!(
        !live.contains(&0) && live.len() < 300,
        "moka evicted the first"
    );
    for i in 0..600 {
        assert_eq!(
            front_hit(&store, key(i)).is_some(),
            live.contains(&i),
            "key {i}: the front answers exactly what moka holds"
        );
    }
}

#[tokio::test]
async fn two_stores_never_answer_from_each_others_fronts() {
    let (a, b) = (
        MemoryStore::with_capacity_bytes(1 << 20),
        MemoryStore::with_capacity_bytes(1 << 20),
    );
    let ttl = Duration::from_secs(60);
    a.put(key(1), entry_with_body(b"a", &[]), ttl)
        .await
        .unwrap();
    b.put(key(1), entry_with_body(b"b", &[]), ttl)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(front_hit(&a, key(1)).unwrap().body().unwrap(), "a");
        assert_eq!(front_hit(&b, key(1)).unwrap().body().unwrap(), "b");
    }
    b.remove(key(1)).await.unwrap();
    assert!(front_hit(&b, key(1)).is_none());
    assert_eq!(front_hit(&a, key(1)).unwrap().body().unwrap(), "a");
}

/// Threads answering from their fronts while another replaces and invalidates: once a
/// removal returned, no thread's next lookup answers the removed entry. Random timing, many
/// rounds.
#[test]
fn no_thread_answers_from_its_front_what_an_invalidation_removed() {
    // Held as copies (a budget of 1 MiB), and as slots (a budget smaller than one entry).
    race_readers_with_removals(1 << 24);
    race_readers_with_removals(8 << 10);
}

fn race_readers_with_removals(capacity: u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::with_capacity_bytes(capacity);
    // The generation the writer last removed: readers must never see it (or older) again.
    let removed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, removed, stop) = (store.clone(), removed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Relaxed) {
                    let floor = removed.load(std::sync::atomic::Ordering::Acquire);
                    if let Some(found) = front_hit(&store, key(1)) {
                        let generation = found.tags().next().unwrap().parse::<u64>().unwrap();
                        assert!(generation > floor, "generation {generation} was removed");
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for generation in 1..=400u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let tag = generation.to_string();
        runtime.block_on(async {
            let fresh = entry(16, &[tag.as_str()]);
            store
                .put(key(1), fresh, Duration::from_secs(60))
                .await
                .unwrap();
        });
        std::thread::sleep(Duration::from_micros(seed % 300));
        runtime.block_on(async {
            match seed % 3 {
                0 => store.remove(key(1)).await.unwrap(),
                1 => {
                    store.invalidate_tags(&[tag.as_str()]).await.unwrap();
                }
                _ => {
                    store.clear().await.unwrap();
                }
            }
        });
        removed.store(generation, std::sync::atomic::Ordering::Release);
        std::thread::sleep(Duration::from_micros((seed >> 20) % 200));
    }
    stop.store(true, Relaxed);
    let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 0, "the readers saw entries at all");
}

#[tokio::test]
async fn an_entry_moka_no_longer_answers_is_let_go_of_when_touched() {
    // moka filters an entry past its time before reporting its removal; the front learns it
    // from its next look at moka.
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    store
        .put(
            key(1),
            entry_with_body(b"short", &[]),
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    front_hit(&store, key(1));
    assert!(front_hit(&store, key(1)).is_some());
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut answered = 0;
    for _ in 0..64 {
        if front_hit(&store, key(1)).is_none() {
            break;
        }
        answered += 1;
        front_hit(&store, key(2));
    }
    assert!(
        answered < 64,
        "the expired entry was answered until the end"
    );
    assert!(front_hit(&store, key(1)).is_none());
}

#[test]
fn copies_of_all_threads_share_one_budget() {
    let store = MemoryStore::with_capacity_bytes(4 << 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..64 {
            store
                .put(key(i), entry(16 << 10, &[]), Duration::from_secs(60))
                .await
                .unwrap();
        }
    });
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..64 {
                    front_hit(&store, key(i));
                    front_hit(&store, key(i));
                    assert!(store.front.held() <= store.front.budget());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(store.front.held() <= store.front.budget());
    assert_eq!(
        store.front.held(),
        0,
        "the threads ended: their copies went with them"
    );
}

#[test]
fn a_dropped_stores_ways_are_let_go_of() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (dropped, other) = (
        MemoryStore::with_capacity_bytes(16 << 20),
        MemoryStore::with_capacity_bytes(1 << 20),
    );
    runtime.block_on(async {
        for i in 0..10 {
            dropped
                .put(key(i), entry(64 << 10, &[]), Duration::from_secs(60))
                .await
                .unwrap();
        }
        other
            .put(key(1), entry(10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
    });
    for i in 0..10 {
        front_hit(&dropped, key(i));
        front_hit(&dropped, key(i));
    }
    let front = dropped.front.clone();
    assert!(front.held() > 0);
    drop(dropped);
    // This thread's lookups (of another store) sweep its whole front.
    for _ in 0..(1 << 18) + 16 {
        front_hit(&other, key(1));
    }
    assert_eq!(
        front.held(),
        0,
        "every copy of the dropped store was let go of"
    );
}
