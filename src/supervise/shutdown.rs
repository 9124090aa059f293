//! The shutdown phases: managed processes stop in reverse order within the grace, what
//! is left gets SIGTERM, then everything SIGKILL; and the timers that drive them.

use std::time::Instant;

use super::machine::{self, Context, Event};
use super::stop::signal_process;
use super::{KILL_WAIT, Mode, Phase, Supervisor};
use crate::init::cleanup;
use crate::init::reap::Children;

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
        for i in 0..self.procs.len() {
            self.apply(i, Event::ShutdownBegan);
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
            // Read now: what joined a group since the SIGTERM gets SIGKILL too.
            self.proc_table = None;
            for left in due {
                let leader = left.leader();
                let killed = left.kill(&spare, self.proc_table());
                if killed > 0 {
                    self.log_verbose(format!(
                        "SIGKILL to {} pid {leader} left behind (still there after its stop timeout)",
                        crate::plural::count(killed, "process", "processes")
                    ));
                }
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
        // One event per process and wake-up: a next one already due makes the loop's
        // deadline a past one, and so the next turn at once.
        let mut i = 0;
        while i < self.procs.len() {
            let context = Context {
                now,
                ..self.context()
            };
            if let Some(event) = machine::due(&self.procs[i], context) {
                self.apply(i, event);
            }
            i += 1;
        }
    }
}
