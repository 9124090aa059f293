//! What `launch status` shows: each process, as JSON or as a table. `status --json` and
//! the metrics listener's `/metrics` are two renderings of one [`Report`], so that they
//! can never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

/// Everything `launch status --json` answers and `/metrics` exposes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    /// Each process, in the spec's order.
    pub processes: Vec<ProcessStatus>,
    /// Reloads so far, by result ("reloaded", "refused", "failed midway", "abandoned").
    pub reloads: BTreeMap<String, u64>,
    /// launch's own figures.
    pub launch: Own,
}

/// launch's own figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Own {
    /// Its pid (1 in a container).
    pub pid: i32,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Open descriptors.
    pub open_fds: u64,
}

impl Own {
    /// launch's own pid, resident memory and open descriptors, from /proc/self.
    pub fn now() -> Own {
        let page = 4096;
        let rss_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        Own {
            pid: std::process::id() as i32,
            rss_bytes,
            open_fds,
        }
    }
}

/// One process as `launch status` shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProcessStatus {
    /// Its name.
    pub name: String,
    /// Its state: waiting, starting, running, backoff, stopping, exited, failed, stopped.
    pub state: String,
    /// Its pid while it runs (so it is up).
    pub pid: Option<i32>,
    /// It passed its readiness check (or has none and runs).
    pub ready: bool,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
    /// How often it was restarted.
    pub restarts: u32,
    /// How it last ended, in words.
    pub last_exit: Option<String>,
    /// The code it last exited with (128+N for signal N), if it has exited.
    pub last_exit_code: Option<i32>,
}

/// `launch status` as a table.
pub fn status_table(processes: &[ProcessStatus]) -> String {
    let mut out = format!(
        "{:<16} {:<9} {:>7} {:>8} {:>8}  {}\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"
    );
    for p in processes {
        let pid = p.pid.map_or("-".into(), |p| p.to_string());
        let up = p.uptime_s.map_or("-".into(), |s| {
            crate::duration::format(Duration::from_secs(s))
        });
        let last = p.last_exit.clone().unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<16} {:<9} {:>7} {:>8} {:>8}  {}\n",
            p.name, p.state, pid, up, p.restarts, last
        ));
    }
    out
}
