//! How store keys and URLs are shown to a person: control characters escaped, so a key holding
//! an escape sequence, a carriage return or a C1 control (`\u{9b}` is a CSI on many terminals)
//! can never move the cursor, recolour the screen or hide a line. Everything shown on a terminal
//! that came from a store (keys, server messages) goes through [`escape_controls`].

use std::borrow::Cow;

/// `s` with every control character written as a Rust escape (`\n`, `\u{1b}`, `\u{9b}`).
/// Borrowed when there is nothing to escape.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// As [`escape_controls`], but line breaks stay: for multi-line messages whose lines are ours.
pub fn escape_controls_keep_lines(s: &str) -> String {
    s.split('\n').map(escape_controls).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape_controls("a/b c#d%e.parquet"), "a/b c#d%e.parquet");
        assert_eq!(escape_controls("ünï.parquet"), "ünï.parquet");
        assert_eq!(escape_controls("x\u{1b}[2Jy\rz\n"), "x\\u{1b}[2Jy\\rz\\n");
        assert_eq!(escape_controls("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(escape_controls_keep_lines("a\u{7}\n  b\r"), "a\\u{7}\n  b\\r");
    }
}
