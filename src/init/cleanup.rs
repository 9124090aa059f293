//! Ending everything that is left: when the main process is gone, every other process
//! launch is responsible for gets a signal.
//!
//! As PID 1 of a namespace that is `kill(-1)`: every process in the namespace but
//! launch. As a subreaper outside a namespace `kill(-1)` would hit the whole machine,
//! so launch walks `/proc` for its own descendants instead.

use nix::unistd::{Pid, getpid};

use super::proc_table::ProcTable;
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
    let table = ProcTable::read()?;
    Some(table.descendants(root).into_iter().map(|m| m.pid).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
