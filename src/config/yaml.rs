//! YAML with positions: parse errors that say file:line:col, show the offending line and
//! how to fix it; and a locator that finds the line of a key path in a document, so that
//! errors found after parsing (an unknown process in `depends_on`, say) can point at it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// A place in a file, 1-based; `col` 0 when only the line is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: PathBuf,
    /// Its line, 1-based (0: the file as a whole).
    pub line: usize,
    /// Its column, 1-based (0: unknown).
    pub col: usize,
}

impl Place {
    /// A line of a file (no column).
    pub fn at(file: &Path, line: usize) -> Place {
        Place {
            file: file.into(),
            line,
            col: 0,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if self.col > 0 {
            write!(f, ":{}", self.col)?;
        }
        Ok(())
    }
}

/// A YAML document that does not parse, or is not the shape asked for.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{place}: {message}{excerpt}\n  fix: {fix}")]
pub struct YamlError {
    /// Where.
    pub place: Place,
    /// What the parser said.
    pub message: String,
    /// The offending line, formatted for display (empty when unknown).
    pub excerpt: String,
    /// What to do.
    pub fix: String,
}

/// The offending line of `text`, formatted as `\n  12 | the line\n     |    ^`.
pub fn excerpt(text: &str, line: usize, col: usize) -> String {
    let Some(content) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) else {
        return String::new();
    };
    excerpt_line(line, content, col)
}

/// Line `line` (1-based), whose text is `content`, formatted as [`excerpt`] does.
pub fn excerpt_line(line: usize, content: &str, col: usize) -> String {
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let shown = content.replace('\t', "→");
    let mut out = format!("\n  {number} | {shown}");
    if col > 0 {
        out.push_str(&format!("\n  {pad} | {}^", " ".repeat(col - 1)));
    }
    out
}

/// Parses `text` (read from `file`) as one YAML document; an empty document is null.
pub fn parse(file: &Path, text: &str) -> Result<Value, YamlError> {
    serde_yaml::from_str::<Value>(text).map_err(|e| {
        let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let raw = e.to_string();
        // The location is ours to print; drop the parser's own " at line X column Y".
        let message = match raw.find(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw.clone(),
        };
        if let Some(found) = refine(file, text, &message, line, col) {
            return found;
        }
        let offending = line.checked_sub(1).and_then(|i| text.lines().nth(i)).unwrap_or("");
        let fix = if offending.trim_end().len() != offending.trim_start().len()
            && offending[..offending.len() - offending.trim_start().len()].contains('\t')
        {
            "YAML indentation must be spaces, not tabs: replace the tabs on this line".to_string()
        } else if message.contains("recursion limit") || message.contains("repetition limit") {
            "the document expands aliases (*name) too many times; write the values out or use fewer aliases".to_string()
        } else {
            "correct the YAML syntax at this place (quote values that contain ': ' or start with special characters)".to_string()
        };
        YamlError {
            place: Place {
                file: file.into(),
                line,
                col,
            },
            message,
            excerpt: excerpt(text, line, col),
            fix,
        }
    })
}

/// A better place and fix for the errors whose mark is not where the mistake is.
fn refine(file: &Path, text: &str, message: &str, line: usize, col: usize) -> Option<YamlError> {
    let located = |line: usize, col: usize, message: String, fix: String| YamlError {
        place: Place {
            file: file.into(),
            line,
            col,
        },
        excerpt: excerpt(text, line, col),
        message,
        fix,
    };
    const DUPLICATE: &str = "duplicate entry with key ";
    if let Some(at) = message.find(DUPLICATE) {
        let key = message[at + DUPLICATE.len()..].trim_matches('"');
        let (first, second) = crate::config::hints::first_duplicate(text, line, col, key)?;
        return Some(located(
            second,
            0,
            format!("`{key}` is set twice in this mapping (first at line {first})"),
            format!(
                "keep one of lines {first} and {second}: within one file a later key does not win"
            ),
        ));
    }
    if message.contains("end of stream") || message.contains("quoted scalar") {
        let (line, col) = crate::config::hints::unclosed_quote(text)?;
        return Some(located(
            line,
            col,
            "this quote is never closed".into(),
            "close the value with the same quote on its line (inside \"...\" write \\\" for a quote; inside '...' write '')".into(),
        ));
    }
    None
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Seg {
        Seg::Key(key.to_string())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Seg {
        Seg::Index(index)
    }
}

/// The 1-based line where `path` is in block-style YAML `text`; when the path itself is
/// not found (flow style, `{a: 1}`), the line of its deepest ancestor that is; 0 if none.
pub fn locate(text: &str, path: &[Seg]) -> usize {
    locate_with(text, path, |key| key.to_string())
}

/// [`locate`], where each key as written in `text` is first turned by `key` into the
/// key of the parsed document (the spec's keys are written with placeholders for the
/// values they take: see [`crate::config::spec_text`]).
pub fn locate_with(text: &str, path: &[Seg], key: impl Fn(&str) -> String) -> usize {
    let mut stack: Vec<(usize, Seg)> = Vec::new();
    let mut best = (0usize, 0usize); // (matched depth, line)
    let mut block_scalar_indent: Option<usize> = None;
    for (number, raw) in text.lines().enumerate() {
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if let Some(limit) = block_scalar_indent {
            if indent > limit {
                continue;
            }
            block_scalar_indent = None;
        }
        let mut rest = content;
        let mut at = indent;
        if rest == "-" || rest.starts_with("- ") {
            let mut index = 0;
            while let Some((top_indent, top)) = stack.last() {
                if *top_indent > indent {
                    stack.pop();
                    continue;
                }
                if *top_indent == indent {
                    if let Seg::Index(n) = top {
                        index = n + 1;
                        stack.pop();
                    }
                }
                break;
            }
            stack.push((indent, Seg::Index(index)));
            best = better(best, &stack, path, number + 1);
            rest = rest[1..].trim_start_matches(' ');
            at = indent + (content.len() - rest.len());
            if rest.is_empty() {
                continue;
            }
        }
        if let Some((name, value)) = split_key(rest) {
            while stack.last().is_some_and(|(i, _)| *i >= at) {
                stack.pop();
            }
            stack.push((at, Seg::Key(key(&name))));
            best = better(best, &stack, path, number + 1);
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar_indent = Some(at);
            }
        }
    }
    best.1
}

fn better(
    best: (usize, usize),
    stack: &[(usize, Seg)],
    path: &[Seg],
    line: usize,
) -> (usize, usize) {
    let depth = stack.len();
    if depth > path.len() || depth <= best.0 {
        return best;
    }
    let matches = stack.iter().zip(path).all(|((_, a), b)| a == b);
    if matches { (depth, line) } else { best }
}

/// `key: value` or `key:` (plain or quoted key) at the start of `s`.
fn split_key(s: &str) -> Option<(String, &str)> {
    if let Some(quote) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = s[1..].find(quote)? + 1;
        let after = &s[end + 1..];
        let value = after.strip_prefix(':')?;
        return (value.is_empty() || value.starts_with(' '))
            .then(|| (s[1..end].to_string(), value));
    }
    if s.starts_with(['{', '[', '&', '*', '!', '|', '>']) {
        return None;
    }
    let mut from = 0;
    while let Some(i) = s[from..].find(':') {
        let i = from + i;
        let after = &s[i + 1..];
        if after.is_empty() || after.starts_with(' ') {
            let key = s[..i].trim_end();
            return (!key.contains(" #")).then(|| (key.to_string(), after));
        }
        from = i + 1;
    }
    None
}

/// How deep launch lets a document nest (mappings, lists, flow brackets together):
/// far beyond any hand-written configuration, and low enough that a document of nested
/// `[` cannot keep the parser busy (its time grows with the square of the depth).
pub const MAX_DEPTH: usize = 100;

/// Refuses a document nested deeper than [`MAX_DEPTH`], in one linear pass before the
/// parser sees it. Errs on the side of counting too few levels, never too many: the
/// parser's own recursion limit stays behind it.
pub fn check_depth(file: &Path, text: &str) -> Result<(), YamlError> {
    let (depth, line) = max_depth(text);
    if depth <= MAX_DEPTH {
        return Ok(());
    }
    Err(YamlError {
        place: Place {
            file: file.into(),
            line,
            col: 0,
        },
        message: format!("the document nests more than {MAX_DEPTH} levels deep"),
        excerpt: String::new(),
        fix: "flatten it: no configuration needs this depth".into(),
    })
}

/// The deepest nesting in `text` and the first line that reaches past [`MAX_DEPTH`]
/// (or the deepest line).
fn max_depth(text: &str) -> (usize, usize) {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    let mut block_scalar: Option<usize> = None;
    let mut best = (0, 0);
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if quote.is_none() && flow == 0 {
            if let Some(parent) = block_scalar {
                if indent > parent || content.is_empty() {
                    continue;
                }
                block_scalar = None;
            }
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|i| *i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut token_start = quote.is_none();
        let mut dashes = 0;
        let mut deepest = indents.len() + flow;
        let mut chars = content.chars().peekable();
        let mut prev = ' ';
        while let Some(c) = chars.next() {
            match quote {
                Some('"') => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => quote = None,
                    _ => {}
                },
                Some(_) => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    }
                }
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    ' ' | '\t' => {}
                    '"' | '\'' if token_start => quote = Some(c),
                    '[' | '{' if token_start => {
                        flow += 1;
                        deepest = deepest.max(indents.len() + dashes + flow);
                    }
                    ']' | '}' if flow > 0 => {
                        flow -= 1;
                        token_start = false;
                    }
                    ',' if flow > 0 => token_start = true,
                    '-' if token_start && flow == 0 && matches!(chars.peek(), None | Some(' ')) => {
                        dashes += 1;
                        deepest = deepest.max(indents.len() + dashes);
                    }
                    ':' | '?' if matches!(chars.peek(), None | Some(' ')) || flow > 0 => {
                        token_start = true
                    }
                    '|' | '>' if token_start && flow == 0 => {
                        block_scalar = Some(indent);
                        break;
                    }
                    _ => token_start = false,
                },
            }
            prev = c;
        }
        let depth = deepest.max(indents.len() + dashes + flow);
        if depth > best.0 && best.0 <= MAX_DEPTH {
            best = (depth, number + 1);
        }
    }
    best
}

/// A short, human name for the kind of a value ("a mapping", "a list", ...).
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
templates:
  - src: a
    dest: /a
  - src: b   # second
    dest: /b
processes:
  app:
    command: [x]
    script: |
      depends_on: fake
    depends_on: [db]
  db: {command: [y]}
list:
- one
- two
";

    fn at(path: &[Seg]) -> usize {
        locate(DOC, path)
    }

    #[test]
    fn locates_keys_items_and_falls_back_to_ancestors() {
        assert_eq!(at(&["templates".into()]), 1);
        assert_eq!(at(&["templates".into(), 1.into()]), 4);
        assert_eq!(at(&["templates".into(), 1.into(), "dest".into()]), 5);
        assert_eq!(
            at(&["processes".into(), "app".into(), "depends_on".into()]),
            11
        );
        assert_eq!(at(&["processes".into(), "db".into(), "command".into()]), 12);
        assert_eq!(at(&["list".into(), 1.into()]), 15);
        assert_eq!(at(&["nothing".into()]), 0);
    }

    #[test]
    fn depth_counts_blocks_lists_and_brackets_but_not_text() {
        let cases: &[(&str, usize)] = &[
            ("a: 1\n", 1),
            ("a:\n  b:\n    c: 1\n", 3),
            ("a: [[1], {b: [2]}]\n", 4),
            ("- - - x\n", 4),
            ("a: 'it''s [[[['\nb: \"[[[\\\"[[\"\n", 1),
            ("a: x[[[[ # [[[[\n", 1),
            ("a: |\n  [[[[\n  {{{{\nb: 1\n", 1),
            ("a: [\n  [\n    [1]]]\n", 4),
        ];
        for (text, depth) in cases {
            assert_eq!(max_depth(text).0, *depth, "{text:?}");
        }
        let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let err = check_depth(Path::new("p.yml"), &deep).unwrap_err();
        assert!(
            err.to_string()
                .contains("p.yml:1: the document nests more than 100"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_point_at_the_line_and_explain_tabs() {
        let err = parse(Path::new("p.yml"), "a:\n\tb: 1\n").unwrap_err();
        assert_eq!(err.place.line, 2);
        assert!(err.fix.contains("tabs"), "{err}");
        assert!(err.to_string().starts_with("p.yml:2:"), "{err}");
        assert!(err.to_string().contains("2 | →b: 1"), "{err}");
    }
}
