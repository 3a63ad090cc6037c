//! What a purge request asks for (its query string), and carrying it out through the handle.

use http::Uri;

use crate::CacheHandle;

/// What a purge request asks for.
#[derive(Debug, Default)]
pub(super) struct Orders {
    uris: Vec<Uri>,
    tags: Vec<String>,
    prefix: Option<(String, String)>,
    all: bool,
}

const USAGE: &str =
    "say what to purge: uri=URI, tag=TAG, prefix=PATH&host=AUTHORITY, or all=true\n";

/// The most URIs and tags one purge may name.
const MAX_NAMED: usize = 1000;

impl Orders {
    /// The orders in a query string; `Err` says what is wrong with it.
    pub(super) fn parse(query: &str) -> Result<Orders, String> {
        let mut orders = Orders::default();
        let mut prefix = None;
        let mut host = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "uri" => orders.uris.push(
                    value
                        .parse()
                        .map_err(|_| format!("not a URI: {value:?}\n"))?,
                ),
                "tag" if crate::invalidate::is_valid_tag(&value) => {
                    orders.tags.push(value.into_owned())
                }
                "tag" => return Err(format!("not a valid tag: {value:?}\n")),
                "prefix" if value.starts_with('/') => prefix = Some(value.into_owned()),
                "prefix" => {
                    return Err(format!("a prefix is a path, starting with /: {value:?}\n"));
                }
                "host" => host = Some(value.into_owned()),
                "all" => orders.all = value == "true" || value == "1",
                _ => return Err(format!("unknown parameter {name:?}\n{USAGE}")),
            }
        }
        if orders.uris.len() + orders.tags.len() > MAX_NAMED {
            return Err(format!("at most {MAX_NAMED} URIs and tags per request\n"));
        }
        orders.prefix = prefix.map(|p| (host.unwrap_or_default(), p));
        if orders.uris.is_empty()
            && orders.tags.is_empty()
            && orders.prefix.is_none()
            && !orders.all
        {
            return Err(USAGE.to_owned());
        }
        Ok(orders)
    }

    /// Invalidates what the orders name; returns how many entries the store removed.
    pub(super) async fn carry_out(self, handle: &CacheHandle) -> u64 {
        if self.all {
            return handle.clear().await;
        }
        let mut purged = 0;
        for uri in &self.uris {
            purged += handle.invalidate_uri(uri).await;
        }
        if !self.tags.is_empty() {
            let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
            purged += handle.invalidate_tags(&tags).await;
        }
        if let Some((host, prefix)) = &self.prefix {
            purged += handle.invalidate_prefix(host, prefix).await;
        }
        purged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        let o = Orders::parse("uri=http%3A%2F%2Fa.example%2Fx&tag=t1&tag=t2").unwrap();
        assert_eq!(o.uris.len(), 1);
        assert_eq!(o.tags, ["t1", "t2"]);
        assert!(Orders::parse("").is_err());
        assert!(Orders::parse("what=ever").is_err());
        assert!(Orders::parse("tag=a%20b").is_err());
        assert!(Orders::parse("all=true").unwrap().all);
        let o = Orders::parse("prefix=%2Fapi%2F&host=a.example").unwrap();
        assert_eq!(o.prefix, Some(("a.example".to_owned(), "/api/".to_owned())));
    }
}
