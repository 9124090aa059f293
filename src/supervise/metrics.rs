//! The metrics listener in the event loop: bound when the spec asks for it (and again
//! when a reload changes its address), its connections answered from what the process
//! table already knows. Nothing here blocks: accepting, reading a request and writing
//! a few KiB of answer are all non-blocking.

use std::os::fd::AsFd;

use super::Supervisor;
use super::table::{Managed, Watch};
use super::worker::Configuring;
use crate::control::metrics::{self, Listener, Own, ProcessMetrics};

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

/// The `/metrics` body for the current process table.
pub(super) fn metrics_body(procs: &[Managed], configuring: &Configuring) -> String {
    let processes: Vec<ProcessMetrics> = procs
        .iter()
        .map(|p| ProcessMetrics {
            name: p.spec.name.clone(),
            up: p.pid().is_some(),
            ready: p.ready,
            restarts: p.restarts,
            last_exit_code: p.last_exit.map(|e| e.code()),
            uptime_s: p.pid().and(p.started).map(|t| t.elapsed().as_secs()),
        })
        .collect();
    let (rss_bytes, open_fds) = metrics::own_usage();
    let own = Own {
        reloads: configuring
            .reloads
            .iter()
            .map(|(result, n)| (result.to_string(), *n))
            .collect(),
        rss_bytes,
        open_fds,
    };
    metrics::render(&processes, &own)
}
