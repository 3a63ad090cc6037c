//! The names of everything a [`RedisStore`](super::RedisStore) keeps in Redis.
//!
//! Every name starts with the store's namespace, `{prefix}:v{LAYOUT}`: `…:e:{key}` an entry,
//! `…:entries` the index of all entries, `…:t:{tag}` a tag's index, `…:inv:{tag}` and
//! `…:inv-all` invalidation markers, `…:lock:{key}` a fill lock, `…:{name}` a pub/sub channel.

use crate::StoreKey;

/// The version of the layout of the names and of the structures under them. Raised whenever
/// either changes, so that a store never misreads what a build of another layout wrote: the two
/// then share nothing (neither entries nor invalidations), and the old names expire by
/// themselves.
///
/// - 1: tag indexes are sets (no version in the names).
/// - 2: tag indexes are sorted sets scored by expiry; an index of all entries.
pub(super) const LAYOUT: u32 = 2;

/// The names under one namespace.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
    /// `{prefix}:v{LAYOUT}`.
    namespace: String,
}

impl Keys {
    pub fn new(prefix: String) -> Self {
        let namespace = format!("{prefix}:v{LAYOUT}");
        Keys { prefix, namespace }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// An entry.
    pub fn entry(&self, key: StoreKey) -> String {
        format!("{}:e:{key}", self.namespace)
    }

    /// The index of every entry (counting them).
    pub fn entries(&self) -> String {
        format!("{}:entries", self.namespace)
    }

    /// The index of the entries carrying `tag`.
    pub fn tag(&self, tag: &str) -> Vec<u8> {
        self.with_prefix(b":t:", tag)
    }

    /// When `tag` was last invalidated.
    pub fn marker(&self, tag: &str) -> Vec<u8> {
        self.with_prefix(b":inv:", tag)
    }

    /// When everything was last invalidated (a clear).
    pub fn everything(&self) -> String {
        format!("{}:inv-all", self.namespace)
    }

    /// The fill lock of an entry (cluster-wide coalescing).
    pub fn lock(&self, key: StoreKey) -> String {
        format!("{}:lock:{key}", self.namespace)
    }

    /// The pub/sub channel `name`.
    pub fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// A `SCAN MATCH` pattern for every name of a `kind` (`e`, `t`).
    pub fn pattern(&self, kind: &str) -> String {
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
            keys.everything(),
            keys.lock(key),
            keys.channel("invalidations"),
        ] {
            assert!(name.starts_with("shop*:v2:"), "{name}");
        }
        for name in [keys.tag("t"), keys.marker("t")] {
            assert!(name.starts_with(b"shop*:v2:"));
        }
        assert_eq!(keys.pattern("e"), "shop\\*:v2:e:*");
    }
}
