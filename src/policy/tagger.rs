//! [`Tagger`]: tags derived from a request and its response.

use http::{request, response};
use std::fmt;
use std::sync::Arc;

/// Derives tags from a request and its response: the tags to give a stored entry
/// ([`Policy::tag_with`](super::Policy::tag_with)) or the tags a write invalidates
/// ([`Policy::invalidate_with`](super::Policy::invalidate_with)). Any
/// `Fn(&request::Parts, &response::Parts) -> Vec<String>` is a `Tagger`; those two methods take
/// one with its parameter types inferred, and `*_with_tagger` take a type:
///
/// ```
/// use http::{request, response};
/// use tower_response_cache::{Policy, Tagger};
///
/// // A closure: no annotations needed.
/// let by_path = Policy::new().tag_with(|req, res| vec![format!("{}:{}", res.status.as_u16(), req.uri.path())]);
///
/// // A type.
/// struct ByHost;
///
/// impl Tagger for ByHost {
///     fn tags(&self, req: &request::Parts, _: &response::Parts) -> Vec<String> {
///         req.uri.host().map(|host| vec![format!("host:{host}")]).unwrap_or_default()
///     }
/// }
///
/// let by_host = Policy::new().tag_with_tagger(ByHost).invalidate_with_tagger(ByHost);
/// # let _ = (by_path, by_host);
/// ```
///
/// Tags are 1 to 256 visible ASCII characters without commas; at most 64 per entry, origin's
/// and policy's together. A stored response whose tags break these rules is not stored (an
/// entry missing a tag could outlive an invalidation meant for it); a write's invalid tags are
/// skipped with a warning.
pub trait Tagger: Send + Sync + 'static {
    /// The tags for this request and response.
    fn tags(&self, request: &request::Parts, response: &response::Parts) -> Vec<String>;
}

impl<F> Tagger for F
where
    F: Fn(&request::Parts, &response::Parts) -> Vec<String> + Send + Sync + 'static,
{
    fn tags(&self, request: &request::Parts, response: &response::Parts) -> Vec<String> {
        self(request, response)
    }
}

/// A shared tagger inside a policy.
#[derive(Clone)]
pub(crate) struct SharedTagger(pub Arc<dyn Tagger>);

impl fmt::Debug for SharedTagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tagger(..)")
    }
}
