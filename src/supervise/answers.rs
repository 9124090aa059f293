//! Answers to the control socket's requests, and the status they report.

use super::machine::Event;
use super::metrics::report;
use super::table::Then;
use super::{Mode, Phase, Supervisor};
use crate::config::spec::instances;
use crate::control::{self, Request};

impl Supervisor {
    /// A control request: the answer and the client's exit code.
    pub(super) fn answer(&mut self, request: Request) -> (String, i32) {
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
            Request::Restart(name) => self.each_named(&name, |s, i| {
                s.log(format!("{}: restart asked for", s.procs[i].spec.name));
                s.restart(i);
                format!("restarting {}", s.procs[i].spec.name)
            }),
            Request::Stop(name) => self.each_named(&name, |s, i| {
                s.log(format!("{}: stop asked for", s.procs[i].spec.name));
                s.stop(i, Then::Hold);
                format!("stopping {}", s.procs[i].spec.name)
            }),
            Request::Start(name) => self.each_named(&name, |s, i| {
                let name = s.procs[i].spec.name.clone();
                if s.procs[i].pid().is_some() {
                    return format!("{name} is already running");
                }
                s.apply(i, Event::StartRequested);
                s.log(format!("{name}: start asked for"));
                format!("starting {name}")
            }),
        }
    }

    /// Does `act` to the process `name`, or to each of its copies (`instances:`); one
    /// line per process for the client, as `act` says it.
    fn each_named(
        &mut self,
        name: &str,
        mut act: impl FnMut(&mut Supervisor, usize) -> String,
    ) -> (String, i32) {
        let exact = self.procs.iter().position(|p| p.spec.name == name);
        let targets: Vec<usize> = match exact {
            Some(i) => vec![i],
            None => (0..self.procs.len())
                .filter(|&i| instances::is_or_copy_of(&self.procs[i].spec.name, name))
                .collect(),
        };
        if targets.is_empty() {
            return (format!("launch: no process named {name:?}\n"), 1);
        }
        let mut said = String::new();
        for i in targets {
            said.push_str(&act(self, i));
            said.push('\n');
        }
        (said, 0)
    }
}
