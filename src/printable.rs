//! Text from outside (file names, envelope and entry fields, Git's
//! messages) made safe to print on one line: a control character would let
//! a file name forge lines of `audit log` or a field name send escape
//! sequences to a terminal. Control characters are shown as Rust escapes
//! (`\n`, `\u{1b}`); everything else, non-ASCII included, is kept.

use std::borrow::Cow;

/// `text` with every control character escaped.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("secrets/é.env"), "secrets/é.env");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
