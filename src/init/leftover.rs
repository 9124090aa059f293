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

use std::fs;
use std::time::Instant;

use nix::unistd::{Pid, getpid};

use super::cleanup;
use super::signals::send;

/// One process as found in `/proc`, with what tells it from a later one of the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its pid.
    pub pid: Pid,
    /// Its start time (clock ticks after boot): a recycled pid has another.
    pub started: u64,
}

/// The fields of `/proc/PID/stat` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    group: i32,
    session: i32,
    started: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its last `)`.
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state, ppid, pgrp, session, ... starttime is the 20th.
    Some(Stat {
        group: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

fn stat_of(pid: Pid) -> Option<Stat> {
    parse_stat(&cleanup::proc_stat(pid.as_raw())?)
}

/// Whether `member` is still the process it was (alive, not a recycled pid).
fn alive(member: Member) -> bool {
    stat_of(member.pid).is_some_and(|s| s.started == member.started)
}

/// Every descendant of `leader`, taken while it still runs.
pub fn snapshot(leader: Pid) -> Vec<Member> {
    cleanup::descendants(leader)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let started = stat_of(pid)?.started;
            Some(Member { pid, started })
        })
        .collect()
}

/// Every process still in the group or the session of the ended process `leader`,
/// but those in `spare` (the processes launch manages now). Nothing when a new process
/// has taken the pid: the kernel recycles a pid only once no group or session of that
/// number is left, so its group and session are then the new process's.
fn in_group_or_session(leader: Pid, spare: &[Pid]) -> Vec<Member> {
    if stat_of(leader).is_some() {
        return Vec::new();
    }
    let me = getpid();
    // As PID 1 every process there is launch's; as a subreaper only its descendants
    // are, and nothing else is ever a candidate.
    let candidates: Vec<Pid> = if me.as_raw() == 1 {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .map(Pid::from_raw)
            .collect()
    } else {
        cleanup::descendants(me).unwrap_or_default()
    };
    candidates
        .into_iter()
        .filter(|&pid| pid != me && !spare.contains(&pid))
        .filter_map(|pid| {
            let stat = stat_of(pid)?;
            let ours = stat.group == leader.as_raw() || stat.session == leader.as_raw();
            ours.then_some(Member {
                pid,
                started: stat.started,
            })
        })
        .collect()
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
    /// its group and session, but `spare`. `None` when nothing is left.
    pub fn term(
        leader: Pid,
        snapshot: Vec<Member>,
        spare: &[Pid],
        kill_at: Instant,
    ) -> Option<Leftovers> {
        let mut members: Vec<Member> = snapshot
            .into_iter()
            .filter(|m| !spare.contains(&m.pid) && alive(*m))
            .collect();
        for found in in_group_or_session(leader, spare) {
            if !members.contains(&found) {
                members.push(found);
            }
        }
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
    /// session since (a child forked after the SIGTERM).
    pub fn kill(self, spare: &[Pid]) {
        let mut members = self.members;
        members.extend(in_group_or_session(self.leader, spare));
        signal(&members, libc::SIGKILL);
    }
}

/// SIGKILL to each of `members` that is still the process it was (the stop timeout of
/// the process they belong to is over while it still runs).
pub fn kill(members: &[Member]) {
    signal(members, libc::SIGKILL);
}

/// Sends `signo` to each member that is still the process it was.
fn signal(members: &[Member], signo: i32) {
    for &member in members {
        if alive(member) {
            let _ = send(member.pid, signo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_names() {
        let line = "42 (a) b (c) S 9 40 41 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                group: 40,
                session: 41,
                started: 777
            })
        );
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

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
