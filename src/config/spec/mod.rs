//! `project/launch.yml`, after Tera has rendered it (values kept out of its structure:
//! [`crate::config::spec_text`]), parsed once into typed structs and validated as a whole.
//! Every problem is reported (not just the first), each with the file:line it is at and
//! what to do; the rest of launch never sees raw YAML.
//!
//! One module per section (`templates`, `seed`, `ssh`, `processes`, `shutdown`), each
//! reading the shapes in `raw` through the `check::Checker` that collects the
//! problems; [`instances`] makes the copies of a process; [`order`] finds cycles and
//! levels.

mod check;
pub mod instances;
pub mod order;
mod processes;
pub mod programs;
mod raw;
mod seed;
mod shutdown;
mod ssh;
mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::config::spec_text::SpecText;
use crate::config::yaml::{self, Place, Seg, YamlError};
use crate::volume::users::Accounts;
use check::{Checker, scalar_text};
use raw::RawTop;

// The seed and SSH sections' types live with the code that acts on them, one floor
// down, so that the volume never imports the configuration.
pub use crate::volume::seed::Seed;
pub use crate::volume::ssh::{HostKey, Ssh};

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
    /// Where launch serves its metrics (Prometheus text format at /metrics); off when
    /// `None`.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
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
    /// A service that has run this long is restarted gracefully (stop signal, stop
    /// timeout, start), as circus's `max_age` recycles a worker; `None`: never.
    #[serde(default)]
    pub max_age: Option<Duration>,
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
            max_age: None,
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
    let Some(top) = top(&mut c, value) else {
        return Err(c.errors);
    };
    let process_names: Vec<String> = top
        .processes
        .keys()
        .map(|k| scalar_text(k).unwrap_or_default())
        .collect();
    let known: BTreeSet<&str> = process_names.iter().map(String::as_str).collect();
    let mut spec = Spec {
        templates: templates::parse(&mut c, top.templates, &known, accounts),
        seed: seed::parse(&mut c, top.seed, accounts),
        ssh: top.ssh.and_then(|raw| ssh::parse(&mut c, raw, accounts)),
        ..Spec::default()
    };
    let sshd_added = spec.ssh.as_ref().is_some_and(|ssh| ssh.sshd) && !known.contains("sshd");
    let counts = instances::counts(&mut c, &top.processes);
    let several = instances::total(&process_names, &counts) + usize::from(sshd_added) > 1;
    let written = processes::parse(&mut c, top.processes, &known, several, accounts);
    spec.processes = instances::expand(&mut c, written, &mut spec.templates, &counts);
    if let Err(cycle) = order::levels(&spec.processes) {
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
    if let Some(raw) = top.shutdown {
        shutdown::parse(&mut c, raw, &mut spec.shutdown);
    }
    if let Some(raw) = top.metrics {
        spec.metrics = metrics_listen(&mut c, raw);
    }
    if c.errors.is_empty() {
        Ok(spec)
    } else {
        Err(c.errors)
    }
}

/// The top level, which must be a mapping of the known sections (empty is none).
fn top(c: &mut Checker<'_>, value: Value) -> Option<RawTop> {
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
            return None;
        }
    };
    c.entry::<RawTop>(value, &[], "launch.yml")
}

/// Relative, and with no `..`: cannot leave the directory it is relative to.
pub fn stays_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
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

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Service => "service",
            Kind::Oneshot => "oneshot",
        })
    }
}

#[cfg(test)]
mod tests;

/// `metrics: {listen: "0.0.0.0:9100"}`: an address and port, no host name (resolving one
/// could stall PID 1).
fn metrics_listen(c: &mut Checker, raw: serde_yaml::Value) -> Option<std::net::SocketAddr> {
    let path = [Seg::from("metrics")];
    let m = c.entry::<raw::RawMetrics>(raw, &path, "metrics")?;
    let at = [Seg::from("metrics"), Seg::from("listen")];
    match m.listen.replacen("localhost:", "127.0.0.1:", 1).parse() {
        Ok(address) => Some(address),
        Err(_) => {
            c.error(
                &at,
                format!("metrics listen {:?} is not an address and port", m.listen),
                "write IP:PORT: 0.0.0.0:9100 for every interface, 127.0.0.1:9100 for this container only",
            );
            None
        }
    }
}
