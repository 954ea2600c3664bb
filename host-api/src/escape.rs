//! The one escaping rule for every log line Mayfly writes.
//!
//! Much of what is logged comes from guests (their output, their log
//! messages, their trap messages) or from clients, so every such text goes
//! through [`escape`] (or [`escape_capped`]) before it reaches a log line,
//! in both log formats: control characters become `\n`, `\r`, `\t` or
//! `\u{1b}`, and so do the Unicode characters that break or reorder a line
//! (line and paragraph separators, bidi overrides, embeddings, isolates and
//! marks). An escaped text is one line that reads in its true order, and
//! escaping it again changes nothing.

use std::borrow::Cow;

/// Whether `c` must be escaped.
fn tricky(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text`, escaped (see the [module](self)); borrowed when nothing needed
/// escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(tricky) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(escape_capped(text, usize::MAX))
}

/// `text`, escaped, and cut to at most `cap` bytes at a character boundary
/// (ending in `...` if cut, or in as much of it as a cap under 3 holds).
pub fn escape_capped(text: &str, cap: usize) -> String {
    let mut out = String::with_capacity(text.len().min(cap));
    // Where the text may be cut and still leave room for `...`.
    let mut cut = 0;
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ if tricky(c) => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
        if out.len() > cap {
            out.truncate(cut);
            // All of `...` unless the cap is smaller than that.
            out.push_str(&"..."[..cap.min(3)]);
            return out;
        }
        if out.len().saturating_add(3) <= cap {
            cut = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_breaks_or_reorders_a_line_survives() {
        assert!(matches!(escape("plain ü text: ok"), Cow::Borrowed(_)));
        assert_eq!(
            escape("one\nmayfly: component `admin` request 1: forged"),
            "one\\nmayfly: component `admin` request 1: forged"
        );
        assert_eq!(escape("a\r\tb"), "a\\r\\tb");
        assert_eq!(escape("\u{1b}[2Jred"), "\\u{1b}[2Jred");
        assert_eq!(escape("\u{7f}\u{85}"), "\\u{7f}\\u{85}");
        assert_eq!(
            escape("a\u{2028}b\u{2029}c\u{202e}d\u{2066}e\u{200f}"),
            "a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2066}e\\u{200f}"
        );
        // Escaping is idempotent: an escaped text has nothing left to escape.
        let once = escape("x\ny\u{202e}").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn capped_text_is_cut_at_a_character_boundary() {
        assert_eq!(escape_capped("plain ü text", 100), "plain ü text");
        assert_eq!(
            escape_capped("a\nforged line\r\u{1b}[31m\u{202e}", 100),
            "a\\nforged line\\r\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(escape_capped("abcdefghij", 10), "abcdefghij");
        assert_eq!(escape_capped("abcdefghijk", 10), "abcdefg...");
        assert_eq!(escape_capped("\n\n\n\n\n\n", 10), "\\n\\n\\n...");
        assert!(escape_capped(&"é".repeat(100), 11).len() <= 11);
    }
}
