//! The INI dialect supervisord and circus read (Python's configparser, as they use it):
//! `[section]`, `key = value` or `key: value`, whole-line `;`/`#` comments, inline
//! comments after whitespace and `;`, and indented continuation lines.

/// One `key = value`, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, lower-cased (configparser's default).
    pub key: String,
    /// The key as written (environment variables keep their case).
    pub name: String,
    /// The value; continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// One `[name]` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// What is between the brackets, trimmed.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// In file order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The last value given for `key`, as configparser keeps.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// A line the parser cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct IniError {
    /// 1-based.
    pub line: usize,
    /// What is wrong and what was expected.
    pub what: String,
}

/// Parses `text` into its sections, in file order.
pub fn parse(text: &str) -> Result<Vec<Section>, IniError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        let indented = raw.starts_with([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with([';', '#']) {
            continue;
        }
        if indented && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
            if !entry.value.is_empty() {
                entry.value.push('\n');
            }
            entry.value.push_str(strip_comment(trimmed));
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let Some(name) = strip_comment(header).strip_suffix(']') else {
                return Err(IniError {
                    line,
                    what: "a section header must end with ']'".into(),
                });
            };
            sections.push(Section {
                name: name.trim().into(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(IniError {
                line,
                what: "expected `key = value`, a [section] or a comment".into(),
            });
        };
        let Some(section) = sections.last_mut() else {
            return Err(IniError {
                line,
                what: "a key before any [section]".into(),
            });
        };
        section.entries.push(Entry {
            key: trimmed[..at].trim().to_lowercase(),
            name: trimmed[..at].trim().into(),
            value: strip_comment(trimmed[at + 1..].trim()).into(),
            line,
        });
    }
    Ok(sections)
}

/// Cuts an inline comment: `;` or `#` after whitespace (a `;` inside a command, as in
/// `sh -c 'a;b'`, is kept).
fn strip_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for i in 1..bytes.len() {
        if matches!(bytes[i], b';' | b'#') && bytes[i - 1].is_ascii_whitespace() {
            return value[..i].trim_end();
        }
    }
    value
}

/// A configparser boolean: `true`/`yes`/`on`/`1` or their opposites; `None` otherwise.
pub fn boolean(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first section's entries as (key, value, line).
    fn entries(text: &str) -> Vec<(String, String, usize)> {
        parse(text).unwrap()[0]
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.line))
            .collect()
    }

    #[test]
    fn reads_sections_keys_comments_and_continuations() {
        // Each text has one entry: (key, value, line).
        let cases = [
            ("[a]\nk = v\n", ("k", "v", 2)),
            ("[a]\nK: v ; note\n", ("k", "v", 2)),
            ("[a]\n; c\n# c\nk=sh -c 'x;y'\n", ("k", "sh -c 'x;y'", 4)),
            (
                "[a]\nk = one\n  two\n\ttwo2 # c\n",
                ("k", "one\ntwo\ntwo2", 2),
            ),
            ("[a]\nk =\n  A=1,\n  B=2\n", ("k", "A=1,\nB=2", 2)),
            ("[a]\nk = a=b\n", ("k", "a=b", 2)),
        ];
        for (text, (k, v, line)) in cases {
            assert_eq!(
                entries(text),
                [(k.to_string(), v.to_string(), line)],
                "{text:?}"
            );
        }
    }

    #[test]
    fn says_which_line_it_cannot_read() {
        let cases = [
            ("[a\n", 1, "must end with ']'"),
            ("k = v\n", 1, "before any [section]"),
            ("[a]\nnonsense\n", 2, "expected `key = value`"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.what.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn booleans() {
        for (text, want) in [("true", Some(true)), ("Off", Some(false)), ("x", None)] {
            assert_eq!(boolean(text), want, "{text}");
        }
    }
}
