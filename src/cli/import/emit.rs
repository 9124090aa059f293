//! Writes an [`Imported`] as launch.yml text.
//!
//! launch.yml is a Tera template before it is YAML, so every value is written as a
//! double-quoted YAML string in which a `{` that Tera would read as the start of a tag
//! is written as `{{ "{" }}`, and an environment reference as `{{ env.NAME }}`.

use std::fmt::Write as _;
use std::path::Path;

use super::words::{ENV_CLOSE, ENV_OPEN};
use super::{Command, Format, Imported, Program};

/// The whole launch.yml: a header, the notes as comments, the processes.
pub fn launch_yml(imported: &Imported, source: &Path, format: Format) -> String {
    let mut out = String::new();
    let name = source.file_name().map_or_else(
        || source.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let _ = writeln!(
        out,
        "# Imported by `launch import` from {} ({}).",
        comment(&name),
        format.name()
    );
    if imported.notes.is_empty() {
        out.push_str("# Every option was carried over.\n");
    } else {
        out.push_str("# Not carried over (review each, then delete these lines):\n");
        for note in &imported.notes {
            let _ = writeln!(out, "#   line {}: {}", note.line, comment(&note.text));
        }
    }
    if imported.programs.iter().any(uses_env) {
        out.push_str(
            "# env.NAME in a value is read from launch's environment when launch.yml is \
             rendered; unset is an error.\n",
        );
    }
    out.push_str("processes:\n");
    for program in &imported.programs {
        process(&mut out, program);
    }
    out
}

fn process(out: &mut String, p: &Program) {
    let _ = writeln!(out, "  {}:", key(&p.name));
    match &p.command {
        Command::Exec(argv) => {
            let words: Vec<String> = argv.iter().map(|w| scalar(w)).collect();
            let _ = writeln!(out, "    command: [{}]", words.join(", "));
        }
        Command::Shell(script) => {
            let _ = writeln!(out, "    command: {}", scalar(script));
        }
    }
    if p.oneshot {
        out.push_str("    kind: oneshot\n");
    }
    if let Some(n) = p.instances {
        let _ = writeln!(out, "    instances: {n}");
    }
    let fields = [
        ("user", &p.user),
        ("group", &p.group),
        ("cwd", &p.cwd),
        ("umask", &p.umask),
        ("stop_signal", &p.stop_signal),
        ("stop_timeout", &p.stop_timeout),
        ("max_age", &p.max_age),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            let _ = writeln!(out, "    {key}: {}", scalar(value));
        }
    }
    if let Some(restart) = p.restart {
        let _ = writeln!(out, "    restart: {restart}");
    }
    if let Some(n) = p.max_restarts {
        let _ = writeln!(out, "    max_restarts: {n}");
    }
    if !p.depends_on.is_empty() {
        let deps: Vec<String> = p.depends_on.iter().map(|d| scalar(d)).collect();
        let _ = writeln!(out, "    depends_on: [{}]", deps.join(", "));
    }
    if !p.env.is_empty() {
        out.push_str("    env:\n");
        for (k, v) in &p.env {
            let _ = writeln!(out, "      {}: {}", key(k), scalar(v));
        }
    }
}

fn uses_env(p: &Program) -> bool {
    let mut all: Vec<&str> = match &p.command {
        Command::Exec(argv) => argv.iter().map(String::as_str).collect(),
        Command::Shell(s) => vec![s],
    };
    all.extend(p.env.iter().map(|(_, v)| v.as_str()));
    all.extend(p.cwd.as_deref());
    all.iter().any(|s| s.contains(ENV_OPEN))
}

/// A comment's text on one line. Tera reads comments too, so a `{` that would open a
/// tag gets a space after it.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' => out.push(' '),
            ENV_OPEN => out.push('$'),
            ENV_CLOSE => {}
            '{' if matches!(chars.peek(), Some('{' | '%' | '#')) => out.push_str("{ "),
            c => out.push(c),
        }
    }
    out
}

/// A mapping key: plain when YAML and Tera read it as the same plain string.
fn key(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !matches!(
            text.to_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain { text.into() } else { scalar(text) }
}

/// `text` as a double-quoted YAML string that Tera leaves as it is.
pub fn scalar(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some('{' | '%' | '#') | Some(&ENV_OPEN)) => {
                out.push_str("{{ \"{\" }}");
            }
            ENV_OPEN => {
                out.push_str("{{ env.");
                for c in chars.by_ref() {
                    if c == ENV_CLOSE {
                        break;
                    }
                    out.push(c);
                }
                out.push_str(" }}");
            }
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::import::words::env_ref;

    #[test]
    fn scalars_survive_yaml_and_tera() {
        let home = env_ref("HOME").unwrap();
        let cases = [
            ("plain", "\"plain\""),
            ("a \"b\" \\", "\"a \\\"b\\\" \\\\\""),
            ("x\ny", "\"x\\ny\""),
            ("{{ x }}", "\"{{ \"{\" }}{ x }}\""),
            ("{% if %}", "\"{{ \"{\" }}% if %}\""),
            ("{\"json\": 1}", "\"{\\\"json\\\": 1}\""),
        ];
        for (text, want) in cases {
            assert_eq!(scalar(text), want, "{text:?}");
        }
        assert_eq!(scalar(&format!("{home}/x")), "\"{{ env.HOME }}/x\"");
        assert_eq!(
            scalar(&format!("{{{home}")),
            "\"{{ \"{\" }}{{ env.HOME }}\""
        );
    }
}
