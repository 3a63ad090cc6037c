//! An entry's tags, in one allocation.

/// The tags of an entry, in one string: each tag is written as its length in decimal digits, a
/// `:`, then the tag (a netstring without its trailing comma), so a tag may contain anything.
///
/// An entry the layer stores carries at least three internal tags (see `invalidate.rs`); one
/// allocation for all of them, instead of one per tag, saves about 40 bytes a tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tags(Box<str>);

impl Tags {
    /// The iterator's tags, in its order.
    pub(crate) fn new<I, T>(tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        use std::fmt::Write;
        let mut text = String::new();
        for tag in tags {
            let tag = tag.as_ref();
            let _ = write!(text, "{}:{tag}", tag.len());
        }
        Tags(text.into_boxed_str())
    }

    /// The tags, in the order they were given.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            rest: &self.0,
            len: TagsFrom(&self.0).count(),
        }
    }

    /// The bytes held (the one allocation).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// The tags of a [`Tags`], with their count known.
pub(crate) struct Iter<'a> {
    rest: &'a str,
    len: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let mut tags = TagsFrom(self.rest);
        let tag = tags.next()?;
        self.rest = tags.0;
        self.len -= 1;
        Some(tag)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The tags written in a string, from its start.
struct TagsFrom<'a>(&'a str);

impl<'a> Iterator for TagsFrom<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (len, rest) = self.0.split_once(':')?;
        let len: usize = len.parse().expect("a length written by Tags::new");
        let (tag, rest) = rest.split_at(len);
        self.0 = rest;
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_whatever_they_contain() {
        let given = ["", "a", "1:2", "\u{1}uri x/y", "é:::", "12345678901"];
        let tags = Tags::new(given);
        assert_eq!(tags.iter().len(), given.len());
        assert_eq!(tags.iter().collect::<Vec<_>>(), given);
        let mut iter = tags.iter();
        iter.next();
        assert_eq!(iter.len(), given.len() - 1);
        assert_eq!(Tags::new::<_, &str>([]).iter().len(), 0);
        assert_eq!(Tags::default().iter().next(), None);
    }
}
