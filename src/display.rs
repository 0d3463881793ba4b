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

/// `n` bytes in binary units as people read them: `512 B`, `1.50 KiB`, `7.63 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// Parse a size as a person writes it (bytesize's reading): `8MiB`, `16MB`, `1048576`,
/// `1.5GiB`, `2TiB`; `K`/`KB` are 1000, `KiB` is 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let shown = escape_controls(s);
    let n = s
        .parse::<bytesize::ByteSize>()
        .map_err(|_| format!("{shown:?} is not a size like 8MiB or 1.5GiB"))?
        .as_u64();
    // bytesize saturates: a size that does not fit is an error, not 16 EiB.
    if n == u64::MAX {
        return Err(format!("{shown:?} is too large"));
    }
    Ok(n)
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(8 * 1024 * 1024), "8.00 MiB");
        assert_eq!(parse_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("16 MB"), Ok(16_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("8XB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
