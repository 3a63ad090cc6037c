//! `GET <mount>/entry?uri=URI[&body=true]`: what the store holds for a URI, one item per stored
//! object (each `Vary` variant, the variants list, a hit-for-pass marker) and per tier.

use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use std::time::SystemTime;

use crate::entry::{Kind, Staleness, unix_ms};
use crate::key::{KeyedQuery, KeyedTarget};
use crate::{CacheHandle, InspectedEntry, invalidate};

/// The most objects listed in one answer (`truncated` says when there were more).
const MAX_LISTED: usize = 1000;
/// The most bytes of one body shown.
const MAX_BODY: usize = 64 << 10;
/// The most bytes of bodies shown in one answer, all variants together.
const MAX_BODIES: usize = 1 << 20;

const USAGE: &str = "say which URI: entry?uri=URI (an absolute URI for one host, a path for \
                     every host), and body=true for the bodies\n";

/// What an `entry` request asks about.
#[derive(Debug)]
pub(super) struct Inquiry {
    /// The URI as given.
    given: String,
    uri: Uri,
    tag: String,
    body: bool,
}

impl Inquiry {
    /// The inquiry in a query string; `Err` says what is wrong with it (a `400`).
    pub(super) fn parse(query: &str) -> Result<Inquiry, String> {
        let (mut uri, mut body) = (None, false);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "uri" if uri.is_some() => return Err(format!("one uri at a time\n{USAGE}")),
                "uri" => uri = Some(value.into_owned()),
                "body" => body = value == "true" || value == "1",
                _ => return Err(format!("unknown parameter {name:?}\n{USAGE}")),
            }
        }
        let given = uri.ok_or(USAGE)?;
        let uri: Uri = given
            .parse()
            .map_err(|_| format!("not a URI: {given:?}\n"))?;
        // A host alone (`shop.example`) or a relative path reads as an authority or nothing.
        if uri.scheme().is_none() && (uri.authority().is_some() || !given.starts_with('/')) {
            return Err(format!(
                "not a URI: {given:?} (an absolute URI with its scheme, or a path from /)\n"
            ));
        }
        let tag = invalidate::uri_tag_of(&uri)
            .ok_or_else(|| format!("not a host the cache can key: {given:?}\n"))?;
        Ok(Inquiry {
            given,
            uri,
            tag,
            body,
        })
    }

    /// The answer: `{uri, variants: [...], total, truncated}`; `Err` when the store failed.
    pub(super) async fn answer(&self, handle: &CacheHandle) -> Result<Value, (StatusCode, String)> {
        let found = handle.inspect(&self.tag).await.map_err(|error| {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            (
                status,
                format!("the store could not list the entries: {error}\n"),
            )
        })?;
        // A store lists at most `MAX_INSPECTED` per tier: at the cap, there may be more.
        let mut per_tier = std::collections::BTreeMap::<&str, usize>::new();
        for f in &found {
            *per_tier.entry(f.tier).or_default() += 1;
        }
        let capped = per_tier.values().any(|&n| n >= crate::store::MAX_INSPECTED);
        let mut found: Vec<(Option<KeyedTarget<'_>>, &InspectedEntry)> = found
            .iter()
            .map(|f| (KeyedTarget::of(f.entry.key()), f))
            .filter(|(target, _)| self.covers(target.as_ref()))
            .collect();
        // Grouped by URI, each variants list before its variants; tiers in the store's order.
        found.sort_by_key(|(target, f)| {
            let target = target.map(|t| (t.authority, t.path, t.query));
            let rank = match f.entry.kind() {
                Kind::Variants(_) => 0,
                Kind::Response(_) => 1,
                Kind::Pass => 2,
            };
            (target, rank)
        });
        let total = found.len();
        let now = SystemTime::now();
        let mut budget = if self.body { MAX_BODIES } else { 0 };
        let variants: Vec<Value> = found
            .iter()
            .take(MAX_LISTED)
            .map(|(target, f)| self.describe(handle, target.as_ref(), f, now, &mut budget))
            .collect();
        Ok(json!({
            "uri": self.given,
            "variants": variants,
            "total": total,
            "truncated": total > MAX_LISTED || capped,
        }))
    }

    /// Whether an entry found under the URI's tag answers the URI's query: any query when the
    /// URI has none; else the same parameters in any order (a key maker may sort them), or a
    /// key that ignores the query.
    fn covers(&self, target: Option<&KeyedTarget<'_>>) -> bool {
        let Some(asked) = self.uri.query() else {
            return true;
        };
        match target.map(|t| t.query) {
            // A store's own entry, not in the key layout: listed rather than hidden.
            None => true,
            Some(KeyedQuery::Ignored) => true,
            Some(KeyedQuery::None) => params(asked).is_empty(),
            Some(KeyedQuery::Some(query)) => params(query) == params(asked),
        }
    }

    /// One stored object.
    fn describe(
        &self,
        handle: &CacheHandle,
        target: Option<&KeyedTarget<'_>>,
        found: &InspectedEntry,
        now: SystemTime,
        budget: &mut usize,
    ) -> Value {
        let entry = &found.entry;
        let (kind, vary) = match entry.kind() {
            Kind::Response(_) => ("response", Value::Null),
            Kind::Variants(names) => ("variants", names.iter().map(|n| n.as_str()).collect()),
            Kind::Pass => ("pass", Value::Null),
        };
        let state = match entry.staleness(now) {
            Staleness::Fresh => "fresh",
            Staleness::Revalidate => "stale-while-revalidate",
            Staleness::IfError => "stale-if-error",
            Staleness::Kept => "kept",
            Staleness::Expired => "expired",
        };
        let fresh_until = unix_ms(entry.fresh_until()) as i128;
        let ttl_s = (fresh_until - unix_ms(now) as i128).div_euclid(1000) as i64;
        let [swr, sie, keep] = entry.stale_windows().map(|d| d.as_secs());
        let (tags, internal): (Vec<&str>, Vec<&str>) =
            entry.tags().partition(|tag| !invalidate::is_internal(tag));
        let internal: Vec<&str> = internal.into_iter().map(|t| &t[1..]).collect();
        let query = match target.map(|t| t.query) {
            Some(KeyedQuery::Some(query)) => Value::from(query),
            _ => Value::Null,
        };
        let mut item = json!({
            "key": found.key.to_string(),
            "tier": found.tier,
            "kind": kind,
            "authority": target.map(|t| t.authority),
            "path": target.map(|t| t.path),
            "query": query,
            "query_ignored": target.is_some_and(|t| t.query == KeyedQuery::Ignored),
            "hidden": handle.hides(entry),
            "state": state,
            "age_s": entry.age(now),
            "ttl_s": ttl_s,
            "stale_while_revalidate_s": swr,
            "stale_if_error_s": sie,
            "keep_s": keep,
            "vary": vary,
            "tags": tags,
            "internal_tags": internal,
            "size_bytes": entry.weight(),
        });
        if let (Some(stored), Value::Object(item)) = (entry.stored(), &mut item) {
            item.insert("status".into(), stored.status.as_u16().into());
            item.insert("must_revalidate".into(), stored.must_revalidate.into());
            item.insert("immutable".into(), stored.immutable.into());
            item.insert("body_bytes".into(), stored.body.len().into());
            let headers = handle.origin_fields(&stored.headers);
            item.insert("headers".into(), fields(&headers));
            item.insert(
                "trailers".into(),
                stored.trailers.as_ref().map_or(Value::Null, fields),
            );
            if self.body {
                let limit = MAX_BODY.min(*budget);
                let shown = super::body::shown(&stored.body, limit);
                *budget -= stored.body.len().min(limit);
                item.extend(shown.map(|(name, value)| (name.to_owned(), value)));
            }
        } else if let Value::Object(item) = &mut item {
            item.insert("status".into(), Value::Null);
        }
        item
    }
}

/// A query's parameters, sorted (empty ones left out).
fn params(query: &str) -> Vec<&str> {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    params
}

/// Header fields as `[[name, value], ...]`, in order, repeated names repeated (values that are
/// not UTF-8 with the replacement character).
fn fields(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inquiries() {
        let i = Inquiry::parse("uri=http%3A%2F%2FA.example%3A80%2Fp%3Fx%3D1&body=true").unwrap();
        assert_eq!(i.uri.query(), Some("x=1"));
        assert!(i.body);
        assert_eq!(i.tag, invalidate::uri_tag("a.example", "/p"));
        let i = Inquiry::parse("uri=%2Fp").unwrap();
        assert_eq!(i.tag, invalidate::any_host_uri_tag("/p"));
        assert!(!i.body);
        for bad in [
            "",
            "uri=",
            "uri=a%20b",
            "uri=p",
            "uri=%2Fa&uri=%2Fb",
            "url=%2Fp",
        ] {
            assert!(Inquiry::parse(bad).is_err(), "{bad}");
        }
    }
}
