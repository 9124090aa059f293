//! The process table: each supervised process, where it is in its life, and what
//! follows a stop.

use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::unistd::Pid;

use super::logs::LogPipe;
use super::policy::ExitHistory;
use crate::config::spec::{Kind, Process};
use crate::exit::Exit;
use crate::init::leftover::Member;

/// Where a managed process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Not started: waiting for its dependencies.
    Waiting,
    /// Running.
    Running { pid: Pid },
    /// Ended; started again at `until`.
    Backoff { until: Instant },
    /// Asked to stop; SIGKILL at `kill_at`; then `then`.
    Stopping {
        pid: Pid,
        kill_at: Instant,
        then: Then,
    },
    /// Ended for good (a oneshot that finished, or a policy that does not restart).
    Exited(Exit),
    /// Given up (crash loop, failed oneshot).
    Failed(Exit),
    /// Stopped by launch (shutdown).
    Stopped,
    /// Stopped on request (`launch stop`): deliberate, so not a sickness; stays stopped
    /// until `launch start`.
    Held,
}

/// What follows a requested stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Stay stopped.
    Rest,
    /// Stay stopped, as asked for (`launch stop`).
    Hold,
    /// Start again (reconfigured).
    Restart,
    /// Forget the process (removed from the spec).
    Remove,
}

/// A readiness check in progress.
#[derive(Debug, Clone)]
pub(super) struct Readiness {
    pub(super) deadline: Instant,
    pub(super) next_try: Instant,
    /// A `cmd` check being run.
    pub(super) check_pid: Option<Pid>,
}

/// One supervised process.
#[derive(Debug)]
pub(super) struct Managed {
    pub(super) spec: Process,
    pub(super) level: usize,
    pub(super) state: State,
    pub(super) history: ExitHistory,
    /// Restarts since it last stayed up long enough (for the backoff).
    pub(super) attempt: u32,
    /// Restarts in all.
    pub(super) restarts: u32,
    pub(super) started: Option<Instant>,
    pub(super) ready: bool,
    pub(super) readiness: Option<Readiness>,
    pub(super) last_exit: Option<Exit>,
    /// Its descendants when it was asked to stop, ended with it (see [`leftover`]).
    pub(super) snapshot: Vec<Member>,
}

impl Managed {
    pub(super) fn state_name(&self) -> &'static str {
        match self.state {
            State::Waiting => "waiting",
            State::Running { .. } if !self.ready => "starting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Exited(_) => "exited",
            State::Failed(_) => "failed",
            State::Stopped | State::Held => "stopped",
        }
    }

    /// For `launch health`: a service runs and is ready; a oneshot finished (or may fail);
    /// either was stopped on request.
    pub(super) fn healthy(&self) -> bool {
        if self.state == State::Held {
            return true;
        }
        match self.spec.kind {
            Kind::Service => matches!(self.state, State::Running { .. }) && self.ready,
            Kind::Oneshot => self.satisfies() || matches!(self.state, State::Running { .. }),
        }
    }

    pub(super) fn new(spec: Process, level: usize) -> Managed {
        Managed {
            spec,
            level,
            state: State::Waiting,
            history: ExitHistory::default(),
            attempt: 0,
            restarts: 0,
            started: None,
            ready: false,
            readiness: None,
            last_exit: None,
            snapshot: Vec::new(),
        }
    }

    /// Its pid while it runs. Never 0 or 1: signalled as a group those would be launch's
    /// own group or every process there is.
    pub(super) fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Running { pid } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
        .filter(|pid| pid.as_raw() > 1)
    }

    /// Dependents may start: it runs and is ready, or it is a oneshot that finished
    /// (or an optional one that failed).
    pub(super) fn satisfies(&self) -> bool {
        match self.state {
            State::Running { .. } => self.ready && self.spec.kind == Kind::Service,
            State::Exited(exit) => self.spec.kind == Kind::Oneshot && exit.success(),
            State::Failed(_) => self.spec.optional,
            _ => false,
        }
    }
}

/// What a watched descriptor is.
#[derive(Debug)]
pub(super) enum Watch {
    /// A child's output, prefixed line by line.
    Log(LogPipe),
    /// A readiness pipe of the named process.
    Notify { process: String, fd: OwnedFd },
    /// A connection to the control socket, and what it sent so far.
    Control {
        stream: std::os::unix::net::UnixStream,
        request: Vec<u8>,
    },
    /// A connection to the metrics listener, and what it sent so far.
    Metrics {
        stream: std::net::TcpStream,
        request: Vec<u8>,
    },
}

impl Watch {
    /// Its descriptor, for the event loop.
    pub(super) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Watch::Log(pipe) => pipe.fd.as_fd(),
            Watch::Notify { fd, .. } => fd.as_fd(),
            Watch::Control { stream, .. } => stream.as_fd(),
            Watch::Metrics { stream, .. } => stream.as_fd(),
        }
    }

    /// A connection waiting for its request.
    pub(super) fn is_connection(&self) -> bool {
        matches!(self, Watch::Control { .. } | Watch::Metrics { .. })
    }
}

/// The processes that may start now: waiting, with every dependency satisfied.
pub(super) fn startable(procs: &[Managed]) -> Vec<usize> {
    let satisfied: Vec<&str> = procs
        .iter()
        .filter(|p| p.satisfies())
        .map(|p| p.spec.name.as_str())
        .collect();
    (0..procs.len())
        .filter(|&i| {
            procs[i].state == State::Waiting
                && procs[i]
                    .spec
                    .depends_on
                    .iter()
                    .all(|d| satisfied.contains(&d.as_str()))
        })
        .collect()
}

/// At shutdown, the processes to stop now: those that run, of the highest level that
/// still has a process alive (the ones of that level already stopping are left to it).
/// `None` once no process is alive.
pub(super) fn to_stop(procs: &[Managed]) -> Option<Vec<usize>> {
    let alive = || procs.iter().enumerate().filter(|(_, p)| p.pid().is_some());
    let top = alive().map(|(_, p)| p.level).max()?;
    Some(
        alive()
            .filter(|(_, p)| p.level == top && matches!(p.state, State::Running { .. }))
            .map(|(i, _)| i)
            .collect(),
    )
}

/// Nothing is left to supervise: every process has ended for good or was stopped by
/// launch (one held on request keeps launch running).
pub(super) fn all_over(procs: &[Managed]) -> bool {
    procs.iter().all(|p| {
        matches!(
            p.state,
            State::Exited(_) | State::Failed(_) | State::Stopped
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes named by `(name, depends_on, level, state, ready)`.
    fn table(rows: &[(&str, &[&str], usize, State, bool)]) -> Vec<Managed> {
        rows.iter()
            .map(|&(name, deps, level, state, ready)| {
                let spec = Process {
                    depends_on: deps.iter().map(|d| d.to_string()).collect(),
                    ..Process::service(name, vec![name.into()])
                };
                let mut p = Managed::new(spec, level);
                p.state = state;
                p.ready = ready;
                p
            })
            .collect()
    }

    const RUNS: State = State::Running {
        pid: Pid::from_raw(100),
    };

    #[test]
    fn what_may_start_waits_for_ready_dependencies() {
        let now = Instant::now();
        let procs = table(&[
            ("db", &[], 0, RUNS, true),
            ("cache", &[], 0, RUNS, false),
            ("app", &["db"], 1, State::Waiting, false),
            ("web", &["app", "cache"], 2, State::Waiting, false),
            ("worker", &["cache"], 1, State::Waiting, false),
            ("cron", &[], 0, State::Backoff { until: now }, false),
        ]);
        assert_eq!(startable(&procs), [2]);
    }

    #[test]
    fn shutdown_stops_the_highest_level_alive_first() {
        let stopping = State::Stopping {
            pid: Pid::from_raw(101),
            kill_at: Instant::now(),
            then: Then::Rest,
        };
        let procs = table(&[
            ("db", &[], 0, RUNS, true),
            ("app", &["db"], 1, RUNS, true),
            ("web", &["app"], 2, stopping, true),
            ("api", &["app"], 2, RUNS, true),
            ("gone", &["app"], 3, State::Stopped, false),
        ]);
        assert_eq!(to_stop(&procs), Some(vec![3]));
        let procs = table(&[("db", &[], 0, RUNS, true), ("app", &["db"], 1, RUNS, true)]);
        assert_eq!(to_stop(&procs), Some(vec![1]));
        let procs = table(&[("db", &[], 0, State::Stopped, false)]);
        assert_eq!(to_stop(&procs), None);
    }

    #[test]
    fn launch_runs_on_while_something_runs_waits_or_is_held() {
        let ended = [
            State::Exited(Exit::Code(0)),
            State::Failed(Exit::Code(1)),
            State::Stopped,
        ];
        let over = table(&[
            ("a", &[], 0, ended[0], false),
            ("b", &[], 0, ended[1], false),
            ("c", &[], 0, ended[2], false),
        ]);
        assert!(all_over(&over));
        for state in [RUNS, State::Waiting, State::Held] {
            let mut procs = table(&[("a", &[], 0, ended[0], false)]);
            procs.extend(table(&[("b", &[], 0, state, false)]));
            assert!(!all_over(&procs), "{state:?}");
        }
    }
}
