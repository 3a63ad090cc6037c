//! The answer to a conditional or ranged request whose fetch filled the cache: the fetch asked
//! the origin for the whole, current response (so that it can be stored and shared); the
//! request's own `If-*` and `Range` fields are evaluated against that response here
//! (`semantics::conditional`), giving its client the 304, 206, 412 or 416 it asked for.

use http::header::{CONTENT_LENGTH, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};
use http::header::{IF_UNMODIFIED_SINCE, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, request};
use http_body::Body;

use crate::CacheBody;
use crate::cache::CACHE_STATUS;
use crate::semantics::conditional::{self, Evaluated};

/// The request fields that make a request conditional or ranged.
pub(crate) const CONDITIONS: [HeaderName; 6] = [
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
    RANGE,
];

/// A request's conditions, kept while its fetch asks for the whole response.
pub(crate) struct Conditions {
    method: Method,
    headers: HeaderMap,
}

impl Conditions {
    /// The request's conditions; `None` when it has none.
    pub(crate) fn of(request: &request::Parts) -> Option<Self> {
        let mut headers = HeaderMap::new();
        for name in CONDITIONS {
            for value in request.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        (!headers.is_empty()).then(|| Conditions {
            method: request.method.clone(),
            headers,
        })
    }

    /// The answer to the request, from the full `response`; the response itself when its
    /// conditions do not apply to it, or when its body cannot be cut to a range without
    /// reading it. `cache_header`: the cache's own header, kept on a 304, as `Cache-Status` is.
    pub(crate) fn answer<B>(
        &self,
        response: Response<CacheBody<B>>,
        cache_header: Option<&HeaderName>,
    ) -> Response<CacheBody<B>>
    where
        B: Body,
        B::Data: Into<bytes::Bytes>,
        B::Error: Into<crate::BoxError>,
    {
        let length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| Body::size_hint(response.body()).exact());
        let evaluated = conditional::evaluate(
            &self.method,
            &self.headers,
            response.status(),
            response.headers(),
            length,
        );
        let (mut parts, mut body) = response.into_parts();
        let body = match evaluated {
            Evaluated::Full => body,
            Evaluated::Partial {
                start,
                end_inclusive,
                ..
            } => {
                if !body.cut(start, end_inclusive) {
                    return Response::from_parts(parts, body);
                }
                body
            }
            // The body is dropped: a shared one goes on being received (and stored) for
            // the other clients.
            Evaluated::NotModified
            | Evaluated::PreconditionFailed
            | Evaluated::Unsatisfiable { .. } => CacheBody::empty(),
        };
        let marked = cache_header.and_then(|name| Some((name, parts.headers.get(name)?.clone())));
        let status: Vec<HeaderValue> = match evaluated {
            Evaluated::Full | Evaluated::Partial { .. } => Vec::new(),
            _ => parts
                .headers
                .get_all(CACHE_STATUS)
                .iter()
                .cloned()
                .collect(),
        };
        conditional::apply(&evaluated, &mut parts);
        if let Some((name, value)) = marked {
            parts.headers.insert(name.clone(), value);
        }
        for value in status {
            parts.headers.append(CACHE_STATUS, value);
        }
        Response::from_parts(parts, body)
    }
}
