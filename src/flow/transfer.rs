//! A response body on its way from the origin, shared by every client of the fill (a tee).
//!
//! The fill's task reads the origin's body ([`drive`]) and appends each frame here; each client
//! reads with a [`TransferBody`] of its own, from the first frame, at its own pace. Nobody waits
//! for anybody: the origin is read as fast as it sends, and a slow client only falls behind.
//!
//! While the body is within the policy's `max_body_bytes`, every frame is kept (the store
//! needs them all), so a client that joins late or reads slowly gets everything. Past the
//! limit the body will not be stored: the frames every client has read are dropped, at most
//! `max_body_bytes` are kept for the slowest ones, and a client that falls further behind than
//! that is cut off with an error rather than holding memory for everyone. Nobody new attaches
//! then, and when the last client goes the origin's body is dropped.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The error type of response bodies: the origin's body error, or one the cache reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body shared by the clients of one fill.
pub(crate) struct Transfer {
    state: Mutex<State>,
}

struct State {
    /// Data frames kept; `frames[0]` is frame number `first` of the body.
    frames: VecDeque<Bytes>,
    first: u64,
    /// Bytes in `frames`.
    kept: usize,
    /// Bytes received in all.
    received: u64,
    /// When the last frame came (or the transfer began).
    progressed: Instant,
    limit: usize,
    /// Every frame so far is kept: the body is still within the limit.
    keeping: bool,
    end: Option<End>,
    readers: Vec<Option<Reader>>,
    attached: usize,
    /// The fill's task, to wake when the last client leaves a body it no longer keeps.
    driver: Option<Waker>,
    /// The body's length, when the origin said it.
    length: Option<u64>,
}

#[derive(Clone)]
enum End {
    Complete(Option<HeaderMap>),
    Failed(Arc<BoxError>),
}

struct Reader {
    /// The number of the next frame this client reads.
    next: u64,
    waker: Option<Waker>,
}

/// How reading the origin's body ended.
pub(crate) enum Driven {
    /// The whole body, within the limit: one `Bytes`, and the trailers.
    Complete {
        body: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Larger than the limit: streamed to the clients, not kept.
    TooLarge,
    /// The origin's body failed; the clients got the error.
    Failed,
    /// Every client left a body too large to keep: reading stopped.
    Abandoned,
}

impl Transfer {
    /// An empty transfer that keeps up to `limit` bytes for the store, of a body of `length`
    /// bytes when the origin said so.
    pub(crate) fn new(limit: usize, length: Option<u64>) -> Arc<Self> {
        Arc::new(Transfer {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                first: 0,
                kept: 0,
                received: 0,
                progressed: Instant::now(),
                limit,
                keeping: true,
                end: None,
                readers: Vec::new(),
                attached: 0,
                driver: None,
                length,
            }),
        })
    }

    /// Whether nothing came from the origin for `wait`: neither a frame nor the end.
    pub(crate) fn stalled_for(&self, wait: Duration) -> bool {
        let state = self.lock();
        state.end.is_none() && state.progressed.elapsed() > wait
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything that could panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new client, reading from the first frame; `None` once the body is known not to be
    /// kept whole (too large) or failed: such a client could not get all of it from here.
    pub(crate) fn reader(self: &Arc<Self>) -> Option<TransferBody> {
        let mut state = self.lock();
        if !state.keeping || matches!(state.end, Some(End::Failed(_))) {
            return None;
        }
        let reader = Reader {
            next: 0,
            waker: None,
        };
        let slot = match state.readers.iter().position(Option::is_none) {
            Some(free) => {
                state.readers[free] = Some(reader);
                free
            }
            None => {
                state.readers.push(Some(reader));
                state.readers.len() - 1
            }
        };
        state.attached += 1;
        Some(TransferBody {
            transfer: Arc::clone(self),
            slot,
            skip: 0,
            take: None,
            length: state.length,
            done: false,
            released: false,
        })
    }
}

impl State {
    fn push(&mut self, data: Bytes) {
        self.received = self.received.saturating_add(data.len() as u64);
        self.progressed = Instant::now();
        self.kept += data.len();
        self.frames.push_back(data);
        if self.keeping && self.received > self.limit as u64 {
            self.keeping = false;
        }
        if !self.keeping {
            self.trim();
        }
        self.wake_readers();
    }

    /// Drops the frames every client has read, then, of those the fastest client has read,
    /// the oldest beyond the limit (a client that still needed them falls behind). Frames the
    /// fastest client has not read are never dropped: the origin waits for it (`ahead`).
    fn trim(&mut self) {
        let positions = self.readers.iter().flatten().map(|r| r.next);
        let end = self.first + self.frames.len() as u64;
        let slowest = positions.clone().min().unwrap_or(end);
        let fastest = positions.max().unwrap_or(end);
        while self.first < slowest && self.pop_front() {}
        let behind = |state: &Self| {
            let read = usize::try_from(fastest.saturating_sub(state.first)).unwrap_or(usize::MAX);
            state
                .frames
                .iter()
                .take(read)
                .map(Bytes::len)
                .sum::<usize>()
        };
        while behind(self) > self.limit && self.pop_front() {}
    }

    fn pop_front(&mut self) -> bool {
        let Some(frame) = self.frames.pop_front() else {
            return false;
        };
        self.kept -= frame.len();
        self.first += 1;
        true
    }

    fn finish(&mut self, end: End) {
        self.end = Some(end);
        self.wake_readers();
    }

    fn wake_readers(&mut self) {
        for reader in self.readers.iter_mut().flatten() {
            if let Some(waker) = reader.waker.take() {
                waker.wake();
            }
        }
    }

    /// Nobody reads a body that will not be kept: the origin's can be dropped.
    fn unwanted(&self) -> bool {
        self.attached == 0 && !self.keeping
    }

    /// A body that will not be kept is read no faster than its fastest client: the origin
    /// waits while that client has more than the limit left to read (slower clients fall
    /// behind, and are cut off once what they need is dropped).
    fn ahead(&self) -> bool {
        if self.keeping {
            return false;
        }
        let fastest = self.readers.iter().flatten().map(|r| r.next).max();
        let Some(fastest) = fastest else {
            return false;
        };
        let read = usize::try_from(fastest.saturating_sub(self.first)).unwrap_or(usize::MAX);
        let unread: usize = self.frames.iter().skip(read).map(Bytes::len).sum();
        unread > self.limit
    }

    fn wake_driver(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.wake();
        }
    }
}

/// Reads the origin's `body` into `transfer`, as fast as the origin sends it (and, past the
/// limit, as fast as the fastest client reads). Reading stops early when nobody reads a body
/// that will not be kept, or nobody reads and the cache that started it is gone (`owner`: the
/// layer's liveness). Dropped before the end, it ends the clients' copies with an error.
pub(crate) async fn drive<B>(transfer: &Transfer, body: B, owner: Weak<()>) -> Driven
where
    B: Body,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    let _unfinished = Unfinished(transfer);
    let mut body = std::pin::pin!(body);
    loop {
        let frame = std::future::poll_fn(|cx| {
            {
                let mut state = transfer.lock();
                if state.unwanted() || (state.attached == 0 && owner.strong_count() == 0) {
                    return Poll::Ready(None);
                }
                state.driver = Some(cx.waker().clone());
                if state.ahead() {
                    return Poll::Pending;
                }
            }
            body.as_mut().poll_frame(cx).map(Some)
        })
        .await;
        let Some(frame) = frame else {
            transfer
                .lock()
                .finish(End::Failed(Arc::new(TransferError::Abandoned.into())));
            return Driven::Abandoned;
        };
        let mut state = transfer.lock();
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let data: Bytes = data.into();
                    if !data.is_empty() {
                        state.push(data);
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return complete(&mut state, Some(trailers));
                    }
                }
            },
            None => return complete(&mut state, None),
            Some(Err(error)) => {
                state.finish(End::Failed(Arc::new(error.into())));
                return Driven::Failed;
            }
        }
    }
}

/// Ends the clients' copies with an error if reading stops before the end (the task was
/// cancelled: its runtime is shutting down).
struct Unfinished<'a>(&'a Transfer);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if state.end.is_none() {
            state.finish(End::Failed(Arc::new(TransferError::Abandoned.into())));
        }
    }
}

fn complete(state: &mut State, trailers: Option<HeaderMap>) -> Driven {
    state.finish(End::Complete(trailers.clone()));
    if !state.keeping {
        return Driven::TooLarge;
    }
    let body = match state.frames.len() {
        0 => Bytes::new(),
        1 => state.frames[0].clone(),
        _ => {
            let mut all = BytesMut::with_capacity(state.kept);
            for frame in &state.frames {
                all.extend_from_slice(frame);
            }
            all.freeze()
        }
    };
    Driven::Complete { body, trailers }
}

/// One client's view of a [`Transfer`]: every frame from the first, as they arrive; or, for a
/// range, the bytes `skip..skip + take`.
pub(crate) struct TransferBody {
    transfer: Arc<Transfer>,
    slot: usize,
    skip: u64,
    take: Option<u64>,
    length: Option<u64>,
    done: bool,
    /// Its reader slot was given back (at the end of its body).
    released: bool,
}

impl TransferBody {
    /// Only the bytes `start..=end` of the body (a range request's answer); no trailers.
    pub(crate) fn cut(&mut self, start: u64, end_inclusive: u64) {
        self.skip = start;
        self.take = Some(end_inclusive.saturating_sub(start).saturating_add(1));
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let transfer = Arc::clone(&self.transfer);
        let mut state = transfer.lock();
        let State {
            frames,
            first,
            readers,
            end,
            keeping,
            driver,
            ..
        } = &mut *state;
        loop {
            if self.take == Some(0) {
                return Poll::Ready(None);
            }
            let Some(reader) = readers[self.slot].as_mut() else {
                return Poll::Ready(None);
            };
            if reader.next < *first {
                return Poll::Ready(Some(Err(TransferError::FellBehind.into())));
            }
            let index = (reader.next - *first) as usize;
            if let Some(frame) = frames.get(index) {
                let mut data = frame.clone();
                reader.next += 1;
                if !*keeping {
                    // The origin may be waiting for the fastest client.
                    if let Some(driver) = driver.take() {
                        driver.wake();
                    }
                }
                if self.skip >= data.len() as u64 {
                    self.skip -= data.len() as u64;
                    continue;
                }
                data = data.slice(self.skip as usize..);
                self.skip = 0;
                if let Some(take) = &mut self.take {
                    data.truncate(usize::try_from(*take).unwrap_or(usize::MAX));
                    *take -= data.len() as u64;
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            return match end {
                None => {
                    reader.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                Some(End::Complete(trailers)) => {
                    self.done = true;
                    let trailers = trailers.clone().filter(|_| self.take.is_none());
                    Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
                }
                Some(End::Failed(error)) => {
                    Poll::Ready(Some(Err(TransferError::Origin(Arc::clone(error)).into())))
                }
            };
        }
    }
}

impl Body for TransferBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = self.next_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) && !self.released {
            self.done = true;
            self.released = true;
            self.transfer.detach(self.slot);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.take == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.take.or(self.length) {
            Some(exact) if !self.done => SizeHint::with_exact(exact),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for TransferBody {
    fn drop(&mut self) {
        // Once only: after its release the slot may be another client's.
        if !self.released {
            self.transfer.detach(self.slot);
        }
    }
}

impl Transfer {
    /// A client is done (or gone): it no longer holds frames back, and when it was the last
    /// one reading a body that will not be kept, the fill stops reading the origin's.
    fn detach(&self, slot: usize) {
        let mut state = self.lock();
        if state.readers[slot].take().is_some() {
            state.attached -= 1;
        }
        if state.unwanted() || !state.keeping {
            state.wake_driver();
        }
    }
}

impl fmt::Debug for TransferBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferBody").finish_non_exhaustive()
    }
}

/// Why a client's copy of a shared body ended early: the origin's error (shown as it is), or
/// the cache's.
#[derive(Debug)]
enum TransferError {
    /// The origin's body failed.
    Origin(Arc<BoxError>),
    /// The body was too large to keep and this client read too slowly: the part it had not
    /// read yet was dropped.
    FellBehind,
    /// Reading the origin's body stopped before its end (nobody was left to read it, or the
    /// runtime is shutting down).
    Abandoned,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The origin's own error, as it would read without the cache.
            TransferError::Origin(error) => error.fmt(f),
            TransferError::FellBehind => f.write_str(
                "this client read too slowly to keep up with a response shared by several clients",
            ),
            TransferError::Abandoned => {
                f.write_str("reading the origin's response body stopped before its end")
            }
        }
    }
}

impl std::error::Error for TransferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransferError::Origin(error) => error.source(),
            TransferError::FellBehind | TransferError::Abandoned => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::tests::Frames;
    use http_body_util::BodyExt;

    fn frames(n: usize, size: usize) -> Frames<std::io::Error> {
        Frames(
            (0..n)
                .map(|_| Ok(Frame::data(Bytes::from(vec![7u8; size]))))
                .collect(),
        )
    }

    #[tokio::test]
    async fn one_client_paces_a_body_too_large_to_keep() {
        let transfer = Transfer::new(4096, None);
        let reader = transfer.reader().unwrap();
        let driving = Arc::clone(&transfer);
        let driver =
            tokio::spawn(async move { drive(&driving, frames(1000, 1024), Weak::new()).await });
        let body = tokio::time::timeout(std::time::Duration::from_secs(10), reader.collect())
            .await
            .expect("no deadlock")
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), 1000 * 1024);
        assert!(matches!(driver.await.unwrap(), Driven::TooLarge));
    }

    /// A client that read its body to the end gives its slot back then; dropping the body
    /// later must not take the slot again from the client that has it since.
    #[tokio::test]
    async fn a_finished_body_dropped_late_leaves_the_next_reader_alone() {
        let transfer = Transfer::new(1 << 20, None);
        let first = transfer.reader().unwrap();
        drive(&transfer, frames(3, 10), Weak::new()).await;
        let mut first = first;
        while let Some(frame) = first.frame().await {
            frame.unwrap();
        }
        let second = transfer.reader().unwrap();
        drop(first);
        let body = second.collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 30, "the second client's body was cut");
    }
}
