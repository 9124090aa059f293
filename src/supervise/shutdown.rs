//! The shutdown phases: managed processes stop in reverse order within the grace, what
//! is left gets SIGTERM, then everything SIGKILL; and the timers that drive them.

use std::time::Instant;

use super::stop::signal_process;
use super::table::State;
use super::{KILL_WAIT, Mode, Phase, Supervisor};
use crate::init::reap::Children;
use crate::init::{cleanup, leftover};

impl Supervisor {
    /// Starts the shutdown: `why` for the log now, `reason` for launch's last line.
    pub(super) fn begin_shutdown(&mut self, code: i32, why: &str, reason: String) {
        if self.phase != Phase::Running {
            return;
        }
        self.exit_reason = reason;
        let grace = match &self.mode {
            Mode::Run { grace, .. } | Mode::Plain { grace, .. } => *grace,
        };
        self.log(format!("shutting down ({why})"));
        self.abandon_configuring();
        self.phase = Phase::Stopping {
            grace_until: Instant::now() + grace,
            code,
        };
        for p in &mut self.procs {
            if matches!(p.state, State::Waiting | State::Backoff { .. }) {
                p.state = State::Stopped;
            }
        }
    }

    /// The managed processes are gone: SIGTERM to whatever they left behind (said with
    /// `-v`, with the pids it went to).
    pub(super) fn term_what_is_left(&self) {
        if self.verbose {
            let left = cleanup::descendants(nix::unistd::getpid()).unwrap_or_default();
            let pids: Vec<String> = left.iter().map(ToString::to_string).collect();
            self.log(format!(
                "SIGTERM to {} left behind{}",
                crate::plural::count(left.len(), "process", "processes"),
                if pids.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {})", pids.join(", "))
                }
            ));
        }
        cleanup::signal_all(self.scope, libc::SIGTERM);
    }

    pub(super) fn kill_everything(&mut self, code: i32) {
        for p in &self.procs {
            if let Some(pid) = p.pid() {
                signal_process(pid, libc::SIGKILL);
            }
        }
        cleanup::signal_all(self.scope, libc::SIGKILL);
        self.phase = Phase::Killing {
            until: Instant::now() + KILL_WAIT,
            code,
        };
    }

    pub(super) fn on_time(&mut self, now: Instant) {
        self.worker_on_time(now);
        if self.leftovers.iter().any(|l| now >= l.kill_at) {
            let spare = self.managed_pids();
            let (due, later) = std::mem::take(&mut self.leftovers)
                .into_iter()
                .partition(|l| now >= l.kill_at);
            self.leftovers = later;
            for left in due {
                self.log_verbose(format!(
                    "SIGKILL to what pid {} left behind (still there after its stop timeout)",
                    left.leader()
                ));
                left.kill(&spare);
            }
        }
        match self.phase {
            Phase::Stopping { grace_until, code }
            | Phase::Draining {
                until: grace_until,
                code,
            } if now >= grace_until => {
                let anything_left = self.children == Children::Remain
                    || self.procs.iter().any(|p| p.pid().is_some());
                if anything_left {
                    self.log(
                        "the shutdown grace is over: sending SIGKILL to every process left".into(),
                    );
                    self.exit_reason
                        .push_str(" (what was left after the grace got SIGKILL)");
                }
                self.kill_everything(code);
            }
            _ => {}
        }
        for i in 0..self.procs.len() {
            match self.procs[i].state {
                State::Backoff { until } if now >= until => self.procs[i].state = State::Waiting,
                State::Stopping { pid, kill_at, then } if now >= kill_at => {
                    let message = format!(
                        "{} did not stop within {}: SIGKILL",
                        self.procs[i].spec.name,
                        crate::duration::format(self.procs[i].spec.stop_timeout)
                    );
                    self.log(message);
                    signal_process(pid, libc::SIGKILL);
                    leftover::kill(&self.procs[i].snapshot);
                    self.procs[i].state = State::Stopping {
                        pid,
                        kill_at: now + KILL_WAIT,
                        then,
                    };
                }
                State::Running { pid } if !self.procs[i].ready => self.check_ready(i, pid, now),
                _ => {}
            }
        }
    }
}
