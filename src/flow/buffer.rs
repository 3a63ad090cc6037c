//! Reading a response body into memory, up to a limit.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use std::collections::VecDeque;

use crate::{CacheBody, NotStoredReason};

/// The outcome of [`read_to_limit`].
pub(crate) enum Read<B: Body> {
    /// The whole body, within the limit.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// The body is too large or failed: here it is again, as read so far plus the rest, to be
    /// passed to the client unchanged.
    Incomplete {
        body: CacheBody<B>,
        reason: NotStoredReason,
    },
}

/// Reads `body` to its end if it fits in `limit` bytes. Memory stays within `limit` plus one
/// frame: on the first frame past the limit, reading stops and the body is handed back.
pub(crate) async fn read_to_limit<B>(body: B, limit: usize) -> Read<B>
where
    B: Body,
    B::Data: Into<Bytes>,
{
    if body.size_hint().lower() > limit as u64 {
        return Read::Incomplete {
            body: CacheBody::origin(body),
            reason: NotStoredReason::TooLarge,
        };
    }
    let mut body = Box::pin(body);
    let mut chunks = VecDeque::new();
    let mut len = 0usize;
    let trailers = loop {
        match body.as_mut().frame().await {
            None => break None,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let data: Bytes = data.into();
                    if data.is_empty() {
                        continue;
                    }
                    len = len.saturating_add(data.len());
                    chunks.push_back(data);
                    if len > limit {
                        return Read::Incomplete {
                            body: CacheBody::resumed(chunks, None, body),
                            reason: NotStoredReason::TooLarge,
                        };
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        break Some(trailers);
                    }
                }
            },
            Some(Err(error)) => {
                return Read::Incomplete {
                    body: CacheBody::resumed(chunks, Some(error), body),
                    reason: NotStoredReason::Incomplete,
                };
            }
        }
    };
    Read::Complete {
        data: concat(chunks, len),
        trailers,
    }
}

/// One `Bytes` for the whole body: the chunk itself when there is one, else one copy.
fn concat(mut chunks: VecDeque<Bytes>, len: usize) -> Bytes {
    if chunks.len() <= 1 {
        return chunks.pop_front().unwrap_or_default();
    }
    let mut all = BytesMut::with_capacity(len);
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    all.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::tests::Frames;
    use http_body::Frame;
    use http_body_util::Full;

    fn frames(chunks: &[&'static [u8]]) -> Frames<&'static str> {
        Frames(
            chunks
                .iter()
                .map(|c| Ok(Frame::data(Bytes::from_static(c))))
                .collect(),
        )
    }

    #[tokio::test]
    async fn complete_within_limit_with_trailers() {
        let mut body = frames(&[b"ab", b"", b"cd"]);
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "1".parse().unwrap());
        body.0.push_back(Ok(Frame::trailers(t)));
        match read_to_limit(body, 4).await {
            Read::Complete { data, trailers } => {
                assert_eq!(data, "abcd");
                assert_eq!(trailers.unwrap()["x-checksum"], "1");
            }
            Read::Incomplete { .. } => panic!("expected complete"),
        }
    }

    #[tokio::test]
    async fn over_the_limit_is_handed_back_whole() {
        let body = frames(&[b"abc", b"def", b"ghi"]);
        let Read::Incomplete { body, reason } = read_to_limit(body, 4).await else {
            panic!("expected incomplete")
        };
        assert_eq!(reason, NotStoredReason::TooLarge);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdefghi");
    }

    #[tokio::test]
    async fn known_length_over_limit_is_not_read() {
        let body = Full::new(Bytes::from(vec![1u8; 100]));
        let Read::Incomplete { body, reason } = read_to_limit(body, 10).await else {
            panic!("expected incomplete")
        };
        assert_eq!(reason, NotStoredReason::TooLarge);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100);
    }

    #[tokio::test]
    async fn errors_are_replayed_after_the_data() {
        let mut body = frames(&[b"ab"]);
        body.0.push_back(Err("reset"));
        let Read::Incomplete { body, reason } = read_to_limit(body, 100).await else {
            panic!("expected incomplete")
        };
        assert_eq!(reason, NotStoredReason::Incomplete);
        let mut body = std::pin::pin!(body);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap_err().to_string(),
            "reset"
        );
    }
}
