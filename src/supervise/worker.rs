//! The supervisor's side of the configuration worker ([`crate::config::configure_worker`]):
//! start it (at start-up, on SIGHUP, on `launch reload`), read its answer from a pipe
//! without blocking, kill it (and its check commands) at its deadline, and act on what
//! it came to. One worker at a time: a reload asked for while one runs is queued, and
//! any number of such asks make one more reload.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{Mode, Phase, Supervisor};
use crate::config::configure_worker::{self, Limits, Outcome};
use crate::control;
use crate::exit::{Exit, code};
use crate::init::cleanup;
use crate::init::signals::send;
use crate::init::spawn::{self, ChildSetup, Extra};

/// The most a worker may answer; a spec is far smaller.
const MAX_ANSWER: usize = 16 << 20;

/// The configuration work of a supervisor: the worker running, if any, and what waits.
#[derive(Debug, Default)]
pub(super) struct Configuring {
    /// The time and memory one configuration may take.
    pub(super) limits: Limits,
    /// The worker running now.
    current: Option<Worker>,
    /// A reload asked for while `current` runs, with the clients waiting for its answer.
    queued: Option<Vec<UnixStream>>,
    /// The first configuration has been adopted (until then, no process exists yet and
    /// that is no reason to stop).
    pub(super) configured: bool,
    /// What the last reload came to, for `launch status`.
    pub(super) last_reload: Option<LastReload>,
    /// How many reloads came to each result, for the metrics.
    pub(super) reloads: std::collections::BTreeMap<&'static str, u64>,
}

/// The last reload, as `launch status` shows it.
#[derive(Debug, Clone)]
pub(super) struct LastReload {
    /// When it ended.
    pub(super) at: std::time::SystemTime,
    /// In a word or two: "reloaded", "refused", "failed midway", "abandoned".
    pub(super) result: &'static str,
    /// What it did or why not: files, keys, processes, warnings, errors.
    pub(super) lines: Vec<String>,
}

impl LastReload {
    /// `last reload: 2026-12-02 18:57:03 UTC (40 s ago): reloaded` and its lines.
    pub(super) fn describe(&self) -> String {
        let ago = self.at.elapsed().map_or(0, |d| d.as_secs());
        let when = self
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = format!(
            "last reload: {} ({ago} s ago): {}\n",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(when)
            ),
            self.result
        );
        for line in &self.lines {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }
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
    /// The first configuration (else a reload).
    at_start: bool,
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
        if self.configuring.current.is_some() {
            self.configuring
                .queued
                .get_or_insert_with(Vec::new)
                .extend(reply);
            return;
        }
        self.log("SIGHUP: reconfiguring".into());
        self.start_configuring(false, reply.into_iter().collect());
    }

    /// Starts a worker; a worker that cannot start is that configuration's failure.
    pub(super) fn start_configuring(&mut self, at_start: bool, replies: Vec<UnixStream>) {
        let Mode::Run { config, .. } = &self.mode else {
            return;
        };
        let limits = self.configuring.limits;
        let started = spawn_worker(config, &limits, &self.setup);
        let (pid, pipe) = match started {
            Ok(started) => started,
            Err(why) => return self.configured(at_start, replies, Err(why)),
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
            at_start,
            replies,
        });
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

    /// Shutdown: the worker is killed and its answer, if any, ignored.
    pub(super) fn abandon_configuring(&mut self) {
        if let Some(w) = self.configuring.current.as_mut() {
            if w.exit.is_none() {
                w.kill();
            }
            for stream in std::mem::take(&mut w.replies) {
                control::respond(stream, "launch: shutting down\n", code::UNAVAILABLE);
            }
        }
        for stream in self.configuring.queued.take().unwrap_or_default() {
            control::respond(stream, "launch: shutting down\n", code::UNAVAILABLE);
        }
    }

    /// After a reap: a worker that has ended is done with; what it came to is acted on,
    /// and a queued reload starts.
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
        self.configured(w.at_start, std::mem::take(&mut w.replies), outcome);
        if let Some(replies) = self.configuring.queued.take() {
            if self.phase == Phase::Running {
                self.log("reconfiguring again, as asked while the last one ran".into());
                self.start_configuring(false, replies);
            }
        }
    }

    /// Acts on what a configuration came to.
    fn configured(
        &mut self,
        at_start: bool,
        replies: Vec<UnixStream>,
        outcome: Result<Outcome, String>,
    ) {
        if at_start {
            return self.first_configured(outcome);
        }
        let (body, exit) = self.reconfigured(outcome);
        for stream in replies {
            control::respond(stream, &body, exit);
        }
    }

    /// The first configuration: adopted, or launch ends with 78 and starts nothing.
    fn first_configured(&mut self, outcome: Result<Outcome, String>) {
        let said = match outcome {
            Ok(Outcome::Done {
                spec,
                details,
                wrote,
                ..
            }) => {
                for line in details.into_iter().chain(wrote) {
                    self.log(line);
                }
                self.configuring.configured = true;
                self.adopt_spec(spec, &Default::default());
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
                (errors, "")
            }
            Err(why) => (vec![why], "nothing was started"),
        };
        let (lines, last) = said;
        for line in lines.iter().chain(Some(&last.to_string())) {
            if !line.is_empty() {
                eprintln!("launch: {line}");
            }
        }
        // Nothing runs yet; what the worker may have left gets the usual end. Reaping
        // now learns whether anything is left at all (no SIGCHLD may ever come).
        self.phase = Phase::Stopping {
            grace_until: Instant::now(),
            code: code::CONFIG,
        };
        self.reap();
    }

    /// A reload: adopted, or reported with the running configuration kept. Returns the
    /// answer for `launch reload`.
    fn reconfigured(&mut self, outcome: Result<Outcome, String>) -> (String, i32) {
        let keeping = "the new configuration is not valid; keeping the running one";
        let (errors, last) = match outcome {
            Ok(Outcome::Done {
                spec,
                notify,
                wrote,
                details,
            }) => {
                // Every reload says what it did, in the log, to `launch reload` and in
                // `launch status`: files, keys by fingerprint, warnings, processes told.
                let mut lines: Vec<String> = details.into_iter().chain(wrote).collect();
                let mut told: Vec<&String> = notify.iter().collect();
                told.sort();
                if !told.is_empty() {
                    lines.push(format!(
                        "told of their new configuration: {}",
                        told.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if lines.is_empty() {
                    lines.push("nothing changed".into());
                }
                for line in &lines {
                    self.log(line.clone());
                }
                self.adopt_spec(spec, &notify);
                let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
                self.record_reload("reloaded", lines);
                return (format!("{body}reloaded\n"), 0);
            }
            Ok(Outcome::Invalid { errors }) => (errors, keeping.to_string()),
            Ok(Outcome::Failed {
                errors,
                written_before,
                notify,
            }) => {
                // Files that did change still reach the processes that use them.
                for i in 0..self.procs.len() {
                    if notify.contains(&self.procs[i].spec.name) {
                        self.notify(i);
                    }
                }
                (
                    errors,
                    format!("{written_before}; keeping the running processes"),
                )
            }
            Err(why) => (
                vec![why],
                "the reload was abandoned; keeping the running configuration".to_string(),
            ),
        };
        for e in &errors {
            self.log(e.clone());
        }
        self.log(last.clone());
        let result = if last.starts_with("the reload was abandoned") {
            "abandoned"
        } else if last.contains("keeping the running processes") {
            "failed midway"
        } else {
            "refused"
        };
        let mut recorded = errors.clone();
        recorded.push(last.clone());
        self.record_reload(result, recorded);
        let all: Vec<String> = errors.iter().map(|e| format!("launch: {e}")).collect();
        (
            format!("{}\nlaunch: {last}\n", all.join("\n")),
            code::CONFIG,
        )
    }
}

impl Supervisor {
    fn record_reload(&mut self, result: &'static str, lines: Vec<String>) {
        *self.configuring.reloads.entry(result).or_default() += 1;
        self.configuring.last_reload = Some(LastReload {
            at: std::time::SystemTime::now(),
            result,
            lines,
        });
    }
}

/// Starts `launch __configure` with its answer pipe as descriptor 3, working from `/`
/// as launch does.
fn spawn_worker(
    options: &crate::config::reconfigure::Options,
    limits: &Limits,
    setup: &ChildSetup,
) -> Result<(Pid, OwnedFd), String> {
    let cannot = |e: &dyn std::fmt::Display| {
        format!(
            "cannot start the configuration worker: {e}\n  fix: launch runs its own binary again (/proc/self/exe): mount /proc and keep the binary in place"
        )
    };
    let (read, write) = super::pipe().ok_or_else(|| cannot(&"no pipe"))?;
    let mut argv = vec![own_binary()];
    argv.extend(configure_worker::arguments(options, limits));
    let extra = Extra {
        cwd: Some("/".into()),
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
    fn sizes_read_as_written() {
        assert_eq!(size(1 << 30), "1G");
        assert_eq!(size(64 << 20), "64M");
        assert_eq!(size(1536 << 10), "1536K");
        assert_eq!(size(1000), "1000 bytes");
    }
}
