//! The supervisor's side of the configuration worker ([`crate::config::configure_worker`]):
//! start it (at start-up, on SIGHUP, on `launch reload`), read its answer from a pipe
//! without blocking, kill it (and its check commands) at its deadline, and act on what
//! it came to. One worker at a time, and one reload: a reload asked for while a worker
//! runs or a reload is pending (see `reload`) is queued, and any number of such asks make
//! one more reload. The same worker, given the files a reload replaced on its stdin,
//! puts them back when the reload is rolled back.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::last_reload::LastReload;
use super::reload::Pending;
use super::{Mode, Phase, Supervisor};
use crate::config::configure_worker::{self, Limits, Outcome, SshKey, Task};
use crate::config::spec::Spec;
use crate::control;
use crate::exit::{Exit, code};
use crate::init::cleanup;
use crate::init::signals::send;
use crate::init::spawn::{self, ChildSetup, Extra};

/// The most a worker may answer: the spec, and what the changed outputs replaced (kept
/// for a rollback).
const MAX_ANSWER: usize = 64 << 20;

/// The configuration work of a supervisor: the worker running, if any, and what waits.
#[derive(Debug, Default)]
pub(super) struct Configuring {
    /// The time and memory one configuration may take.
    pub(super) limits: Limits,
    /// The worker running now.
    current: Option<Worker>,
    /// A reload asked for while a worker runs or a reload is pending, with the clients
    /// waiting for its answer.
    queued: Option<Vec<UnixStream>>,
    /// The first configuration has been adopted (until then, no process exists yet and
    /// that is no reason to stop).
    pub(super) configured: bool,
    /// The reload adopted and not yet done: its processes are watched (see `reload`).
    pub(super) pending: Option<Pending>,
    /// The spec that runs, to put back when a reload is rolled back.
    pub(super) adopted: Option<Spec>,
    /// The SSH keys installed by the last configuration, to say what a reload changed.
    pub(super) keys: Option<Vec<SshKey>>,
    /// What the last reload came to, for `launch status`.
    pub(super) last_reload: Option<LastReload>,
    /// How many reloads came to each result, for the metrics.
    pub(super) reloads: std::collections::BTreeMap<&'static str, u64>,
}

/// What a worker was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Job {
    /// The first configuration, at start-up.
    First,
    /// A reload.
    Reload,
    /// A rollback: putting back the files a reload replaced.
    Restore,
}

/// One running worker.
#[derive(Debug)]
struct Worker {
    pid: Pid,
    /// The read end of its answer pipe (non-blocking); `None` once it ended.
    pipe: Option<OwnedFd>,
    token: u64,
    deadline: Instant,
    answer: Vec<u8>,
    too_big: bool,
    /// How it ended, once reaped.
    exit: Option<Exit>,
    /// Killed at its deadline.
    overdue: bool,
    /// What it was started for.
    job: Job,
    /// `launch reload` clients waiting for the answer.
    replies: Vec<UnixStream>,
}

impl Configuring {
    /// When the running worker is due, for the loop's timeout.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .filter(|w| !w.overdue && w.exit.is_none())
            .map(|w| w.deadline)
    }

    /// True when `token` is the running worker's pipe.
    pub(super) fn watches(&self, token: u64) -> bool {
        self.current.as_ref().is_some_and(|w| w.token == token)
    }

    /// A worker runs or a reload is pending: a new reload waits its turn.
    fn busy(&self) -> bool {
        self.current.is_some() || self.pending.is_some()
    }

    /// Takes note of a reaped child; true when it was the worker.
    pub(super) fn reaped(&mut self, pid: Pid, exit: Exit) -> bool {
        match self.current.as_mut() {
            Some(w) if w.pid == pid => {
                w.exit = Some(exit);
                true
            }
            _ => false,
        }
    }
}

impl Worker {
    /// Reads what the pipe holds now; at its end, stops watching it.
    fn pump(&mut self, events: &crate::init::events::EventLoop) {
        let Some(pipe) = &self.pipe else {
            return;
        };
        // Small: PID 1's stack pages stay resident once touched, and an answer is a
        // few KiB (a 64 KiB buffer here was most of launch's idle stack).
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(pipe, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if self.answer.len() + n > MAX_ANSWER {
                        self.too_big = true;
                        self.answer.clear();
                    } else if !self.too_big {
                        self.answer.extend_from_slice(&buf[..n]);
                    }
                }
                Err(Errno::EINTR) => {}
                // EAGAIN: more later.
                Err(_) => return,
            }
        }
        if let Some(pipe) = self.pipe.take() {
            let _ = events.unwatch(pipe.as_fd());
        }
    }

    /// Kills the worker and everything it started (a hung check in its own group).
    fn kill(&self) {
        for pid in cleanup::descendants(self.pid).unwrap_or_default() {
            let _ = send(Pid::from_raw(-pid.as_raw()), libc::SIGKILL);
            let _ = send(pid, libc::SIGKILL);
        }
        let _ = send(Pid::from_raw(-self.pid.as_raw()), libc::SIGKILL);
    }

    /// What it came to, or why there is nothing: how it ended, in words.
    fn outcome(&self, limits: &Limits) -> Result<Outcome, String> {
        if self.overdue {
            return Err(format!(
                "the configuration did not finish within {}: killed, with its check commands\n  fix: find what is slow (a check command, a huge pillar), or raise --reload-timeout ({})",
                crate::duration::format(limits.timeout),
                configure_worker::TIMEOUT_VAR
            ));
        }
        if self.too_big {
            return Err(format!(
                "the configuration worker answered more than {MAX_ANSWER} bytes\n  fix: make the spec smaller"
            ));
        }
        let exit = self.exit.unwrap_or(Exit::Code(0));
        if self.answer.is_empty() || exit != Exit::Code(0) {
            return Err(format!(
                "the configuration worker ended without an answer ({exit})\n  fix: if it ran out of memory (its limit is {}), shrink the pillar or raise --reload-memory ({}); else see the lines above",
                size(limits.memory),
                configure_worker::MEMORY_VAR
            ));
        }
        serde_json::from_slice(&self.answer)
            .map_err(|e| format!("the configuration worker's answer cannot be read: {e}"))
    }
}

impl Supervisor {
    /// SIGHUP or `launch reload` (whose client, `reply`, waits for the answer).
    pub(super) fn request_reload(&mut self, reply: Option<UnixStream>) {
        if !matches!(self.mode, Mode::Run { .. }) || self.phase != Phase::Running {
            if let Some(stream) = reply {
                control::respond(stream, "launch: shutting down\n", code::UNAVAILABLE);
            }
            return;
        }
        if self.configuring.busy() {
            self.configuring
                .queued
                .get_or_insert_with(Vec::new)
                .extend(reply);
            return;
        }
        self.log(match reply {
            Some(_) => "reload asked for (launch reload): reconfiguring".into(),
            None => "SIGHUP: reconfiguring".into(),
        });
        self.start_configuring(false, reply.into_iter().collect());
    }

    /// Starts a configuration worker; a worker that cannot start is that
    /// configuration's failure.
    pub(super) fn start_configuring(&mut self, at_start: bool, replies: Vec<UnixStream>) {
        let job = if at_start { Job::First } else { Job::Reload };
        if let Err(why) = self.start_worker(job, replies, None) {
            self.configured(job, why.0, Err(why.1));
        }
    }

    /// Starts a worker for `job`, with `input` as its stdin; gives the replies back when
    /// it cannot start.
    pub(super) fn start_worker(
        &mut self,
        job: Job,
        replies: Vec<UnixStream>,
        input: Option<OwnedFd>,
    ) -> Result<(), (Vec<UnixStream>, String)> {
        let Mode::Run { config, .. } = &self.mode else {
            return Ok(());
        };
        let limits = self.configuring.limits;
        let task = match job {
            Job::Restore => Task::Restore,
            Job::First | Job::Reload => Task::Configure,
        };
        let (pid, pipe) = match spawn_worker(config, &limits, &self.setup, task, input) {
            Ok(started) => started,
            Err(why) => return Err((replies, why)),
        };
        let token = self.next_token;
        self.next_token += 1;
        let _ = self.events.watch(pipe.as_fd(), token);
        self.configuring.current = Some(Worker {
            pid,
            pipe: Some(pipe),
            token,
            deadline: Instant::now() + limits.timeout,
            answer: Vec::new(),
            too_big: false,
            exit: None,
            overdue: false,
            job,
            replies,
        });
        Ok(())
    }

    /// The worker's pipe is readable.
    pub(super) fn worker_readable(&mut self) {
        if let Some(w) = self.configuring.current.as_mut() {
            w.pump(&self.events);
        }
    }

    /// At its deadline the worker is killed; its end is reported once it is reaped.
    pub(super) fn worker_on_time(&mut self, now: Instant) {
        if let Some(w) = self.configuring.current.as_mut() {
            if !w.overdue && w.exit.is_none() && now >= w.deadline {
                w.overdue = true;
                w.kill();
            }
        }
    }

    /// Shutdown: the worker is killed and its answer, if any, ignored; a pending reload
    /// and its clients are told.
    pub(super) fn abandon_configuring(&mut self) {
        let mut replies = self.configuring.queued.take().unwrap_or_default();
        if let Some(w) = self.configuring.current.as_mut() {
            if w.exit.is_none() {
                w.kill();
            }
            replies.append(&mut w.replies);
        }
        replies.extend(self.abandon_reload());
        for stream in replies {
            control::respond(stream, "launch: shutting down\n", code::UNAVAILABLE);
        }
    }

    /// After a reap: a worker that has ended is done with; what it came to is acted on,
    /// and a queued reload starts once nothing is pending.
    pub(super) fn finish_configuring(&mut self) {
        let Some(mut w) = self.configuring.current.take_if(|w| w.exit.is_some()) else {
            return;
        };
        // It has exited: all it wrote is in the pipe.
        w.pump(&self.events);
        if self.phase != Phase::Running {
            return;
        }
        let outcome = w.outcome(&self.configuring.limits);
        self.configured(w.job, std::mem::take(&mut w.replies), outcome);
        self.start_queued();
    }

    /// Starts the reload asked for while the last one ran, when nothing is pending.
    pub(super) fn start_queued(&mut self) {
        if self.configuring.busy() || self.phase != Phase::Running {
            return;
        }
        if let Some(replies) = self.configuring.queued.take() {
            self.log("reconfiguring again, as asked while the last one ran".into());
            self.start_configuring(false, replies);
        }
    }

    /// Acts on what a worker came to.
    fn configured(&mut self, job: Job, replies: Vec<UnixStream>, outcome: Result<Outcome, String>) {
        match job {
            Job::First => self.first_configured(outcome),
            Job::Reload => self.reconfigured(outcome, replies),
            Job::Restore => self.restored(outcome),
        }
    }

    /// The first configuration: adopted, or launch ends and starts nothing: 78 for a
    /// configuration that is not valid, 77 for one that could not be written for lack
    /// of permission (a read-only file system, a launch that is not root).
    fn first_configured(&mut self, outcome: Result<Outcome, String>) {
        let said = match outcome {
            Ok(Outcome::Done {
                spec,
                details,
                warnings,
                keys,
                wrote,
                summary,
                ..
            }) => {
                let key_lines = keys
                    .iter()
                    .flatten()
                    .map(|k| format!("ssh key {} from {}", k.fingerprint, k.from));
                for line in warnings
                    .into_iter()
                    .chain(key_lines)
                    .chain(details)
                    .chain(wrote)
                    .chain(summary)
                {
                    self.log(line);
                }
                self.configuring.configured = true;
                self.configuring.keys = keys;
                self.configuring.adopted = Some((*spec).clone());
                self.adopt_spec(*spec, &Default::default());
                return;
            }
            Ok(Outcome::Invalid { errors }) => (
                errors,
                "the configuration is not valid; nothing was started",
            ),
            Ok(Outcome::Failed {
                mut errors,
                written_before,
                ..
            }) => {
                errors.push(format!("{written_before}; nothing was started"));
                let last = if errors.iter().any(|e| for_lack_of_permission(e)) {
                    "the configuration could not be written for lack of permission (above: which path, and what to do); nothing was started"
                } else {
                    "the configuration could not be written (above: which path, and why); nothing was started"
                };
                self.exit_reason = last.into();
                (errors, "")
            }
            Ok(Outcome::Restored(_)) => (
                vec!["the configuration worker answered out of turn".into()],
                "nothing was started",
            ),
            Err(why) => (
                vec![why],
                "the configuration did not finish; nothing was started",
            ),
        };
        let (lines, last) = said;
        for line in lines.iter().chain(Some(&last.to_string())) {
            if !line.is_empty() {
                eprintln!("launch: {line}");
            }
        }
        if !last.is_empty() {
            self.exit_reason = last.to_string();
        }
        let code = if self.exit_reason.contains("for lack of permission") {
            code::NO_PERMISSION
        } else {
            code::CONFIG
        };
        // Nothing runs yet; what the worker may have left gets the usual end. Reaping
        // now learns whether anything is left at all (no SIGCHLD may ever come). The
        // grace is the one left-behind processes get: with none, launch ends at once,
        // without a "grace is over" from this very turn's timers.
        self.phase = Phase::Stopping {
            grace_until: Instant::now() + super::ORPHAN_GRACE_MIN,
            code,
        };
        self.reap();
    }
}

/// Whether an error (as the worker wrote it) is a permission the system refused: EPERM,
/// EACCES or EROFS, as `std::io::Error` shows them.
fn for_lack_of_permission(error: &str) -> bool {
    ["(os error 1)", "(os error 13)", "(os error 30)"]
        .iter()
        .any(|e| error.contains(e))
}

/// Starts `launch __configure` with its answer pipe as descriptor 3, working from `/`
/// as launch does.
fn spawn_worker(
    options: &crate::config::reconfigure::Options,
    limits: &Limits,
    setup: &ChildSetup,
    task: Task,
    input: Option<OwnedFd>,
) -> Result<(Pid, OwnedFd), String> {
    let cannot = |e: &dyn std::fmt::Display| {
        format!(
            "cannot start the configuration worker: {e}\n  fix: launch runs its own binary again (/proc/self/exe): mount /proc and keep the binary in place"
        )
    };
    let (read, write) = super::pipe().ok_or_else(|| cannot(&"no pipe"))?;
    let mut argv = vec![own_binary()];
    argv.extend(configure_worker::arguments(options, limits, task));
    let extra = Extra {
        cwd: Some("/".into()),
        stdin: input,
        notify: Some((write, configure_worker::RESULT_FD)),
        close_fds: true,
        ..Extra::default()
    };
    let pid = spawn::spawn_with(&argv, setup, extra).map_err(|e| cannot(&e))?;
    Ok((pid, read))
}

/// launch's own binary: through /proc, the very file launch runs even when it has been
/// replaced or deleted since; by name where /proc is missing.
fn own_binary() -> OsString {
    let proc = std::path::Path::new("/proc/self/exe");
    match std::env::current_exe() {
        Ok(path) if !proc.exists() => path.into(),
        _ => proc.into(),
    }
}

/// `1073741824` as `1G`, `67108864` as `64M`: as the operator would have written it.
fn size(bytes: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_permissions_are_told_from_other_failures() {
        for (error, refused) in [
            ("/x: cannot create: Permission denied (os error 13)", true),
            (
                "/x: cannot set the owner of: Operation not permitted (os error 1)",
                true,
            ),
            (
                "/run/x: cannot create: Read-only file system (os error 30)",
                true,
            ),
            (
                "/x: cannot write: No space left on device (os error 28)",
                false,
            ),
            ("/x: cannot open: Too many open files (os error 24)", false),
        ] {
            assert_eq!(for_lack_of_permission(error), refused, "{error}");
        }
    }

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(size(1 << 30), "1G");
        assert_eq!(size(64 << 20), "64M");
        assert_eq!(size(1536 << 10), "1536K");
        assert_eq!(size(1000), "1000 bytes");
    }
}
