//! A stored value: the entry's encoding, sealed with an HMAC when the store has a secret.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::RedisStore;
use crate::Entry;

/// The length of a value's HMAC-SHA256.
pub(super) const MAC_LEN: usize = 32;

impl RedisStore {
    /// The HMAC of a value under `redis_key`, when the store has a secret.
    pub(super) fn mac(&self, redis_key: &str, value: &[u8]) -> Option<[u8; MAC_LEN]> {
        Some(
            self.keyed_mac(redis_key, value)?
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// The entry in a stored value, if the value verifies and decodes.
    pub(super) fn open(&self, redis_key: &str, value: Vec<u8>) -> Option<Entry> {
        let value = Bytes::from(value);
        let payload = if self.inner.secret.is_some() {
            let split = value.len().checked_sub(MAC_LEN)?;
            let (payload, tag) = (value.slice(..split), &value[split..]);
            // Constant-time comparison.
            self.keyed_mac(redis_key, &payload)?
                .verify_slice(tag)
                .ok()?;
            payload
        } else {
            value
        };
        Entry::decode(payload).ok()
    }

    /// The MAC over `redis_key`, a zero byte and `value` (the key binds a value to its place:
    /// a genuine value copied under another key does not verify).
    fn keyed_mac(&self, redis_key: &str, value: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.secret.as_deref()?).ok()?;
        mac.update(redis_key.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        Some(mac)
    }
}
