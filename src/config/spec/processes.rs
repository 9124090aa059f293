//! The `processes:` section: each process's command, account, environment, readiness,
//! restart policy and signals.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::check::{Checker, scalar_text};
use super::raw::{RawCommand, RawProcess, RawReady};
use super::{Command, Kind, Process, Ready, ReadyCheck, Restart, did_you_mean};
use crate::config::yaml::{self, Seg};
use crate::volume::users::Accounts;

/// The processes, in file order. `known` are all the names `depends_on` may use;
/// `several` says whether more than one process shares launch's output.
pub(super) fn parse(
    c: &mut Checker<'_>,
    raw: Mapping,
    known: &BTreeSet<&str>,
    several: bool,
    accounts: &Accounts,
) -> Vec<Process> {
    let mut processes = Vec::new();
    for (key, raw) in raw {
        let name = scalar_text(&key).unwrap_or_default();
        if let Some(p) = one(c, name, raw, known, several, accounts) {
            processes.push(p);
        }
    }
    processes
}

/// One process; None when its entry cannot be read at all.
fn one(
    c: &mut Checker<'_>,
    name: String,
    raw: Value,
    known: &BTreeSet<&str>,
    several: bool,
    accounts: &Accounts,
) -> Option<Process> {
    let path = [Seg::from("processes"), Seg::Key(name.clone())];
    let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
    if name.is_empty() || name.contains(|ch: char| ch.is_whitespace() || ch == '/') {
        c.error(
            &path,
            format!("process name {name:?} is not usable"),
            "use a short name of letters, digits, - and _",
        );
    }
    let p = c.entry::<RawProcess>(raw, &path, &format!("process {name}"))?;
    let command = command(c, p.command, &at("command"));
    let names = Names {
        depends_on: &p.depends_on,
        user: p.user.as_deref(),
        group: p.group.as_deref(),
    };
    references(c, names, &name, known, accounts, &at);
    let env = env(c, p.env, &at("env"));
    let ready = p.ready.map(|r| ready(c, r, &path));
    let kind = p.kind.unwrap_or(Kind::Service);
    let stop_signal = c
        .signal(p.stop_signal, &at("stop_signal"))
        .unwrap_or(libc::SIGTERM);
    let reload_signal = c.signal(p.reload_signal, &at("reload_signal"));
    let stop_timeout = c.duration(p.stop_timeout, Duration::from_secs(5), &at("stop_timeout"));
    let restart_window = c.duration(
        p.restart_window,
        Duration::from_secs(60),
        &at("restart_window"),
    );
    let umask = c.octal(p.umask, &at("umask"), "umask", 0o777);
    let max_age = for_kind(c, &name, kind, p.optional, p.max_age, &at);
    Some(Process {
        name,
        command,
        kind,
        user: p.user,
        group: p.group,
        env,
        cwd: p.cwd.map(PathBuf::from),
        umask,
        depends_on: p.depends_on,
        ready,
        restart: p.restart.unwrap_or(match kind {
            Kind::Service => Restart::Always,
            Kind::Oneshot => Restart::Never,
        }),
        critical: p.critical,
        optional: p.optional,
        stop_signal,
        stop_timeout,
        reload_signal,
        // Several processes share one log (docker logs): each line says whose it is,
        // unless the author says otherwise.
        log_prefix: p.log_prefix.unwrap_or(several),
        max_restarts: p.max_restarts.unwrap_or(5),
        restart_window,
        max_age,
        line: c.line(&path),
    })
}

/// What applies to one kind only: `optional` to a oneshot, `max_age` to a service
/// (and then a duration above zero). Returns the max_age.
fn for_kind(
    c: &mut Checker<'_>,
    name: &str,
    kind: Kind,
    optional: bool,
    max_age: Option<Value>,
    at: &dyn Fn(&str) -> [Seg; 3],
) -> Option<Duration> {
    if optional && kind != Kind::Oneshot {
        c.error(
            &at("optional"),
            format!("process {name} is optional but not a oneshot"),
            "optional applies to kind: oneshot; remove it, or set kind: oneshot",
        );
    }
    let value = max_age?;
    let before = c.errors.len();
    let age = c.duration(Some(value), Duration::ZERO, &at("max_age"));
    if c.errors.len() > before {
        return None;
    }
    if kind == Kind::Oneshot {
        c.error(
            &at("max_age"),
            format!("process {name} is a oneshot with a max_age"),
            "max_age recycles a service that has run that long; remove it from the oneshot",
        );
        return None;
    }
    if age.is_zero() {
        c.error(
            &at("max_age"),
            format!("process {name} has a max_age of 0"),
            "write how long it may run before it is restarted, e.g. 24h; or remove max_age",
        );
        return None;
    }
    Some(age)
}

/// The command; an empty one is refused.
fn command(c: &mut Checker<'_>, raw: RawCommand, path: &[Seg]) -> Command {
    match raw {
        RawCommand::Exec(argv) if argv.is_empty() || argv[0].is_empty() => {
            c.error(
                path,
                "the command is empty",
                "write the program and its arguments, e.g. [/usr/bin/app, --port, \"8080\"]",
            );
            Command::Exec(vec![])
        }
        RawCommand::Exec(argv) => Command::Exec(argv),
        RawCommand::Shell(s) if s.trim().is_empty() => {
            c.error(path, "the command is empty", "write the command to run");
            Command::Shell(s)
        }
        RawCommand::Shell(s) => Command::Shell(s),
    }
}

/// What a process names outside itself.
struct Names<'a> {
    depends_on: &'a [String],
    user: Option<&'a str>,
    group: Option<&'a str>,
}

/// What the process names outside itself: the processes it depends on, its user and
/// its group, each of which must exist.
fn references(
    c: &mut Checker<'_>,
    p: Names<'_>,
    name: &str,
    known: &BTreeSet<&str>,
    accounts: &Accounts,
    at: &dyn Fn(&str) -> [Seg; 3],
) {
    for dep in p.depends_on {
        if dep == name {
            c.error(
                &at("depends_on"),
                format!("process {name} depends on itself"),
                "remove it from its own depends_on",
            );
        } else if !known.contains(dep.as_str()) {
            c.error(
                &at("depends_on"),
                format!("process {name} depends on {dep:?}, which is not a process"),
                did_you_mean(dep, known.iter().copied())
                    .unwrap_or_else(|| "name a process defined under processes:".into()),
            );
        }
    }
    if let Some(user) = p.user {
        if accounts.user(user).is_none() {
            c.error(
                &at("user"),
                format!(
                    "user {user:?} does not exist in {}",
                    accounts.file("passwd").display()
                ),
                "create the user in the image (adduser), or name an existing user or a numeric uid",
            );
        }
    }
    if let Some(group) = p.group {
        if accounts.group(group).is_none() {
            c.error(
                &at("group"),
                format!(
                    "group {group:?} does not exist in {}",
                    accounts.file("group").display()
                ),
                "create the group in the image, or name an existing group or a numeric gid",
            );
        }
    }
}

/// The environment; every value must be a scalar.
fn env(
    c: &mut Checker<'_>,
    raw: BTreeMap<String, Value>,
    path: &[Seg],
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in raw {
        match scalar_text(&v) {
            Some(text) => {
                env.insert(k, text);
            }
            None => c.error(
                path,
                format!("env {k} is {}, not a string", yaml::kind(&v)),
                "give each variable a plain value (quote it if needed)",
            ),
        }
    }
    env
}

/// The readiness check of the process at `path`: exactly one of tcp, cmd, file and
/// notify_fd.
fn ready(c: &mut Checker<'_>, r: RawReady, path: &[Seg; 2]) -> Ready {
    let rpath = [path[0].clone(), path[1].clone(), Seg::from("ready")];
    let mut checks = Vec::new();
    // A check written but refused still counts as written: "exactly one" would
    // otherwise follow from the first error and say it again, wrongly.
    let mut refused = 0;
    if let Some(t) = r.tcp {
        let loopback = t.replacen("localhost:", "127.0.0.1:", 1);
        match loopback.parse() {
            Ok(address) => checks.push(ReadyCheck::Tcp(address)),
            Err(_) => {
                refused += 1;
                c.error(
                    &[path[0].clone(), path[1].clone(), Seg::from("ready"), Seg::from("tcp")],
                    format!("ready tcp {t:?} is not an address and port"),
                    "write IP:PORT (127.0.0.1:8080, [::1]:8080) or localhost:PORT; launch resolves no host names (a DNS lookup could stall PID 1 for seconds): to wait for another host, use {cmd: [...]}",
                )
            }
        }
    }
    if let Some(cmd) = r.cmd {
        checks.push(ReadyCheck::Cmd(match cmd {
            RawCommand::Exec(a) => a,
            RawCommand::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s],
        }));
    }
    if let Some(f) = r.file {
        checks.push(ReadyCheck::File(f.into()));
    }
    if let Some(fd) = r.notify_fd {
        if fd < 3 {
            c.error(
                &rpath,
                format!("notify_fd {fd} is stdin, stdout or stderr"),
                "use a descriptor of 3 or more",
            );
        }
        checks.push(ReadyCheck::NotifyFd(fd));
    }
    if checks.len() + refused != 1 {
        c.error(
            &rpath,
            format!(
                "ready needs exactly one check, found {}",
                checks.len() + refused
            ),
            "write one of {tcp: \"127.0.0.1:8080\"}, {cmd: [...]}, {file: PATH}, {notify_fd: 3}",
        );
    }
    let interval = c.duration(r.interval, Duration::from_millis(200), &rpath);
    let timeout = c.duration(r.timeout, Duration::from_secs(60), &rpath);
    Ready {
        check: checks
            .into_iter()
            .next()
            .unwrap_or(ReadyCheck::File(PathBuf::new())),
        interval,
        timeout,
    }
}
