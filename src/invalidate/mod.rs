//! Invalidation: which entries a change covers (tags), and fill generations, so that a fill
//! that started before an invalidation can never write the old data back.
//!
//! # Tags
//!
//! Every entry carries, besides the tags the origin or the policy give it, an internal tag for
//! its URI (authority and path, whatever the query, the `Vary` variant or the key maker's extra
//! parts) and one for each of the first path prefixes. Invalidating a URI or a prefix is then a
//! tag invalidation, which the store does in O(entries carrying the tag).
//!
//! # Generations
//!
//! A counter is bumped by every invalidation, which records the new value against each tag it
//! covers (or against everything, for a clear). A fill takes a [`FillTicket`] with the counter's
//! value before it calls the origin. Before it stores, and again after, it asks whether any of
//! its entry's tags was invalidated since: if so it does not store, or removes what it stored.
//! An invalidation records before it removes, so in every interleaving either the fill sees the
//! record or the removal comes after the write. Records are kept only while a fill that started
//! before them is still running, so memory stays bounded.

use crate::key::Target;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) mod unapplied;

/// Internal tags start with a byte no user tag may contain.
const INTERNAL: char = '\u{1}';
/// How many path prefixes get a tag of their own (`/a/`, `/a/b/`, ...).
pub(crate) const PREFIX_DEPTH: usize = 8;
/// Records past this many (an unusually long fill during a flood of invalidations) collapse
/// into one "everything was invalidated" record: fills in progress then do not store.
const MAX_RECORDS: usize = 100_000;

/// The most tags one entry may carry from the origin and the policy together.
pub(crate) const MAX_TAGS: usize = 64;
/// The longest tag, in bytes.
pub(crate) const MAX_TAG_LEN: usize = 256;

/// The internal tag of a URI on one host: its normalised authority and path (see
/// `key::target` for the normal form; callers pass both normalised), the path decoded further
/// ([`tag_path`]).
pub(crate) fn uri_tag(authority: &str, path: &str) -> String {
    format!("{INTERNAL}uri {authority}{}", tag_path(path))
}

/// The internal tag of a path on every host.
pub(crate) fn any_host_uri_tag(path: &str) -> String {
    format!("{INTERNAL}any-uri {}", tag_path(path))
}

/// The internal tag of everything stored for `uri`: its authority and path normalised as keys
/// are, on that host for an absolute URI, on every host for a path alone (`/products/1`).
/// `None` when the authority cannot be read.
pub(crate) fn uri_tag_of(uri: &http::Uri) -> Option<String> {
    let path = crate::key::normalize_path(uri.path());
    Some(match uri.authority() {
        None => any_host_uri_tag(&path),
        Some(authority) => {
            let authority =
                crate::key::normalize_authority(authority.as_str(), uri.scheme_str()).ok()?;
            uri_tag(&authority, &path)
        }
    })
}

/// A normalised path decoded further for tags: every `%XX` but `%2F`, `%25` and controls
/// (when the result is UTF-8). Keys keep reserved characters as sent, since `@` and `%40` may mean
/// different things to an app (RFC 3986 §2.2); but most apps decode both the same, so a write
/// to `/users/ann%40example.com` must invalidate what `GET /users/ann@example.com` stored.
/// Invalidating a spelling too many is harmless; one too few leaves stale data.
pub(crate) fn tag_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        let decoded = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => match (hex(high), hex(low)) {
                (Some(high), Some(low)) => Some((high * 16 + low) as u8),
                _ => None,
            },
            _ => None,
        };
        match decoded {
            // Slashes and percents keep their meaning encoded; controls stay encoded so that
            // no tag carries a newline or the internal marker.
            Some(byte) if byte != b'/' && byte != b'%' && !byte.is_ascii_control() => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(path),
    }
}

/// The internal tag of a path prefix that ends with `/`, on one host.
pub(crate) fn prefix_tag(authority: &str, prefix: &str) -> String {
    format!("{INTERNAL}pre {authority}{prefix}")
}

/// The internal tag of a path prefix that ends with `/`, on every host.
pub(crate) fn any_host_prefix_tag(prefix: &str) -> String {
    format!("{INTERNAL}any-pre {prefix}")
}

/// The internal tag of everything stored for one authority.
pub(crate) fn host_tag(authority: &str) -> String {
    format!("{INTERNAL}host {authority}")
}

/// The internal tags of an entry stored for `target`: its URI and path prefixes, each on its
/// host and on every host, and its host.
pub(crate) fn implicit_tags(target: &Target<'_>) -> Vec<String> {
    let path = tag_path(&target.path);
    let (authority, path) = (&*target.authority, &*path);
    let prefixes = || {
        path.match_indices('/')
            .skip(1)
            .take(PREFIX_DEPTH)
            .map(|(i, _)| &path[..=i])
    };
    let mut tags = Vec::with_capacity(3 + 2 * prefixes().count());
    tags.push(uri_tag(authority, path));
    tags.push(any_host_uri_tag(path));
    tags.push(host_tag(authority));
    tags.extend(prefixes().map(|prefix| prefix_tag(authority, prefix)));
    tags.extend(prefixes().map(any_host_prefix_tag));
    tags
}

/// The tags that invalidate `path` (normalised) and everything below it, at `/` boundaries, on
/// `authority` (normalised), or on every host when it is `None`. `None` for the root of every
/// host: that is everything, a clear. A prefix deeper than [`PREFIX_DEPTH`] segments
/// invalidates at that depth (more than asked, never less).
pub(crate) fn prefix_tags(authority: Option<&str>, path: &str) -> Option<Vec<String>> {
    let path = tag_path(path);
    let path = &*path;
    let mut tags = Vec::with_capacity(2);
    // "/a/b" also names the URI "/a/b" itself.
    if !path.ends_with('/') {
        tags.push(match authority {
            Some(authority) => uri_tag(authority, path),
            None => any_host_uri_tag(path),
        });
    }
    let dir = &path[..=path.rfind('/').unwrap_or(0)];
    let cut = dir
        .match_indices('/')
        .nth(PREFIX_DEPTH)
        .map_or(dir.len(), |(i, _)| i + 1);
    let dir = &dir[..cut];
    tags.push(match (authority, dir) {
        // Everything on the host: the root has no prefix tag of its own.
        (Some(authority), "/") => host_tag(authority),
        (None, "/") => return None,
        (Some(authority), dir) => prefix_tag(authority, dir),
        (None, dir) => any_host_prefix_tag(dir),
    });
    Some(tags)
}

/// Whether a request method is known to be safe (RFC 9110 §9.2.1); any other is a write.
/// (A safe method with a method-override header bypasses the cache but is not a write: see
/// `key::unkeyed`.)
pub(crate) fn is_safe(method: &http::Method) -> bool {
    use http::Method;
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// The URI tag of a `Location` or `Content-Location` value when, resolved against the request
/// URI by RFC 3986 (`url`: scheme and host case, default ports, dot segments), it names the
/// same host as the request (RFC 9111 §4.4). `authority` and `path` are the request's,
/// normalised; the result is normalised the same way. Query and fragment are not part of a
/// URI tag.
pub(crate) fn location_tag(authority: &str, request_path: &str, value: &str) -> Option<String> {
    // A placeholder host for requests without one; `.invalid` can name no real host.
    let base_host = if authority.is_empty() {
        "no-host.invalid"
    } else {
        authority
    };
    let base = url::Url::parse(&format!("http://{base_host}{request_path}")).ok()?;
    let resolved = base.join(value.trim()).ok()?;
    if !matches!(resolved.scheme(), "http" | "https") {
        return None;
    }
    // Same host and port, compared in normal form (a trailing dot, a default port); a switch
    // between http and https counts as the same host (tags do not carry the scheme).
    let named = |url: &url::Url| -> Option<String> {
        let host = url.host_str()?;
        let raw = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        crate::key::normalize_authority(&raw, None)
            .ok()
            .map(|a| a.into_owned())
    };
    if named(&resolved)? != named(&base)? {
        return None;
    }
    let path = crate::key::normalize_path(resolved.path());
    Some(uri_tag(authority, &path))
}

/// Whether a tag is one of the crate's own (URI, host, prefix).
pub(crate) fn is_internal(tag: &str) -> bool {
    tag.starts_with(INTERNAL)
}

/// Whether `tag` may be used as a tag: 1 to [`MAX_TAG_LEN`] visible ASCII characters, no
/// commas or spaces (they separate tags in headers).
pub(crate) fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Why a set of tags was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadTags {
    /// More than [`MAX_TAGS`].
    TooMany,
    /// Longer than [`MAX_TAG_LEN`], or not visible ASCII.
    Invalid,
}

/// Parses a tag header (`a b, c`: comma and/or space separated); empty items are skipped.
pub(crate) fn parse_tag_header<'a>(
    values: impl Iterator<Item = &'a http::HeaderValue>,
    into: &mut Vec<String>,
) -> Result<(), BadTags> {
    for value in values {
        let text = value.to_str().map_err(|_| BadTags::Invalid)?;
        for tag in text.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            if !is_valid_tag(tag) {
                return Err(BadTags::Invalid);
            }
            if into.len() >= MAX_TAGS {
                return Err(BadTags::TooMany);
            }
            into.push(tag.to_owned());
        }
    }
    Ok(())
}

/// Fill generations (see the module docs).
#[derive(Default)]
pub(crate) struct Generations {
    state: Mutex<State>,
    /// Held shared by a fill from its last "overtaken?" check until its write is in the store,
    /// and exclusively by an invalidation while it records: so either the fill sees the record
    /// (and does not write), or its write is complete before the invalidation removes what
    /// its tags cover, and is removed with it. Without it, a write could land after the
    /// removal and be visible until the fill's own undo, after the invalidating request had
    /// already returned.
    gate: tokio::sync::RwLock<()>,
}

#[derive(Default)]
struct State {
    /// The last generation handed out.
    current: u64,
    /// Everything was invalidated at this generation (a clear, or too many records).
    everything: u64,
    /// Tag -> the generation of its last invalidation.
    tags: HashMap<Box<str>, u64>,
    /// Start generations of the fills in progress, with their counts.
    fills: BTreeMap<u64, usize>,
}

impl Generations {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a fill: the ticket remembers the generation it started at.
    pub(crate) fn begin_fill(self: &Arc<Self>) -> FillTicket {
        let mut state = self.lock();
        let started = state.current;
        *state.fills.entry(started).or_default() += 1;
        FillTicket {
            generations: Arc::clone(self),
            started,
        }
    }

    /// Waits until no fill is between its last check and the end of its write, then records an
    /// invalidation of `tags` (before the store removes anything).
    pub(crate) async fn record_when_clear<'a>(&self, tags: impl IntoIterator<Item = &'a str>) {
        let _exclusive = self.gate.write().await;
        self.record(tags);
    }

    /// Waits as [`record_when_clear`](Self::record_when_clear) does, then records that
    /// everything was invalidated.
    pub(crate) async fn record_everything_when_clear(&self) {
        let _exclusive = self.gate.write().await;
        self.record_everything();
    }

    /// A fill's right to check and write: no invalidation records while it is held.
    pub(crate) async fn writing(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Records an invalidation of `tags` (before the store removes anything).
    pub(crate) fn record<'a>(&self, tags: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        if state.fills.is_empty() {
            // No fill can be affected: nothing to remember.
            state.current += 1;
            return;
        }
        state.current += 1;
        let current = state.current;
        for tag in tags {
            state.tags.insert(tag.into(), current);
        }
        if state.tags.len() > MAX_RECORDS {
            state.everything = current;
            state.tags.clear();
        }
    }

    /// Records that everything was invalidated (a clear).
    pub(crate) fn record_everything(&self) {
        let mut state = self.lock();
        state.current += 1;
        state.everything = state.current;
        state.tags.clear();
    }

    fn end_fill(&self, started: u64) {
        let mut state = self.lock();
        if let Some(count) = state.fills.get_mut(&started) {
            *count -= 1;
            if *count == 0 {
                state.fills.remove(&started);
            }
        }
        // Records at or before the oldest running fill's start can affect no running fill.
        let oldest = state.fills.keys().next().copied();
        match oldest {
            None => state.tags.clear(),
            Some(oldest) => state.tags.retain(|_, generation| *generation > oldest),
        }
    }

    #[cfg(test)]
    fn records(&self) -> usize {
        self.lock().tags.len()
    }
}

/// A fill in progress; ends when dropped.
pub(crate) struct FillTicket {
    generations: Arc<Generations>,
    started: u64,
}

impl FillTicket {
    /// Whether any of `tags` (or everything) was invalidated since this fill started.
    pub(crate) fn overtaken<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> bool {
        let state = self.generations.lock();
        state.everything > self.started
            || tags
                .into_iter()
                .any(|tag| state.tags.get(tag).is_some_and(|g| *g > self.started))
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        self.generations.end_fill(self.started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_sees_only_later_invalidations() {
        let g = Arc::new(Generations::default());
        let early = g.begin_fill();
        g.record(["a"]);
        let late = g.begin_fill();
        assert!(early.overtaken(["a"]));
        assert!(!early.overtaken(["b"]));
        assert!(
            !late.overtaken(["a"]),
            "the invalidation came before this fill"
        );
        g.record_everything();
        assert!(late.overtaken(["z"]));
    }

    #[test]
    fn records_are_dropped_when_no_fill_needs_them() {
        let g = Arc::new(Generations::default());
        g.record(["a"]);
        assert_eq!(g.records(), 0, "no fill running: nothing kept");
        let fill = g.begin_fill();
        g.record(["a", "b"]);
        assert_eq!(g.records(), 2);
        drop(fill);
        assert_eq!(g.records(), 0);
    }

    #[test]
    fn a_flood_of_records_stays_bounded() {
        let g = Arc::new(Generations::default());
        let fill = g.begin_fill();
        for i in 0..(MAX_RECORDS + 10) {
            g.record([format!("t{i}").as_str()]);
        }
        assert!(g.records() <= MAX_RECORDS);
        assert!(fill.overtaken(["unrelated"]), "collapsed into 'everything'");
    }

    #[test]
    fn implicit_tags_cover_uri_and_prefixes() {
        let req = http::Request::get("/a/b/c?x=1")
            .header("host", "Shop.Example")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let tags = implicit_tags(&Target::of(&req).unwrap());
        assert_eq!(
            tags,
            [
                uri_tag("shop.example", "/a/b/c"),
                any_host_uri_tag("/a/b/c"),
                host_tag("shop.example"),
                prefix_tag("shop.example", "/a/"),
                prefix_tag("shop.example", "/a/b/"),
                any_host_prefix_tag("/a/"),
                any_host_prefix_tag("/a/b/"),
            ]
        );
    }

    #[test]
    fn tag_paths_decode_all_but_slashes_and_percents() {
        assert_eq!(
            tag_path("/users/ann%40example.com"),
            "/users/ann@example.com"
        );
        assert_eq!(tag_path("/caf%C3%A9"), "/caf\u{e9}");
        assert_eq!(tag_path("/a%2Fb%25c"), "/a%2Fb%25c");
        assert_eq!(tag_path("/bad%FF"), "/bad%FF", "not UTF-8: as it was");
        assert_eq!(
            tag_path("/x%0A%01host"),
            "/x%0A%01host",
            "controls stay encoded"
        );
        assert_eq!(
            uri_tag("h", "/users/ann%40example.com"),
            uri_tag("h", "/users/ann@example.com")
        );
    }

    #[test]
    fn locations() {
        let tag = |v| location_tag("shop.example", "/orders/new", v);
        assert_eq!(tag("/orders/7"), Some(uri_tag("shop.example", "/orders/7")));
        assert_eq!(
            tag("http://SHOP.example/orders/7?x#y"),
            Some(uri_tag("shop.example", "/orders/7"))
        );
        assert_eq!(
            tag("https://shop.example"),
            Some(uri_tag("shop.example", "/"))
        );
        assert_eq!(tag("7"), Some(uri_tag("shop.example", "/orders/7")));
        assert_eq!(tag("http://other.example/orders/7"), None);
        assert_eq!(tag("mailto:x@y"), None);
        // An empty reference is the request's own URI (RFC 3986 §5.2.2).
        assert_eq!(tag(""), Some(uri_tag("shop.example", "/orders/new")));
    }

    #[test]
    fn locations_are_resolved_and_normalised_like_keys() {
        let tag = |v| location_tag("shop.example", "/orders/new", v);
        let seven = Some(uri_tag("shop.example", "/orders/7"));
        for spelling in [
            "../orders/7",
            "./7",
            "/a/b/../../orders/./7",
            "HTTP://Shop.Example:80/orders/7",
            "https://shop.example:443/orders/7",
            "//shop.example/orders/7",
            "/orders/%37",
            "/orders/%2E/7",
            " /orders/7 ",
        ] {
            assert_eq!(tag(spelling), seven, "{spelling:?}");
        }
        assert_eq!(
            tag("/orders/a%2fb"),
            Some(uri_tag("shop.example", "/orders/a%2Fb"))
        );
        assert_eq!(tag("http://shop.example:8080/orders/7"), None);
        assert_eq!(tag("http://shop.example.evil/orders/7"), None);
        assert_eq!(tag("http://user@other.example/orders/7"), None);
        let ported = location_tag("shop.example:8080", "/orders/new", "/orders/7");
        assert_eq!(ported, Some(uri_tag("shop.example:8080", "/orders/7")));
        let hostless = location_tag("", "/orders/new", "7");
        assert_eq!(hostless, Some(uri_tag("", "/orders/7")));
        // An authority-form target (CONNECT) has no path: relative to the root.
        assert_eq!(
            location_tag("shop.example", "", "login"),
            Some(uri_tag("shop.example", "/login"))
        );
    }

    #[test]
    fn tag_headers() {
        let mut tags = Vec::new();
        let v = [http::HeaderValue::from_static("a b,c ,, d")];
        parse_tag_header(v.iter(), &mut tags).unwrap();
        assert_eq!(tags, ["a", "b", "c", "d"]);
        let huge = http::HeaderValue::from_str(&"x".repeat(MAX_TAG_LEN + 1)).unwrap();
        assert_eq!(
            parse_tag_header([&huge].into_iter(), &mut Vec::new()),
            Err(BadTags::Invalid)
        );
        let non_ascii = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(
            parse_tag_header([&non_ascii].into_iter(), &mut Vec::new()),
            Err(BadTags::Invalid)
        );
        let many = http::HeaderValue::from_str(
            &(0..=MAX_TAGS)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .unwrap();
        assert_eq!(
            parse_tag_header([&many].into_iter(), &mut Vec::new()),
            Err(BadTags::TooMany)
        );
    }
}
