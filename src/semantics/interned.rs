//! Header names and values made `'static` once, for the fields that repeat across responses
//! (`content-type: application/json`, `cache-control: public, max-age=60`, our `x-cache: HIT`).
//!
//! Cloning a `HeaderValue` or a custom `HeaderName` made from a buffer increments the buffer's
//! reference count, an atomic instruction, and dropping the clone decrements it: a hit answering
//! six fields pays a dozen. A static one costs nothing to clone, so a thread's private copy of
//! an entry (the memory store's hit front) takes its fields from here when it can. The table is
//! bounded: at most [`MAX_INTERNED`] strings of at most [`MAX_LEN`] bytes are ever leaked
//! (about 300 KiB), at most [`MAX_PER_FIELD`] for any one field, and only for fields whose
//! values repeat by nature; once full, fields are copied as before.

use http::header::{self, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Mutex;

/// The most strings the table ever holds.
pub(crate) const MAX_INTERNED: usize = 4096;
/// The longest string it takes.
pub(crate) const MAX_LEN: usize = 64;

/// The most values one field (or the names, together) may take in the table.
pub(crate) const MAX_PER_FIELD: usize = 256;

/// Each string interned, by its bytes; how many each field took.
#[derive(Default)]
struct Table {
    strings: HashMap<Box<[u8]>, &'static str>,
    per_field: HashMap<Box<str>, usize>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// `text`, leaked once and shared by every later call with the same text; `None` when it is
/// too long, the table is full, or `field` (a field's name, or `""` for names) has had its
/// share: no one field, however many values an origin or a client makes it take (an
/// `Access-Control-Allow-Origin` reflecting the request's `Origin`), fills the table.
fn intern(field: &str, text: &str) -> Option<&'static str> {
    if text.len() > MAX_LEN {
        return None;
    }
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = table.get_or_insert_with(Table::default);
    if let Some(found) = table.strings.get(text.as_bytes()) {
        return Some(found);
    }
    let taken = table.per_field.entry(field.into()).or_default();
    if table.strings.len() >= MAX_INTERNED || *taken >= MAX_PER_FIELD {
        return None;
    }
    *taken += 1;
    // Leaked on purpose, within the bounds above: it lives as long as the process.
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    table.strings.insert(text.as_bytes().into(), leaked);
    Some(leaked)
}

/// Whether a field's values repeat across responses (and so are worth a static copy): not
/// dates, validators, locations or identifiers, which differ from response to response and
/// would only fill the table.
fn repeats(name: &HeaderName) -> bool {
    [
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::VARY,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::X_CONTENT_TYPE_OPTIONS,
        header::X_FRAME_OPTIONS,
        header::REFERRER_POLICY,
        header::STRICT_TRANSPORT_SECURITY,
        header::ACCEPT_RANGES,
    ]
    .contains(name)
        || name == "x-cache"
}

/// A static copy of `name` (a standard name is its constant; names are few, so the table
/// takes every one it meets).
pub(crate) fn name(name: &HeaderName) -> Option<HeaderName> {
    intern("", name.as_str()).map(HeaderName::from_static)
}

/// A static copy of `value`, for a field whose values repeat; sensitive values never.
pub(crate) fn value(name: &HeaderName, value: &HeaderValue) -> Option<HeaderValue> {
    if value.is_sensitive() || !repeats(name) {
        return None;
    }
    let text = value.to_str().ok()?;
    intern(name.as_str(), text).map(HeaderValue::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeating_fields_come_back_static_and_equal() {
        let ct = HeaderValue::from_str("application/json").unwrap();
        let a = value(&header::CONTENT_TYPE, &ct).unwrap();
        let b = value(&header::CONTENT_TYPE, &ct).unwrap();
        assert_eq!(a, ct);
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr(), "one copy");
        let custom = HeaderName::from_bytes(b"x-cache").unwrap();
        assert_eq!(name(&custom).unwrap(), custom);
        assert_eq!(name(&header::CONTENT_TYPE).unwrap(), header::CONTENT_TYPE);
    }

    #[test]
    fn one_field_takes_at_most_its_share() {
        let origin = |i: usize| HeaderValue::from_str(&format!("https://o{i}.example")).unwrap();
        let name = header::ACCESS_CONTROL_ALLOW_ORIGIN;
        let taken = (0..MAX_PER_FIELD + 10)
            .filter(|i| value(&name, &origin(*i)).is_some())
            .count();
        assert!(taken <= MAX_PER_FIELD, "{taken}");
        let ct = HeaderValue::from_static("text/x-share-test");
        assert!(
            value(&header::CONTENT_TYPE, &ct).is_some(),
            "others still get theirs"
        );
    }

    #[test]
    fn dates_secrets_and_long_values_are_not_interned() {
        let date = HeaderValue::from_static("Mon, 23 Nov 2026 21:00:00 GMT");
        assert!(value(&header::DATE, &date).is_none());
        let mut secret = HeaderValue::from_static("text/plain");
        secret.set_sensitive(true);
        assert!(value(&header::CONTENT_TYPE, &secret).is_none());
        let long = HeaderValue::from_str(&"a".repeat(MAX_LEN + 1)).unwrap();
        assert!(value(&header::CONTENT_TYPE, &long).is_none());
        let opaque = HeaderValue::from_bytes(b"\xff").unwrap();
        assert!(value(&header::CONTENT_TYPE, &opaque).is_none());
    }
}
