//! A reload as a transaction, from its worker's answer to its end. The new spec is
//! adopted and the processes it touched (restarted, signalled, added) are watched at
//! each turn of the loop ([`transaction::Watch`]); once they are all up, ready and
//! settled, the reload is done. When one ends instead, or they are not ready in time,
//! the reload is rolled back: the touched processes that are down are held (so that
//! none starts again on the refused files), a worker puts back the files the reload
//! replaced, the previous spec is adopted again and the processes that use those files
//! are told; then launch waits for them as it did for the reload. Only then does `launch
//! reload` get its answer; the log and `launch status` say the same.
//!
//! A process the pending reload touched that ends in a way that would stop the
//! container (a critical one given up) rolls the reload back instead: the container is
//! not lost to a configuration the operator can correct.

use std::collections::BTreeSet;
use std::io::{Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::last_reload::{self, Ended, LastReload};
use super::machine::Event;
use super::table::{Managed, State, Then};
use super::transaction::{self, Seen, Verdict, Watch};
use super::worker::Job;
use super::{Phase, Supervisor};
use crate::config::configure_worker::{Outcome, SshKey};
use crate::config::rollback::{Previous, Restored};
use crate::config::spec::{Kind, Spec};
use crate::control;
use crate::exit::Exit;

/// Why an abandoned reload changed nothing.
const ABANDONED: &str =
    "no answer from the configuration worker; keeping the running configuration";

/// A reload adopted and not yet done.
#[derive(Debug)]
pub(super) struct Pending {
    stage: Stage,
    /// The spec that ran before, to adopt again on a rollback (`None`: the new one was
    /// never adopted, as when writing failed midway).
    old_spec: Option<Spec>,
    /// What the written outputs replaced.
    previous: Vec<Previous>,
    /// The processes whose templates changed.
    notify: BTreeSet<String>,
    /// The processes the reload touched.
    watched: BTreeSet<String>,
    /// Those the rollback holds, down, until the previous files are back.
    held: Vec<String>,
    /// Why it is rolled back.
    cause: Option<String>,
    /// What it did so far.
    report: LastReload,
    /// `launch reload` clients waiting for the end.
    replies: Vec<UnixStream>,
}

/// Where a pending reload is.
#[derive(Debug)]
enum Stage {
    /// Waiting for the touched processes.
    Watching(Watch),
    /// A worker puts the previous files back.
    Restoring,
    /// The previous configuration runs again: waiting for its processes.
    Recovering(Watch),
}

/// What a reload's worker wrote and adopted, from its answer.
struct Adopted {
    spec: Spec,
    notify: BTreeSet<String>,
    changes: Vec<String>,
    warnings: Vec<String>,
    keys: Option<Vec<SshKey>>,
    previous: Vec<Previous>,
}

impl Supervisor {
    /// A reload's worker answered: the new configuration is adopted and watched, or
    /// refused with the running one kept, or (writing failed midway) rolled back.
    pub(super) fn reconfigured(
        &mut self,
        outcome: Result<Outcome, String>,
        replies: Vec<UnixStream>,
    ) {
        let keeping = "the new configuration is not valid; keeping the running one";
        match outcome {
            Ok(Outcome::Done {
                spec,
                notify,
                details,
                warnings,
                keys,
                wrote,
                previous,
                ..
            }) => {
                let mut changes = wrote;
                changes.extend(last_reload::key_changes(
                    self.configuring.keys.as_deref(),
                    keys.as_deref(),
                ));
                changes.extend(details);
                let adopted = Adopted {
                    spec: *spec,
                    notify,
                    changes,
                    warnings,
                    keys,
                    previous,
                };
                self.adopt_reload(adopted, replies);
            }
            Ok(Outcome::Invalid { errors }) => {
                self.refuse(Ended::Refused, keeping, errors, replies)
            }
            Ok(Outcome::Failed {
                errors,
                written_before,
                previous,
            }) if previous.is_empty() => {
                self.refuse(Ended::Refused, &written_before, errors, replies);
            }
            Ok(Outcome::Failed {
                errors,
                written_before,
                previous,
            }) => {
                let mut report = LastReload::new(Ended::RolledBack);
                report.errors = errors;
                report.errors.push(written_before);
                let pending = Pending {
                    stage: Stage::Restoring,
                    old_spec: None,
                    previous,
                    notify: BTreeSet::new(),
                    watched: BTreeSet::new(),
                    held: Vec::new(),
                    cause: None,
                    report,
                    replies,
                };
                self.roll_back(
                    pending,
                    "writing the new configuration failed midway".into(),
                );
            }
            Ok(Outcome::Restored(_)) => self.refuse(
                Ended::Abandoned,
                ABANDONED,
                vec!["the configuration worker answered out of turn".into()],
                replies,
            ),
            Err(why) => self.refuse(Ended::Abandoned, ABANDONED, vec![why], replies),
        }
    }

    /// Nothing was adopted: said to the clients, in the log and in `launch status`.
    fn refuse(&mut self, result: Ended, why: &str, errors: Vec<String>, replies: Vec<UnixStream>) {
        let mut report = LastReload::new(result);
        report.why = Some(why.to_string());
        report.errors = errors;
        self.end_reload(report, replies);
    }

    /// Adopts the new spec and starts watching what it touched.
    fn adopt_reload(&mut self, new: Adopted, replies: Vec<UnixStream>) {
        let old_spec = self.configuring.adopted.clone().unwrap_or_default();
        let touched = transaction::touched(&old_spec.processes, &new.spec.processes, &new.notify);
        let mut report = LastReload::new(Ended::Reloaded);
        report.changes = new.changes;
        report.warnings = new.warnings;
        // What the processes are told is said as it is done (see `adopt_spec`).
        for line in report.changes.iter().chain(&report.warnings) {
            self.log(line.clone());
        }
        report.changes.extend(touched.lines());
        let watched = touched.watched();
        let watch = self.watch_over(&new.spec, &watched);
        self.configuring.keys = new.keys;
        self.configuring.adopted = Some(new.spec.clone());
        self.adopt_spec(new.spec, &new.notify);
        if !watched.is_empty() {
            self.log(format!(
                "reload: waiting for {} to be ready (rolled back if not within {})",
                watched.iter().cloned().collect::<Vec<_>>().join(", "),
                crate::duration::format(watch.deadline() - watch.since())
            ));
        }
        self.configuring.pending = Some(Pending {
            stage: Stage::Watching(watch),
            old_spec: Some(old_spec),
            previous: new.previous,
            notify: new.notify,
            watched,
            held: Vec::new(),
            cause: None,
            report,
            replies,
        });
        self.settle_reload(Instant::now());
    }

    /// A watch over `watched`, as they are now (before `spec` is adopted).
    fn watch_over(&self, spec: &Spec, watched: &BTreeSet<String>) -> Watch {
        let now = Instant::now();
        let start: Vec<(String, Seen)> = watched
            .iter()
            .map(|name| (name.clone(), self.seen(name)))
            .collect();
        let processes: Vec<_> = spec
            .processes
            .iter()
            .filter(|p| watched.contains(&p.name))
            .collect();
        Watch::new(now, transaction::deadline(now, &processes), &start)
    }

    /// `name` as the process table shows it now.
    fn seen(&self, name: &str) -> Seen {
        let Some(p) = self.procs.iter().find(|p| p.spec.name == name) else {
            return Seen::Done;
        };
        let down = Seen::Down {
            started: p.started,
            exit: p.last_exit,
        };
        match p.state {
            State::Running { pid } => Seen::Up {
                pid: pid.as_raw(),
                ready: p.ready,
            },
            State::Waiting | State::Stopping { .. } => Seen::Between,
            State::Exited(exit) if p.spec.kind == Kind::Oneshot && exit.success() => Seen::Done,
            State::Backoff { .. } | State::Exited(_) | State::Failed(_) => down,
            State::Stopped | State::Held => Seen::Done,
        }
    }

    /// Once a turn of the loop: the pending reload's verdict, acted on.
    pub(super) fn settle_reload(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(mut pending) = self.configuring.pending.take() else {
            return;
        };
        let verdict = match &mut pending.stage {
            Stage::Watching(watch) | Stage::Recovering(watch) => {
                let seen: Vec<(String, Seen)> = watch
                    .names()
                    .map(|name| (name.clone(), self.seen(name)))
                    .collect();
                watch.verdict(&seen, now)
            }
            Stage::Restoring => {
                self.hold_down(&mut pending);
                Verdict::Wait
            }
        };
        let recovering = matches!(pending.stage, Stage::Recovering(_));
        match (verdict, recovering) {
            (Verdict::Wait, _) => self.configuring.pending = Some(pending),
            (Verdict::Commit, false) => self.end_reload(pending.report, pending.replies),
            (Verdict::Rollback(cause), false) => self.roll_back(pending, cause.to_string()),
            (Verdict::Commit, true) => {
                let cause = pending.cause.take().unwrap_or_default();
                pending.report.why = Some(if pending.report.result == Ended::RollbackIncomplete {
                    format!("{cause}; not every previous file could be put back (see above)")
                } else {
                    format!("{cause}; the previous configuration runs again")
                });
                self.end_reload(pending.report, pending.replies);
            }
            (Verdict::Rollback(again), true) => {
                let cause = pending.cause.take().unwrap_or_default();
                pending.report.why = Some(format!(
                    "{cause}; the previous configuration was put back, and {again} with it too"
                ));
                self.end_reload(pending.report, pending.replies);
            }
        }
    }

    /// Rolls `pending` back for `cause`: holds what is down, and has a worker put the
    /// previous files back (see [`Supervisor::restored`]).
    fn roll_back(&mut self, mut pending: Pending, cause: String) {
        self.log(format!("reload: {cause}: rolling back"));
        pending.report.result = Ended::RolledBack;
        pending.cause = Some(cause);
        pending.stage = Stage::Restoring;
        self.hold_down(&mut pending);
        let files = std::mem::take(&mut pending.previous);
        self.configuring.pending = Some(pending);
        if files.is_empty() {
            return self.restored(Ok(Outcome::Restored(Restored::default())));
        }
        let started = input(&files).and_then(|fd| {
            self.start_worker(Job::Restore, Vec::new(), Some(fd))
                .map_err(|(_, why)| why)
        });
        if let Err(why) = started {
            self.restored(Err(why));
        }
    }

    /// Holds every touched process that is down or about to start: none starts again on
    /// the refused files while they are being put back.
    fn hold_down(&mut self, pending: &mut Pending) {
        for i in 0..self.procs.len() {
            let p = &self.procs[i];
            let down = matches!(
                p.state,
                State::Waiting | State::Backoff { .. } | State::Exited(_) | State::Failed(_)
            );
            if down && pending.watched.contains(&p.spec.name) {
                let name = p.spec.name.clone();
                self.apply(i, Event::StopRequested(Then::Hold));
                if !pending.held.contains(&name) {
                    pending.held.push(name);
                }
            }
        }
    }

    /// The rollback's worker answered: the previous spec again, the processes that use
    /// the files put back told, and those watched until they are ready.
    pub(super) fn restored(&mut self, outcome: Result<Outcome, String>) {
        let Some(mut pending) = self.configuring.pending.take() else {
            return;
        };
        let restored = match outcome {
            Ok(Outcome::Restored(restored)) => restored,
            Ok(_) => Restored {
                done: Vec::new(),
                errors: vec!["the rollback's worker answered out of turn".into()],
            },
            Err(why) => Restored {
                done: Vec::new(),
                errors: vec![why],
            },
        };
        for line in restored.done.iter().chain(&restored.errors) {
            self.log(line.clone());
        }
        if !restored.errors.is_empty() {
            pending.report.result = Ended::RollbackIncomplete;
        }
        pending.report.rollback.extend(restored.done);
        pending.report.rollback.extend(restored.errors);
        for name in std::mem::take(&mut pending.held) {
            let held = |p: &Managed| p.spec.name == name && p.state == State::Held;
            if let Some(i) = self.procs.iter().position(held) {
                self.apply(i, Event::StartRequested);
            }
        }
        let watch = match pending.old_spec.take() {
            Some(old) => self.readopt(&mut pending, old),
            None => Watch::new(Instant::now(), Instant::now(), &[]),
        };
        pending.stage = Stage::Recovering(watch);
        self.configuring.pending = Some(pending);
        self.settle_reload(Instant::now());
    }

    /// Adopts `old` again after a rollback; returns the watch over what that touches.
    fn readopt(&mut self, pending: &mut Pending, old: Spec) -> Watch {
        let refused = self.configuring.adopted.take().unwrap_or_default();
        let touched = transaction::touched(&refused.processes, &old.processes, &pending.notify);
        let mut watched = touched.watched();
        watched.extend(
            pending
                .watched
                .iter()
                .filter(|name| old.processes.iter().any(|p| &p.name == *name))
                .cloned(),
        );
        pending.report.rollback.extend(
            touched
                .lines()
                .into_iter()
                .map(|l| format!("previous configuration: {l}")),
        );
        let watch = self.watch_over(&old, &watched);
        self.configuring.adopted = Some(old.clone());
        self.adopt_spec(old, &pending.notify);
        watch
    }

    /// The reload is over: said in the log, to the waiting clients and in `launch
    /// status`; a reload asked for meanwhile starts.
    fn end_reload(&mut self, mut report: LastReload, replies: Vec<UnixStream>) {
        report.at = std::time::SystemTime::now();
        for line in report.log_lines() {
            self.log(line);
        }
        let body = report.answer();
        let exit = report.result.exit_code();
        for stream in replies {
            control::respond(stream, &body, exit);
        }
        *self
            .configuring
            .reloads
            .entry(report.result.word())
            .or_default() += 1;
        self.configuring.last_reload = Some(report);
        self.start_queued();
    }

    /// `name` ended with `exit` in a way that would stop the container: true when the
    /// pending reload touched it, and then that reload is rolled back instead.
    pub(super) fn reload_absorbs(&mut self, name: &str, exit: Exit) -> bool {
        let Some(pending) = self.configuring.pending.as_mut() else {
            return false;
        };
        let absorbed = match &mut pending.stage {
            Stage::Watching(watch) => watch.ended(name, exit),
            Stage::Restoring => pending.watched.contains(name),
            Stage::Recovering(_) => false,
        };
        if absorbed {
            self.log(format!(
                "{name} is one the pending reload touched: the reload is rolled back instead of stopping the container"
            ));
        }
        absorbed
    }

    /// When the pending reload's verdict may change with nothing else happening.
    pub(super) fn reload_wake(&self, now: Instant) -> Option<Instant> {
        match &self.configuring.pending.as_ref()?.stage {
            Stage::Watching(watch) | Stage::Recovering(watch) => watch.next_wake(now),
            Stage::Restoring => None,
        }
    }

    /// The pending reload in one line, for `launch status`.
    pub(super) fn reload_in_progress(&self) -> Option<String> {
        let pending = self.configuring.pending.as_ref()?;
        let names = |watch: &Watch| watch.names().cloned().collect::<Vec<_>>().join(", ");
        let cause = pending.cause.as_deref().unwrap_or_default();
        Some(match &pending.stage {
            Stage::Watching(watch) => {
                format!(
                    "reload in progress: waiting for {} to be ready",
                    names(watch)
                )
            }
            Stage::Restoring => format!("reload in progress: rolling back ({cause})"),
            Stage::Recovering(watch) => format!(
                "reload in progress: rolled back ({cause}); waiting for {} to be ready",
                names(watch)
            ),
        })
    }

    /// Shutdown: the pending reload ends unfinished; its clients, to be told.
    pub(super) fn abandon_reload(&mut self) -> Vec<UnixStream> {
        self.configuring
            .pending
            .take()
            .map(|p| p.replies)
            .unwrap_or_default()
    }
}

/// The files to put back, as the rollback's worker reads them on its stdin: a memory
/// file (writing it never blocks the loop, and no path names it).
fn input(files: &[Previous]) -> Result<OwnedFd, String> {
    let cannot = |e: &dyn std::fmt::Display| {
        format!("cannot hand the previous files to the rollback's worker: {e}")
    };
    let text = serde_json::to_vec(files).map_err(|e| cannot(&e))?;
    let fd =
        nix::sys::memfd::memfd_create(c"launch-rollback", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| cannot(&e))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&text).map_err(|e| cannot(&e))?;
    file.rewind().map_err(|e| cannot(&e))?;
    Ok(file.into())
}
