//! Stopping processes and what follows their end: reaping, restarting or giving up,
//! and ending what a stopped process left behind.

use std::time::Instant;

use nix::unistd::Pid;

use super::policy::{self, AfterExit};
use super::table::{Managed, State, Then};
use super::{Mode, Phase, Supervisor};
use crate::exit::Exit;
use crate::init::leftover::{self, Leftovers};
use crate::init::reap;
use crate::init::signals::{self, send};

impl Supervisor {
    pub(super) fn reap(&mut self) {
        let mut ended = Vec::new();
        self.children = reap::drain(|pid, exit| ended.push((pid, exit)));
        for (pid, exit) in ended {
            if self.configuring.reaped(pid, exit) {
                continue;
            }
            if let Some(i) = self.procs.iter().position(|p| p.pid() == Some(pid)) {
                self.ended(i, exit);
            } else if let Some(i) = self.procs.iter().position(|p| {
                p.readiness
                    .as_ref()
                    .is_some_and(|r| r.check_pid == Some(pid))
            }) {
                if exit.success() {
                    self.mark_ready(i);
                } else if let Some(r) = self.procs[i].readiness.as_mut() {
                    r.check_pid = None;
                }
            }
            // Anything else is an adopted orphan: reaped, and that is all.
            else {
                self.log_verbose(format!("reaped orphan pid {pid} ({exit})"));
            }
        }
        self.finish_configuring();
    }

    /// Process `i` ended with `exit`.
    pub(super) fn ended(&mut self, i: usize, exit: Exit) {
        let now = Instant::now();
        let name = self.procs[i].spec.name.clone();
        let state = self.procs[i].state;
        {
            let p = &mut self.procs[i];
            p.ready = false;
            p.readiness = None;
            p.last_exit = Some(exit);
        }
        if let State::Stopping { pid, then, .. } = state {
            self.log_verbose(format!("{name} stopped: {exit}"));
            self.sweep(i, pid, now);
            match then {
                Then::Rest => self.procs[i].state = State::Stopped,
                Then::Hold => self.procs[i].state = State::Held,
                Then::Restart => {
                    self.procs[i].state = State::Waiting;
                    self.procs[i].attempt = 0;
                }
                Then::Remove => {
                    self.procs.remove(i);
                }
            }
            return;
        }
        if let Mode::Plain { remap, grace, .. } = &self.mode {
            let (code, grace) = (remap.apply(exit.code()), *grace);
            self.log_verbose(format!("{name} ended: {exit}"));
            self.exit_reason = format!("{name} ended: {exit}");
            self.procs[i].state = State::Exited(exit);
            self.take_terminal_back();
            self.phase = Phase::Stopping {
                grace_until: now + grace,
                code,
            };
            return;
        }
        if self.phase != Phase::Running {
            self.procs[i].state = State::Exited(exit);
            return;
        }
        self.exited_on_its_own(i, exit, now);
    }

    /// A process of `launch run` ended on its own: finished, restarted after a backoff,
    /// or given up (which stops launch when it is fatal).
    fn exited_on_its_own(&mut self, i: usize, exit: Exit, now: Instant) {
        let name = self.procs[i].spec.name.clone();
        let p = &mut self.procs[i];
        if p.started
            .is_some_and(|t| now.duration_since(t) >= policy::BACKOFF_RESET)
        {
            p.attempt = 0;
        }
        let looping = p
            .history
            .record(now, p.spec.max_restarts, p.spec.restart_window);
        match policy::after_exit(&p.spec, exit, looping) {
            AfterExit::Finished => {
                p.state = State::Exited(exit);
                self.log(format!("{name} finished"));
            }
            AfterExit::Restart => {
                p.attempt += 1;
                p.restarts += 1;
                let wait = policy::backoff(p.attempt);
                p.state = State::Backoff { until: now + wait };
                self.log(format!(
                    "{name} exited ({exit}); restarting in {}",
                    crate::duration::format(wait)
                ));
            }
            AfterExit::Rest { failed, fatal } => {
                p.state = if failed {
                    State::Failed(exit)
                } else {
                    State::Exited(exit)
                };
                let why = if looping {
                    format!(
                        "{name} exited {} within {}: giving up",
                        crate::plural::count(p.spec.max_restarts as usize, "time", "times"),
                        crate::duration::format(p.spec.restart_window)
                    )
                } else {
                    format!("{name} exited ({exit})")
                };
                let reason = if looping {
                    format!(
                        "{name} failed (crash loop: {} within {})",
                        crate::plural::count(p.spec.max_restarts as usize, "exit", "exits"),
                        crate::duration::format(p.spec.restart_window)
                    )
                } else {
                    format!("{name} failed ({exit})")
                };
                self.log(why.clone());
                if fatal {
                    self.begin_shutdown(exit.code(), &why, reason);
                }
            }
        }
    }

    /// Asks process `i` to stop: its stop signal (and SIGCONT) to its group, SIGKILL
    /// after its stop timeout.
    pub(super) fn stop(&mut self, i: usize, then: Then) {
        let p = &mut self.procs[i];
        match p.state {
            State::Running { pid } => {
                // Taken before the signal: once it is gone, the parent links that lead
                // to its helpers are gone too.
                p.snapshot = leftover::snapshot(pid);
                signal_process(pid, p.spec.stop_signal);
                signal_process(pid, libc::SIGCONT);
                p.state = State::Stopping {
                    pid,
                    kill_at: Instant::now() + p.spec.stop_timeout,
                    then,
                };
                let message = format!(
                    "stopping {} ({})",
                    p.spec.name,
                    signals::name(p.spec.stop_signal)
                );
                self.log_verbose(message);
            }
            State::Stopping { pid, kill_at, .. } => {
                p.state = State::Stopping { pid, kill_at, then }
            }
            _ if then == Then::Hold => p.state = State::Held,
            _ => p.state = State::Stopped,
        }
    }

    /// Process `i` (which was `pid`) has ended after a stop: what it left gets SIGTERM
    /// now and SIGKILL after its stop timeout.
    pub(super) fn sweep(&mut self, i: usize, pid: Pid, now: Instant) {
        let snapshot = std::mem::take(&mut self.procs[i].snapshot);
        let kill_at = now + self.procs[i].spec.stop_timeout;
        let spare = self.managed_pids();
        if let Some(left) = Leftovers::term(pid, snapshot, &spare, kill_at) {
            let message = format!(
                "{}: SIGTERM to what it left behind (pid {pid}'s group, session or children)",
                self.procs[i].spec.name
            );
            self.log_verbose(message);
            self.leftovers.push(left);
        }
    }

    /// The pids of the processes launch manages now.
    pub(super) fn managed_pids(&self) -> Vec<Pid> {
        self.procs.iter().filter_map(Managed::pid).collect()
    }
}

/// Sends `signo` to process `pid` and its group. Sent to the group alone, it would miss a
/// process that moved to another group (setpgid, setsid); sent to both, a process
/// still in its own group would get it twice.
pub(super) fn signal_process(pid: Pid, signo: i32) {
    let _ = send(Pid::from_raw(-pid.as_raw()), signo);
    if nix::unistd::getpgid(Some(pid)).is_ok_and(|group| group != pid) {
        let _ = send(pid, signo);
    }
}
