//! The names of everything a [`RedisStore`](super::RedisStore) keeps in Redis.
//!
//! Every name starts with the store's prefix: `{prefix}:e:{key}` an entry, `{prefix}:t:{tag}` a
//! tag's index, `{prefix}:inv:{tag}` and `{prefix}:inv-all` invalidation markers,
//! `{prefix}:lock:{key}` a fill lock, `{prefix}:{name}` a pub/sub channel.

use crate::StoreKey;

/// Names under one prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: String) -> Self {
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// An entry.
    pub fn entry(&self, key: StoreKey) -> String {
        format!("{}:e:{key}", self.prefix)
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
        format!("{}:inv-all", self.prefix)
    }

    /// The fill lock of an entry (cluster-wide coalescing).
    pub fn lock(&self, key: StoreKey) -> String {
        format!("{}:lock:{key}", self.prefix)
    }

    /// The pub/sub channel `name`.
    pub fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// A `SCAN MATCH` pattern for every name of a `kind` (`e`, `t`).
    pub fn pattern(&self, kind: &str) -> String {
        format!("{}:{kind}:*", escape_glob(&self.prefix))
    }

    fn with_prefix(&self, kind: &[u8], name: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + kind.len() + name.len());
        key.extend_from_slice(self.prefix.as_bytes());
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
