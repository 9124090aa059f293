//! One reading of `/proc`: every process's parent, group, session and start time.
//!
//! Stopping a process needs its descendants (before the signal) and, once it has ended,
//! what is still in its group or session. Asked of `/proc` for each process, that is a
//! scan of every process per process stopped: O(N²) for a shutdown of N. A table read
//! once answers all the questions of one turn of the loop; the supervisor reads it again
//! after the events it must reflect (a reap), so every answer stays exact.

use std::collections::{HashMap, HashSet};
use std::fs;

use nix::unistd::Pid;

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
pub(crate) struct Stat {
    pub(crate) parent: i32,
    pub(crate) group: i32,
    pub(crate) session: i32,
    pub(crate) started: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state, ppid, pgrp, session, ... starttime is the 20th.
    Some(Stat {
        parent: fields.get(1)?.parse().ok()?,
        group: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat`, in one read: it is one line of a few hundred bytes. Read as a
/// file (`fs::read_to_string`) it cost a stat and five reads more, for every process.
pub(crate) fn proc_stat(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut file = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    if n == buf.len() {
        // Longer than any stat line the kernel writes today; read it all the slow way,
        // still taking a name that is not UTF-8.
        let all = fs::read(format!("/proc/{pid}/stat")).ok()?;
        return Some(String::from_utf8_lossy(&all).into_owned());
    }
    // The command name is the process's to choose, in any bytes: only the fields after
    // it are read.
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The stat fields of one process now; `None` once it has gone (or been reaped).
pub(crate) fn stat_of(pid: Pid) -> Option<Stat> {
    parse_stat(&proc_stat(pid.as_raw())?)
}

/// Every process of `/proc` at one moment.
#[derive(Debug, Clone, Default)]
pub struct ProcTable {
    rows: HashMap<i32, Stat>,
    /// The parent links turned round: built once, for every walk of the turn.
    children: HashMap<i32, Vec<i32>>,
}

impl ProcTable {
    /// Reads `/proc`; `None` when it cannot be listed. A process that exits while it is
    /// read is left out.
    pub fn read() -> Option<ProcTable> {
        let mut rows = HashMap::new();
        for entry in fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(stat) = proc_stat(pid).as_deref().and_then(parse_stat) {
                rows.insert(pid, stat);
            }
        }
        Some(ProcTable::from_rows(rows))
    }

    fn from_rows(rows: HashMap<i32, Stat>) -> ProcTable {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (&pid, stat) in &rows {
            children.entry(stat.parent).or_default().push(pid);
        }
        ProcTable { rows, children }
    }

    /// A table of the given rows, `(pid, stat)`.
    #[cfg(test)]
    pub(crate) fn of(rows: &[(i32, Stat)]) -> ProcTable {
        ProcTable::from_rows(rows.iter().copied().collect())
    }

    /// Whether `pid` was there.
    pub fn has(&self, pid: Pid) -> bool {
        self.rows.contains_key(&pid.as_raw())
    }

    /// Whether the table holds `pid` as the process that has it now (same start time):
    /// false for a process started after the table was read, or one whose pid was
    /// another's then.
    pub fn is_current(&self, pid: Pid) -> bool {
        let now = stat_of(pid).map(|s| s.started);
        now.is_some() && self.rows.get(&pid.as_raw()).map(|s| s.started) == now
    }

    /// Every process below `root`, by the parent links.
    pub fn descendants(&self, root: Pid) -> Vec<Member> {
        let children = &self.children;
        let mut found = Vec::new();
        // Parent links cannot loop at one instant, but the table is read one process
        // at a time while pids may be recycled: never walk a pid twice.
        let mut seen = HashSet::from([root.as_raw()]);
        let mut stack = vec![root.as_raw()];
        while let Some(pid) = stack.pop() {
            for &kid in children.get(&pid).into_iter().flatten() {
                if seen.insert(kid) {
                    found.push(self.member(kid));
                    stack.push(kid);
                }
            }
        }
        found
    }

    /// Every process in the group or the session of the ended process `leader`, but
    /// `me` and those in `spare` (the processes launch manages now). As PID 1 every
    /// process is launch's; as a subreaper only `me`'s descendants are candidates.
    /// Nothing when a process has taken `leader`'s pid: the kernel recycles a pid only
    /// once no group or session of that number is left, so they are the new process's.
    pub fn in_group_or_session(&self, leader: Pid, spare: &[Pid], me: Pid) -> Vec<Member> {
        if self.has(leader) {
            return Vec::new();
        }
        let candidates: Vec<Member> = if me.as_raw() == 1 {
            self.rows.keys().map(|&pid| self.member(pid)).collect()
        } else {
            self.descendants(me)
        };
        // The cheap test first: `spare` is a list of the managed processes.
        candidates
            .into_iter()
            .filter(|m| {
                self.rows.get(&m.pid.as_raw()).is_some_and(|stat| {
                    stat.group == leader.as_raw() || stat.session == leader.as_raw()
                })
            })
            .filter(|m| m.pid != me && !spare.contains(&m.pid))
            .collect()
    }

    fn member(&self, pid: i32) -> Member {
        Member {
            pid: Pid::from_raw(pid),
            started: self.rows.get(&pid).map_or(0, |s| s.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(parent: i32, group: i32, session: i32) -> Stat {
        Stat {
            parent,
            group,
            session,
            started: 1000,
        }
    }

    fn pids(members: &[Member]) -> Vec<i32> {
        let mut pids: Vec<i32> = members.iter().map(|m| m.pid.as_raw()).collect();
        pids.sort_unstable();
        pids
    }

    #[test]
    fn stat_fields_survive_odd_names() {
        let line = "42 (a) b (c) S 9 40 41 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                parent: 9,
                group: 40,
                session: 41,
                started: 777
            })
        );
        assert_eq!(parse_stat("42 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    /// launch (1) runs a (10, its own group and session) and b (20); a's child 11
    /// stayed in a's group, its grandchild 12 moved to a session of its own; 13 joined
    /// a's group from elsewhere (a child of b's); 30 is an orphan launch adopted.
    fn tree() -> ProcTable {
        ProcTable::of(&[
            (1, row(0, 1, 1)),
            (10, row(1, 10, 10)),
            (11, row(10, 10, 10)),
            (12, row(11, 12, 12)),
            (20, row(1, 20, 20)),
            (13, row(20, 10, 20)),
            (30, row(1, 30, 30)),
        ])
    }

    #[test]
    fn descendants_follow_parent_links_whatever_the_group() {
        let table = tree();
        let cases: &[(i32, &[i32])] = &[
            (10, &[11, 12]),
            (11, &[12]),
            (12, &[]),
            (20, &[13]),
            (1, &[10, 11, 12, 13, 20, 30]),
            (99, &[]),
        ];
        for &(root, want) in cases {
            assert_eq!(
                pids(&table.descendants(Pid::from_raw(root))),
                want,
                "root {root}"
            );
        }
    }

    #[test]
    fn what_an_ended_process_left_in_its_group_or_session() {
        // a (10) has ended: it is no longer in the table.
        let mut rows: Vec<(i32, Stat)> = tree().rows.into_iter().collect();
        rows.retain(|&(pid, _)| pid != 10);
        let table = ProcTable::of(&rows);
        let pid = Pid::from_raw;
        let cases: &[(i32, &[i32], i32, &[i32])] = &[
            // leader, spare, me, found
            (10, &[], 1, &[11, 13]),
            (10, &[13], 1, &[11]),
            // As a subreaper (pid 1 is not launch): only its descendants count.
            (10, &[], 20, &[13]),
            // A pid still (or again) in the table is a live process: nothing is its.
            (11, &[], 1, &[]),
            (12, &[], 1, &[]),
            (99, &[], 1, &[]),
        ];
        for &(leader, spare, me, want) in cases {
            let spare: Vec<Pid> = spare.iter().map(|&p| pid(p)).collect();
            assert_eq!(
                pids(&table.in_group_or_session(pid(leader), &spare, pid(me))),
                want,
                "leader {leader}, spare {spare:?}, me {me}"
            );
        }
    }

    #[test]
    fn a_real_child_is_in_the_table_read_now() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let table = ProcTable::read().unwrap();
        let me = nix::unistd::getpid();
        let found = table.descendants(me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(table.has(me));
        assert!(table.is_current(me));
        assert!(found.iter().any(|m| m.pid == pid));
        assert!(!ProcTable::read().unwrap().has(pid));
        // A process started after the table was read is not current in it.
        let mut later = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let later_pid = Pid::from_raw(later.id() as i32);
        assert!(!table.is_current(later_pid));
        assert!(ProcTable::read().unwrap().is_current(later_pid));
        later.kill().unwrap();
        later.wait().unwrap();
    }
}
