//! The rendered spec, with every value Tera put into it kept out of its YAML structure.
//!
//! launch.yml is a Tera template that becomes YAML. Rendered as plain text, a value took
//! part in the YAML: an operator's value holding `"]` and a newline closed a command's
//! list and added a process of its own, which ran as root. So, in the spec only, Tera's
//! escape function (which Tera applies to the output of every `{{ }}`) writes a value
//! as an opaque token: a marker, one private-use character per byte of the value, a
//! marker. YAML reads such a token as part of a scalar wherever it stands (plain,
//! quoted or block; key or value), and as nothing else: it holds no space, no newline
//! and no indicator, and anchors, aliases and tags refuse its characters. [`SpecText`]
//! takes the values out of the rendered text (leaving numbered tokens, on the author's
//! own lines), parses the text, and puts the values into the scalars of the parsed tree.
//! Only the author's text and `{% if %}`/`{% for %}` decide keys, list items and
//! processes.
//!
//! A scalar that is exactly one value, unquoted (`port: {{ pillar.port }}`), takes the
//! type YAML gives that value when it reads as a number or as true/false, as if the
//! author had written it there; never a list, a mapping, or nothing (`~`, `null` and
//! the empty value stay strings: a value must not be able to unset what the author set,
//! and `user:` unset would mean root).
//!
//! `{{ x | safe }}` skips the escape function: it is the author's way to write YAML
//! from a value, and so only for values the author controls (never the operator's).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::config::yaml::{self, Place, Seg, YamlError};

/// Opens a token; in the rendered text the value's bytes follow, in the parsed text
/// its number.
const OPEN: char = '\u{E100}';
/// Closes a token.
const CLOSE: char = '\u{E101}';
/// Byte `b` of a value is written as the character `BYTE + b`.
const BYTE: u32 = 0xE000;
/// What token `i` becomes in the text that tells plain scalars from quoted ones: a
/// number alone, a string next to anything else (two of them side by side are no
/// number, and never one too large to read), and no number an author writes as a key.
fn numbered(i: usize, out: &mut String) {
    let _ = write!(out, "{i}.000007");
}
/// How many characters of a value an error shows.
const SHOWN: usize = 60;

/// The escape function of the spec (Tera's `set_escape_fn`): `input` as one token.
pub fn escape(input: &str, out: &mut dyn io::Write) -> io::Result<()> {
    let mut token = String::with_capacity(3 * input.len() + 6);
    token.push(OPEN);
    token.extend(input.bytes().map(byte_char));
    token.push(CLOSE);
    out.write_all(token.as_bytes())
}

fn byte_char(b: u8) -> char {
    // BYTE + 255 is a private-use character: never a surrogate, so never the fallback.
    char::from_u32(BYTE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn is_reserved(c: char) -> bool {
    (BYTE..=u32::from(CLOSE)).contains(&u32::from(c))
}

/// The rendered spec: its text with a numbered token where each value was, the values,
/// and how errors show them.
#[derive(Debug, Clone)]
pub struct SpecText {
    text: String,
    values: Vec<String>,
    shown: Vec<String>,
}

impl SpecText {
    /// Takes the values out of Tera's output for `file`. A reserved character outside a
    /// whole token (written by the author, or a token cut by a filter applied after the
    /// escaping) is an error at its line.
    pub fn new(file: &Path, rendered: &str) -> Result<SpecText, YamlError> {
        let mut text = String::with_capacity(rendered.len());
        let mut values = Vec::new();
        let mut rest = rendered;
        while let Some(at) = rest.find(is_reserved) {
            text.push_str(&rest[..at]);
            let Some((value, len)) = raw_token(&rest[at..]) else {
                return Err(stray(file, &text));
            };
            let _ = write!(text, "{OPEN}{}{CLOSE}", values.len());
            values.push(value);
            rest = &rest[at + len..];
        }
        text.push_str(rest);
        let shown = values.iter().map(|v| shown(v)).collect();
        Ok(SpecText {
            text,
            values,
            shown,
        })
    }

    /// Sets how errors show the values: each through `mask` (which hides secrets),
    /// then shortened, control characters escaped.
    pub fn hide(&mut self, mask: impl Fn(&str) -> String) {
        self.shown = self.values.iter().map(|v| shown(&mask(v))).collect();
    }

    /// Parses the text and puts the values into its scalars. Every key a value made
    /// the same as another key of its mapping is an error at its line.
    pub fn parse(&self, file: &Path) -> Result<Value, Vec<YamlError>> {
        let tree = yaml::parse(file, &self.text).map_err(|mut e| {
            e.excerpt = self.excerpt(e.place.line, e.place.col);
            vec![e]
        })?;
        if self.values.is_empty() {
            return Ok(tree);
        }
        // The same text with numbers for tokens: a number where the scalar was exactly
        // one token, unquoted; a string where it was quoted, in a block, or had more.
        let numbered = replace_tokens(&self.text, numbered);
        let plain = serde_yaml::from_str::<Value>(&numbered).ok();
        let mut fill = Fill {
            spec: self,
            file,
            path: Vec::new(),
            errors: Vec::new(),
        };
        let value = fill.node(tree, plain.as_ref());
        if fill.errors.is_empty() {
            Ok(value)
        } else {
            Err(fill.errors)
        }
    }

    /// `raw` (text of the parsed document) with its values in.
    pub fn substitute<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        replace_tokens(raw, |i, out| {
            out.push_str(self.values.get(i).map_or("", String::as_str));
        })
    }

    /// `raw` with its values as errors show them.
    pub fn show<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        replace_tokens(raw, |i, out| {
            out.push_str(self.shown.get(i).map_or("", String::as_str));
        })
    }

    /// The 1-based line of a path of the parsed (values in) document; see
    /// [`yaml::locate`].
    pub fn locate(&self, path: &[Seg]) -> usize {
        yaml::locate_with(&self.text, path, |key| self.substitute(key).into_owned())
    }

    /// Line `line` for an error, the values shown in it (masked and shortened), the
    /// caret under column `col` of the text as parsed.
    pub fn excerpt(&self, line: usize, col: usize) -> String {
        let Some(raw) = line.checked_sub(1).and_then(|i| self.text.lines().nth(i)) else {
            return String::new();
        };
        let col = match col {
            0 => 0,
            _ => {
                let before: String = raw.chars().take(col - 1).collect();
                self.show(&before).chars().count() + 1
            }
        };
        yaml::excerpt_line(line, &self.show(raw), col)
    }
}

/// A whole token at the start of `s`: its value and its length in bytes.
fn raw_token(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != OPEN {
        return None;
    }
    let mut bytes = Vec::new();
    for (at, c) in chars {
        if c == CLOSE {
            let value = String::from_utf8(bytes).ok()?;
            return Some((value, at + CLOSE.len_utf8()));
        }
        let b = u32::from(c).checked_sub(BYTE)?;
        bytes.push(u8::try_from(b).ok()?);
    }
    None
}

/// The error for a reserved character right after `before` (the text so far, values
/// numbered: its columns are near the author's).
fn stray(file: &Path, before: &str) -> YamlError {
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    YamlError {
        place: Place {
            file: file.into(),
            line,
            col,
        },
        message: "a character launch reserves for the values of `{{ }}` (U+E000 to U+E101) \
                  stands outside a value: written into the file, or a value cut or changed by a \
                  filter applied after it was written"
            .into(),
        excerpt: String::new(),
        fix: "remove the character; apply filters inside the `{{ }}` that writes the value, \
              not to a {% set %} block or a component that holds it"
            .into(),
    }
}

/// The number of the token that is the whole of `s`.
fn single_token(s: &str) -> Option<usize> {
    s.strip_prefix(OPEN)?.strip_suffix(CLOSE)?.parse().ok()
}

/// `s` with every numbered token replaced by what `value` writes for its number.
fn replace_tokens(s: &str, mut value: impl FnMut(usize, &mut String)) -> Cow<'_, str> {
    if !s.contains(OPEN) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len_utf8()..];
        let number = after
            .find(CLOSE)
            .and_then(|end| Some((after[..end].parse::<usize>().ok()?, end)));
        match number {
            Some((i, end)) => {
                value(i, &mut out);
                rest = &after[end + CLOSE.len_utf8()..];
            }
            // Not one of ours: kept as it is.
            None => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A value as errors show it: control characters escaped, at most [`SHOWN`] characters.
fn shown(value: &str) -> String {
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n == SHOWN {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value alone in a plain scalar, typed as YAML would type it written there: a number
/// or true/false; anything else stays a string.
fn typed(value: &str) -> Option<Value> {
    let simple = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
    if !simple {
        return None;
    }
    match serde_yaml::from_str::<Value>(value) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => Some(v),
        _ => None,
    }
}

/// Puts the values into a parsed tree.
struct Fill<'a> {
    spec: &'a SpecText,
    file: &'a Path,
    /// Where the walk is, in the text's own terms (tokens in keys), to locate errors.
    path: Vec<Seg>,
    errors: Vec<YamlError>,
}

impl Fill<'_> {
    /// `node` with its values in; `plain` is the same node in the numbered text.
    fn node(&mut self, node: Value, plain: Option<&Value>) -> Value {
        match node {
            Value::String(s) => self.scalar(s, plain),
            Value::Sequence(items) => {
                let plain = plain.and_then(Value::as_sequence);
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    out.push(self.node(item, plain.and_then(|p| p.get(i))));
                    self.path.pop();
                }
                Value::Sequence(out)
            }
            Value::Mapping(map) => self.mapping(map, plain),
            Value::Tagged(mut tagged) => {
                let plain = match plain {
                    Some(Value::Tagged(t)) => Some(&t.value),
                    _ => None,
                };
                let value = std::mem::replace(&mut tagged.value, Value::Null);
                tagged.value = self.node(value, plain);
                Value::Tagged(tagged)
            }
            other => other,
        }
    }

    fn scalar(&self, s: String, plain: Option<&Value>) -> Value {
        if !s.contains(OPEN) {
            return Value::String(s);
        }
        let alone = single_token(&s).and_then(|i| self.spec.values.get(i));
        if let (Some(value), Some(Value::Number(_))) = (alone, plain) {
            if let Some(typed) = typed(value) {
                return typed;
            }
        }
        Value::String(self.spec.substitute(&s).into_owned())
    }

    fn mapping(&mut self, map: Mapping, plain: Option<&Value>) -> Value {
        let mut plain = plain.and_then(Value::as_mapping).map(Mapping::iter);
        let mut out = Mapping::with_capacity(map.len());
        for (key, value) in map {
            let plain_value = plain.as_mut().and_then(Iterator::next).map(|(_, v)| v);
            let raw = match &key {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            // Keys stay strings: a value never turns a name into a number.
            let key = match key {
                Value::String(s) => Value::String(self.spec.substitute(&s).into_owned()),
                other => other,
            };
            self.path.push(Seg::Key(raw.clone()));
            let value = self.node(value, plain_value);
            if out.contains_key(&key) {
                self.duplicate(&raw);
            } else {
                out.insert(key, value);
            }
            self.path.pop();
        }
        Value::Mapping(out)
    }

    fn duplicate(&mut self, raw: &str) {
        let line = yaml::locate(&self.spec.text, &self.path);
        self.errors.push(YamlError {
            place: Place {
                file: self.file.into(),
                line,
                col: 0,
            },
            message: format!(
                "the key {:?} is here twice once the values are in",
                self.spec.show(raw)
            ),
            excerpt: self.spec.excerpt(line, 0),
            fix: "give the values that name these keys different values (or write the \
                  keys themselves); a process, a variable or a setting is named once"
                .into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `template` as Tera would with `values` for `{{ a }}`, `{{ b }}`, ...
    fn rendered(template: &str, values: &[&str]) -> String {
        let mut out = template.to_string();
        for (i, v) in values.iter().enumerate() {
            let mut token = Vec::new();
            escape(v, &mut token).unwrap();
            let name = format!("{{{{ {} }}}}", (b'a' + i as u8) as char);
            out = out.replace(&name, std::str::from_utf8(&token).unwrap());
        }
        out
    }

    fn parsed(template: &str, values: &[&str]) -> Result<Value, Vec<YamlError>> {
        let text = rendered(template, values);
        SpecText::new(Path::new("launch.yml"), &text)
            .map_err(|e| vec![e])?
            .parse(Path::new("launch.yml"))
    }

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn values_land_in_scalars_only() {
        let hostile = "x\"]\n  evil: {command: [id]}\n#";
        let v = parsed(
            "p:\n  {{ a }}:\n    command: [sh, \"{{ b }}\", '{{ b }}', {{ b }}]\n    script: |\n      run {{ b }}\n    env: {K: {{ b }}}\n",
            &["app", hostile],
        )
        .unwrap();
        let command = &v["p"]["app"]["command"];
        assert_eq!(command.as_sequence().unwrap().len(), 4);
        for i in 1..4 {
            assert_eq!(command[i].as_str(), Some(hostile));
        }
        assert_eq!(
            v["p"]["app"]["script"].as_str(),
            Some(&*format!("run {hostile}\n"))
        );
        assert_eq!(v["p"]["app"]["env"]["K"].as_str(), Some(hostile));
        assert_eq!(v["p"].as_mapping().unwrap().len(), 1);
    }

    #[test]
    fn a_plain_value_alone_takes_a_number_or_boolean_type_and_nothing_else() {
        let v = parsed(
            "port: {{ a }}\nquoted: \"{{ a }}\"\non: {{ b }}\nlist: {{ c }}\nnothing: {{ d }}\nempty: {{ e }}\nmore: {{ a }}{{ a }}\n",
            &["8080", "true", "[1, 2]", "~", ""],
        )
        .unwrap();
        assert_eq!(
            v,
            yaml(
                "port: 8080\nquoted: \"8080\"\non: true\nlist: \"[1, 2]\"\nnothing: \"~\"\nempty: \"\"\nmore: \"80808080\"\n"
            )
        );
    }

    #[test]
    fn interpolation_inside_strings_and_block_scalars() {
        let v = parsed(
            "tcp: \"127.0.0.1:{{ a }}\"\nplain: x-{{ a }}-y\nblock: |-\n  {{ a }}\n",
            &["80"],
        )
        .unwrap();
        assert_eq!(
            v,
            yaml("tcp: \"127.0.0.1:80\"\nplain: x-80-y\nblock: \"80\"\n")
        );
    }

    #[test]
    fn keys_made_the_same_by_values_are_an_error_at_their_line() {
        let e = parsed("p:\n  {{ a }}: 1\n  {{ b }}: 2\n", &["web", "web"]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].place.line, 3, "{}", e[0]);
        assert!(
            e[0].to_string().contains("\"web\" is here twice"),
            "{}",
            e[0]
        );
        assert!(e[0].to_string().contains("3 |   web: 2"), "{}", e[0]);
        let e = parsed("p:\n  web: 1\n  {{ a }}: 2\n", &["web"]).unwrap_err();
        assert_eq!(e[0].place.line, 3);
    }

    #[test]
    fn anchors_aliases_and_tags_refuse_values() {
        for spec in ["a: &{{ a }} 1\n", "a: *{{ a }}\n", "a: !{{ a }} 1\n"] {
            assert!(parsed(spec, &["x"]).is_err(), "{spec}");
        }
    }

    #[test]
    fn errors_show_the_values_masked_and_short_never_tokens() {
        let text = rendered(
            "a: {{ a }}, {{ b }}: x\n",
            &["s3cret\nline", &"y".repeat(100)],
        );
        let mut spec = SpecText::new(Path::new("launch.yml"), &text).unwrap();
        spec.hide(|v| v.replace("s3cret", "********"));
        let e = spec.parse(Path::new("launch.yml")).unwrap_err();
        let shown = e[0].to_string();
        assert!(shown.contains("1 | a: ********\\nline, yyy"), "{shown}");
        assert!(shown.contains("y…"), "{shown}");
        assert!(
            !shown.contains(OPEN) && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn a_reserved_character_outside_a_value_is_refused_at_its_line() {
        let e = SpecText::new(Path::new("launch.yml"), "a: 1\nb: x\u{E100}y\n").unwrap_err();
        assert_eq!((e.place.line, e.place.col), (2, 5), "{e}");
        let mut cut = rendered("a: {{ a }}\n", &["value"]);
        cut.truncate(cut.len() - 4);
        assert!(SpecText::new(Path::new("launch.yml"), &cut).is_err());
    }

    #[test]
    fn located_by_the_values_in_their_keys() {
        let text = rendered("p:\n  {{ a }}:\n    x: 1\n", &["web"]);
        let spec = SpecText::new(Path::new("launch.yml"), &text).unwrap();
        let path = [Seg::from("p"), Seg::from("web"), Seg::from("x")];
        assert_eq!(spec.locate(&path), 3);
    }
}
