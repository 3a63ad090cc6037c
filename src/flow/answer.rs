//! Answering from a stored entry: its status, headers and trailers, its body shared (none
//! for `HEAD`), a current `Age`, and the cache header.

use http::header::{AGE, CONTENT_LENGTH, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::cache::{Cache, Disposition};
use crate::entry::{Kind, StoredResponse};
use crate::flow::tally;
use crate::observe::Outcome;
use crate::semantics::{CacheStatus, Forward, hit_value};
use crate::{CacheBody, Entry};

/// How a stored response comes to answer a request: what `X-Cache` and `Cache-Status` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// Fresh, from the store.
    Hit,
    /// Stale, within a window that allows it (stale-while-revalidate, a request's
    /// `max-stale`); refreshed behind it.
    Stale,
    /// Stale, standing in for an origin that failed (stale-if-error).
    StaleFallback,
    /// The answer of another request's fetch, which went forward for this reason.
    Collapsed(Forward),
    /// Confirmed by the origin (`304`) after going forward for this reason.
    Revalidated(Forward),
}

impl Served {
    fn disposition(self) -> Disposition {
        match self {
            Served::Hit | Served::Collapsed(_) => Disposition::Hit,
            Served::Stale | Served::StaleFallback => Disposition::Stale,
            Served::Revalidated(_) => Disposition::Miss,
        }
    }

    fn status(self, entry: &Entry, ttl: i64) -> CacheStatus {
        let status = CacheStatus {
            ttl: Some(ttl),
            ..CacheStatus::default()
        };
        match self {
            Served::Hit | Served::Stale => CacheStatus {
                hit: true,
                ..status
            },
            Served::StaleFallback => CacheStatus {
                fwd: Some(Forward::Stale),
                detail: Some("stale-if-error"),
                ..status
            },
            Served::Collapsed(forward) => CacheStatus {
                fwd: Some(forward),
                fwd_status: entry.status().map(|s| s.as_u16()),
                collapsed: true,
                ..status
            },
            Served::Revalidated(forward) => CacheStatus {
                fwd: Some(forward),
                fwd_status: Some(304),
                stored: true,
                ..status
            },
        }
    }
}

impl<St: ?Sized> Cache<St> {
    /// The response from a stored entry: stored status, headers and trailers, shared body
    /// bytes (none for HEAD), a current `Age`, and `X-Cache` and `Cache-Status` as `served`
    /// says. `None` for an entry that is not a response.
    pub(crate) fn answer<B: Body>(
        &self,
        entry: &Entry,
        head: bool,
        now: SystemTime,
        served: Served,
    ) -> Option<Response<CacheBody<B>>> {
        self.answer_with(entry, now, served, |stored| {
            if head {
                CacheBody::empty()
            } else {
                CacheBody::buffered(stored.body.clone(), stored.trailers.clone())
            }
        })
    }

    /// [`answer`](Self::answer) with the body `body` makes.
    pub(crate) fn answer_with<B: Body>(
        &self,
        entry: &Entry,
        now: SystemTime,
        served: Served,
        body: impl FnOnce(&StoredResponse) -> CacheBody<B>,
    ) -> Option<Response<CacheBody<B>>> {
        let Kind::Response(stored) = entry.kind() else {
            return None;
        };
        let mut response = Response::new(body(stored));
        *response.status_mut() = stored.status;
        let now_ms = crate::entry::unix_ms(now);
        let (age, ttl) = (entry.age_at(now_ms), entry.ttl_at(now_ms));
        // Hits within one second share their head: a thread's private copy remembers it.
        if served == Served::Hit {
            if let Some(headers) = entry.memo().recall(self.answer_id, age, ttl) {
                *response.headers_mut() = headers;
                return Some(response);
            }
        }
        let headers = response.headers_mut();
        *headers = stored.headers.clone();
        // Stored headers already hold `age` and the cache header (saying HIT), so these replace
        // in place and the cloned map never grows (a growth would copy every field).
        headers.insert(AGE, age_value(age));
        let disposition = served.disposition();
        if disposition != Disposition::Hit {
            self.mark(headers, disposition);
        }
        if let Some(name) = &self.cache_status {
            let value = match served {
                Served::Hit | Served::Stale => hit_value(&name.hit_prefix, ttl),
                _ => served.status(entry, ttl).value(&name.name),
            };
            self.restate(headers, value);
        }
        if served == Served::Hit {
            entry.memo().remember(self.answer_id, age, ttl, headers);
        }
        match served {
            Served::StaleFallback => tally::mark(&mut response, Outcome::Stale),
            Served::Revalidated(_) => tally::mark(&mut response, Outcome::Revalidated),
            _ => {}
        }
        Some(response)
    }
}

impl<St: ?Sized> Cache<St> {
    /// A `504 Gateway Timeout` of the cache's own: nothing stored would do and the origin
    /// could not be asked (`only-if-cached`), or failed to revalidate a response that may not
    /// be served stale (RFC 9111 §5.2.2.2).
    pub(crate) fn gateway_timeout<B: Body>(
        &self,
        forward: Option<Forward>,
        detail: &'static str,
    ) -> Response<CacheBody<B>> {
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        let headers = response.headers_mut();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        self.mark(headers, Disposition::Miss);
        let status = CacheStatus {
            fwd: forward,
            detail: Some(detail),
            ..CacheStatus::default()
        };
        self.status(headers, status);
        response
    }
}

/// The `Age` header value: from a table of static values for the first hour (cloning them costs
/// nothing, not even an atomic increment), formatted beyond.
fn age_value(age: u64) -> HeaderValue {
    const TABLE: u64 = 3600;
    static AGES: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
    if age >= TABLE {
        return HeaderValue::from(age);
    }
    let ages = AGES.get_or_init(|| {
        (0..TABLE)
            // Leaked once, on purpose: 3,600 short strings (about 14 KiB) that live as long as
            // the process, like any other static.
            .map(|a| HeaderValue::from_static(Box::leak(a.to_string().into_boxed_str())))
            .collect()
    });
    ages[age as usize].clone()
}

#[cfg(test)]
mod tests {
    use super::age_value;

    #[test]
    fn age_values() {
        for age in [0, 1, 59, 3599, 3600, 1 << 40] {
            assert_eq!(age_value(age), age.to_string());
        }
    }
}
