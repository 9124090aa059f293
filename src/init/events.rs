//! The one event loop: an epoll set that holds the signalfd (and, as the supervisor
//! grows, child output pipes and the control socket), with the nearest monotonic
//! deadline as its only timeout. With no deadline, launch blocks until something
//! happens: an idle launch makes no wake-ups at all.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::signals::{Received, SignalError, Signals};

/// Errors of the loop itself.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// epoll could not be created, fed or waited on.
    #[error("event loop: {what}: {errno}")]
    Epoll {
        /// The call that failed.
        what: &'static str,
        /// Its error.
        errno: Errno,
    },
    /// Reading signals failed.
    #[error(transparent)]
    Signal(#[from] SignalError),
}

/// The token of the signalfd; other sources get theirs from [`EventLoop::watch`].
const SIGNALS: u64 = 0;

/// Something that woke the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A signal arrived.
    Signal(Received),
    /// The deadline passed.
    Deadline,
    /// A watched descriptor is readable (or writable, or hung up); the token it was
    /// watched with.
    Readable(u64),
}

/// The loop: epoll plus the signal inbox.
#[derive(Debug)]
pub struct EventLoop {
    epoll: Epoll,
    signals: Signals,
}

impl EventLoop {
    /// Creates the loop around the signal inbox.
    pub fn new(signals: Signals) -> Result<EventLoop, EventError> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|errno| EventError::Epoll {
                what: "epoll_create1",
                errno,
            })?;
        epoll
            .add(
                signals.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, SIGNALS),
            )
            .map_err(|errno| EventError::Epoll {
                what: "watch the signalfd",
                errno,
            })?;
        Ok(EventLoop { epoll, signals })
    }

    /// The signal inbox (for what children inherit).
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Watches `fd` for input under `token` (which must not be 0, the signals' token).
    pub fn watch(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), EventError> {
        debug_assert_ne!(token, SIGNALS);
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|errno| EventError::Epoll {
                what: "watch a descriptor",
                errno,
            })
    }

    /// Watches `fd` for room to write under `token` (which must not be 0); it wakes the
    /// loop as [`Wake::Readable`] with that token.
    pub fn watch_writable(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), EventError> {
        debug_assert_ne!(token, SIGNALS);
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLOUT, token))
            .map_err(|errno| EventError::Epoll {
                what: "watch a descriptor for room",
                errno,
            })
    }

    /// Stops watching `fd`.
    pub fn unwatch(&self, fd: BorrowedFd<'_>) -> Result<(), EventError> {
        self.epoll.delete(fd).map_err(|errno| EventError::Epoll {
            what: "unwatch a descriptor",
            errno,
        })
    }

    /// Sleeps until something happens or `deadline` passes, then appends every wake-up
    /// to `out`: all pending signals (signals coalesce, so the caller must treat one
    /// SIGCHLD as "some children changed"), readable sources, and `Deadline` if due.
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        out: &mut Vec<Wake>,
    ) -> Result<(), EventError> {
        let mut ready = [EpollEvent::empty(); 16];
        let n = loop {
            let timeout = match deadline {
                None => EpollTimeout::NONE,
                Some(at) => timeout_until(at),
            };
            match self.epoll.wait(&mut ready, timeout) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(EventError::Epoll {
                        what: "epoll_wait",
                        errno,
                    });
                }
            }
        };
        for event in &ready[..n] {
            if event.data() == SIGNALS {
                while let Some(received) = self.signals.next()? {
                    out.push(Wake::Signal(received));
                }
            } else {
                out.push(Wake::Readable(event.data()));
            }
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            out.push(Wake::Deadline);
        }
        Ok(())
    }
}

/// Milliseconds until `at`, rounded up so that the loop never wakes a hair early and
/// spins; capped at epoll's maximum (the loop then simply waits again).
fn timeout_until(at: Instant) -> EpollTimeout {
    let left = at.saturating_duration_since(Instant::now());
    let millis = left.as_nanos().div_ceil(1_000_000);
    EpollTimeout::try_from(millis).unwrap_or(EpollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_round_up_and_cap() {
        let now = Instant::now();
        assert_eq!(timeout_until(now), EpollTimeout::ZERO);
        let t: i32 = timeout_until(now + Duration::from_micros(1500)).into();
        assert!((1..=2).contains(&t), "{t}");
        let far: i32 = timeout_until(now + Duration::from_secs(10_000_000)).into();
        assert_eq!(far, i32::MAX);
    }
}
