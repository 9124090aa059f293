//! Reaping: collect every child that has ended, launch's own and adopted orphans alike.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::exit::Exit;

/// Whether launch still has children after a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    /// Some are still running.
    Remain,
    /// None at all (waitpid said ECHILD): every descendant is gone, since orphans are
    /// re-parented to launch before their parent can be reaped.
    None,
}

/// Reaps until nothing is left to reap, handing each ended child to `ended`.
///
/// SIGCHLD coalesces (ten exits may raise one signal), so one wake-up must drain
/// `waitpid(-1, WNOHANG)` until it says there is nothing more.
pub fn drain(mut ended: impl FnMut(Pid, Exit)) -> Children {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Children::Remain,
            Ok(status) => {
                if let (Some(pid), Some(exit)) = (status.pid(), Exit::from_wait(status)) {
                    ended(pid, exit);
                }
            }
            Err(Errno::EINTR) => continue,
            // ECHILD, or anything else waitpid can say for pid -1: nothing to wait for.
            Err(_) => return Children::None,
        }
    }
}
