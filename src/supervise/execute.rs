//! The executor: hands events to the state machine ([`machine::step`]) and performs the
//! effects it returns, which is where the signals, spawns, checks and log lines happen.
//! Every change of a process's state goes through [`Supervisor::apply`].

use std::time::Instant;

use nix::unistd::Pid;

use super::machine::{self, Context, Effect, Event, Reach};
use super::stop::signal_process;
use super::table::Then;
use super::{Mode, Phase, Supervisor};
use crate::exit::Exit;
use crate::init::leftover;
use crate::init::signals::send;

impl Supervisor {
    /// What the state machine knows of launch, now.
    pub(super) fn context(&self) -> Context {
        Context {
            now: Instant::now(),
            plain: matches!(self.mode, Mode::Plain { .. }),
            shutting_down: self.phase != Phase::Running,
        }
    }

    /// `event` happened to process `i`: its next state, and what that takes.
    pub(super) fn apply(&mut self, i: usize, event: Event) {
        let context = self.context();
        let Some(p) = self.procs.get_mut(i) else {
            return;
        };
        for effect in machine::step(p, event, context) {
            if effect == Effect::Forget {
                self.procs.remove(i);
                return;
            }
            self.perform(i, effect);
        }
    }

    fn perform(&mut self, i: usize, effect: Effect) {
        match effect {
            Effect::Spawn => {
                let result = self.spawn(i);
                self.apply(i, result);
            }
            Effect::Snapshot { pid } => {
                // Started after this turn's table was read (a restart in the same
                // turn), or its pid was another process's then: read /proc again.
                if !self.proc_table().is_current(pid) {
                    self.proc_table = None;
                }
                self.procs[i].snapshot = self.proc_table().descendants(pid);
            }
            // Never 0 or 1: as a group those are launch's own, or every process there is.
            Effect::Signal { pid, .. } if pid.as_raw() <= 1 => {}
            Effect::Signal {
                pid,
                signo,
                reach: Reach::ProcessAndGroup,
            } => signal_process(pid, signo),
            Effect::Signal {
                pid,
                signo,
                reach: Reach::Group,
            } => {
                let _ = send(Pid::from_raw(-pid.as_raw()), signo);
            }
            Effect::KillSnapshot => leftover::kill(&self.procs[i].snapshot),
            Effect::EndLeftovers { pid, kill_at } => self.sweep(i, pid, kill_at),
            Effect::CheckReady => {
                let result = self.check_ready(i);
                self.apply(i, result);
            }
            Effect::Log { message, verbose } if verbose => self.log_verbose(message),
            Effect::Log { message, .. } => self.log(message),
            Effect::Shutdown { code, why, reason } => {
                // A process the pending reload touched: that reload is rolled back
                // instead of the container stopping.
                let name = self.procs[i].spec.name.clone();
                let exit = self.procs[i].last_exit.unwrap_or(Exit::Code(code));
                if !self.reload_absorbs(&name, exit) {
                    self.begin_shutdown(code, &why, reason);
                }
            }
            Effect::ExitLauncher { exit } => {
                if let Mode::Plain { remap, grace, .. } = &self.mode {
                    let (code, grace) = (remap.apply(exit.code()), *grace);
                    self.exit_reason = format!("{} ended: {exit}", self.procs[i].spec.name);
                    self.take_terminal_back();
                    self.phase = Phase::Stopping {
                        grace_until: Instant::now() + grace,
                        code,
                    };
                }
            }
            // Done by `apply`, last.
            Effect::Forget => {}
        }
    }

    /// Asks process `i` to stop, and then `then`.
    pub(super) fn stop(&mut self, i: usize, then: Then) {
        self.apply(i, Event::StopRequested(then));
    }

    /// Restarts process `i` (not a crash: no backoff).
    pub(super) fn restart(&mut self, i: usize) {
        self.apply(i, Event::StopRequested(Then::Restart));
    }

    /// A changed template: the reload signal, or a restart.
    pub(super) fn notify(&mut self, i: usize) {
        self.apply(i, Event::Notified);
    }

    /// Process `i` is ready.
    pub(super) fn mark_ready(&mut self, i: usize) {
        self.apply(i, Event::ReadyPassed);
    }
}
