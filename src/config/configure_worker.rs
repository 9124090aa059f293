//! The configuration worker: `launch run` does steps 1 to 4 of the start-up (read the
//! pillar, render, check, seed, install SSH access, write the templates) in a child
//! process of its own binary, `launch __configure`, so that a hostile or slow input
//! costs at most that configuration, never PID 1's reaping, signals or control socket.
//!
//! The worker lowers its own memory limit, runs [`reconfigure::plan`] and
//! [`reconfigure::apply`] as `launch reconfigure` does, and writes one [`Outcome`] as
//! JSON on descriptor 3, a pipe the supervisor reads without blocking. The supervisor
//! gives it a deadline (see `supervise::worker`).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::reconfigure::{self, Options};
use crate::config::rollback::{self, Previous, Restored};
use crate::config::spec::Spec;
use crate::exit::code;

/// The hidden subcommand that makes launch a configuration worker.
pub const SUBCOMMAND: &str = "__configure";

/// The descriptor the worker writes its [`Outcome`] to.
pub const RESULT_FD: i32 = 3;

/// How long a configuration may take unless `--reload-timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The worker's address-space limit unless `--reload-memory` says otherwise.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// The environment variable behind `--reload-timeout`.
pub const TIMEOUT_VAR: &str = "LAUNCH_RELOAD_TIMEOUT";

/// The environment variable behind `--reload-memory`.
pub const MEMORY_VAR: &str = "LAUNCH_RELOAD_MEMORY";

/// The time and memory a configuration may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The worker is killed (with its check commands) after this.
    pub timeout: Duration,
    /// Its address-space limit (RLIMIT_AS), in bytes.
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
        }
    }
}

/// What one configuration came to, as the worker hands it to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Everything was written: the supervisor adopts `spec`.
    Done {
        /// The new spec (boxed: it is most of the answer's size).
        spec: Box<Spec>,
        /// The processes whose templates changed.
        notify: BTreeSet<String>,
        /// What else the configuration did: seeds, secrets kept, the operator's file
        /// created, leftovers removed.
        details: Vec<String>,
        /// SSH key lines refused, and the like: `warning: ...`.
        warnings: Vec<String>,
        /// The SSH keys now installed; `None` when the spec has no `ssh:`.
        keys: Option<Vec<SshKey>>,
        /// `wrote PATH`, one per changed output.
        wrote: Vec<String>,
        /// What each changed output replaced, to put back on a rollback.
        previous: Vec<Previous>,
        /// On a first start, one line that sums it up (said last).
        #[serde(default)]
        summary: Option<String>,
    },
    /// The configuration is not valid: nothing was written.
    Invalid {
        /// Each problem, as shown to the user.
        errors: Vec<String>,
    },
    /// Writing failed midway (a full disk, a name swapped since it was checked).
    Failed {
        /// Each problem.
        errors: Vec<String>,
        /// What had been written before, in words.
        written_before: String,
        /// What the outputs written before the failure replaced, to put back.
        previous: Vec<Previous>,
    },
    /// A rollback's worker put the previous files back (see [`Task::Restore`]).
    Restored(Restored),
}

/// An installed SSH key, as a reload reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SshKey {
    /// `SHA256:...`.
    pub fingerprint: String,
    /// `FILE:LINE` of the .pub line it came from.
    pub from: String,
}

/// What a worker is started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Steps 1 to 4: plan and write the configuration.
    Configure,
    /// Put back the files a reload replaced: a JSON list of [`Previous`] on stdin.
    Restore,
}

/// The worker's command line: everything after [`SUBCOMMAND`].
pub fn arguments(options: &Options, limits: &Limits, task: Task) -> Vec<OsString> {
    let mut args = vec![OsString::from(SUBCOMMAND)];
    if task == Task::Restore {
        args.push("--task=restore".into());
    }
    let mut pair = |name: &str, value: &OsStr| {
        let mut arg = OsString::from(format!("--{name}="));
        arg.push(value);
        args.push(arg);
    };
    let layout = &options.layout;
    for (name, value) in [
        ("root", &layout.root),
        ("project", &layout.project),
        ("data", &layout.data),
    ] {
        if let Some(path) = value {
            pair(name, path.as_os_str());
        }
    }
    for set in &options.sets {
        pair("set", OsStr::new(set));
    }
    pair("memory", OsStr::new(&limits.memory.to_string()));
    args
}

/// Reads [`arguments`] back; `None` for anything launch itself would not have written.
fn parse(args: impl Iterator<Item = OsString>) -> Option<(Options, u64, Task)> {
    let mut options = Options::default();
    let mut memory = DEFAULT_MEMORY;
    let mut task = Task::Configure;
    for arg in args {
        let bytes = arg.into_vec();
        let eq = bytes.iter().position(|&b| b == b'=')?;
        let (name, value) = (&bytes[..eq], bytes[eq + 1..].to_vec());
        let path = || Some(PathBuf::from(OsString::from_vec(value.clone())));
        match name {
            b"--root" => options.layout.root = path(),
            b"--project" => options.layout.project = path(),
            b"--data" => options.layout.data = path(),
            b"--set" => options.sets.push(String::from_utf8(value).ok()?),
            b"--memory" => memory = std::str::from_utf8(&value).ok()?.parse().ok()?,
            b"--task" if value == b"restore" => task = Task::Restore,
            _ => return None,
        }
    }
    Some((options, memory, task))
}

/// `launch __configure ...`: configures, writes the [`Outcome`] on [`RESULT_FD`], and
/// exits 0; anything else it prints on stderr.
pub fn main(args: impl Iterator<Item = OsString>) -> i32 {
    let Some(result) = result_pipe() else {
        eprintln!(
            "launch: {SUBCOMMAND} is launch's own configuration worker, started by `launch run`\n  fix: use `launch reconfigure` instead"
        );
        return code::USAGE;
    };
    let Some((options, memory, task)) = parse(args) else {
        eprintln!(
            "launch: {SUBCOMMAND}: arguments launch does not write\n  fix: use `launch reconfigure` instead"
        );
        return code::USAGE;
    };
    limit_memory(memory);
    let outcome = match task {
        Task::Configure => configure(&options),
        Task::Restore => Outcome::Restored(restore(&options)),
    };
    let text = serde_json::to_vec(&outcome).unwrap_or_else(|e| {
        let errors = vec![format!(
            "the configuration cannot be handed to the supervisor: {e}\n  fix: use UTF-8 text in the spec's paths"
        )];
        serde_json::to_vec(&Outcome::Invalid { errors }).unwrap_or_default()
    });
    let mut pipe = std::fs::File::from(result);
    match pipe.write_all(&text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("launch: the configuration worker cannot answer: {e}");
            code::INTERNAL
        }
    }
}

/// Steps 1 to 4, as `launch reconfigure` does them.
fn configure(options: &Options) -> Outcome {
    let plan = match reconfigure::plan(options) {
        Ok(plan) => plan,
        Err(errors) => {
            return Outcome::Invalid {
                errors: errors.iter().map(ToString::to_string).collect(),
            };
        }
    };
    match reconfigure::apply(&plan) {
        Ok(report) => {
            let (refused, keys) = match &report.ssh {
                Some(ssh) => (
                    ssh.refused
                        .iter()
                        .map(|bad| format!("warning: {bad}"))
                        .collect::<Vec<_>>(),
                    Some(
                        ssh.keys
                            .iter()
                            .map(|key| SshKey {
                                fingerprint: key.fingerprint().to_string(),
                                from: format!("{}:{}", key.file.display(), key.line),
                            })
                            .collect(),
                    ),
                ),
                None => (Vec::new(), None),
            };
            let mut warnings = plan.warnings.clone();
            warnings.extend(refused);
            // On a first start the operator's file, created now, is said by the summary.
            let summary = report.first_start_summary(&plan);
            Outcome::Done {
                details: details(&report, &plan, summary.is_none()),
                warnings,
                keys,
                notify: notified(&report.written),
                wrote: report
                    .written
                    .iter()
                    .map(|w| format!("wrote {}", w.dest.display()))
                    .collect(),
                previous: previous(&report.written),
                spec: Box::new(plan.spec),
                summary,
            }
        }
        Err(failure) => Outcome::Failed {
            errors: failure.errors.iter().map(ToString::to_string).collect(),
            written_before: reconfigure::written_before(&failure.report.changes(&plan)),
            previous: previous(&failure.report.written),
        },
    }
}

/// What a configuration did besides the outputs and SSH keys, in words.
fn details(
    report: &reconfigure::Report,
    plan: &reconfigure::Plan,
    say_operator_file: bool,
) -> Vec<String> {
    let mut details = Vec::new();
    for seed in &report.seeds {
        if let crate::volume::seed::Outcome::Seeded { target, files } = seed {
            details.push(format!(
                "seeded {} ({})",
                target.display(),
                crate::plural::count(*files as usize, "file", "files")
            ));
        }
    }
    details.extend(
        report
            .stored_secrets
            .iter()
            .map(|p| format!("generated a secret, kept in {}", p.display())),
    );
    if report.leftovers > 0 {
        details.push(format!(
            "removed {} a killed launch had left",
            crate::plural::count(report.leftovers, "staged file", "staged files")
        ));
    }
    if report.wrote_operator_file && say_operator_file {
        details.push(format!(
            "created {} (every default, commented out, for the operator to edit)",
            plan.layout.operator_file().display()
        ));
    }
    details
}

fn notified(written: &[crate::config::render::Applied]) -> BTreeSet<String> {
    written
        .iter()
        .flat_map(|w| w.notify.iter().cloned())
        .collect()
}

fn previous(written: &[crate::config::render::Applied]) -> Vec<Previous> {
    written.iter().map(|w| w.previous.clone()).collect()
}

/// The most a rollback's worker reads on stdin: the answer the supervisor took it from
/// was no bigger.
const MAX_RESTORE_INPUT: u64 = 64 << 20;

/// Puts back the files listed on stdin, through the trust of the layout `options` name
/// (the volume's symlinks are never followed).
fn restore(options: &Options) -> Restored {
    let failed = |why: String| Restored {
        done: Vec::new(),
        errors: vec![why],
    };
    let layout = match crate::config::layout::Layout::resolve(&options.layout) {
        Ok(layout) => layout,
        Err(e) => return failed(format!("cannot put the previous files back: {e}")),
    };
    let mut input = Vec::new();
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_RESTORE_INPUT),
        &mut input,
    );
    let files: Vec<Previous> = match read.map(|_| serde_json::from_slice(&input)) {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => return failed(format!("the files to put back cannot be read: {e}")),
        Err(e) => return failed(format!("the files to put back cannot be read: {e}")),
    };
    rollback::restore(&files, &reconfigure::volume_trust(&layout))
}

/// [`RESULT_FD`], when it is the pipe `launch run` gave; made close-on-exec, so that
/// no check command (nor what it leaves running) holds the supervisor's end open.
fn result_pipe() -> Option<OwnedFd> {
    let st = nix::sys::stat::fstat(
        // SAFETY: only looked at; fstat on a closed descriptor fails with EBADF.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(RESULT_FD) },
    )
    .ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: the descriptor is open (fstat said so) and nothing else in this process
    // uses it: launch's protocol gives it to the worker alone.
    let fd = unsafe { OwnedFd::from_raw_fd(RESULT_FD) };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .ok()?;
    debug_assert_eq!(fd.as_raw_fd(), RESULT_FD);
    Some(fd)
}

/// Lowers the worker's address-space limit to `bytes`; the check commands it runs get
/// the old one back. A worker that cannot be limited still works, unlimited.
fn limit_memory(bytes: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the structs given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut old) != 0 {
            return;
        }
        let new = libc::rlimit {
            rlim_cur: bytes.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_AS, &new) == 0 {
            crate::config::check_command::restore_limit_in_checks(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layout::LayoutArgs;

    #[test]
    fn arguments_round_trip_with_odd_bytes() {
        let options = Options {
            layout: LayoutArgs {
                root: Some(PathBuf::from(OsString::from_vec(b"/srv/a=b\xff".to_vec()))),
                project: None,
                data: Some("/v".into()),
            },
            sets: vec!["a.b=-1".into(), "c=--root=/x".into()],
            ..Options::default()
        };
        let limits = Limits {
            timeout: Duration::from_secs(1),
            memory: 12345,
        };
        let args = arguments(&options, &limits, Task::Configure);
        assert_eq!(args[0], SUBCOMMAND);
        let (back, memory, task) = parse(args.into_iter().skip(1)).unwrap();
        assert_eq!(task, Task::Configure);
        assert_eq!(back.layout.root, options.layout.root);
        assert_eq!(back.layout.project, None);
        assert_eq!(back.layout.data, options.layout.data);
        assert_eq!(back.sets, options.sets);
        assert_eq!(memory, 12345);
        assert!(parse(["--rm".into()].into_iter()).is_none());
        assert!(parse(["--task=rm".into()].into_iter()).is_none());
        let args = arguments(&options, &limits, Task::Restore);
        assert_eq!(parse(args.into_iter().skip(1)).unwrap().2, Task::Restore);
    }

    #[test]
    fn an_outcome_survives_json() {
        let mut spec = Spec::default();
        spec.processes.push(crate::config::spec::Process::service(
            "app",
            vec!["a \"quoted\"\nvalue".into()],
        ));
        let outcome = Outcome::Done {
            spec: Box::new(spec),
            notify: ["app".to_string()].into(),
            details: vec![],
            warnings: vec![],
            keys: Some(vec![SshKey {
                fingerprint: "SHA256:x".into(),
                from: "/v/ssh/a.pub:1".into(),
            }]),
            wrote: vec!["wrote /etc/x".into()],
            previous: vec![Previous {
                dest: "/etc/x".into(),
                was: Some(rollback::Was {
                    content: rollback::Content::new(vec![0xff, b'\n']),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                }),
            }],
            summary: Some("first start".into()),
        };
        let text = serde_json::to_vec(&outcome).unwrap();
        assert_eq!(serde_json::from_slice::<Outcome>(&text).unwrap(), outcome);
    }
}
