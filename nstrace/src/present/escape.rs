//! Text that processes control (command lines, comms, paths, container and
//! netns names) made safe for a terminal: control characters, and the
//! Unicode marks that reorder or hide text, become visible `\xHH` escapes
//! as lsns writes them, so no field can colour the screen, move the cursor
//! or forge a line. JSON keeps the exact value; text goes through here.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls,
/// DEL, and the bidirectional and zero-width formatting marks.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` with every unsafe character as `\xHH` (each of its UTF-8 bytes).
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes that may not be UTF-8 (a path, an argv read raw): invalid
/// sequences as `\xHH`, the rest as [`text`].
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&text(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// At most `max` characters of `s` (escaped), ending in `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    let escaped = text(s);
    if escaped.chars().count() <= max {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_reordering_marks_are_shown_not_obeyed() {
        assert!(matches!(text("plain /run/netns/blue"), Cow::Borrowed(_)));
        assert_eq!(text("\u{1b}[31mRED\nkept alive by: FAKE\u{1b}[0m"), "\\x1b[31mRED\\x0akept alive by: FAKE\\x1b[0m");
        assert_eq!(text("a\tb\rc\u{7f}"), "a\\x09b\\x0dc\\x7f");
        // C1 (CSI) and a right-to-left override: their UTF-8 bytes.
        assert_eq!(text("x\u{9b}y\u{202e}z"), "x\\xc2\\x9by\\xe2\\x80\\xaez");
        // Other non-ASCII text is left alone.
        assert_eq!(text("café ns"), "café ns");
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(bytes(b"/tmp/\xff\xfeok\n"), "/tmp/\\xff\\xfeok\\x0a");
    }

    #[test]
    fn cut_text_says_so() {
        assert_eq!(cut("python3 -c 'print(1)'", 10), "python3 -…");
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("a\nb", 10), "a\\x0ab");
    }
}
