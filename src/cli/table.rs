//! Aligned text tables and readable timestamps for people.

use serde_json::Value;

/// Renders `rows` under `headers`, each column as wide as its widest cell,
/// two spaces apart; the last column is not padded.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                out.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                out.push_str(cell);
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Prints [`render`] to stdout, or a note when there are no rows.
pub fn print(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
    } else {
        print!("{}", render(headers, rows));
    }
}

/// A Unix-milliseconds timestamp as `2026-01-02 03:04:05` (UTC); `-` when
/// absent.
pub fn time(value: &Value) -> String {
    value
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// The items of a JSON array (none when it is not one).
pub fn rows(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// A JSON value as a cell: strings bare, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => one_line(s, 60),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// A JSON value in full, for `show` views: strings bare, null as `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => cell(other),
    }
}

/// `s` on one line, cut to `max` characters with `…`.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut cut: String = flat.chars().take(max - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

/// The first 12 hex digits of a digest or commit, enough to recognise it.
pub fn short(value: &Value) -> String {
    match value.as_str() {
        Some(s) => {
            let (prefix, hex) = s.split_once(':').unwrap_or(("", s));
            let hex: String = hex.chars().take(12).collect();
            if prefix.is_empty() {
                hex
            } else {
                format!("{prefix}:{hex}")
            }
        }
        None => "-".to_owned(),
    }
}

/// Prints `label: value` lines, labels aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, value) in fields {
        println!(
            "{label:<width$}  {value}",
            label = format!("{label}:"),
            width = width + 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let out = render(
            &["ID", "SOURCE", "STATUS"],
            &[
                vec!["12".into(), "github".into(), "processed".into()],
                vec!["9".into(), "registry-eu".into(), "-".into()],
            ],
        );
        assert_eq!(
            out,
            "ID  SOURCE       STATUS\n12  github       processed\n9   registry-eu  -\n"
        );
    }

    #[test]
    fn cells_read_well() {
        assert_eq!(time(&json!(1_700_000_000_123_i64)), "2023-11-14 22:13:20");
        assert_eq!(time(&Value::Null), "-");
        assert_eq!(
            cell(&json!(["release:read", "admin"])),
            "release:read admin"
        );
        assert_eq!(
            short(&json!("sha256:8a9e9863dbb6e10edb5adfe9")),
            "sha256:8a9e9863dbb6"
        );
        assert_eq!(one_line("a\nb   c", 60), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
