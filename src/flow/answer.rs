//! Answering from a stored entry: its status, headers and trailers, its body shared (none
//! for `HEAD`), a current `Age`, and the cache header.

use http::Response;
use http::header::{AGE, HeaderValue};
use http_body::Body;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::cache::{Cache, Disposition};
use crate::entry::{Kind, StoredResponse};
use crate::{CacheBody, Entry};

impl<St: ?Sized> Cache<St> {
    /// The response from a stored entry: stored status, headers and trailers, shared body
    /// bytes (none for HEAD), a current `Age`, and `X-Cache` as `disposition` says. `None` for an
    /// entry that is not a response.
    pub(crate) fn answer<B: Body>(
        &self,
        entry: &Entry,
        head: bool,
        now: SystemTime,
        disposition: Disposition,
    ) -> Option<Response<CacheBody<B>>> {
        self.answer_with(entry, now, disposition, |stored| {
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
        disposition: Disposition,
        body: impl FnOnce(&StoredResponse) -> CacheBody<B>,
    ) -> Option<Response<CacheBody<B>>> {
        let Kind::Response(stored) = entry.kind() else {
            return None;
        };
        let mut response = Response::new(body(stored));
        *response.status_mut() = stored.status;
        let headers = response.headers_mut();
        *headers = stored.headers.clone();
        // Stored headers already hold `age` and the cache header (saying HIT), so these replace
        // in place and the cloned map never grows (a growth would copy every field).
        headers.insert(AGE, age_value(entry.age(now)));
        if disposition != Disposition::Hit {
            self.mark(headers, disposition);
        }
        Some(response)
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
