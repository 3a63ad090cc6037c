//! A stored body as the `entry` endpoint shows it: UTF-8 text when it is, else base64
//! (standard alphabet, padded), cut at a limit.

use serde_json::{Value, json};

/// The first `limit` bytes of `body` (fewer, to end on a whole UTF-8 character), as
/// `{"body": ..., "body_encoding": "utf-8" | "base64", "body_truncated": bool}` fields.
pub(super) fn shown(body: &[u8], limit: usize) -> [(&'static str, Value); 3] {
    let cut = &body[..body.len().min(limit)];
    let (text, encoding) = match std::str::from_utf8(cut) {
        Ok(text) => (text.to_owned(), "utf-8"),
        // Cut inside a character: the text up to it.
        Err(e) if e.error_len().is_none() && cut.len() < body.len() => (
            String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned(),
            "utf-8",
        ),
        Err(_) => (base64(cut), "base64"),
    };
    let shown_len = if encoding == "utf-8" {
        text.len()
    } else {
        cut.len()
    };
    [
        ("body", json!(text)),
        ("body_encoding", json!(encoding)),
        ("body_truncated", json!(shown_len < body.len())),
    ]
}

/// `bytes` in base64 (RFC 4648 §4), padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn text_when_it_is_text_and_cut_on_a_character() {
        let [(_, body), (_, encoding), (_, truncated)] = shown("héllo".as_bytes(), 100);
        assert_eq!(
            (body, encoding, truncated),
            (json!("héllo"), json!("utf-8"), json!(false))
        );
        // The limit falls inside `é` (2 bytes): the text before it.
        let [(_, body), (_, encoding), (_, truncated)] = shown("héllo".as_bytes(), 2);
        assert_eq!(
            (body, encoding, truncated),
            (json!("h"), json!("utf-8"), json!(true))
        );
        let [(_, body), (_, encoding), (_, truncated)] = shown(&[0, 0xff, 1], 100);
        assert_eq!(
            (body, encoding, truncated),
            (json!("AP8B"), json!("base64"), json!(false))
        );
        let [(_, body), _, (_, truncated)] = shown(&[0xff; 10], 3);
        assert_eq!((body, truncated), (json!("////"), json!(true)));
    }
}
