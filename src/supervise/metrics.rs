//! The metrics listener in the event loop: bound when the spec asks for it (and again
//! when a reload changes its address), its connections answered from what the process
//! table already knows. Nothing here blocks: accepting, reading a request and writing
//! a few KiB of answer are all non-blocking.

use std::os::fd::AsFd;

use super::Supervisor;
use super::table::{Managed, Watch};
use super::worker::Configuring;
use nix::unistd::Pid;

use crate::control::metrics::Listener;
use crate::control::{Own, ProcessStatus, Report};

impl Supervisor {
    /// Listens where the (new) spec says, or stops listening.
    pub(super) fn adopt_metrics(&mut self, wanted: Option<std::net::SocketAddr>) {
        if self.metrics.as_ref().map(|(_, l)| l.address) == wanted {
            return;
        }
        if let Some((_, old)) = self.metrics.take() {
            let _ = self.events.unwatch(old.socket().as_fd());
        }
        let Some(address) = wanted else {
            return;
        };
        match Listener::bind(address) {
            Ok(listener) => {
                let token = self.next_token;
                self.next_token += 1;
                if self.events.watch(listener.socket().as_fd(), token).is_ok() {
                    self.log(format!("metrics at http://{address}/metrics"));
                    self.metrics = Some((token, listener));
                }
            }
            // The application matters more than its metrics: run without them, and say so.
            Err(e) => self.log(format!(
                "warning: cannot listen for metrics on {address}: {e}; running without them"
            )),
        }
    }

    /// New connections: each is read, without blocking, until its request is whole.
    pub(super) fn metrics_accept(&mut self) {
        let streams = self
            .metrics
            .as_ref()
            .map(|(_, l)| l.accept())
            .unwrap_or_default();
        for stream in streams {
            self.watch(Watch::Metrics {
                stream,
                request: Vec::new(),
            });
        }
    }
}

/// What `status --json` answers and `/metrics` exposes, for the current process table.
pub(super) fn report(procs: &[Managed], configuring: &Configuring) -> Report {
    let processes = procs
        .iter()
        .map(|p| ProcessStatus {
            name: p.spec.name.clone(),
            state: p.state_name().into(),
            pid: p.pid().map(Pid::as_raw),
            ready: p.ready && p.pid().is_some(),
            uptime_s: p.pid().and(p.started).map(|t| t.elapsed().as_secs()),
            restarts: p.restarts,
            last_exit: p.last_exit.map(|e| e.to_string()),
            last_exit_code: p.last_exit.map(|e| e.code()),
        })
        .collect();
    Report {
        processes,
        reloads: configuring
            .reloads
            .iter()
            .map(|(result, n)| (result.to_string(), *n))
            .collect(),
        launch: Own::now(),
    }
}
