//! Ending everything that is left: when the main process is gone, every other process
//! launch is responsible for gets a signal.
//!
//! As PID 1 of a namespace that is `kill(-1)`: every process in the namespace but
//! launch. As a subreaper outside a namespace `kill(-1)` would hit the whole machine,
//! so launch walks `/proc` for its own descendants instead.

use std::collections::HashMap;
use std::fs;

use nix::unistd::{Pid, getpid};

use super::signals::{send, send_everyone};

/// Who launch answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// launch is PID 1: the whole PID namespace.
    Namespace,
    /// launch is a subreaper: its descendants. `fallback_group` is signalled when
    /// `/proc` cannot be read.
    Descendants {
        /// A process group to signal if `/proc` is unreadable.
        fallback_group: Option<Pid>,
    },
}

/// Sends `signo` to every process in `scope`, then SIGCONT so a stopped process can act
/// on it. Returns how many processes were signalled (the namespace case counts 1 when
/// anything was there).
pub fn signal_all(scope: Scope, signo: i32) -> usize {
    match scope {
        Scope::Namespace => {
            let hit = send_everyone(signo).is_ok();
            if signo != libc::SIGKILL {
                let _ = send_everyone(libc::SIGCONT);
            }
            usize::from(hit)
        }
        Scope::Descendants { fallback_group } => match descendants(getpid()) {
            Some(pids) => {
                for &pid in &pids {
                    let _ = send(pid, signo);
                    if signo != libc::SIGKILL {
                        let _ = send(pid, libc::SIGCONT);
                    }
                }
                pids.len()
            }
            None => fallback_group
                .map(|group| send(Pid::from_raw(-group.as_raw()), signo).is_ok())
                .map_or(0, usize::from),
        },
    }
}

/// Every process below `root`, by the parent links in `/proc/*/stat`; `None` when
/// `/proc` cannot be listed.
pub fn descendants(root: Pid) -> Option<Vec<Pid>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit while we look: skip it.
        if let Some(ppid) = proc_stat(pid).and_then(|stat| parent_of(&stat)) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![root.as_raw()];
    while let Some(pid) = stack.pop() {
        if let Some(kids) = children.get(&pid) {
            for &kid in kids {
                found.push(Pid::from_raw(kid));
                stack.push(kid);
            }
        }
    }
    Some(found)
}

/// `/proc/PID/stat`, in one read: it is one line of a few hundred bytes. Read as a
/// file (`fs::read_to_string`) it cost a stat and five reads more, for every process,
/// and a shutdown reads it for every process once per process stopped (a /proc scan
/// for each one's snapshot and again for what it left).
pub(crate) fn proc_stat(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut file = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    if n == buf.len() {
        // Longer than any stat line the kernel writes today; read it all the slow way.
        return fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    }
    // The command name is the process's to choose, in any bytes: only the fields after
    // it are read.
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The parent pid from a `/proc/PID/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from its last `)`.
fn parent_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_survives_odd_names() {
        assert_eq!(parent_of("42 (sleep) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("42 (a) b (c) S 9 42 42 0"), Some(9));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn finds_own_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let found = descendants(getpid()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&pid));
    }
}
