//! What `launch status` shows: each process, as JSON or as a table.

use std::time::Duration;

/// One process as `launch status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessStatus {
    /// Its name.
    pub name: String,
    /// Its state: waiting, starting, running, backoff, stopping, exited, failed, stopped.
    pub state: String,
    /// Its pid while it runs.
    pub pid: Option<i32>,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
    /// How often it was restarted.
    pub restarts: u32,
    /// How it last ended.
    pub last_exit: Option<String>,
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
