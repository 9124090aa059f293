//! Collecting the spec's problems, each at its file:line with what to do, and the
//! reading of single values (durations, signals, modes, owners) they come from.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::{SpecError, did_you_mean, parse_signal};
use crate::config::spec_text::SpecText;
use crate::config::yaml::{self, Place, Seg};
use crate::volume::users::Accounts;

/// Collects problems with their places.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a SpecText,
    pub(super) errors: Vec<SpecError>,
}

impl Checker<'_> {
    pub(super) fn line(&self, path: &[Seg]) -> usize {
        self.text.locate(path)
    }

    pub(super) fn error(&mut self, path: &[Seg], what: impl Into<String>, fix: impl Into<String>) {
        let line = self.line(path);
        self.errors.push(SpecError::Invalid {
            place: Place {
                file: self.file.into(),
                line,
                col: 0,
            },
            what: what.into(),
            excerpt: self.text.excerpt(line, 0),
            fix: fix.into(),
        });
    }

    /// Deserializes one entry; a serde error becomes a located problem, with a "did you
    /// mean" for unknown keys.
    pub(super) fn entry<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: Value,
        path: &[Seg],
        what: &str,
    ) -> Option<T> {
        match serde_yaml::from_value::<T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let message = e.to_string();
                let (at, fix) = explain(&message, what);
                let mut full = path.to_vec();
                if let Some(key) = at {
                    full.push(Seg::Key(key));
                }
                self.error(&full, format!("{what}: {}", first_sentence(&message)), fix);
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        value: Option<Value>,
        default: Duration,
        path: &[Seg],
    ) -> Duration {
        match value {
            None => default,
            Some(v) => match scalar_text(&v).map(|t| crate::duration::parse(&t)) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    self.error(
                        path,
                        e.to_string(),
                        "write a duration like 5s, 250ms or 1m30s",
                    );
                    default
                }
                None => {
                    self.error(
                        path,
                        format!("expected a duration, found {}", yaml::kind(&v)),
                        "write a duration like 5s",
                    );
                    default
                }
            },
        }
    }

    pub(super) fn signal(&mut self, value: Option<Value>, path: &[Seg]) -> Option<i32> {
        let v = value?;
        let text = scalar_text(&v).unwrap_or_default();
        match parse_signal(&text) {
            Some(n) => Some(n),
            None => {
                self.error(
                    path,
                    format!("{text:?} is not a signal"),
                    "write a signal name like SIGTERM, TERM, SIGQUIT or HUP, or its number",
                );
                None
            }
        }
    }

    pub(super) fn octal(
        &mut self,
        value: Option<Value>,
        path: &[Seg],
        what: &str,
        max: u32,
    ) -> Option<u32> {
        let v = value?;
        let text = scalar_text(&v).unwrap_or_default();
        match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
            Ok(n) if n <= max => Some(n),
            _ => {
                self.error(
                    path,
                    format!("{what} {text:?} is not an octal number up to {max:o}"),
                    format!("write the {what} in octal, quoted, e.g. \"0644\""),
                );
                None
            }
        }
    }

    pub(super) fn owner(
        &mut self,
        owner: Option<String>,
        accounts: &Accounts,
        path: &[Seg],
    ) -> Option<(u32, u32)> {
        let owner = owner?;
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let Some(found) = accounts.user(user) else {
            self.error(
                path,
                format!(
                    "user {user:?} does not exist in {}",
                    accounts.file("passwd").display()
                ),
                "create the user in the image (adduser), or name an existing user or a numeric uid",
            );
            return None;
        };
        let gid = match group {
            None => found.gid,
            Some(g) => match accounts.group(g) {
                Some(gid) => gid,
                None => {
                    self.error(path, format!("group {g:?} does not exist in {}", accounts.file("group").display()), "create the group in the image (addgroup), or name an existing group or a numeric gid");
                    return None;
                }
            },
        };
        Some((found.uid, gid))
    }
}

/// A scalar's text; None for a mapping, a list or null.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// From a serde message: the key it is about (for unknown and missing fields), and the fix.
fn explain(message: &str, what: &str) -> (Option<String>, String) {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if message.starts_with("unknown field") {
        let field = quoted.first().copied().unwrap_or("");
        let expected = &quoted[1.min(quoted.len())..];
        let fix = did_you_mean(field, expected.iter().copied())
            .unwrap_or_else(|| format!("remove it; {what} takes: {}", expected.join(", ")));
        return (Some(field.to_string()), fix);
    }
    if message.starts_with("missing field") {
        let field = quoted.first().copied().unwrap_or("");
        return (None, format!("add `{field}:` to this {what}"));
    }
    if message.starts_with("unknown variant") {
        let variant = quoted.first().copied().unwrap_or("");
        let expected = &quoted[1.min(quoted.len())..];
        let fix = did_you_mean(variant, expected.iter().copied())
            .unwrap_or_else(|| format!("use one of: {}", expected.join(", ")));
        return (None, fix);
    }
    if message.contains("did not match any variant of untagged enum RawCommand") {
        return (
            Some("command".into()),
            "write the command as a list of strings, [program, arg, ...] (quote items YAML \
             reads as numbers or booleans: [\"true\"], [sleep, \"5\"]), or as one string run by \
             /bin/sh -c"
                .into(),
        );
    }
    (None, format!("see the {what} keys in docs/reference.md"))
}

fn first_sentence(message: &str) -> String {
    let m = message.replace("untagged enum RawCommand", "a command");
    m.split(" at line ").next().unwrap_or(&m).to_string()
}
