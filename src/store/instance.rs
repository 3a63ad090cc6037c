//! Telling store instances apart across processes and machines.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

/// An id for a store instance, different across processes and stores: a hash of the clock,
/// the process id and a counter. Names a `TieredStore`'s own invalidation messages, and a
/// `RedisStore`'s fill claims and uploads.
pub(crate) fn instance_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = [
        crate::entry::unix_nanos(SystemTime::now()).to_le_bytes(),
        u64::from(std::process::id()).to_le_bytes(),
        COUNTER.fetch_add(1, Relaxed).to_le_bytes(),
    ]
    .concat();
    xxhash_rust::xxh3::xxh3_64(&seed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        assert_ne!(super::instance_id(), super::instance_id());
    }
}
