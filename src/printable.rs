//! Text from outside (file names, envelope and entry fields, Git's
//! messages) made safe to print on one line: a control character would let
//! a file name forge lines of `audit log` or a field name send escape
//! sequences to a terminal. Control characters, and the Unicode controls
//! that reorder text on screen (so a name could show as another), are
//! shown as Rust escapes (`\n`, `\u{1b}`, `\u{202e}`); everything else,
//! non-ASCII included, is kept.

use std::borrow::Cow;

/// `text` with every control character escaped, and the Unicode controls
/// that reorder text on screen (see [`escape_path`]).
pub fn escape(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || reorders(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path from Git (bytes) made safe to print on one line and to read
/// truly: control characters as in [`escape`], a byte that is not UTF-8
/// as `\xff`, and the Unicode controls that reorder text on screen
/// (U+202A–U+202E, U+2066–U+2069, the marks U+200E, U+200F and U+061C) as
/// `\u{202e}`, so that a name cannot show as another name.
pub fn escape_path(path: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || reorders(c) {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

fn reorders(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("secrets/é.env"), "secrets/é.env");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("x\u{202e}vne.txt"), "x\\u{202e}vne.txt");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn paths_escape_controls_reordering_and_bytes_that_are_not_utf8() {
        assert_eq!(escape_path(b"secrets/\xc3\xa9.env"), "secrets/é.env");
        assert_eq!(escape_path(b"a\nb"), "a\\nb");
        assert_eq!(escape_path(b"bad\xff.env"), "bad\\xff.env");
        assert_eq!(
            escape_path("x\u{202e}vne.txt".as_bytes()),
            "x\\u{202e}vne.txt"
        );
    }
}
