//! What follows the end of processes: reaping them (and the readiness checks), and
//! ending what a stopped process left behind.

use std::time::Instant;

use nix::unistd::Pid;

use super::Supervisor;
use super::machine::Event;
use super::table::Managed;
use crate::init::leftover::Leftovers;
use crate::init::reap;
use crate::init::signals::send;

impl Supervisor {
    pub(super) fn reap(&mut self) {
        let mut ended = Vec::new();
        self.children = reap::drain(|pid, exit| ended.push((pid, exit)));
        for (pid, exit) in ended {
            if self.configuring.reaped(pid, exit) {
                continue;
            }
            if let Some(i) = self.procs.iter().position(|p| p.pid() == Some(pid)) {
                self.apply(i, Event::Exited(exit));
            } else if let Some(i) = self.procs.iter().position(|p| {
                p.readiness
                    .as_ref()
                    .is_some_and(|r| r.check_pid == Some(pid))
            }) {
                let result = if exit.success() {
                    Event::ReadyPassed
                } else {
                    Event::CheckFailed
                };
                self.apply(i, result);
            }
            // Anything else is an adopted orphan: reaped, and that is all.
            else {
                self.log_verbose(format!("reaped orphan pid {pid} ({exit})"));
            }
        }
        self.finish_configuring();
    }

    /// Process `i` (which was `pid`) has ended after a stop: what it left gets SIGTERM
    /// now and SIGKILL at `kill_at`.
    pub(super) fn sweep(&mut self, i: usize, pid: Pid, kill_at: Instant) {
        let snapshot = std::mem::take(&mut self.procs[i].snapshot);
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
