//! The bytes of a full cache key, held inline when they are short.
//!
//! A key is built for every request that may use the cache, hit or miss, and most keys are
//! short (a host, a path, maybe a query: a few dozen bytes). Held inline, building one costs no
//! heap allocation, nor a free when the request is done; only what outlives the request (an
//! entry made on a miss, a hit-for-pass marker) needs the bytes on the heap
//! ([`KeyBytes::shared`]). A longer key moves to the heap while it is written. The bytes are
//! the same either way: stores index by their hash, and entries keep them to verify a hit.

use bytes::Bytes;

/// The longest key held inline. 110 bytes: with its length and the tag, a [`KeyBytes`] is 112
/// bytes, and a [`CacheKey`](super::CacheKey) (its 16-byte hash beside them) 128, which every
/// request context carries and moves a few times; a copy of that size costs far less than the
/// allocation and free it replaces. Longer keys are rarer (long queries, key makers' parts).
pub(crate) const INLINE: usize = 110;

/// Where a key's bytes go while it is built (see [`push_field`]).
pub(crate) trait KeySink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl KeySink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Appends a length-prefixed field, so no two different keys share bytes.
#[inline]
pub(super) fn push_field(out: &mut impl KeySink, field: &[u8]) {
    // Fields are bounded by the key limit, far below 4 GiB.
    out.put(&(field.len() as u32).to_le_bytes());
    out.put(field);
}

/// A key's bytes, as [`KeyWriter::finish`] left them.
#[derive(Clone)]
pub(crate) enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

impl KeyBytes {
    /// A copy of `full` (inline when it fits).
    #[cfg(test)]
    pub(crate) fn copy_of(full: &[u8]) -> Self {
        let mut writer = KeyWriter::with_capacity(full.len());
        writer.put(full);
        writer.finish()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Shared(bytes) => bytes,
        }
    }

    /// The bytes on the heap, for what outlives the request: an inline key is copied (one
    /// allocation, on a miss), a shared one is not.
    pub(crate) fn shared(&self) -> Bytes {
        match self {
            KeyBytes::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            KeyBytes::Shared(bytes) => bytes.clone(),
        }
    }
}

/// A key being written: inline until it outgrows [`INLINE`], then on the heap.
pub(crate) enum KeyWriter {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl KeyWriter {
    /// A writer for a key of at most about `capacity` bytes: inline if that fits, else a
    /// vector of that capacity (the key may still turn out longer, or shorter).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        if capacity <= INLINE {
            KeyWriter::Inline {
                len: 0,
                bytes: [0; INLINE],
            }
        } else {
            KeyWriter::Heap(Vec::with_capacity(capacity))
        }
    }

    /// The bytes written so far.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyWriter::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyWriter::Heap(vec) => vec,
        }
    }

    /// The key as written.
    pub(crate) fn finish(self) -> KeyBytes {
        match self {
            KeyWriter::Inline { len, bytes } => KeyBytes::Inline { len, bytes },
            KeyWriter::Heap(vec) => KeyBytes::Shared(Bytes::from(vec)),
        }
    }
}

impl KeySink for KeyWriter {
    /// Inlined whole: most pieces of a key are short and of a length known where they are
    /// put (a field's 4-byte length, a marker byte), and then copying them is a store or two.
    #[inline(always)]
    fn put(&mut self, data: &[u8]) {
        match self {
            KeyWriter::Inline { len, bytes } => {
                let start = usize::from(*len);
                let end = start + data.len();
                if end <= INLINE {
                    bytes[start..end].copy_from_slice(data);
                    // `end` is at most `INLINE`, below 256.
                    *len = end as u8;
                } else {
                    self.spill(data);
                }
            }
            KeyWriter::Heap(vec) => vec.extend_from_slice(data),
        }
    }
}

impl KeyWriter {
    /// Moves the key to the heap, with `data` after what was written: out of line, as it is
    /// rare.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, data: &[u8]) {
        let written = self.as_slice();
        let mut heap = Vec::with_capacity((written.len() + data.len()).max(2 * INLINE));
        heap.extend_from_slice(written);
        heap.extend_from_slice(data);
        *self = KeyWriter::Heap(heap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_stay_inline_and_long_ones_move_to_the_heap() {
        let mut writer = KeyWriter::with_capacity(8);
        let mut expected = Vec::new();
        for i in 0..=u8::MAX {
            let piece = [i; 3];
            writer.put(&piece);
            expected.extend_from_slice(&piece);
            assert_eq!(writer.as_slice(), expected);
            let inline = matches!(writer, KeyWriter::Inline { .. });
            assert_eq!(inline, expected.len() <= INLINE, "{}", expected.len());
        }
        let full = writer.finish();
        assert_eq!(full.as_slice(), expected);
        assert_eq!(full.shared(), expected);
        assert!(matches!(
            KeyBytes::copy_of(&expected[..INLINE]),
            KeyBytes::Inline { .. }
        ));
        assert!(matches!(
            KeyBytes::copy_of(&expected[..=INLINE]),
            KeyBytes::Shared(_)
        ));
    }

    #[test]
    fn a_cache_key_stays_small() {
        // What every request context carries: see `INLINE`.
        assert!(std::mem::size_of::<KeyBytes>() <= 112);
        assert!(std::mem::size_of::<super::super::CacheKey>() <= 128);
        assert!(std::mem::size_of::<Option<super::super::CacheKey>>() <= 128);
    }
}
