//! `project/launch.yml`, after Tera has rendered it (values kept out of its structure:
//! [`crate::config::spec_text`]), parsed once into typed structs and validated as a whole.
//! Every problem is reported (not just the first), each with the file:line it is at and
//! what to do; the rest of launch never sees raw YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::config::spec_text::SpecText;
// The seed and SSH sections' types live with the code that acts on them, one floor
// down, so the volume never imports the configuration.
use crate::config::yaml::{self, Place, Seg, YamlError};
pub use crate::volume::seed::Seed;
pub use crate::volume::ssh::{HostKey, Ssh};
use crate::volume::users::Accounts;

/// One problem in the spec.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The rendered spec is not YAML.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// It is YAML, but something in it is wrong.
    #[error("{place}: {what}{excerpt}\n  fix: {fix}")]
    Invalid {
        /// Where.
        place: Place,
        /// What is wrong.
        what: String,
        /// The line, for display.
        excerpt: String,
        /// What to do.
        fix: String,
    },
}

impl SpecError {
    /// The place of the problem.
    pub fn place(&self) -> &Place {
        match self {
            SpecError::Yaml(e) => &e.place,
            SpecError::Invalid { place, .. } => place,
        }
    }
}

/// The whole spec. It crosses a pipe as JSON: the configuration worker builds it, the
/// supervisor adopts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Templates to render, in file order.
    pub templates: Vec<Template>,
    /// Volume paths to seed.
    pub seed: Vec<Seed>,
    /// SSH access.
    pub ssh: Option<Ssh>,
    /// Processes, in file order.
    pub processes: Vec<Process>,
    /// Shutdown settings.
    pub shutdown: Shutdown,
    /// Owner of the volume's `data/` (the app user), as uid and gid.
    pub data_owner: Option<(u32, u32)>,
}

/// A template and where its output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Relative to `project/` (e.g. `templates/nginx.conf`).
    pub src: PathBuf,
    /// Absolute destination.
    pub dest: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Owner and group ids; `None` keeps launch's.
    pub owner: Option<(u32, u32)>,
    /// Processes to reload or restart when the output changes.
    pub notify: Vec<String>,
    /// A command run on the staged output before it replaces the old one; `{{ staged }}`
    /// in it is the staged file's path.
    pub check: Option<String>,
    /// The spec's line for this entry.
    pub line: usize,
}

/// What a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Runs for as long as the container.
    Service,
    /// Runs once to completion; its dependents wait for exit 0.
    Oneshot,
}

/// When a process is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whatever its exit.
    Always,
    /// Unless it exited 0.
    OnFailure,
    /// Never.
    Never,
}

/// How a command is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Executed directly (exec form).
    Exec(Vec<String>),
    /// Run by `/bin/sh -c`.
    Shell(String),
}

impl Command {
    /// The argv to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }
}

/// How a process says it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadyCheck {
    /// A TCP connection to this address succeeds. An address, not a host name: PID 1
    /// does not query DNS, whose time-outs would stall the loop for seconds.
    Tcp(SocketAddr),
    /// A command exits 0.
    Cmd(Vec<String>),
    /// A file exists.
    File(PathBuf),
    /// A line is written on this descriptor (s6 convention).
    NotifyFd(i32),
}

/// Readiness and its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The check.
    pub check: ReadyCheck,
    /// Between two tries.
    pub interval: Duration,
    /// Not ready by then: a failure.
    pub timeout: Duration,
}

/// A supervised process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its name.
    pub name: String,
    /// What runs.
    pub command: Command,
    /// Service or oneshot.
    pub kind: Kind,
    /// Run as this user (name or number), with `group` as its group if given.
    pub user: Option<String>,
    /// An explicit group.
    pub group: Option<String>,
    /// Environment added to launch's.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// umask.
    pub umask: Option<u32>,
    /// Started after these.
    pub depends_on: Vec<String>,
    /// Readiness.
    pub ready: Option<Ready>,
    /// Restart policy.
    pub restart: Restart,
    /// Giving up on it stops the container.
    pub critical: bool,
    /// A oneshot whose failure does not stop the container.
    pub optional: bool,
    /// Signal that asks it to stop.
    pub stop_signal: i32,
    /// Time between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    /// Signal that asks it to reload; `None`: restart it instead.
    pub reload_signal: Option<i32>,
    /// Prefix its output lines with `name | `.
    pub log_prefix: bool,
    /// Crash loop: this many exits...
    pub max_restarts: u32,
    /// ...within this window gives it up.
    pub restart_window: Duration,
    /// The spec's line for this process.
    pub line: usize,
}

impl Process {
    /// A service with every setting at its default (as launch.yml's defaults).
    pub fn service(name: &str, argv: Vec<String>) -> Process {
        Process {
            name: name.to_string(),
            command: Command::Exec(argv),
            kind: Kind::Service,
            user: None,
            group: None,
            env: BTreeMap::new(),
            cwd: None,
            umask: None,
            depends_on: Vec::new(),
            ready: None,
            restart: Restart::Always,
            critical: false,
            optional: false,
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(5),
            reload_signal: None,
            log_prefix: false,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            line: 0,
        }
    }
}

/// Shutdown settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// Everything must be stopped within this.
    pub grace: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            grace: Duration::from_secs(9),
        }
    }
}

// ---- raw shapes, as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    #[serde(default)]
    templates: Vec<Value>,
    #[serde(default)]
    seed: Vec<Value>,
    #[serde(default)]
    ssh: Option<Value>,
    #[serde(default)]
    processes: Mapping,
    #[serde(default)]
    shutdown: Option<Value>,
    #[serde(default)]
    data_owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    src: String,
    dest: String,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    check: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    from: String,
    to: String,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    #[serde(default = "default_ssh_user")]
    user: String,
    #[serde(default)]
    sshd: bool,
    #[serde(default = "default_ssh_port")]
    port: u16,
    #[serde(default)]
    allow_options: bool,
    #[serde(default = "default_host_keys")]
    host_keys: Vec<HostKey>,
}

fn default_host_keys() -> Vec<HostKey> {
    vec![HostKey::Ed25519]
}

fn default_ssh_user() -> String {
    "root".into()
}

fn default_ssh_port() -> u16 {
    22
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    command: RawCommand,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Value>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    umask: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    ready: Option<RawReady>,
    #[serde(default)]
    restart: Option<Restart>,
    #[serde(default)]
    critical: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    stop_signal: Option<Value>,
    #[serde(default)]
    stop_timeout: Option<Value>,
    #[serde(default)]
    reload_signal: Option<Value>,
    #[serde(default)]
    log_prefix: Option<bool>,
    #[serde(default)]
    max_restarts: Option<u32>,
    #[serde(default)]
    restart_window: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    #[serde(default)]
    tcp: Option<String>,
    #[serde(default)]
    cmd: Option<RawCommand>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    notify_fd: Option<i32>,
    #[serde(default)]
    interval: Option<Value>,
    #[serde(default)]
    timeout: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShutdown {
    #[serde(default)]
    grace: Option<Value>,
}

/// Collects problems with their places.
struct Checker<'a> {
    file: &'a Path,
    text: &'a SpecText,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    fn line(&self, path: &[Seg]) -> usize {
        self.text.locate(path)
    }

    fn error(&mut self, path: &[Seg], what: impl Into<String>, fix: impl Into<String>) {
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
    fn entry<T: for<'de> Deserialize<'de>>(
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

    fn duration(&mut self, value: Option<Value>, default: Duration, path: &[Seg]) -> Duration {
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

    fn signal(&mut self, value: Option<Value>, path: &[Seg]) -> Option<i32> {
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

    fn octal(&mut self, value: Option<Value>, path: &[Seg], what: &str, max: u32) -> Option<u32> {
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

    fn owner(
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
                format!("user {user:?} does not exist in /etc/passwd"),
                "create the user in the image (adduser), or name an existing user or a numeric uid",
            );
            return None;
        };
        let gid = match group {
            None => found.gid,
            Some(g) => match accounts.group(g) {
                Some(gid) => gid,
                None => {
                    self.error(path, format!("group {g:?} does not exist in /etc/group"), "create the group in the image (addgroup), or name an existing group or a numeric gid");
                    return None;
                }
            },
        };
        Some((found.uid, gid))
    }
}

/// Parses and validates the rendered spec `text` of `file`.
pub fn parse(file: &Path, text: &SpecText, accounts: &Accounts) -> Result<Spec, Vec<SpecError>> {
    let value = text
        .parse(file)
        .map_err(|e| e.into_iter().map(SpecError::from).collect::<Vec<_>>())?;
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        v @ Value::Mapping(_) => v,
        other => {
            c.error(
                &[],
                format!(
                    "the top level is {}, but the spec must be a mapping",
                    yaml::kind(&other)
                ),
                "start the file with keys: templates:, seed:, ssh:, processes:, shutdown:",
            );
            return Err(c.errors);
        }
    };
    let Some(top) = c.entry::<RawTop>(value, &[], "launch.yml") else {
        return Err(c.errors);
    };
    let mut spec = Spec::default();

    let process_names: Vec<String> = top
        .processes
        .keys()
        .map(|k| scalar_text(k).unwrap_or_default())
        .collect();
    let known: BTreeSet<&str> = process_names.iter().map(String::as_str).collect();

    // Templates.
    let mut dests: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, raw) in top.templates.into_iter().enumerate() {
        let path = [Seg::from("templates"), Seg::Index(i)];
        let Some(t) = c.entry::<RawTemplate>(raw, &path, "template") else {
            continue;
        };
        let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
        let src = PathBuf::from(&t.src);
        if !stays_inside(&src) {
            c.error(
                &at("src"),
                format!("template src {:?} must be a path inside the project", t.src),
                "write it relative to project/, e.g. templates/app.conf",
            );
        }
        let dest = PathBuf::from(&t.dest);
        if !dest.is_absolute() {
            c.error(
                &at("dest"),
                format!("template dest {:?} is relative", t.dest),
                "write the absolute path of the file to create, e.g. /etc/app/app.conf",
            );
        } else if let Some(first) = dests.insert(dest.clone(), i) {
            c.error(
                &at("dest"),
                format!(
                    "two templates write {} (entries {} and {})",
                    dest.display(),
                    first + 1,
                    i + 1
                ),
                "give each template its own dest, or merge the two templates",
            );
        }
        let mode = c
            .octal(t.mode, &at("mode"), "mode", 0o7777)
            .unwrap_or(0o644);
        let owner = c.owner(t.owner, accounts, &at("owner"));
        for name in &t.notify {
            if !known.contains(name.as_str()) {
                c.error(
                    &at("notify"),
                    format!("notify names {name:?}, which is not a process"),
                    did_you_mean(name, known.iter().copied())
                        .unwrap_or_else(|| "name a process defined under processes:".into()),
                );
            }
        }
        spec.templates.push(Template {
            src,
            dest,
            mode,
            owner,
            notify: t.notify,
            check: t.check,
            line: c.line(&path),
        });
    }

    // Seeds.
    for (i, raw) in top.seed.into_iter().enumerate() {
        let path = [Seg::from("seed"), Seg::Index(i)];
        let Some(s) = c.entry::<RawSeed>(raw, &path, "seed") else {
            continue;
        };
        let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
        let from = PathBuf::from(&s.from);
        if !stays_inside(&from) {
            c.error(
                &at("from"),
                format!("seed from {:?} must be a path inside the project", s.from),
                "write it relative to project/, e.g. seed/data",
            );
        }
        let to = PathBuf::from(&s.to);
        if !stays_inside(&to) {
            c.error(
                &at("to"),
                format!("seed to {:?} escapes the volume", s.to),
                "write a path relative to the volume that stays inside it, e.g. data",
            );
        }
        let owner = c.owner(s.owner, accounts, &at("owner"));
        spec.seed.push(Seed { from, to, owner });
    }

    // SSH.
    if let Some(raw) = top.ssh {
        let path = [Seg::from("ssh")];
        if let Some(s) = c.entry::<RawSsh>(raw, &path, "ssh") {
            if accounts.user(&s.user).is_none() {
                c.error(
                    &[Seg::from("ssh"), Seg::from("user")],
                    format!("user {:?} does not exist in /etc/passwd", s.user),
                    "name an existing user",
                );
            }
            if s.host_keys.is_empty() {
                c.error(
                    &[Seg::from("ssh"), Seg::from("host_keys")],
                    "no host key type given".to_string(),
                    "list at least one: host_keys: [ed25519] (add rsa for old clients)",
                );
            }
            let mut host_keys = s.host_keys;
            host_keys.dedup();
            spec.ssh = Some(Ssh {
                user: s.user,
                sshd: s.sshd,
                port: s.port,
                allow_options: s.allow_options,
                host_keys,
            });
        }
    }

    // Processes.
    let sshd_added = spec.ssh.as_ref().is_some_and(|ssh| ssh.sshd) && !known.contains("sshd");
    let several = process_names.len() + usize::from(sshd_added) > 1;
    for (key, raw) in top.processes {
        let name = scalar_text(&key).unwrap_or_default();
        let path = [Seg::from("processes"), Seg::Key(name.clone())];
        let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
        if name.is_empty() || name.contains(|ch: char| ch.is_whitespace() || ch == '/') {
            c.error(
                &path,
                format!("process name {name:?} is not usable"),
                "use a short name of letters, digits, - and _",
            );
        }
        let Some(p) = c.entry::<RawProcess>(raw, &path, &format!("process {name}")) else {
            continue;
        };
        let command = match p.command {
            RawCommand::Exec(argv) if argv.is_empty() || argv[0].is_empty() => {
                c.error(
                    &at("command"),
                    "the command is empty",
                    "write the program and its arguments, e.g. [/usr/bin/app, --port, \"8080\"]",
                );
                Command::Exec(vec![])
            }
            RawCommand::Exec(argv) => Command::Exec(argv),
            RawCommand::Shell(s) if s.trim().is_empty() => {
                c.error(
                    &at("command"),
                    "the command is empty",
                    "write the command to run",
                );
                Command::Shell(s)
            }
            RawCommand::Shell(s) => Command::Shell(s),
        };
        for dep in &p.depends_on {
            if dep == &name {
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
        if let Some(user) = &p.user {
            if accounts.user(user).is_none() {
                c.error(&at("user"), format!("user {user:?} does not exist in /etc/passwd"), "create the user in the image (adduser), or name an existing user or a numeric uid");
            }
        }
        if let Some(group) = &p.group {
            if accounts.group(group).is_none() {
                c.error(
                    &at("group"),
                    format!("group {group:?} does not exist in /etc/group"),
                    "create the group in the image, or name an existing group or a numeric gid",
                );
            }
        }
        let mut env = BTreeMap::new();
        for (k, v) in p.env {
            match scalar_text(&v) {
                Some(text) => {
                    env.insert(k, text);
                }
                None => c.error(
                    &at("env"),
                    format!("env {k} is {}, not a string", yaml::kind(&v)),
                    "give each variable a plain value (quote it if needed)",
                ),
            }
        }
        let ready = p.ready.map(|r| {
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
                    c.error(&rpath, format!("notify_fd {fd} is stdin, stdout or stderr"), "use a descriptor of 3 or more");
                }
                checks.push(ReadyCheck::NotifyFd(fd));
            }
            if checks.len() + refused != 1 {
                c.error(&rpath, format!("ready needs exactly one check, found {}", checks.len() + refused), "write one of {tcp: \"127.0.0.1:8080\"}, {cmd: [...]}, {file: PATH}, {notify_fd: 3}");
            }
            let interval = c.duration(r.interval, Duration::from_millis(200), &rpath);
            let timeout = c.duration(r.timeout, Duration::from_secs(60), &rpath);
            Ready {
                check: checks.into_iter().next().unwrap_or(ReadyCheck::File(PathBuf::new())),
                interval,
                timeout,
            }
        });
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
        if p.optional && kind != Kind::Oneshot {
            c.error(
                &at("optional"),
                format!("process {name} is optional but not a oneshot"),
                "optional applies to kind: oneshot; remove it, or set kind: oneshot",
            );
        }
        spec.processes.push(Process {
            name: name.clone(),
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
            line: c.line(&path),
        });
    }
    if let Some(cycle) = find_cycle(&spec.processes) {
        let first = cycle[0].clone();
        c.error(
            &[
                Seg::from("processes"),
                Seg::Key(first.clone()),
                Seg::from("depends_on"),
            ],
            format!("dependency cycle: {}", cycle.join(" -> ")),
            "remove one of these depends_on so that the processes can start in some order",
        );
    }

    spec.data_owner = c.owner(top.data_owner, accounts, &[Seg::from("data_owner")]);

    // Shutdown.
    if let Some(raw) = top.shutdown {
        let path = [Seg::from("shutdown")];
        if let Some(s) = c.entry::<RawShutdown>(raw, &path, "shutdown") {
            spec.shutdown.grace = c.duration(
                s.grace,
                spec.shutdown.grace,
                &[Seg::from("shutdown"), Seg::from("grace")],
            );
        }
    }

    if c.errors.is_empty() {
        Ok(spec)
    } else {
        Err(c.errors)
    }
}

/// Relative, and with no `..`: cannot leave the directory it is relative to.
pub fn stays_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A cycle in `depends_on`, as names from the first back to it.
fn find_cycle(processes: &[Process]) -> Option<Vec<String>> {
    let deps: BTreeMap<&str, &[String]> = processes
        .iter()
        .map(|p| (p.name.as_str(), p.depends_on.as_slice()))
        .collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, &'a [String]>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|s| *s == n).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n, 1);
        stack.push(n);
        for d in deps.get(n).copied().unwrap_or(&[]) {
            if deps.contains_key(d.as_str()) {
                if let Some(c) = visit(d, deps, state, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    for p in processes {
        if let Some(c) = visit(&p.name, &deps, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number.
pub fn parse_signal(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// "did you mean `x`?" for the closest of `candidates`, if any is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
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

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Service => "service",
            Kind::Oneshot => "oneshot",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Spec, Vec<SpecError>> {
        let file = Path::new("launch.yml");
        let text = SpecText::new(file, text).map_err(|e| vec![e.into()])?;
        parse(file, &text, &Accounts::load(Path::new("/")))
    }

    fn messages(text: &str) -> String {
        check(text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_design_sketch_parses() {
        let spec = check(
            "templates:\n  - src: templates/nginx.conf\n    dest: /etc/nginx/nginx.conf\n    mode: \"0640\"\n    owner: root:root\n    notify: [nginx]\n\
             processes:\n  migrate: {command: [app, migrate], kind: oneshot}\n  app:\n    command: [/usr/bin/app, --port, \"8080\"]\n    env: {RUST_LOG: info, N: 3}\n    depends_on: [migrate]\n    ready: {tcp: \"127.0.0.1:8080\"}\n    restart: on-failure\n    critical: true\n\
             \x20 nginx:\n    command: nginx -g 'daemon off;'\n    depends_on: [app]\n    stop_signal: SIGQUIT\n    stop_timeout: 5s\n    reload_signal: HUP\nshutdown: {grace: 9s}\n",
        )
        .unwrap();
        assert_eq!(spec.templates[0].mode, 0o640);
        assert_eq!(spec.templates[0].owner, Some((0, 0)));
        assert_eq!(spec.processes.len(), 3);
        assert_eq!(spec.processes[1].env["N"], "3");
        assert_eq!(spec.processes[2].command.argv()[0], "/bin/sh");
        assert_eq!(spec.processes[2].stop_signal, libc::SIGQUIT);
        assert_eq!(spec.processes[2].reload_signal, Some(libc::SIGHUP));
        assert_eq!(spec.processes[0].restart, Restart::Never);
        assert_eq!(spec.processes[2].line, 16);
    }

    #[test]
    fn unknown_keys_get_a_did_you_mean_at_their_line() {
        let m = messages("processes:\n  app:\n    comand: [x]\n");
        assert!(m.contains("launch.yml:3"), "{m}");
        assert!(m.contains("did you mean `command`?"), "{m}");
        let m = messages("proceses: {}\n");
        assert!(m.contains("did you mean `processes`?"), "{m}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let m = messages(
            "templates:\n  - {src: a, dest: relative/path}\n  - {src: b, dest: /x}\n  - {src: c, dest: /x, notify: [ngix]}\n\
             seed:\n  - {from: seed/x, to: ../../etc}\n\
             processes:\n  a: {command: [x], depends_on: [b], stop_timeout: soon, stop_signal: SIGFOO}\n  b: {command: [y], depends_on: [a], user: no-such-user, umask: \"999\"}\n\
             \x20 c: {command: [z], restart: sometimes}\n",
        );
        for needle in [
            "launch.yml:2: template dest \"relative/path\" is relative",
            "two templates write /x",
            "notify names \"ngix\"",
            "escapes the volume",
            "invalid duration \"soon\"",
            "\"SIGFOO\" is not a signal",
            "user \"no-such-user\" does not exist",
            "umask \"999\"",
            "dependency cycle: a -> b -> a",
            "unknown variant `sometimes`",
        ] {
            assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
        }
    }

    #[test]
    fn a_tcp_check_takes_an_address_and_never_a_host_name() {
        let spec = check(
            "processes:\n  a: {command: [x], ready: {tcp: \"localhost:80\"}}\n  b: {command: [y], ready: {tcp: \"[::1]:81\"}}\n",
        )
        .unwrap();
        let ready = |i: usize| spec.processes[i].ready.as_ref().map(|r| r.check.clone());
        assert_eq!(
            ready(0),
            Some(ReadyCheck::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(ready(1), Some(ReadyCheck::Tcp("[::1]:81".parse().unwrap())));
        let m = messages("processes:\n  a:\n    command: [x]\n    ready:\n      tcp: db:5432\n");
        assert!(
            m.contains("launch.yml:5: ready tcp \"db:5432\" is not an address and port"),
            "{m}"
        );
        assert!(m.contains("{cmd: [...]}"), "{m}");
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("hup"), Some(1));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }
}
