//! Starting processes: adopting a spec (what a reload added, changed or removed), and
//! starting each process once what it depends on is satisfied, as its user.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Instant;

use super::logs::{LogPipe, Stream};
use super::machine::Event;
use super::table::{self, Managed, State, Then, Watch};
use super::{Mode, ORPHAN_GRACE_MIN, Phase, Supervisor, pipe, policy};
use crate::config::spec::{self, Process, ReadyCheck};
use crate::exit::code;
use crate::init::reap::Children;
use crate::init::spawn::{self, Credentials, Extra};
use crate::volume::users::{Accounts, User, UserError};

impl Supervisor {
    /// Takes a (new) spec: adds, changes and removes processes; `notified` are the
    /// processes whose templates changed.
    pub(super) fn adopt_spec(&mut self, spec: spec::Spec, notified: &BTreeSet<String>) {
        if let Mode::Run { grace, .. } = &mut self.mode {
            *grace = spec.shutdown.grace;
        }
        self.adopt_metrics(spec.metrics);
        let levels = policy::levels(&spec.processes);
        let wanted: BTreeSet<String> = spec.processes.iter().map(|p| p.name.clone()).collect();
        for i in 0..self.procs.len() {
            if !wanted.contains(&self.procs[i].spec.name) {
                self.log(format!(
                    "{} is no longer in the spec: stopping it",
                    self.procs[i].spec.name
                ));
                self.stop(i, Then::Remove);
            }
        }
        self.procs
            .retain(|p| wanted.contains(&p.spec.name) || p.pid().is_some());
        for process in spec.processes {
            let level = levels.get(&process.name).copied().unwrap_or(0);
            match self.procs.iter().position(|p| p.spec.name == process.name) {
                None => self.procs.push(Managed::new(process, level)),
                Some(i) => {
                    let changed = {
                        let mut old = self.procs[i].spec.clone();
                        old.line = process.line;
                        // Whether lines are prefixed follows from how many processes
                        // there are: adding one must not restart the others. It takes
                        // effect at their next start.
                        old.log_prefix = process.log_prefix;
                        old != process
                    };
                    // Put back while it still stops from its removal: it must start
                    // again once it has ended, not be forgotten.
                    let put_back = matches!(
                        self.procs[i].state,
                        State::Stopping {
                            then: Then::Remove,
                            ..
                        }
                    );
                    self.procs[i].level = level;
                    if put_back {
                        self.log(format!("{} is back in the spec", process.name));
                        self.procs[i].spec = process;
                        self.restart(i);
                    } else if changed {
                        self.log(format!(
                            "{} changed in the spec: restarting it",
                            process.name
                        ));
                        self.procs[i].spec = process;
                        self.restart(i);
                    } else if notified.contains(&process.name) {
                        self.notify(i);
                    }
                }
            }
        }
    }

    /// Starts every waiting process whose dependencies are satisfied; during shutdown,
    /// stops the highest level still running.
    pub(super) fn advance(&mut self) {
        match self.phase {
            Phase::Running => {
                // A process started here may satisfy others at once (no readiness check):
                // go round until nothing more can start.
                // The common case (every wake-up of an idle launch): nothing waits.
                while self.procs.iter().any(|p| p.state == State::Waiting) {
                    let startable = table::startable(&self.procs);
                    if startable.is_empty() || self.phase != Phase::Running {
                        break;
                    }
                    for i in startable {
                        self.apply(i, Event::DepsSatisfied);
                    }
                }
                if matches!(self.mode, Mode::Run { .. })
                    && self.phase == Phase::Running
                    && self.configuring.configured
                    // A pending reload may yet put back what ran.
                    && self.configuring.pending.is_none()
                    && table::all_over(&self.procs)
                {
                    self.log("no process left to supervise".into());
                    self.begin_shutdown(
                        0,
                        "nothing left to run",
                        "every process has finished, and none is to be restarted".into(),
                    );
                }
            }
            Phase::Stopping { grace_until, code } => match table::to_stop(&self.procs) {
                Some(now) => {
                    for i in now {
                        self.stop(i, Then::Rest);
                    }
                }
                None => {
                    // Nothing may ever have run, and so no SIGCHLD have told whether
                    // any child is left: ask.
                    self.reap();
                    // The managed processes are gone: now whatever they left behind.
                    if self.children == Children::Remain {
                        self.term_what_is_left();
                    }
                    let until = grace_until.max(Instant::now() + ORPHAN_GRACE_MIN);
                    self.phase = Phase::Draining { until, code };
                }
            },
            Phase::Draining { .. } | Phase::Killing { .. } => {}
        }
    }

    /// Starts process `i`, as its user, with its output piped when its lines are
    /// prefixed and its notify descriptor when it has one: `Spawned` or `SpawnFailed`.
    pub(super) fn spawn(&mut self, i: usize) -> Event {
        let spec = self.procs[i].spec.clone();
        let mut extra = Extra {
            cwd: spec.cwd.clone(),
            umask: spec.umask,
            close_fds: true,
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Extra::default()
        };
        if let Err(e) = run_as(&spec, &mut extra) {
            // Never started with launch's own credentials instead. Counted as a failed
            // start, so the restart policy and its backoff apply: a reload that brings
            // the user back heals it, a user that stays missing ends in the give-up (and
            // stops the container when the process is critical).
            let why = format!(
                "{}: not started (and never as launch's own user instead): {e}",
                spec.name
            );
            return Event::SpawnFailed {
                code: code::CONFIG,
                why,
            };
        }
        let mut new_watches = Vec::new();
        if spec.log_prefix {
            for stream in [Stream::Stdout, Stream::Stderr] {
                if let Some((read, write)) = pipe() {
                    match stream {
                        Stream::Stdout => extra.stdout = Some(write),
                        Stream::Stderr => extra.stderr = Some(write),
                    }
                    new_watches.push(Watch::Log(LogPipe::new(read, stream, &spec.name)));
                }
            }
        }
        if let Some(ReadyCheck::NotifyFd(n)) = spec.ready.as_ref().map(|r| &r.check) {
            if let Some((read, write)) = pipe() {
                extra.notify = Some((write, *n));
                new_watches.push(Watch::Notify {
                    process: spec.name.clone(),
                    fd: read,
                });
            }
        }
        let argv: Vec<OsString> = spec
            .command
            .argv()
            .into_iter()
            .map(OsString::from)
            .collect();
        let result = spawn::spawn_with(&argv, &self.setup, extra);
        for watch in new_watches {
            self.watch(watch);
        }
        match result {
            Ok(pid) => Event::Spawned { pid },
            // Like a crash: the same backoff, so that a missing binary or user neither
            // spins nor starves the others.
            Err(e) => Event::SpawnFailed {
                code: e.exit_code(),
                why: format!("{}: cannot start: {e}", spec.name),
            },
        }
    }
}

/// Sets `extra` to run as the process's user (and group), with `HOME`, `USER` and
/// `LOGNAME` to match. The accounts are read afresh at every start: a copy from a minute
/// ago may lack a user a reload has added since, or still hold one removed.
pub(super) fn run_as(spec: &Process, extra: &mut Extra) -> Result<(), UserError> {
    let Some(user) = &spec.user else {
        return Ok(());
    };
    let found = Accounts::read(std::path::Path::new("/"))?.resolve(user, spec.group.as_deref())?;
    extra.user = credentials(&found, nix::unistd::geteuid().as_raw())?;
    extra
        .env
        .push(("HOME".into(), found.home.display().to_string()));
    extra.env.push(("USER".into(), found.name.clone()));
    extra.env.push(("LOGNAME".into(), found.name.clone()));
    Ok(())
}

/// What the child switches to, for launch running as `own`: root switches to anyone;
/// any other user only runs processes as itself (`docker run -u app`, and the spec's
/// `user: app`), with nothing to switch; another user is refused, never run as launch's.
fn credentials(found: &User, own: u32) -> Result<Option<Credentials>, UserError> {
    if own == 0 {
        return Ok(Some(Credentials {
            uid: found.uid,
            gid: found.gid,
            groups: std::iter::once(found.gid)
                .chain(found.groups.iter().copied())
                .collect(),
        }));
    }
    if found.uid == own {
        return Ok(None);
    }
    Err(UserError::NotRoot {
        user: found.name.clone(),
        uid: found.uid,
        own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_a_process_runs_as_for_who_launch_is() {
        let app = User {
            name: "app".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/app".into(),
            groups: vec![27],
        };
        let as_root = credentials(&app, 0).unwrap().unwrap();
        assert_eq!((as_root.uid, as_root.gid), (1000, 1000));
        assert_eq!(as_root.groups, [1000, 27]);
        assert!(credentials(&app, 1000).unwrap().is_none());
        let refused = credentials(&app, 1001).unwrap_err().to_string();
        assert!(
            refused.contains(
                "cannot run as user \"app\" (uid 1000): launch runs as uid 1001, not root"
            ),
            "{refused}"
        );
    }
}
