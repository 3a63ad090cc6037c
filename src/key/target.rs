//! What a request is for, in one spelling: its authority and path, normalised the same way for
//! keys and for invalidation tags.
//!
//! The normal form itself is `key::normalize`'s.
//!
//! # Spelling, and what a spelling may do
//!
//! A request spelled other than in normal form (`/items/%31`, `/a/../items/1`,
//! `Host: SHOP.example:80`) is looked up under the normal form and may be answered from it, but
//! its own response is never stored: the inner service routed the spelling it saw, and that is
//! not always the normal form's route (a static route does not match `/items/%31`; a wildcard
//! route may well match `/files/../admin`). Storing it would let one request write what another
//! spelling's users get.
//!
//! When the request target carries an authority (absolute form, HTTP/2 `:authority`) and a
//! `Host` header too, both must name the same authority; otherwise the request bypasses the
//! cache, since the app may render for either.

use http::{Uri, header, request};
use std::borrow::Cow;

use super::normalize::{normalize_authority, normalize_path};
use crate::BypassReason;

/// A request's scheme, authority, path and query as the cache keys and tags them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The target's scheme, when it names one (absolute form, HTTP/2).
    pub scheme: Option<&'a str>,
    /// The normalised authority; empty when the request names none (HTTP/1.0 without `Host`).
    pub authority: Cow<'a, str>,
    /// The normalised path.
    pub path: Cow<'a, str>,
    /// The query, as sent.
    pub query: Option<&'a str>,
    /// Whether the request spelled its authority and path in normal form.
    pub canonical: bool,
}

impl<'a> Target<'a> {
    /// The target of a request: its original URI (axum's `OriginalUri`, which nested routers
    /// leave whole while they strip their prefix from the URI) and its `Host` header.
    pub(crate) fn of(request: &'a request::Parts) -> Result<Self, BypassReason> {
        Self::with_host(request, single_host(request)?)
    }

    /// [`of`](Self::of), given the single `Host` (what `single_host` or `Fields::host` read
    /// of the request: a pass over the fields that found it spares a lookup by name).
    pub(crate) fn with_host(
        request: &'a request::Parts,
        host: Option<&'a str>,
    ) -> Result<Self, BypassReason> {
        let uri = original_uri(request);
        let scheme = uri.scheme_str();
        let (authority, authority_canonical) = match (uri.authority(), host) {
            (Some(target), Some(host)) => {
                let target_raw = target.as_str();
                let from_target = normalize_authority(target_raw, scheme)?;
                let from_host = normalize_authority(host, scheme)?;
                if from_target != from_host {
                    return Err(BypassReason::HostMismatch);
                }
                let canonical = from_target == target_raw && from_host == host;
                (from_target, canonical)
            }
            (Some(target), None) => spelled(normalize_authority(target.as_str(), scheme)?),
            (None, Some(host)) => spelled(normalize_authority(host, scheme)?),
            (None, None) => (Cow::Borrowed(""), true),
        };
        let path = normalize_path(uri.path());
        let canonical = authority_canonical && matches!(path, Cow::Borrowed(_));
        Ok(Target {
            scheme,
            authority,
            path,
            query: uri.query(),
            canonical,
        })
    }

    /// The authorities a write changed things under, normalised: the request target's when it
    /// names one (RFC 9112 §3.2.2) and the `Host`'s (apps that pick a tenant by `Host` act on
    /// that one; a client could name either directly anyway); empty when the request names
    /// none (as entries stored without one are). Nothing for a `Host` that cannot be read
    /// (nothing is cached under such a request, and an unreadable `Host` must not let a
    /// client invalidate other hosts' entries).
    pub(crate) fn written_authorities(request: &request::Parts) -> Vec<String> {
        let uri = original_uri(request);
        let Ok(host) = single_host(request) else {
            return Vec::new();
        };
        let named = [uri.authority().map(|a| a.as_str()), host];
        if named.iter().all(Option::is_none) {
            return vec![String::new()];
        }
        let mut found: Vec<String> = Vec::with_capacity(2);
        for raw in named.into_iter().flatten() {
            let Ok(authority) = normalize_authority(raw, uri.scheme_str()) else {
                return Vec::new();
            };
            if !found.iter().any(|a| *a == authority) {
                found.push(authority.into_owned());
            }
        }
        found
    }

    /// The request's URI in normal form: scheme and authority when it names them, the
    /// normalised path, the query as sent (`None` if that cannot be a URI).
    pub(crate) fn uri(&self) -> Option<Uri> {
        let path_and_query = match self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone().into_owned(),
        };
        let mut builder = Uri::builder();
        if let Some(scheme) = self.scheme {
            builder = builder.scheme(scheme).authority(&*self.authority);
        }
        builder.path_and_query(path_and_query).build().ok()
    }
}

/// A copy of a request's method, URI, version and headers (`request::Parts` is not `Clone`:
/// its extensions are left out, as they need not be cloneable cheaply).
pub(crate) fn bare_head(request: &request::Parts) -> request::Parts {
    let (mut head, ()) = http::Request::new(()).into_parts();
    head.method = request.method.clone();
    head.uri = request.uri.clone();
    head.version = request.version;
    head.headers = request.headers.clone();
    head
}

/// A copy of a request's head whose URI (and axum's `OriginalUri`) is the original URI in
/// normal form, for policies and taggers: they then see what keys and tags see, whatever the
/// spelling and whatever nested router the layer runs in. The copy as it was when the target
/// cannot be read.
pub(crate) fn normalized_head(request: &request::Parts) -> request::Parts {
    let mut head = bare_head(request);
    head.extensions = request.extensions.clone();
    if let Some(uri) = Target::of(request).ok().and_then(|t| t.uri()) {
        #[cfg(feature = "axum")]
        if head
            .extensions
            .get::<axum::extract::OriginalUri>()
            .is_some()
        {
            head.extensions
                .insert(axum::extract::OriginalUri(uri.clone()));
        }
        head.uri = uri;
    }
    head
}

fn spelled(normalized: Cow<'_, str>) -> (Cow<'_, str>, bool) {
    let canonical = matches!(normalized, Cow::Borrowed(_));
    (normalized, canonical)
}

/// The URI the request was sent with: axum's `OriginalUri` when a router set it (inside a
/// nested router the request's own URI has lost the nest's prefix), else the request's.
pub(crate) fn original_uri(request: &request::Parts) -> &Uri {
    #[cfg(feature = "axum")]
    if let Some(original) = request.extensions.get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    &request.uri
}

/// The single `Host` header as text, if any; several, or one that is not text, is refused.
fn single_host(request: &request::Parts) -> Result<Option<&str>, BypassReason> {
    let mut hosts = request.headers.get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(None);
    };
    if hosts.next().is_some() {
        return Err(BypassReason::InvalidHost);
    }
    host.to_str()
        .map(Some)
        .map_err(|_| BypassReason::InvalidHost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(req: http::Request<()>) -> Result<Target<'static>, BypassReason> {
        let (parts, ()) = req.into_parts();
        let parts: &'static request::Parts = Box::leak(Box::new(parts));
        Target::of(parts)
    }

    #[test]
    fn a_host_that_disagrees_with_the_target_bypasses() {
        let forged = http::Request::get("http://victim.example/home")
            .header("host", "attacker.example")
            .body(())
            .unwrap();
        assert_eq!(target(forged), Err(BypassReason::HostMismatch));
        let agreeing = http::Request::get("http://victim.example/home")
            .header("host", "VICTIM.example:80")
            .body(())
            .unwrap();
        let agreeing = target(agreeing).unwrap();
        assert_eq!(agreeing.authority, "victim.example");
        assert!(!agreeing.canonical, "the Host is not in normal form");
        let h2 = http::Request::get("https://victim.example/home")
            .body(())
            .unwrap();
        let h2 = target(h2).unwrap();
        assert_eq!(h2.authority, "victim.example");
        assert!(h2.canonical);
    }

    #[test]
    fn a_write_names_the_target_and_host_authorities_or_nothing() {
        let write = |uri: &str, hosts: &[&str]| {
            let mut request = http::Request::put(uri);
            for host in hosts {
                request = request.header("host", *host);
            }
            Target::written_authorities(&request.body(()).unwrap().into_parts().0)
        };
        assert_eq!(
            write("http://Victim.example/x", &["other.example"]),
            ["victim.example", "other.example"]
        );
        assert_eq!(
            write("http://a.example/x", &["A.example:80"]),
            ["a.example"]
        );
        assert_eq!(write("/x", &["Shop.Example:80"]), ["shop.example"]);
        assert!(write("/x", &["a.example", "b.example"]).is_empty());
        assert!(write("/x", &["a b"]).is_empty());
        assert!(write("http://a.example/x", &["a b"]).is_empty());
        assert_eq!(write("/x", &[]), [""]);
    }

    #[test]
    fn normalized_heads_carry_the_normal_uri() {
        let (parts, ()) = http::Request::put("/products/%34%32/./x?q=%41")
            .header("host", "shop.example")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(normalized_head(&parts).uri, "/products/42/x?q=%41");
        let (parts, ()) = http::Request::get("HTTP://Shop.Example:80/a/../b")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(normalized_head(&parts).uri, "http://shop.example/b");
    }
}
