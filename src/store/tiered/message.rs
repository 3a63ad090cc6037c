//! Invalidations on the wire between the instances of a tiered store.

use crate::StoreKey;

/// An invalidation on the wire: `<instance> key <hex>`, `<instance> tags <len>:<tag><len>:<tag>...`
/// (each tag length-prefixed: a tag may hold any character, a newline included),
/// `<instance> clear`.
pub(super) enum Message<'a> {
    Key(StoreKey),
    Tags(&'a [&'a str]),
    Clear,
}

impl Message<'_> {
    pub(super) fn encode(&self, instance: u64) -> Vec<u8> {
        match self {
            Message::Key(key) => format!("{instance:016x} key {key}").into_bytes(),
            Message::Tags(tags) => {
                let mut out = format!("{instance:016x} tags ");
                for tag in *tags {
                    out.push_str(&tag.len().to_string());
                    out.push(':');
                    out.push_str(tag);
                }
                out.into_bytes()
            }
            Message::Clear => format!("{instance:016x} clear").into_bytes(),
        }
    }
}

/// The tags of a `tags` message (`<len>:<tag>` repeated), or `None` if it is malformed.
pub(super) fn decode_tags(mut rest: &str) -> Option<Vec<&str>> {
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let tag = tail.get(..len)?;
        tags.push(tag);
        rest = &tail[len..];
    }
    Some(tags)
}

/// What a removal of `key` is recorded as, among the tags: nothing else can have this name (tags
/// are visible ASCII, internal ones start with U+0001).
pub(super) fn key_tag(key: StoreKey) -> String {
    format!("\u{0}key {key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_messages_carry_any_character() {
        let tags = [
            "plain",
            "with\nnewline",
            "\u{1}uri h/x\n\u{1}host h",
            "",
            "12:34",
        ];
        let message = Message::Tags(&tags).encode(7);
        let text = std::str::from_utf8(&message).unwrap();
        let rest = text.splitn(3, ' ').nth(2).unwrap();
        assert_eq!(decode_tags(rest).unwrap(), tags);
        for malformed in ["5:abc", "x:abc", "3abc", "2:\u{e9}x"] {
            assert_eq!(decode_tags(malformed), None, "{malformed:?}");
        }
    }
}
