//! Answers to the control socket's requests, and the status they report.

use super::machine::Event;
use super::metrics::report;
use super::table::{Managed, Then};
use super::{Mode, Phase, Supervisor};
use crate::control::{self, Request};

impl Supervisor {
    /// A control request: the answer and the client's exit code.
    pub(super) fn answer(&mut self, request: Request) -> (String, i32) {
        let find = |procs: &[Managed], name: &str| procs.iter().position(|p| p.spec.name == name);
        match request {
            Request::Status { json } => {
                let report = report(&self.procs, &self.configuring);
                if json {
                    (
                        format!(
                            "{}\n",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        ),
                        0,
                    )
                } else {
                    let mut table = control::status_table(&report.processes);
                    if let Some(last) = &self.configuring.last_reload {
                        table.push_str(&last.describe());
                    }
                    if let Some(pending) = self.reload_in_progress() {
                        table.push_str(&format!("{pending}\n"));
                    }
                    (table, 0)
                }
            }
            Request::Health => {
                let sick: Vec<String> = self
                    .procs
                    .iter()
                    .filter(|p| !p.healthy())
                    .map(|p| format!("{}: {}\n", p.spec.name, p.state_name()))
                    .collect();
                if self.phase != Phase::Running {
                    ("shutting down\n".into(), 1)
                } else if matches!(self.mode, Mode::Run { .. }) && !self.configuring.configured {
                    ("configuring\n".into(), 1)
                } else if sick.is_empty() {
                    ("healthy\n".into(), 0)
                } else {
                    (sick.concat(), 1)
                }
            }
            // Answered when the worker has (see `on_readable`).
            Request::Reload => ("reloading\n".into(), 0),
            Request::LastReload => match &self.configuring.last_reload {
                Some(last) => (last.describe(), last.result.exit_code()),
                None => (String::new(), 0),
            },
            Request::Restart(name) | Request::Stop(name) | Request::Start(name)
                if find(&self.procs, &name).is_none() =>
            {
                (format!("launch: no process named {name:?}\n"), 1)
            }
            Request::Restart(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                self.log(format!("{name}: restart asked for"));
                self.restart(i);
                (format!("restarting {name}\n"), 0)
            }
            Request::Stop(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                self.log(format!("{name}: stop asked for"));
                self.stop(i, Then::Hold);
                (format!("stopping {name}\n"), 0)
            }
            Request::Start(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                if self.procs[i].pid().is_some() {
                    return (format!("{name} is already running\n"), 0);
                }
                self.apply(i, Event::StartRequested);
                self.log(format!("{name}: start asked for"));
                (format!("starting {name}\n"), 0)
            }
        }
    }
}
