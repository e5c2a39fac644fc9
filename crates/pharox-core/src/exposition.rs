//! Helpers for the Prometheus / OpenMetrics text exposition, shared by every
//! crate that serves `/metrics` (the worker, `pharox serve`).

use std::fmt::Write;

/// Writes `value` as the inside of a quoted label value: `\`, `"` and
/// newline escaped, as the OpenMetrics and Prometheus text formats agree.
/// Pool ids may hold any printable character; with this they round-trip
/// through either format's parser.
///
/// ```
/// let mut out = String::new();
/// pharox_core::exposition::write_label_value(&mut out, "a\"b\\c\nd").unwrap();
/// assert_eq!(out, r#"a\"b\\c\nd"#);
/// ```
pub fn write_label_value(out: &mut impl Write, value: &str) -> std::fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => r"\\",
            b'"' => r#"\""#,
            _ => r"\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::write_label_value;

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        let mut out = String::new();
        write_label_value(&mut out, "a\\b\"c\nd}{=,ü\\\"").unwrap();
        assert_eq!(out, r#"a\\b\"c\nd}{=,ü\\\""#);
    }
}
