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
