//! supervisord.conf (or any file of `[program:x]` sections) to [`Imported`].

use std::path::Path;

use super::ini::{self, Entry, Section};
use super::words::{INSTANCE, env_ref, split};
use super::{Command, Imported, LineError, Program, chain_priorities, check_name, copies};

/// How many copies a program runs (`numprocs`, as written) and the number of the first
/// (`numprocs_start`), for `%(process_num)d` and `%(numprocs)d`.
#[derive(Debug, Clone, Copy)]
struct Copies<'a> {
    count: &'a str,
    first: i64,
}

/// Outside a program: one copy.
const ONE: Copies<'static> = Copies {
    count: "1",
    first: 0,
};

/// supervisord's priority when a program gives none.
const DEFAULT_PRIORITY: i64 = 999;

/// Reads a supervisord configuration; `dir` is its directory, for `%(here)s`.
pub fn read(text: &str, dir: &Path) -> Result<Imported, LineError> {
    let sections = ini::parse(text).map_err(|e| LineError {
        line: e.line,
        what: e.what,
    })?;
    let mut imported = Imported::default();
    let mut global_env = Vec::new();
    for s in &sections {
        let kind = s.name.split(':').next().unwrap_or_default();
        match kind {
            "program" => {}
            "supervisord" => {
                if let Some(e) = s.get("environment") {
                    let value = expand(&e.value, "supervisord", dir, ONE, &mut imported, e);
                    global_env = environment(&value, e.line)?;
                }
                if s.entries.iter().any(|e| e.key != "environment") {
                    imported.note(s.line, "[supervisord]: supervisord's own settings; launch needs none (it is PID 1 and logs to stderr); its environment= is given to every process");
                }
            }
            "supervisorctl" | "unix_http_server" | "inet_http_server" | "rpcinterface" => {
                imported.note(s.line, format!("[{}]: supervisorctl's plumbing; `launch status`, `launch restart NAME` use launch's root-only socket", s.name));
            }
            "include" => imported.note(s.line, "[include]: the included files are not read; import each of them too and merge their processes"),
            "group" => imported.note(s.line, format!("[{}]: launch has no groups of processes; `launch restart NAME` acts on one", s.name)),
            "eventlistener" => imported.note(s.line, format!("[{}]: event listeners are not carried over; `critical: true` stops the container when a process gives up", s.name)),
            _ => imported.note(s.line, format!("[{}]: not a section launch knows; left out", s.name)),
        }
    }
    for s in &sections {
        if let Some(name) = s.name.strip_prefix("program:") {
            let mut p = program(name.trim(), s, dir, &mut imported)?;
            let mut env = global_env.clone();
            env.retain(|(k, _)| !p.env.iter().any(|(k2, _)| k2 == k));
            env.append(&mut p.env);
            p.env = env;
            imported.programs.push(p);
        }
    }
    let explicit = sections
        .iter()
        .filter(|s| s.name.starts_with("program:"))
        .find_map(|s| s.get("priority"))
        .map(|e| e.line);
    if let Some(line) = explicit {
        for p in &mut imported.programs {
            p.priority.get_or_insert(DEFAULT_PRIORITY);
        }
        chain_priorities(&mut imported, false, line);
    }
    Ok(imported)
}

fn program(
    name: &str,
    s: &Section,
    dir: &Path,
    imported: &mut Imported,
) -> Result<Program, LineError> {
    check_name("program", name, s.line)?;
    let Some(command) = s.get("command") else {
        return Err(LineError {
            line: s.line,
            what: format!("[program:{name}] has no command=; add the command it runs"),
        });
    };
    let copies = Copies {
        count: s.get("numprocs").map_or("1", |e| e.value.trim()),
        first: s
            .get("numprocs_start")
            .and_then(|e| e.value.trim().parse().ok())
            .unwrap_or(0),
    };
    let text = expand(&command.value, name, dir, copies, imported, command);
    let argv = split(&text).map_err(|what| LineError {
        line: command.line,
        what: format!("command: {what}; close it as a shell would"),
    })?;
    if argv.is_empty() {
        return Err(LineError {
            line: command.line,
            what: format!("[program:{name}] command= is empty; give the command it runs"),
        });
    }
    let mut p = Program::new(name, Command::Exec(argv));
    for e in &s.entries {
        if e.key != "command" {
            let value = expand(&e.value, name, dir, copies, imported, e);
            option(&mut p, e, &value, imported)?;
        }
    }
    copies::resolve(&mut p, copies.first, command.line, imported);
    Ok(p)
}

/// One `key = value` of a program (expanded).
fn option(
    p: &mut Program,
    e: &Entry,
    value: &str,
    imported: &mut Imported,
) -> Result<(), LineError> {
    let key = e.key.as_str();
    let not = |why: &str| format!("{key} = {value}: {why}");
    match key {
        "process_name" if value == p.name => {}
        "process_name" if value.contains(INSTANCE) => imported.note(e.line, format!("process_name = {}: launch names the copies {}.1, {}.2, ...", e.value, p.name, p.name)),
        "numprocs" => copies::count(p, key, value, e.line, imported),
        "numprocs_start" => {}
        "priority" => {
            p.priority = Some(value.parse().map_err(|_| LineError {
                line: e.line,
                what: format!("priority = {value} is not a whole number; write one"),
            })?);
        }
        "autostart" if ini::boolean(value) == Some(true) => {}
        "autostart" => imported.note(e.line, not("launch starts every process of launch.yml; leave it out, or wrap it in {% if pillar.x %}")),
        "autorestart" => match value.to_lowercase().as_str() {
            "true" => p.restart = Some("always"),
            "false" => p.restart = Some("never"),
            "unexpected" => p.restart = Some("on-failure"),
            _ => imported.note(e.line, not("not true, false or unexpected")),
        },
        "startsecs" => imported.note(e.line, not("launch counts a process started once it runs (add ready: to wait for it); crash loops are bounded by max_restarts within restart_window")),
        "startretries" => match value.parse() {
            Ok(n) => p.max_restarts = Some(n),
            Err(_) => imported.note(e.line, not("not a number")),
        },
        "exitcodes" if value == "0" => {}
        "exitcodes" => imported.note(e.line, not("launch counts exit 0 alone as success (on-failure restarts on any other)")),
        "stopsignal" => match signal(value) {
            Some(sig) => p.stop_signal = Some(sig),
            None => imported.note(e.line, not("not a signal launch knows")),
        },
        "stopwaitsecs" => match value.parse::<u64>() {
            Ok(n) => p.stop_timeout = Some(format!("{n}s")),
            Err(_) => imported.note(e.line, not("not a number of seconds")),
        },
        "stopasgroup" | "killasgroup" if ini::boolean(value) == Some(true) => {}
        "stopasgroup" | "killasgroup" => imported.note(e.line, not("launch signals the process's whole group")),
        "user" => p.user = Some(value.into()),
        "directory" => p.cwd = Some(value.into()),
        "umask" => p.umask = Some(value.into()),
        "environment" => p.env = environment(value, e.line)?,
        "redirect_stderr" if ini::boolean(value) == Some(false) => {}
        "redirect_stderr" => imported.note(e.line, not("launch passes stdout and stderr on separately; both reach the container's log")),
        "stdout_logfile" | "stderr_logfile" if is_console(value) => {}
        "stdout_logfile" | "stderr_logfile" => imported.note(e.line, not("launch writes no log files: the output goes to the container's log (docker logs)")),
        k if k.ends_with("_maxbytes") || k.ends_with("_backups") => {
            if value != "0" {
                imported.note(e.line, not("no log rotation: launch writes no log files; docker's log driver rotates"));
            }
        }
        _ => imported.note(e.line, not("launch has no such option")),
    }
    Ok(())
}

fn is_console(value: &str) -> bool {
    matches!(
        value,
        "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2"
    )
}

/// `TERM` or `SIGTERM` as launch writes it, when launch knows it.
pub fn signal(value: &str) -> Option<String> {
    let upper = value.trim().to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    crate::config::spec::parse_signal(&name).map(|_| name)
}

/// supervisord's `KEY="value",KEY2=value2`.
pub fn environment(value: &str, line: usize) -> Result<Vec<(String, String)>, LineError> {
    let bad = |what: &str| LineError {
        line,
        what: format!("environment: {what}; write KEY=\"value\",KEY2=\"value2\""),
    };
    let mut pairs = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            return Err(bad("a pair without ="));
        };
        let key = key.trim().to_string();
        let after = after.trim_start();
        let (val, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let Some(end) = after[1..].find(q) else {
                    return Err(bad("a quote that never closes"));
                };
                (after[1..=end].to_string(), &after[end + 2..])
            }
            _ => match after.split_once(',') {
                Some((v, t)) => (v.trim().to_string(), t),
                None => (after.trim().to_string(), ""),
            },
        };
        if key.is_empty() {
            return Err(bad("a pair without a name"));
        }
        // supervisord keeps the last of a repeated name; launch.yml refuses repeats.
        pairs.retain(|(k, _): &(String, String)| *k != key);
        pairs.push((key, val));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(pairs)
}

/// supervisord's `%(name)s` expansions, as far as they have a value outside it.
fn expand(
    value: &str,
    name: &str,
    dir: &Path,
    copies: Copies<'_>,
    imported: &mut Imported,
    e: &Entry,
) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("%%") {
            out.push('%');
            rest = after;
            continue;
        }
        let Some((var, spec, after)) = reference(rest) else {
            out.push('%');
            rest = &rest[1..];
            continue;
        };
        let text = &rest[..rest.len() - after.len()];
        match var {
            "program_name" | "group_name" => out.push_str(name),
            // Several copies: each reads its own number when it starts.
            "process_num" if copies.count != "1" => {
                out.push(INSTANCE);
                if pad("0", spec) != "0" {
                    imported.note(
                        e.line,
                        format!(
                            "{}: {text}: the copy's number is not padded in launch",
                            e.key
                        ),
                    );
                }
            }
            "process_num" => out.push_str(&pad(&copies.first.to_string(), spec)),
            "numprocs" => out.push_str(copies.count),
            "here" => out.push_str(&dir.display().to_string()),
            _ => {
                let env = var
                    .strip_prefix("ENV_")
                    .or((var == "host_node_name").then_some("HOSTNAME"));
                match env.and_then(env_ref) {
                    Some(r) => {
                        out.push_str(&r);
                        imported.note(e.line, format!("{}: {text} is now env.{} (launch's environment when it renders launch.yml, not supervisord's)", e.key, env.unwrap_or_default()));
                    }
                    None => {
                        out.push_str(text);
                        imported.note(e.line, format!("{}: {text} has no equivalent in launch; left as written: replace it", e.key));
                    }
                }
            }
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `%(var)02d` at the start of `text`: (var, "02d", the text after it).
fn reference(text: &str) -> Option<(&str, &str, &str)> {
    let inner = text.strip_prefix("%(")?;
    let close = inner.find(')')?;
    let after = &inner[close + 1..];
    let end = after.find(|c: char| c.is_ascii_alphabetic())?;
    after[..end]
        .chars()
        .all(|c| c.is_ascii_digit() || "-#+ ".contains(c))
        .then_some(())?;
    Some((&inner[..close], &after[..=end], &after[end + 1..]))
}

fn pad(number: &str, spec: &str) -> String {
    let width: usize = spec
        .trim_start_matches('0')
        .trim_end_matches(char::is_alphabetic)
        .parse()
        .unwrap_or(0);
    let fill = if spec.starts_with('0') { '0' } else { ' ' };
    let mut out: String = std::iter::repeat_n(fill, width.saturating_sub(number.len())).collect();
    out.push_str(number);
    out
}

#[cfg(test)]
#[path = "supervisord_tests.rs"]
mod tests;
