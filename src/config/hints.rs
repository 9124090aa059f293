//! Where an error really is, when the parser's own mark points elsewhere: YAML reports a
//! duplicate key at the start of its mapping and a quote that never closes at the end of
//! the file; Tera reports an unclosed `{% if %}` as the end of the input. Each is found
//! again here, in the text, so that the message names the line the person has to change.

/// The lines (1-based) of the first two occurrences of `key` as a key of the mapping
/// that starts at `line`:`col` (where the parser marks a duplicate).
pub fn first_duplicate(text: &str, line: usize, col: usize, key: &str) -> Option<(usize, usize)> {
    let at = col.checked_sub(1)?;
    let mut found = Vec::new();
    for (i, raw) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if i + 1 > line && indent < at {
            break;
        }
        if i + 1 > line && indent != at {
            continue;
        }
        if raw.get(at..).and_then(key_of).as_deref() == Some(key) {
            found.push(i + 1);
            if found.len() == 2 {
                return Some((found[0], found[1]));
            }
        }
    }
    None
}

/// The key at the start of `s` (`key: ...`, `"key": ...`), without quotes.
fn key_of(s: &str) -> Option<String> {
    let s = s.strip_prefix("- ").unwrap_or(s);
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = s[1..].find(q)? + 1;
        return s[end + 1..].starts_with(':').then(|| s[1..end].to_string());
    }
    let colon = s
        .find(": ")
        .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
    Some(s[..colon].trim_end().to_string())
}

/// The line and column (1-based) of a quote that opens a scalar and never closes.
pub fn unclosed_quote(text: &str) -> Option<(usize, usize)> {
    let mut open: Option<(char, usize, usize)> = None;
    for (number, line) in text.lines().enumerate() {
        let mut token_start = open.is_none();
        let mut prev = ' ';
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match open {
                Some(('"', ..)) => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => open = None,
                    _ => {}
                },
                Some(_) => {
                    if c == '\'' {
                        if chars.peek().map(|(_, n)| *n) == Some('\'') {
                            chars.next();
                        } else {
                            open = None;
                        }
                    }
                }
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    ' ' | '\t' => {}
                    '"' | '\'' if token_start => {
                        open = Some((c, number + 1, line[..i].chars().count() + 1));
                    }
                    '[' | '{' | ',' => token_start = true,
                    '-' | ':' | '?' if matches!(chars.peek(), None | Some((_, ' '))) => {
                        token_start = true
                    }
                    _ => token_start = false,
                },
            }
            prev = c;
        }
    }
    open.map(|(_, line, col)| (line, col))
}

/// The innermost Tera block (`{% if %}`, `{% for %}`, ...) that is never closed: its
/// line (1-based), its tag, and the tag that would close it.
pub fn unclosed_block(text: &str) -> Option<(usize, String, String)> {
    const BLOCKS: [&str; 6] = ["if", "for", "macro", "block", "filter", "raw"];
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let inner = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let word = inner.split_whitespace().next().unwrap_or("");
        let line = text[..offset + start].matches('\n').count() + 1;
        if BLOCKS.contains(&word) {
            open.push((line, word));
        } else if let Some(closed) = word.strip_prefix("end") {
            if open.last().is_some_and(|(_, w)| *w == closed) {
                open.pop();
            }
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    open.pop()
        .map(|(line, word)| (line, word.to_string(), format!("end{word}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_their_own_lines() {
        let text = "name: a\nport: 2\nname: b\n";
        assert_eq!(first_duplicate(text, 1, 1, "name"), Some((1, 3)));
        let nested = "db:\n  host: x\n  user: y\n  host: z\nother: 1\n";
        assert_eq!(first_duplicate(nested, 2, 3, "host"), Some((2, 4)));
        let listed = "- name: a\n  name: b\n";
        assert_eq!(first_duplicate(listed, 1, 3, "name"), Some((1, 2)));
        let quoted = "\"a b\": 1\n'a b': 2\n";
        assert_eq!(first_duplicate(quoted, 1, 1, "a b"), Some((1, 2)));
    }

    #[test]
    fn the_quote_that_never_closes() {
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            ("name: \"abc\nport: 2\n", Some((1, 7))),
            ("a: 'it''s'\nb: 'open\n", Some((2, 4))),
            ("a: it's fine\nb: \"x\" # 'no\n", None),
            ("a: [\"x\", 'y\n", Some((1, 10))),
            ("a: \"multi\n  line\"\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(unclosed_quote(text), *want, "{text:?}");
        }
    }

    #[test]
    fn the_block_that_never_closes() {
        let text = "a\n{% if x %}\n{% for y in z %}{{ y }}{% endfor %}\nb\n";
        assert_eq!(unclosed_block(text), Some((2, "if".into(), "endif".into())));
        let fine = "{%- if a -%}x{% elif b %}y{% endif %}";
        assert_eq!(unclosed_block(fine), None);
        let inner = "{% for a in b %}\n{% if a %}\n{% endfor %}";
        assert_eq!(unclosed_block(inner).map(|b| b.0), Some(2));
    }
}
