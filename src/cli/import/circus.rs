//! circus.ini to [`Imported`].

use super::ini::{self, Entry, Section};
use super::supervisord::signal;
use super::words::{INSTANCE, env_ref, split};
use super::{Command, Imported, LineError, Program, chain_priorities, check_name, copies};

/// Reads a circus configuration.
pub fn read(text: &str) -> Result<Imported, LineError> {
    let sections = ini::parse(text).map_err(|e| LineError {
        line: e.line,
        what: e.what,
    })?;
    let mut imported = Imported::default();
    for s in &sections {
        let kind = s.name.split(':').next().unwrap_or_default();
        match kind {
            "watcher" | "env" => {}
            "circus" => imported.note(s.line, "[circus]: circus's own settings (endpoints, statsd, check_delay...); launch needs none: `launch status`, `launch restart NAME` use its root-only socket"),
            "socket" => imported.note(s.line, format!("[{}]: launch holds no sockets for processes; let the process bind its own", s.name)),
            "plugin" => imported.note(s.line, format!("[{}]: circus plugins are not carried over", s.name)),
            _ => imported.note(s.line, format!("[{}]: not a section launch knows; left out", s.name)),
        }
    }
    for s in &sections {
        if let Some(name) = s.name.strip_prefix("watcher:") {
            let mut p = watcher(name.trim(), s, &mut imported)?;
            for env in sections.iter().filter(|e| env_applies(&e.name, &p.name)) {
                for e in &env.entries {
                    let value = env_value(&e.value, e, &mut imported);
                    p.env.retain(|(k, _)| k != &e.name);
                    p.env.push((e.name.clone(), value));
                }
            }
            imported.programs.push(p);
        }
    }
    let explicit = sections
        .iter()
        .filter(|s| s.name.starts_with("watcher:"))
        .find_map(|s| s.get("priority"))
        .map(|e| e.line);
    if let Some(line) = explicit {
        for p in &mut imported.programs {
            p.priority.get_or_insert(0);
        }
        chain_priorities(&mut imported, true, line);
    }
    Ok(imported)
}

/// `[env:a,b]` and `[env:web*]` apply to the watchers they name.
fn env_applies(section: &str, watcher: &str) -> bool {
    section
        .strip_prefix("env:")
        .is_some_and(|names| names.split(',').any(|n| glob(n.trim(), watcher)))
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

fn watcher(name: &str, s: &Section, imported: &mut Imported) -> Result<Program, LineError> {
    check_name("watcher", name, s.line)?;
    let Some(cmd) = s.get("cmd") else {
        return Err(LineError {
            line: s.line,
            what: format!("[watcher:{name}] has no cmd =; add the command it runs"),
        });
    };
    let mut text = expand(&cmd.value, cmd, imported);
    if let Some(args) = s.get("args") {
        text.push(' ');
        text.push_str(&expand(&args.value, args, imported));
    }
    // circus splits cmd and args into words even with shell = true, then gives the
    // shell each word quoted: no expansion, no operators.
    let argv = split(&text).map_err(|what| LineError {
        line: cmd.line,
        what: format!("cmd/args: {what}; close it as a shell would"),
    })?;
    let mut p = Program::new(name, Command::Exec(argv));
    if s.get("copy_env")
        .is_none_or(|e| ini::boolean(&e.value) != Some(true))
    {
        imported.note(s.line, format!("[watcher:{name}] without copy_env = true: circus gave it only its [env:] values; launch also passes on its own environment"));
    }
    for e in &s.entries {
        option(&mut p, e, imported)?;
    }
    // circus numbers its copies (wid) from 1.
    copies::resolve(&mut p, 1, cmd.line, imported);
    let shell = s
        .get("shell")
        .is_some_and(|e| ini::boolean(&e.value) == Some(true));
    if let (true, Command::Exec(argv)) = (shell, &p.command) {
        p.command = Command::Shell(copies::exec_line(argv, ""));
    }
    Ok(p)
}

/// One `key = value` of a watcher.
fn option(p: &mut Program, e: &Entry, imported: &mut Imported) -> Result<(), LineError> {
    let value = e.value.as_str();
    let key = e.key.as_str();
    let not = |why: &str| format!("{key} = {value}: {why}");
    let yes = ini::boolean(value);
    match key {
        "cmd" | "args" | "shell" | "copy_env" | "copy_path" | "singleton" => {}
        "working_dir" => p.cwd = Some(value.into()),
        "uid" => p.user = Some(value.into()),
        "gid" => p.group = Some(value.into()),
        "umask" => p.umask = Some(value.into()),
        "numprocesses" => copies::count(p, key, value, e.line, imported),
        // 0 is circus's default: never.
        "max_age" if value.parse::<f64>() == Ok(0.0) => {}
        "max_age" => match seconds(value) {
            Some(age) => p.max_age = Some(age),
            None => imported.note(e.line, not("not a number of seconds")),
        },
        "max_age_variance" => imported.note(e.line, not("launch recycles each process at its max_age exactly")),
        "stop_signal" => match signal(value) {
            Some(sig) => p.stop_signal = Some(sig),
            None => imported.note(e.line, not("not a signal launch knows")),
        },
        "graceful_timeout" => match seconds(value) {
            Some(timeout) => p.stop_timeout = Some(timeout),
            None => imported.note(e.line, not("not a number of seconds")),
        },
        "priority" => {
            p.priority = Some(value.parse().map_err(|_| LineError {
                line: e.line,
                what: format!("priority = {value} is not a whole number; write one"),
            })?);
        }
        "autostart" if yes == Some(true) => {}
        "autostart" => imported.note(e.line, not("launch starts every process of launch.yml; leave it out, or wrap it in {% if pillar.x %}")),
        "respawn" if yes == Some(true) => {}
        "respawn" => p.restart = Some("never"),
        "max_retry" => match value.parse::<u32>() {
            Ok(n) => p.max_restarts = Some(n),
            Err(_) => imported.note(e.line, not("launch always gives up after max_restarts within restart_window")),
        },
        "stop_children" if yes == Some(true) => {}
        "stop_children" => imported.note(e.line, not("launch signals the process's whole group")),
        k if (k.starts_with("stdout_stream.") || k.starts_with("stderr_stream."))
            && k.ends_with(".class")
            && value.ends_with("StdoutStream") => {}
        k if k.starts_with("stdout_stream.") || k.starts_with("stderr_stream.") => imported.note(e.line, not("launch writes no log files: the output goes to the container's log (docker logs)")),
        "send_hup" if yes == Some(false) => {}
        "send_hup" => imported.note(e.line, not("add reload_signal: SIGHUP, and notify: in the templates it reads")),
        _ => imported.note(e.line, not("launch has no such option")),
    }
    Ok(())
}

/// circus's seconds (`86400`, `30`, `2.5`) as a launch duration (`24h`, `30s`,
/// `2500ms`); `None` when it is not a number of seconds.
fn seconds(value: &str) -> Option<String> {
    match value.parse::<f64>() {
        Ok(s) if s >= 3600.0 && s % 3600.0 == 0.0 => Some(format!("{}h", s / 3600.0)),
        Ok(s) if s >= 60.0 && s % 60.0 == 0.0 => Some(format!("{}m", s / 60.0)),
        Ok(s) if s >= 0.0 && s.fract() == 0.0 => Some(format!("{s}s")),
        Ok(s) if s >= 0.0 && s.is_finite() => Some(format!("{}ms", (s * 1000.0).round() as u64)),
        _ => None,
    }
}

/// `$(circus.env.NAME)` and `$(circus.wid)` in cmd and args.
fn expand(value: &str, e: &Entry, imported: &mut Imported) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let Some(close) = rest[at..].find(')') else {
            rest = &rest[at..];
            break;
        };
        let text = &rest[at..at + close + 1];
        let var = &text[2..text.len() - 1];
        let lower = var.to_lowercase();
        if lower == "circus.wid" {
            out.push(INSTANCE);
        } else if let Some(r) = lower
            .strip_prefix("circus.env.")
            .and_then(|_| env_ref(&var[11..]))
        {
            out.push_str(&r);
            imported.note(
                e.line,
                format!(
                    "{}: {text} is now env.{} (launch's environment when it renders launch.yml)",
                    e.key,
                    &var[11..]
                ),
            );
        } else if !lower.starts_with("circus.") {
            // circus expands only its own names: `$(pwd)` reaches the process as written.
            out.push_str(text);
        } else {
            out.push_str(text);
            imported.note(
                e.line,
                format!(
                    "{}: {text} has no equivalent in launch; left as written: replace it",
                    e.key
                ),
            );
        }
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    out
}

/// `$NAME` and `${NAME}` in an [env:] value: circus read them from its environment.
fn env_value(value: &str, e: &Entry, imported: &mut Imported) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.split_once('}') {
                Some((name, tail)) => (name, tail),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match env_ref(name) {
            Some(r) => {
                out.push_str(&r);
                imported.note(e.line, format!("{} = {value}: ${name} is now env.{name} (launch's environment when it renders launch.yml)", e.name));
            }
            None => out.push('$'),
        }
        rest = if env_ref(name).is_some() { tail } else { after };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "circus_tests.rs"]
mod tests;
