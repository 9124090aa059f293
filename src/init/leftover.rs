//! What a stopped process leaves behind: the processes it started that signalling its
//! process group does not reach (a helper that moved to a group or a session of its
//! own), and what stays in its group or session once it is gone.
//!
//! A process's group is not a safe handle on all of it: a process may call setpgid or
//! setsid, and then `kill(-pid)` reaches nobody, or not its helpers. So a stop takes a
//! snapshot of the process's descendants (while it still lives, the parent links lead
//! to them), and when it has ended, everything of the snapshot still alive, and every
//! process still in its group or session, gets SIGTERM, then SIGKILL after the stop
//! timeout. All of them are launch's descendants (launch is PID 1 or a subreaper), so
//! nothing outside is ever touched.

use std::time::Instant;

use nix::unistd::{Pid, getpid};

pub use super::proc_table::Member;
use super::proc_table::{ProcTable, stat_of};
use super::signals::send;

/// Whether `member` is still the process it was (alive, not a recycled pid).
fn alive(member: Member) -> bool {
    stat_of(member.pid).is_some_and(|s| s.started == member.started)
}

/// What one ended process left, and when it gets SIGKILL.
#[derive(Debug, Clone)]
pub struct Leftovers {
    leader: Pid,
    members: Vec<Member>,
    /// When what is still there gets SIGKILL.
    pub kill_at: Instant,
}

impl Leftovers {
    /// `leader` has ended: SIGTERM (and SIGCONT) to what is left of `snapshot` and of
    /// its group and session (as `table`, read after it was reaped, has them), but
    /// `spare`. `None` when nothing is left.
    pub fn term(
        leader: Pid,
        snapshot: Vec<Member>,
        spare: &[Pid],
        table: &ProcTable,
        kill_at: Instant,
    ) -> Option<Leftovers> {
        let mut members: Vec<Member> = snapshot
            .into_iter()
            .filter(|m| !spare.contains(&m.pid) && alive(*m))
            .collect();
        join(
            &mut members,
            table.in_group_or_session(leader, spare, getpid()),
        );
        if members.is_empty() {
            return None;
        }
        signal(&members, libc::SIGTERM);
        signal(&members, libc::SIGCONT);
        Some(Leftovers {
            leader,
            members,
            kill_at,
        })
    }

    /// The ended process whose leftovers these are.
    pub fn leader(&self) -> Pid {
        self.leader
    }

    /// SIGKILL to what is still there, and to anything that has joined the group or
    /// session since (a child forked after the SIGTERM), as `table` (read now) has it.
    /// Returns how many got it: none when the SIGTERM was enough.
    pub fn kill(self, spare: &[Pid], table: &ProcTable) -> usize {
        let mut members = self.members;
        join(
            &mut members,
            table.in_group_or_session(self.leader, spare, getpid()),
        );
        signal(&members, libc::SIGKILL)
    }
}

/// SIGKILL to each of `members` that is still the process it was (the stop timeout of
/// the process they belong to is over while it still runs).
pub fn kill(members: &[Member]) {
    signal(members, libc::SIGKILL);
}

/// Adds to `members` those of `found` not among them yet (each is signalled once).
fn join(members: &mut Vec<Member>, found: Vec<Member>) {
    for member in found {
        if !members.contains(&member) {
            members.push(member);
        }
    }
}

/// Sends `signo` to each member that is still the process it was; returns how many.
fn signal(members: &[Member], signo: i32) -> usize {
    let mut sent = 0;
    for &member in members {
        if alive(member) && send(member.pid, signo).is_ok() {
            sent += 1;
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_found_alive_and_a_changed_start_is_not() {
        let me = getpid();
        let started = stat_of(me).unwrap().started;
        assert!(alive(Member { pid: me, started }));
        assert!(!alive(Member {
            pid: me,
            started: started + 1
        }));
    }
}
