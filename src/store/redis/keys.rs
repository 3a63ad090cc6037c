//! The names of everything a [`RedisStore`](super::RedisStore) keeps in Redis.
//!
//! Every name starts with the store's namespace, `{prefix}:v{LAYOUT}`: `…:e:{key}` an entry,
//! `…:entries` the index of all entries, `…:sizes` their sizes and total,
//! `…:t:{tag}` a tag's index, `…:inv` the invalidation
//! records (a sorted set of [`record`](Keys::record) names scored by time), `…:inv-all` when
//! everything was last invalidated, `…:lock:{key}` a fill lock, `…:u:{key}:{n}` a large value
//! on its way to its entry, `…:{name}` a pub/sub channel.

use crate::StoreKey;

/// The version of the layout of the names and of the structures under them. Raised whenever
/// either changes, so that a store never misreads what a build of another layout wrote: the two
/// then share nothing (neither entries nor invalidations), and the old names expire by
/// themselves.
///
/// - 1: tag indexes are sets (no version in the names).
/// - 2: tag indexes are sorted sets scored by expiry; an index of all entries.
/// - 3: invalidations are recorded in one capped sorted set of tag hashes (`…:inv`), the
///   oldest folding into `…:inv-all`; no key per invalidated tag (`…:inv:{tag}`).
/// - 4: the size of every entry in the entries index, and their total, in a hash (`…:sizes`)
///   that every script adding or removing an entry keeps up to date: a build of layout 3
///   would add and drop entries without it, and the total would drift for good.
pub(super) const LAYOUT: u32 = 4;

/// The names under one namespace.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
    /// `{prefix}:v{LAYOUT}`.
    namespace: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Self {
        let namespace = format!("{prefix}:v{LAYOUT}");
        Keys { prefix, namespace }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// An entry.
    pub(crate) fn entry(&self, key: StoreKey) -> String {
        format!("{}:e:{key}", self.namespace)
    }

    /// The index of every entry (counting them).
    pub(crate) fn entries(&self) -> String {
        format!("{}:entries", self.namespace)
    }

    /// The sizes of the entries in the [`entries`](Self::entries) index: a hash of entry name
    /// to the byte length of its value, one field per member of the index, and the field
    /// `total` with their sum (no entry name is that short). Kept by the scripts.
    pub(crate) fn sizes(&self) -> String {
        format!("{}:sizes", self.namespace)
    }

    /// The key a Redis entry name stands for: the inverse of [`entry`](Self::entry), `None`
    /// for any other name (a member of an index that this store did not write).
    pub(crate) fn entry_key(&self, name: &[u8]) -> Option<StoreKey> {
        let hex = name
            .strip_prefix(self.namespace.as_bytes())?
            .strip_prefix(b":e:")?;
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        if hex.len() != 32 || !hex.iter().all(lower_hex) {
            return None;
        }
        let hex = std::str::from_utf8(hex).ok()?;
        u128::from_str_radix(hex, 16).ok().map(StoreKey::from_u128)
    }

    /// The index of the entries carrying `tag`.
    pub(crate) fn tag(&self, tag: &str) -> Vec<u8> {
        self.with_prefix(b":t:", tag)
    }

    /// The invalidation records: a sorted set of [`record`](Self::record) names, each scored
    /// by the time (Unix ms) its tag was last invalidated.
    pub(crate) fn records(&self) -> String {
        format!("{}:inv", self.namespace)
    }

    /// The name of `tag`'s invalidation record (a member of [`records`](Self::records), not a
    /// key): XXH3-64 (seed 0) of the tag's UTF-8 bytes, as 16 lowercase hex digits. Stable
    /// across instances, builds and languages; its size does not depend on the tag's. Two tags
    /// sharing a record only make one's invalidation refuse the other's fills too.
    pub(crate) fn record(tag: &str) -> String {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(tag.as_bytes()))
    }

    /// When everything was last invalidated: a clear, or the newest of the records folded
    /// away to keep [`records`](Self::records) within its cap.
    pub(crate) fn everything(&self) -> String {
        format!("{}:inv-all", self.namespace)
    }

    /// The fill lock of an entry (cluster-wide coalescing).
    pub(crate) fn lock(&self, key: StoreKey) -> String {
        format!("{}:lock:{key}", self.namespace)
    }

    /// Where a large value for `key` is uploaded before the put script moves it to its entry
    /// (`upload` tells concurrent uploads apart).
    pub(crate) fn upload(&self, key: StoreKey, upload: &str) -> String {
        format!("{}:u:{key}:{upload}", self.namespace)
    }

    /// The pub/sub channel `name`.
    pub(crate) fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// A `SCAN MATCH` pattern for every name of a `kind` (`e`, `t`).
    pub(crate) fn pattern(&self, kind: &str) -> String {
        format!("{}:{kind}:*", escape_glob(&self.namespace))
    }

    fn with_prefix(&self, kind: &[u8], name: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.namespace.len() + kind.len() + name.len());
        key.extend_from_slice(self.namespace.as_bytes());
        key.extend_from_slice(kind);
        key.extend_from_slice(name.as_bytes());
        key
    }
}

fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_versioned_namespace() {
        let keys = Keys::new("shop*".to_owned());
        let key = StoreKey::from_u128(0xab);
        for name in [
            keys.entry(key),
            keys.entries(),
            keys.sizes(),
            keys.everything(),
            keys.lock(key),
            keys.upload(key, "1"),
            keys.channel("invalidations"),
        ] {
            assert!(name.starts_with("shop*:v4:"), "{name}");
        }
        assert!(keys.tag("t").starts_with(b"shop*:v4:"));
        assert!(keys.records().starts_with("shop*:v4:"));
        assert_eq!(keys.pattern("e"), "shop\\*:v4:e:*");
    }

    #[test]
    fn entry_names_give_back_their_key_and_nothing_else_does() {
        let keys = Keys::new("shop".to_owned());
        let key = StoreKey::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(keys.entry_key(keys.entry(key).as_bytes()), Some(key));
        let zero = StoreKey::from_u128(0);
        assert_eq!(keys.entry_key(keys.entry(zero).as_bytes()), Some(zero));
        let other = Keys::new("other".to_owned());
        for name in [
            other.entry(key),
            keys.lock(key),
            keys.upload(key, "1"),
            keys.entries(),
            format!("shop:v3:e:{key}"),
            format!("shop:v4:e:{key}0"),
            format!("shop:v4:e:{}", &key.to_string()[1..]),
            format!("shop:v4:e:+{}", &key.to_string()[1..]),
            format!("shop:v4:e:{}", key.to_string().to_uppercase()),
            "shop:v4:e:é".to_owned(),
            String::new(),
        ] {
            assert_eq!(keys.entry_key(name.as_bytes()), None, "{name}");
        }
        assert_eq!(keys.entry_key(b"shop:v4:e:\xff\xfe"), None);
    }

    #[test]
    fn record_names_are_xxh3_64_in_hex() {
        // The reference value of XXH3-64 of the empty input, seed 0.
        assert_eq!(Keys::record(""), "2d06800538d394c2");
        let long = Keys::record(&"a".repeat(1 << 20));
        assert_eq!(long.len(), 16);
        assert_ne!(Keys::record("a"), Keys::record("b"));
    }
}
