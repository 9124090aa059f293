//! What follows the end of processes: reaping them (and the readiness checks), and
//! ending what a stopped process left behind.

use std::time::Instant;

use nix::unistd::Pid;

use super::Supervisor;
use super::machine::Event;
use super::table::Managed;
use crate::init::leftover::Leftovers;
use crate::init::proc_table::ProcTable;
use crate::init::reap;
use crate::init::signals::send;

impl Supervisor {
    pub(super) fn reap(&mut self) {
        let mut ended = Vec::new();
        self.children = reap::drain(|pid, exit| ended.push((pid, exit)));
        // What they left is looked for in a table read after they were reaped.
        self.proc_table = None;
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
        if let Some(left) = Leftovers::term(pid, snapshot, &spare, self.proc_table(), kill_at) {
            let message = format!(
                "{}: SIGTERM to what it left behind (pid {pid}'s group, session or children)",
                self.procs[i].spec.name
            );
            self.log_verbose(message);
            self.leftovers.push(left);
        }
    }

    /// `/proc`, read at most once per turn of the loop (and again after a reap), so
    /// that stopping N processes reads it about once rather than twice per process.
    /// Every answer stays exact: a snapshot is taken from a table read after the
    /// events that came before the stop (and read again when the process is not in
    /// it as itself: started later in the turn), a sweep from one read after the reap.
    pub(super) fn proc_table(&mut self) -> &ProcTable {
        self.proc_table
            .get_or_insert_with(|| ProcTable::read().unwrap_or_default())
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
