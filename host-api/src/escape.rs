//! The one escaping rule for every log line Mayfly writes.
//!
//! Much of what is logged comes from guests (their output, their log
//! messages, their trap messages) or from clients, so every such text goes
//! through [`escape`] (or [`escape_capped`]) before it reaches a log line,
//! in both log formats: control characters become `\n`, `\r`, `\t` or
//! `\u{1b}`, and so do the Unicode characters that break or reorder a line
//! (line and paragraph separators, bidi overrides, embeddings, isolates and
//! marks) and those that hide in it (zero-width spaces and joiners, the
//! byte order mark, tag characters and every other invisible formatting
//! character, and the blank Hangul fillers). An escaped text is one line
//! that reads in its true order and shows everything it holds, and
//! escaping it again changes nothing.

use std::borrow::Cow;

/// Whether `c` must be escaped: a control character, a line or paragraph
/// separator, or a character that shows nothing (Unicode's formatting
/// characters, bidi controls among them, and the Hangul fillers).
pub fn tricky(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{00ad}'
                | '\u{061c}'
                | '\u{06dd}'
                | '\u{070f}'
                | '\u{08e2}'
                | '\u{180e}'
                | '\u{feff}'
                | '\u{110bd}'
                | '\u{110cd}'
                // Hangul fillers: letters that draw nothing.
                | '\u{115f}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{ffa0}'
        )
        || [
            '\u{0600}'..='\u{0605}',
            '\u{0890}'..='\u{0891}',
            // Zero-width space, non-joiner and joiner; the bidi marks.
            '\u{200b}'..='\u{200f}',
            // Bidi embeddings and overrides.
            '\u{202a}'..='\u{202e}',
            // Word joiner, invisible operators, bidi isolates and the
            // deprecated formatting characters.
            '\u{2060}'..='\u{2064}',
            '\u{2066}'..='\u{206f}',
            '\u{fff9}'..='\u{fffb}',
            '\u{13430}'..='\u{1343f}',
            '\u{1bca0}'..='\u{1bca3}',
            '\u{1d173}'..='\u{1d17a}',
            // The tag characters' block.
            '\u{e0000}'..='\u{e007f}',
        ]
        .iter()
        .any(|range| range.contains(&c))
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
        // Characters that show nothing are shown.
        assert_eq!(
            escape("a\u{200b}b\u{200d}c\u{2060}d\u{feff}e\u{e0041}f\u{3164}g"),
            "a\\u{200b}b\\u{200d}c\\u{2060}d\\u{feff}e\\u{e0041}f\\u{3164}g"
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
