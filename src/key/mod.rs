//! Cache keys: what makes two requests "the same" for the cache.
//!
//! A [`CacheKey`] is a canonical byte string built from the request parts (method class, scheme,
//! authority, path, query, and any extra parts a [`KeyMaker`] adds), plus a fixed-size 128-bit
//! [`StoreKey`] hash of it that stores index by. The full key travels with every stored entry so
//! a lookup can verify it: a hash collision is a miss, never another URL's response.

use bytes::Bytes;
use http::request;
use std::fmt;

mod builder;
mod fields;
mod full;
mod normalize;
mod read;
mod target;
mod unkeyed;
mod variant;

pub use builder::KeyBuilder;
pub(crate) use builder::QueryBody;
#[cfg(test)]
use builder::{QueryMode, method_class};
pub(crate) use fields::Fields;
use full::{KeyBytes, KeySink, KeyWriter, push_field};
pub(crate) use normalize::{normalize_authority, normalize_path};
pub(crate) use read::{KeyedQuery, KeyedTarget};
pub(crate) use target::{Target, bare_head, normalized_head, original_uri};
pub(crate) use unkeyed::Unkeyed;
pub(crate) use variant::VaryNormalizers;
pub use variant::{VaryNormalizer, token_set};

/// The fixed-size hash under which a store files an entry.
///
/// It is the 128-bit XXH3 hash of the full cache key (method, authority, path, query, and what a
/// [`KeyMaker`] added): stable across processes and machines (so a shared store can be used by
/// many instances) and cheap to compute. It is not a secret and not
/// collision-resistant against an adversary, which is why every hit is verified against the full
/// key: a crafted collision can only cause a miss.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(u128);

impl StoreKey {
    /// The hash of a full key.
    pub fn of(full_key: &[u8]) -> Self {
        StoreKey(xxhash_rust::xxh3::xxh3_128(full_key))
    }

    /// A key from its number (as [`as_u128`](Self::as_u128) gave it).
    pub fn from_u128(hash: u128) -> Self {
        StoreKey(hash)
    }

    /// The hash as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// The hash as 16 big-endian bytes (for stores that key by bytes).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({:032x})", self.0)
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A request's identity in the cache: the canonical full key and its [`StoreKey`] hash.
///
/// The full key is held inline when it is short (`key::full`): a hit builds its key without
/// touching the heap.
#[derive(Clone)]
pub(crate) struct CacheKey {
    full: KeyBytes,
    hash: StoreKey,
}

impl CacheKey {
    fn new(full: KeyWriter) -> Self {
        let hash = StoreKey::of(full.as_slice());
        CacheKey {
            full: full.finish(),
            hash,
        }
    }

    /// The key whose full bytes are `full`.
    #[cfg(test)]
    pub(crate) fn of_bytes(full: &[u8]) -> Self {
        CacheKey {
            full: KeyBytes::copy_of(full),
            hash: StoreKey::of(full),
        }
    }

    /// The fixed-size hash stores index by.
    pub(crate) fn store_key(&self) -> StoreKey {
        self.hash
    }

    /// The full canonical key (length-prefixed fields; not meant to be read by people).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.full.as_slice()
    }

    /// The full key on the heap, for an entry or a marker to keep: a copy when the key is
    /// held inline (on a miss, never on a hit).
    pub(crate) fn full(&self) -> Bytes {
        self.full.shared()
    }
}

/// Keys are equal when their bytes are, however they are held.
impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CacheKey {}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("hash", &self.hash)
            .field("full", &String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

/// Adds parts of a request to its cache key, or declines to cache it.
///
/// The base key (method class, scheme, authority, path, query) is always there; a `KeyMaker` adds
/// what else makes responses differ, such as a header, a cookie or a user id set by an auth layer,
/// and can normalise the query. Any `Fn(&request::Parts, &mut KeyBuilder)` is a `KeyMaker`, and
/// [`CacheLayer::key`](crate::CacheLayer::key) takes one with its parameter types inferred:
///
/// ```
/// use tower_response_cache::{CacheLayer, MemoryStore};
///
/// #[derive(Clone)]
/// struct UserId(u64);
///
/// let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).key(|req, key| {
///     key.sort_query().drop_query_param("utm_*").header("accept-language");
///     match req.extensions.get::<UserId>() {
///         Some(user) => {
///             key.value("user", user.0.to_string());
///         }
///         // No user: do not share anything.
///         None => {
///             key.bypass();
///         }
///     }
/// });
/// # let _ = layer;
/// ```
///
/// A key maker to reuse or name is a type, passed to
/// [`CacheLayer::key_maker`](crate::CacheLayer::key_maker):
///
/// ```
/// use http::request;
/// use tower_response_cache::{CacheLayer, KeyBuilder, KeyMaker, MemoryStore};
///
/// struct ByLanguage;
///
/// impl KeyMaker for ByLanguage {
///     fn make_key(&self, _: &request::Parts, key: &mut KeyBuilder<'_>) {
///         key.header("accept-language");
///     }
/// }
///
/// let layer: CacheLayer<MemoryStore, ByLanguage> =
///     CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).key_maker(ByLanguage);
/// # let _ = layer;
/// ```
pub trait KeyMaker: Send + Sync + 'static {
    /// Adds this maker's parts to `key`.
    fn make_key(&self, request: &request::Parts, key: &mut KeyBuilder<'_>);
}

impl<F> KeyMaker for F
where
    F: Fn(&request::Parts, &mut KeyBuilder<'_>) + Send + Sync + 'static,
{
    fn make_key(&self, request: &request::Parts, key: &mut KeyBuilder<'_>) {
        self(request, key)
    }
}

/// The default [`KeyMaker`]: the base key only, query kept as sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultKey;

impl KeyMaker for DefaultKey {
    fn make_key(&self, _: &request::Parts, _: &mut KeyBuilder<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BypassReason;
    use http::Request;

    fn key_of(req: Request<()>, maker: impl KeyMaker) -> Result<CacheKey, BypassReason> {
        let (parts, ()) = req.into_parts();
        let target = Target::of(&parts)?;
        let mut builder = KeyBuilder::new(&parts);
        maker.make_key(&parts, &mut builder);
        builder.finish(&target, Unkeyed::scan(&parts.headers), 8192)
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri)
    }

    #[test]
    fn get_and_head_share_a_key() {
        let a = key_of(get("/a?x=1").body(()).unwrap(), DefaultKey).unwrap();
        let b = key_of(Request::head("/a?x=1").body(()).unwrap(), DefaultKey).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn hosts_are_part_of_the_key() {
        let a = key_of(
            get("/").header("host", "a.example").body(()).unwrap(),
            DefaultKey,
        );
        let b = key_of(
            get("/").header("host", "b.example").body(()).unwrap(),
            DefaultKey,
        );
        let a_upper = key_of(
            get("/").header("host", "A.EXAMPLE").body(()).unwrap(),
            DefaultKey,
        );
        assert_ne!(a.clone().unwrap(), b.unwrap());
        assert_eq!(a.unwrap(), a_upper.unwrap());
    }

    #[test]
    fn good_hosts() {
        for host in [
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "127.0.0.1",
            "xn--bcher-kva.example",
        ] {
            assert!(
                key_of(get("/").header("host", host).body(()).unwrap(), DefaultKey).is_ok(),
                "{host}"
            );
        }
    }

    #[test]
    fn target_authority_and_host_must_agree() {
        let forged = key_of(
            get("http://a.example/x")
                .header("host", "b.example")
                .body(())
                .unwrap(),
            DefaultKey,
        );
        assert_eq!(forged.unwrap_err(), BypassReason::HostMismatch);
        let absolute = key_of(
            get("http://a.example/x")
                .header("host", "a.example")
                .body(())
                .unwrap(),
            DefaultKey,
        );
        let h2 = key_of(get("http://a.example/x").body(()).unwrap(), DefaultKey);
        let origin_form = key_of(
            get("/x").header("host", "a.example").body(()).unwrap(),
            DefaultKey,
        );
        assert_eq!(absolute.clone().unwrap(), h2.unwrap());
        // Scheme differs (absolute form says http), authority is a.example in both.
        assert_ne!(absolute.unwrap(), origin_form.unwrap());
    }

    #[test]
    fn spellings_of_one_target_share_a_key() {
        let canonical = key_of(
            get("/items/1")
                .header("host", "shop.example")
                .body(())
                .unwrap(),
            DefaultKey,
        )
        .unwrap();
        for (path, host) in [
            ("/items/%31", "shop.example"),
            ("/items/1", "SHOP.example:80"),
            ("/items/1", "shop.example."),
            ("/x/../items/./1", "shop.example:443"),
        ] {
            let key = key_of(get(path).header("host", host).body(()).unwrap(), DefaultKey);
            assert_eq!(key.unwrap(), canonical, "{path} {host}");
        }
        let slash = key_of(
            get("/items%2F1")
                .header("host", "shop.example")
                .body(())
                .unwrap(),
            DefaultKey,
        );
        assert_ne!(slash.unwrap(), canonical, "%2F is not a segment separator");
    }

    #[test]
    fn forwarding_headers_split_keys_only_when_present() {
        let plain = key_of(
            get("/").header("host", "a.example").body(()).unwrap(),
            DefaultKey,
        );
        let forged = key_of(
            get("/")
                .header("host", "a.example")
                .header("x-forwarded-host", "evil.example")
                .body(())
                .unwrap(),
            DefaultKey,
        );
        assert_ne!(plain.unwrap(), forged.unwrap());
    }

    #[test]
    fn odd_hosts_bypass() {
        for host in [
            "a b",
            "user@host",
            "",
            "ex ample.com:80",
            "[::1",
            "[::1]x",
            "a/b",
            "a?b",
        ] {
            let r = key_of(get("/").header("host", host).body(()).unwrap(), DefaultKey);
            assert_eq!(r.unwrap_err(), BypassReason::InvalidHost, "host {host:?}");
        }
        let two_hosts = get("/")
            .header("host", "a.example")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(
            key_of(two_hosts, DefaultKey).unwrap_err(),
            BypassReason::InvalidHost
        );
        let non_utf8 = get("/")
            .header(
                "host",
                http::HeaderValue::from_bytes(b"caf\xe9.example").unwrap(),
            )
            .body(())
            .unwrap();
        assert_eq!(
            key_of(non_utf8, DefaultKey).unwrap_err(),
            BypassReason::InvalidHost
        );
    }

    #[test]
    fn query_is_kept_by_default_and_can_be_normalised() {
        let a = key_of(get("/p?b=2&a=1").body(()).unwrap(), DefaultKey).unwrap();
        let b = key_of(get("/p?a=1&b=2").body(()).unwrap(), DefaultKey).unwrap();
        assert_ne!(a, b);
        let norm = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.sort_query()
                .drop_query_param("utm_*")
                .drop_query_param("fbclid");
        };
        let a = key_of(get("/p?b=2&utm_source=x&a=1").body(()).unwrap(), norm).unwrap();
        let b = key_of(
            get("/p?fbclid=9&a=1&b=2&utm_medium=y").body(()).unwrap(),
            norm,
        )
        .unwrap();
        assert_eq!(a, b);
        // No query and an empty query are different requests; a dropped-only query is empty.
        let none = key_of(get("/p").body(()).unwrap(), DefaultKey).unwrap();
        let empty = key_of(get("/p?").body(()).unwrap(), DefaultKey).unwrap();
        assert_ne!(none, empty);
    }

    #[test]
    fn a_dropped_parameter_cannot_cloak_another() {
        let norm = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.drop_query_param("utm_*");
        };
        let plain = key_of(get("/p?utm_x=1").body(()).unwrap(), norm).unwrap();
        let cloaked = key_of(get("/p?utm_x=1;lang=evil").body(()).unwrap(), norm).unwrap();
        assert_ne!(plain, cloaked);
        let none = key_of(get("/p?").body(()).unwrap(), norm).unwrap();
        assert_eq!(plain, none);
    }

    #[test]
    fn ignore_query() {
        let ignore = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.ignore_query();
        };
        let a = key_of(get("/p?a=1").body(()).unwrap(), ignore).unwrap();
        let b = key_of(get("/p?a=2").body(()).unwrap(), ignore).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // Path "/ab" + query "c" must differ from path "/a" + query "bc" and so on.
        let a = key_of(get("/a?bc").body(()).unwrap(), DefaultKey).unwrap();
        let b = key_of(get("/ab?c").body(()).unwrap(), DefaultKey).unwrap();
        assert_ne!(a, b);
        let v1 = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.value("ab", "c");
        };
        let v2 = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.value("a", "bc");
        };
        let a = key_of(get("/").body(()).unwrap(), v1).unwrap();
        let b = key_of(get("/").body(()).unwrap(), v2).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn headers_cookies_and_values_add_to_the_key() {
        let by_lang = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.header("Accept-Language").cookie("session");
        };
        let en = key_of(
            get("/").header("accept-language", "en").body(()).unwrap(),
            by_lang,
        )
        .unwrap();
        let fr = key_of(
            get("/").header("accept-language", "fr").body(()).unwrap(),
            by_lang,
        )
        .unwrap();
        let none = key_of(get("/").body(()).unwrap(), by_lang).unwrap();
        assert_ne!(en, fr);
        assert_ne!(en, none);
        let alice = key_of(
            get("/")
                .header("cookie", "theme=dark; session=alice")
                .body(())
                .unwrap(),
            by_lang,
        )
        .unwrap();
        let bob = key_of(
            get("/").header("cookie", "session=bob").body(()).unwrap(),
            by_lang,
        )
        .unwrap();
        assert_ne!(alice, bob);
    }

    #[test]
    fn a_query_with_thousands_of_parameters() {
        let query: Vec<String> = (0..5000).map(|i| format!("p{i}=v")).collect();
        let uri = format!("/p?{}", query.join("&"));
        let sorted = |_: &request::Parts, k: &mut KeyBuilder<'_>| {
            k.sort_query().drop_query_param("p1*");
        };
        // Larger than the key limit: a bypass, not an allocation without bound.
        assert_eq!(
            key_of(get(&uri).body(()).unwrap(), sorted).unwrap_err(),
            BypassReason::KeyTooLarge
        );
        let (parts, ()) = get(&uri).body(()).unwrap().into_parts();
        let target = Target::of(&parts).unwrap();
        let mut builder = KeyBuilder::new(&parts);
        sorted.make_key(&parts, &mut builder);
        assert!(builder.finish(&target, Unkeyed::default(), 1 << 20).is_ok());
    }

    #[test]
    fn maker_can_bypass() {
        let r = key_of(
            get("/").body(()).unwrap(),
            |_: &request::Parts, k: &mut KeyBuilder<'_>| {
                k.bypass();
            },
        );
        assert_eq!(r.unwrap_err(), BypassReason::KeyMaker);
    }

    #[test]
    fn store_key_is_stable() {
        // The hash is part of the storage format: it must not change between processes.
        let k = StoreKey::of(b"hello");
        assert_eq!(k, StoreKey::of(b"hello"));
        assert_eq!(k.to_string().len(), 32);
    }
}

#[cfg(test)]
mod properties;
