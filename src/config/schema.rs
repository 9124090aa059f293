//! The pillar's shape is the image's: the keys and types of its defaults
//! (`project/pillar.yml` and `pillar/*.yml`, merged) are what the operator may set.
//! An operator key the defaults do not have is an error with a "did you mean"; a value
//! of another type than the default's is an error naming both. Two ways open a subtree
//! to free-form keys: a default of `{}` (an empty mapping says "fill me in"), or
//! `free` in the schema file.
//!
//! What defaults cannot say goes in `project/pillar.schema.yml`, by dotted key path:
//!
//! ```yaml
//! port: {min: 1, max: 65535}
//! log.level: {one_of: [debug, info, warn, error]}
//! site.hostname: {pattern: "*.example.com"}     # a shell glob: * ? [a-z]
//! db.password: {type: string}                   # for a default of null
//! extra_env: free                               # any keys and values below
//! ```
//!
//! Everything here is a pure function of the defaults, the rules and one layer: the
//! caller reads the files and says where the layer came from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::config::yaml::{self, Place, Seg};

/// The schema file's name, in `project/`.
pub const FILE: &str = "pillar.schema.yml";

/// A value's type, as the schema and its messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// true or false.
    Boolean,
    /// A sequence.
    List,
    /// A mapping.
    Mapping,
    /// Anything.
    Any,
}

impl Kind {
    fn of(value: &Value) -> Option<Kind> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => Kind::Boolean,
            Value::Number(n) if n.is_f64() => Kind::Number,
            Value::Number(_) => Kind::Integer,
            Value::String(_) => Kind::String,
            Value::Sequence(_) => Kind::List,
            Value::Mapping(_) => Kind::Mapping,
            Value::Tagged(t) => return Kind::of(&t.value),
        })
    }

    fn accepts(self, found: Kind) -> bool {
        self == Kind::Any || self == found || (self == Kind::Number && found == Kind::Integer)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "a whole number",
            Kind::Number => "a number",
            Kind::Boolean => "true/false",
            Kind::List => "a list",
            Kind::Mapping => "a mapping",
            Kind::Any => "anything",
        }
    }
}

/// What the schema file says of one key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Any keys and values below this one.
    #[serde(default)]
    pub free: bool,
    /// The type, where the default cannot say it (a default of null).
    #[serde(default, rename = "type")]
    pub kind: Option<Kind>,
    /// The allowed values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// The smallest number allowed.
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest number allowed.
    #[serde(default)]
    pub max: Option<f64>,
    /// A shell glob (`*`, `?`, `[a-z]`) a string must match.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// The image's defaults and the rules of its schema file.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    defaults: Mapping,
    rules: BTreeMap<String, Rule>,
}

/// One problem of a layer, with the key path it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The key path in the layer.
    pub path: Vec<Seg>,
    /// What is wrong.
    pub what: String,
    /// What to do.
    pub fix: String,
}

/// The schema file does not say what launch can read.
#[derive(Debug, thiserror::Error)]
#[error(
    "{place}: {what}\n  fix: write `key.path: {{min: 1, max: 9}}`, `key.path: free`, ... (see docs/configuration.md)"
)]
pub struct SchemaError {
    /// Where.
    pub place: Place,
    /// What.
    pub what: String,
}

impl Schema {
    /// A schema of the image's merged defaults and the rules in `text` (the schema file,
    /// `None` when there is none).
    pub fn new(defaults: Mapping, file: &Path, text: Option<&str>) -> Result<Schema, SchemaError> {
        let mut rules = BTreeMap::new();
        if let Some(text) = text {
            let parsed = yaml::parse(file, text).map_err(|e| SchemaError {
                place: e.place.clone(),
                what: e.message.clone(),
            })?;
            let map = match parsed {
                Value::Null => Mapping::new(),
                Value::Mapping(map) => map,
                other => {
                    return Err(SchemaError {
                        place: Place::at(file, 1),
                        what: format!(
                            "the top level is {}, not a mapping of key paths",
                            yaml::kind(&other)
                        ),
                    });
                }
            };
            for (key, value) in map {
                let path = key.as_str().unwrap_or_default().to_string();
                let line = yaml::locate(text, &[Seg::Key(path.clone())]);
                let rule = match value {
                    Value::String(s) if s == "free" => Rule {
                        free: true,
                        ..Rule::default()
                    },
                    other => serde_yaml::from_value::<Rule>(other).map_err(|e| SchemaError {
                        place: Place::at(file, line),
                        what: format!("{path}: {e}"),
                    })?,
                };
                rules.insert(path, rule);
            }
        }
        Ok(Schema { defaults, rules })
    }

    /// Every problem of `layer` (an operator's, the environment's, `--set`'s) against
    /// the image's shape.
    pub fn check(&self, layer: &Mapping) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.check_map(layer, Some(&self.defaults), &mut Vec::new(), &mut problems);
        problems
    }

    /// The type the image expects at a key path (its rule's, else its default's).
    pub fn expects(&self, path: &[&str]) -> Option<Kind> {
        let joined = path.join(".");
        if let Some(kind) = self.rules.get(&joined).and_then(|r| r.kind) {
            return Some(kind);
        }
        let mut node = &self.defaults;
        for (i, key) in path.iter().enumerate() {
            let value = node.get(*key)?;
            if i + 1 == path.len() {
                return Kind::of(value);
            }
            node = value.as_mapping()?;
        }
        None
    }

    fn rule(&self, path: &[String]) -> Option<&Rule> {
        self.rules.get(&path.join("."))
    }

    fn free(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|n| self.rule(&path[..n]).is_some_and(|r| r.free))
    }

    fn check_map(
        &self,
        layer: &Mapping,
        defaults: Option<&Mapping>,
        path: &mut Vec<String>,
        out: &mut Vec<Problem>,
    ) {
        for (key, value) in layer {
            let name = match key {
                Value::String(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            path.push(name.clone());
            let default = defaults.and_then(|d| d.get(key));
            match default {
                _ if self.free(path) => {}
                None if defaults.is_some_and(Mapping::is_empty) => {}
                None => {
                    let known = defaults
                        .into_iter()
                        .flat_map(|d| d.keys())
                        .filter_map(Value::as_str);
                    out.push(Problem {
                        path: segs(path),
                        what: format!("`{}` is not a setting of this image", path.join(".")),
                        fix: crate::config::spec::did_you_mean(&name, known).unwrap_or_else(|| {
                            "remove it; `launch check --show-pillar` lists every setting with its default".into()
                        }),
                    });
                }
                Some(default) => self.check_value(value, default, path, out),
            }
            path.pop();
        }
    }

    fn check_value(
        &self,
        value: &Value,
        default: &Value,
        path: &mut Vec<String>,
        out: &mut Vec<Problem>,
    ) {
        let rule = self.rule(path).cloned().unwrap_or_default();
        let expected = rule.kind.or_else(|| Kind::of(default));
        let found = Kind::of(value);
        let at = segs(path);
        let problem = |what: String, fix: String| Problem {
            path: at.clone(),
            what,
            fix,
        };
        match (expected, found) {
            // A default of null (and no type) takes anything; null is fine where the
            // author allowed it.
            (None, _) | (_, None) if Kind::of(default).is_none() => {}
            (Some(want), None) => out.push(problem(
                format!(
                    "`{}` is empty, but the image's default is {}",
                    path.join("."),
                    want.name()
                ),
                format!(
                    "give it {}, or remove the line to keep the default",
                    want.name()
                ),
            )),
            (Some(want), Some(got)) if !want.accepts(got) => out.push(problem(
                format!(
                    "`{}` is {}, but the image's default is {}",
                    path.join("."),
                    got.name(),
                    want.name()
                ),
                format!("write {} here{}", want.name(), quote_hint(want, value)),
            )),
            _ => {}
        }
        if let (Value::Mapping(layer), Value::Mapping(defaults)) = (value, default) {
            self.check_map(layer, Some(defaults), path, out);
        }
        if let Some(what) = violates(&rule, value) {
            out.push(problem(
                format!("`{}` {what}", path.join(".")),
                allowed(&rule),
            ));
        }
    }
}

/// A value that reads as a number or true/false where a string is wanted: quoting it
/// is the fix.
fn quote_hint(want: Kind, value: &Value) -> &'static str {
    match (want, value) {
        (Kind::String, Value::Number(_) | Value::Bool(_)) => " (quote it: \"...\")",
        _ => "",
    }
}

/// How `value` breaks the rule's constraints, if it does.
fn violates(rule: &Rule, value: &Value) -> Option<String> {
    if let Some(allowed) = &rule.one_of {
        if !allowed.contains(value) {
            return Some(format!(
                "is {}, which is not one of the allowed values",
                shown(value)
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if rule.min.is_some_and(|min| n < min) || rule.max.is_some_and(|max| n > max) {
            return Some(format!("is {}, out of range", shown(value)));
        }
    }
    if let (Some(pattern), Some(s)) = (&rule.pattern, value.as_str()) {
        if !glob(pattern.as_bytes(), s.as_bytes()) {
            return Some(format!(
                "is {}, which does not match {pattern:?}",
                shown(value)
            ));
        }
    }
    None
}

fn allowed(rule: &Rule) -> String {
    if let Some(values) = &rule.one_of {
        let list: Vec<String> = values.iter().map(shown).collect();
        return format!("use one of: {}", list.join(", "));
    }
    match (rule.min, rule.max, &rule.pattern) {
        (Some(min), Some(max), _) => format!("use a number from {min} to {max}"),
        (Some(min), None, _) => format!("use a number of at least {min}"),
        (None, Some(max), _) => format!("use a number of at most {max}"),
        (_, _, Some(p)) => format!("use a value matching {p:?}"),
        _ => "see project/pillar.schema.yml".into(),
    }
}

fn shown(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

fn segs(path: &[String]) -> Vec<Seg> {
    path.iter().map(|k| Seg::Key(k.clone())).collect()
}

/// A shell glob: `*` any run, `?` one character, `[a-z]` a class (`[!...]` negated).
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
            continue;
        }
        if p < pattern.len() {
            if let Some((matched, next)) = one(&pattern[p..], text[t]) {
                if matched {
                    p += next;
                    t += 1;
                    continue;
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Whether the pattern's first element matches `c`, and how long that element is.
fn one(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    match pattern[0] {
        b'?' => Some((true, 1)),
        b'[' => {
            let end = pattern.iter().skip(1).position(|b| *b == b']')? + 1;
            let class = &pattern[1..end];
            let (negated, class) = match class.first() {
                Some(b'!' | b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut i = 0;
            let mut hit = false;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            Some((hit != negated, end + 1))
        }
        literal => Some((literal == c, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(defaults: &str, rules: Option<&str>) -> Schema {
        Schema::new(
            serde_yaml::from_str(defaults).unwrap(),
            Path::new("s.yml"),
            rules,
        )
        .unwrap()
    }

    fn problems(s: &Schema, layer: &str) -> Vec<String> {
        s.check(&serde_yaml::from_str(layer).unwrap())
            .into_iter()
            .map(|p| format!("{} | {}", p.what, p.fix))
            .collect()
    }

    #[test]
    fn keys_and_types_come_from_the_defaults() {
        let s = schema(
            "greeting: hello\nport: 8080\nratio: 0.5\non: true\nlist: [a]\ndb: {host: x, port: 5432}\nextra: {}\nmaybe: ~\n",
            None,
        );
        let table: &[(&str, &[&str])] = &[
            (
                "greeting: hi\nport: 80\nratio: 2\non: false\nlist: [b, c]\ndb: {port: 1}\n",
                &[],
            ),
            (
                "greting: x\n",
                &["`greting` is not a setting of this image | did you mean `greeting`?"],
            ),
            (
                "greeting: {a: 1}\n",
                &[
                    "`greeting` is a mapping, but the image's default is a string | write a string here",
                ],
            ),
            (
                "greeting: [x, y]\n",
                &["`greeting` is a list, but the image's default is a string"],
            ),
            (
                "greeting: ~\n",
                &["`greeting` is empty, but the image's default is a string"],
            ),
            (
                "greeting: 12\n",
                &[
                    "`greeting` is a whole number, but the image's default is a string | write a string here (quote it",
                ],
            ),
            (
                "port: abc\n",
                &["`port` is a string, but the image's default is a whole number"],
            ),
            (
                "port: 80.5\n",
                &["`port` is a number, but the image's default is a whole number"],
            ),
            (
                "db: {hots: y}\n",
                &["`db.hots` is not a setting of this image | did you mean `host`?"],
            ),
            ("extra: {anything: [1, {b: 2}]}\n", &[]),
            ("maybe: {x: 1}\n", &[]),
            ("maybe: ~\n", &[]),
        ];
        for (layer, expected) in table {
            let got = problems(&s, layer);
            assert_eq!(got.len(), expected.len(), "{layer}: {got:?}");
            for (g, e) in got.iter().zip(expected.iter()) {
                assert!(g.starts_with(e), "{layer}: {g:?} does not start with {e:?}");
            }
        }
    }

    #[test]
    fn the_schema_file_adds_what_defaults_cannot_say() {
        let s = schema(
            "port: 8080\nlevel: info\nhost: a.example.com\npassword: ~\nenv: {A: b}\n",
            Some(
                "port: {min: 1, max: 65535}\nlevel: {one_of: [debug, info, warn]}\nhost: {pattern: \"*.example.com\"}\npassword: {type: string}\nenv: free\n",
            ),
        );
        let table: &[(&str, &[&str])] = &[
            (
                "port: 70000\n",
                &["`port` is 70000, out of range | use a number from 1 to 65535"],
            ),
            (
                "level: verbose\n",
                &[
                    "`level` is \"verbose\", which is not one of the allowed values | use one of: \"debug\", \"info\", \"warn\"",
                ],
            ),
            (
                "host: evil.org\n",
                &["`host` is \"evil.org\", which does not match \"*.example.com\""],
            ),
            ("host: www.example.com\nlevel: warn\nport: 443\n", &[]),
            (
                "password: 12\n",
                &["`password` is a whole number, but the image's default is a string"],
            ),
            ("env: {NEW: [1]}\n", &[]),
        ];
        for (layer, expected) in table {
            let got = problems(&s, layer);
            assert_eq!(got.len(), expected.len(), "{layer}: {got:?}");
            for (g, e) in got.iter().zip(expected.iter()) {
                assert!(g.starts_with(e), "{layer}: {g:?} does not start with {e:?}");
            }
        }
        let bad = Schema::new(
            Mapping::new(),
            Path::new("s.yml"),
            Some("port: {minimum: 1}\n"),
        )
        .unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("s.yml:1: port: unknown field `minimum`"),
            "{bad}"
        );
    }

    #[test]
    fn globs() {
        for (p, t, ok) in [
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("v?.[0-9]", "v1.7", true),
            ("v?.[!0-9]", "v1.7", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ] {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), ok, "{p} {t}");
        }
    }
}
