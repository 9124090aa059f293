//! Signals: launch blocks every signal it can and reads them from a signalfd, so they
//! arrive as ordinary events in the loop (no handlers, no async-signal-safety traps), and
//! as PID 1 the kernel delivers them even though no handler is installed (a blocked
//! signal is never discarded as ignored).
//!
//! What the child must get back is recorded here too: the mask and the ignored
//! dispositions that launch itself was started with.

use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// Errors of the signal plumbing; all are failures of the machine, not of the input.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// sigprocmask failed.
    #[error("cannot block signals: {0}")]
    Mask(Errno),
    /// signalfd could not be created or read.
    #[error("cannot read signals from a signalfd: {0}")]
    Fd(Errno),
    /// SIGCHLD could not be set back to its default disposition.
    #[error("cannot reset SIGCHLD to its default disposition: {0}")]
    Disposition(Errno),
}

/// Signals raised by a fault in launch itself: they must stay deliverable, or a bug
/// would hang PID 1 instead of crashing it.
const SYNCHRONOUS: [Signal; 6] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The set launch blocks: everything but the synchronous faults and SIGABRT (which
/// `abort()` needs). SIGTSTP, SIGTTIN and SIGTTOU are blocked too, so launch never stops.
pub fn blocked_set() -> SigSet {
    let mut set = SigSet::all();
    for signal in SYNCHRONOUS {
        set.remove(signal);
    }
    set.remove(Signal::SIGABRT);
    set
}

/// True when a signal that reached launch is passed on to the child.
///
/// SIGCHLD is launch's own business. SIGTTIN and SIGTTOU reach launch only when launch
/// itself touches the terminal from the background; passing them on would stop the
/// child for launch's doing.
pub fn is_forwarded(signo: i32) -> bool {
    signo != libc::SIGCHLD && signo != libc::SIGTTIN && signo != libc::SIGTTOU
}

/// A human name: `SIGTERM`, `SIGRTMIN+3`.
pub fn name(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signo) => {
            format!("SIGRTMIN+{}", signo - libc::SIGRTMIN())
        }
        Err(_) => format!("signal {signo}"),
    }
}

/// Sends signal number `signo` to `pid` (a negative pid is a process group).
///
/// Raw numbers rather than nix's `Signal`, because real-time signals are forwarded too
/// and `Signal` cannot name them. A pid of 0 or 1 either way is refused (EINVAL): as a
/// process or a group those are launch itself, launch's own group, or (-1) every
/// process there is, and never what a process table entry means. Only
/// [`send_everyone`] signals everyone, on purpose.
pub fn send(pid: Pid, signo: i32) -> Result<(), Errno> {
    if pid.as_raw().unsigned_abs() <= 1 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid.as_raw(), signo) };
    Errno::result(rc).map(drop)
}

/// Sends `signo` to every process launch may signal but itself (`kill(-1)`): only for
/// launch as PID 1, where that is its own namespace.
pub fn send_everyone(signo: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(-1, signo) };
    Errno::result(rc).map(drop)
}

/// What the child gets back instead of launch's own signal state.
#[derive(Debug, Clone)]
pub struct Inherited {
    /// The mask launch was started with. Dispositions need nothing: launch installs
    /// no handler and changes no disposition but SIGCHLD's (its own C `main` keeps std
    /// from ignoring SIGPIPE), so what it was given passes through exec as it is.
    /// SIGCHLD is the exception: an inherited "ignore" is reset to the default for
    /// launch and so for its children too, which would be as broken by it (no
    /// `wait` of theirs would ever see a child end).
    pub mask: SigSet,
}

/// launch's signal inbox: every signal in [`blocked_set`], read from a signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    inherited: Inherited,
}

/// One signal read from the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its number.
    pub signo: i32,
    /// The pid that sent it, as seen from launch's namespace (0 from the kernel or from
    /// outside the namespace).
    pub sender: i32,
}

impl Signals {
    /// Blocks the signals and opens the signalfd (close-on-exec, non-blocking).
    ///
    /// Must run before launch starts any child: it also resets SIGCHLD to its default.
    pub fn install() -> Result<Signals, SignalError> {
        reset_sigchld()?;
        let set = blocked_set();
        let mut mask = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut mask))
            .map_err(SignalError::Mask)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(SignalError::Fd)?;
        Ok(Signals {
            fd,
            inherited: Inherited { mask },
        })
    }

    /// What children get back.
    pub fn inherited(&self) -> &Inherited {
        &self.inherited
    }

    /// The next pending signal, or `None` when there is none left.
    pub fn next(&self) -> Result<Option<Received>, SignalError> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Ok(Some(Received {
                signo: info.ssi_signo as i32,
                sender: info.ssi_pid as i32,
            })),
            Ok(None) => Ok(None),
            Err(Errno::EINTR) => Ok(None),
            Err(e) => Err(SignalError::Fd(e)),
        }
    }
}

/// Sets SIGCHLD back to its default disposition. A parent may have left it ignored
/// (POSIX keeps SIG_IGN across exec); then the kernel reaps launch's children itself
/// and sends nothing, so launch would never learn that its command ended.
fn reset_sigchld() -> Result<(), SignalError> {
    // SAFETY: an empty sigaction struct with SIG_DFL as handler; sigaction only reads it.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut())
    };
    Errno::result(rc)
        .map(drop)
        .map_err(SignalError::Disposition)
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_stay_deliverable_and_job_control_is_blocked() {
        let set = blocked_set();
        for signal in SYNCHRONOUS {
            assert!(!set.contains(signal), "{signal} must not be blocked");
        }
        for signal in [
            Signal::SIGTERM,
            Signal::SIGTSTP,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
        ] {
            assert!(set.contains(signal), "{signal} must be blocked");
        }
    }

    #[test]
    fn forwarding_and_names() {
        assert!(is_forwarded(libc::SIGTERM));
        assert!(is_forwarded(libc::SIGWINCH));
        assert!(is_forwarded(libc::SIGRTMIN() + 2));
        assert!(!is_forwarded(libc::SIGCHLD));
        assert!(!is_forwarded(libc::SIGTTOU));
        assert_eq!(name(libc::SIGHUP), "SIGHUP");
        assert_eq!(name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
    }

    #[test]
    fn no_pid_of_zero_or_one_is_ever_signalled() {
        // Signal 0 only asks whether the target exists: all of these do.
        for pid in [0, 1, -1] {
            assert_eq!(send(Pid::from_raw(pid), 0), Err(Errno::EINVAL), "pid {pid}");
        }
        assert_eq!(send(nix::unistd::getpid(), 0), Ok(()));
    }
}
