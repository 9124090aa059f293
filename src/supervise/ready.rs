//! Readiness checks that launch performs itself: a TCP connection and a file's
//! existence. (A command is a child like any other, reaped by the loop; a notification
//! pipe is a descriptor in the loop.) And the supervisor's side: checking a starting
//! process at each interval until it is ready or its check times out.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, socket, sockopt,
};

use super::Supervisor;
use super::machine::Event;
use crate::config::spec::ReadyCheck;
use crate::init::spawn::{self, Extra};

/// Where a TCP readiness check stands. Nothing here waits: a connection is started
/// non-blocking and looked at again at the next interval.
#[derive(Debug)]
pub(super) enum Probe {
    /// Connected: the process listens.
    Connected,
    /// Refused, unreachable, or the socket could not be made: not yet.
    Failed,
    /// Still connecting (a remote address, or a loaded machine): this socket.
    Pending(OwnedFd),
}

/// Starts a connection to `address` without waiting for it.
pub(super) fn tcp_start(address: &SocketAddr) -> Probe {
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let Ok(fd) = socket(family, SockType::Stream, flags, None) else {
        return Probe::Failed;
    };
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(*address)) {
        Ok(()) => Probe::Connected,
        Err(Errno::EINPROGRESS | Errno::EINTR) => Probe::Pending(fd),
        Err(_) => Probe::Failed,
    }
}

/// Where a connection that was still under way stands now, without waiting.
pub(super) fn tcp_poll(fd: OwnedFd) -> Probe {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => Probe::Pending(fd),
        Ok(_) => match getsockopt(&fd, sockopt::SocketError) {
            Ok(0) => Probe::Connected,
            _ => Probe::Failed,
        },
        Err(_) => Probe::Failed,
    }
}

/// The connections of TCP checks still under way, by process name, with when each
/// was started (one older than the process's own start belongs to an earlier run).
pub(super) type Probes = HashMap<String, (Instant, OwnedFd)>;

/// True when `path` exists.
pub fn file(path: &Path) -> bool {
    path.exists()
}

impl Supervisor {
    /// Checks the readiness of process `i` once: `ReadyPassed` or `ReadyNotYet` for the
    /// checks launch makes itself, `CheckSpawned` for a command (its end, reaped,
    /// tells).
    pub(super) fn check_ready(&mut self, i: usize) -> Event {
        let Some(ready) = &self.procs[i].spec.ready else {
            return Event::ReadyNotYet;
        };
        let passed = match &ready.check {
            ReadyCheck::Tcp(address) => {
                let address = *address;
                self.tcp_ready(i, &address)
            }
            ReadyCheck::File(path) => file(path),
            ReadyCheck::NotifyFd(_) => false,
            ReadyCheck::Cmd(argv) => {
                let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
                let extra = Extra {
                    close_fds: true,
                    // The process's own environment: a copy's check knows which copy
                    // it checks (LAUNCH_INSTANCE), as the process does.
                    env: self.procs[i]
                        .spec
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    ..Extra::default()
                };
                return match spawn::spawn_with(&argv, &self.setup, extra) {
                    Ok(pid) => Event::CheckSpawned { pid },
                    Err(_) => Event::ReadyNotYet,
                };
            }
        };
        if passed {
            Event::ReadyPassed
        } else {
            Event::ReadyNotYet
        }
    }

    /// A TCP check of process `i`: the connection started at an earlier interval, if it
    /// is still under way, else a new one.
    fn tcp_ready(&mut self, i: usize, address: &SocketAddr) -> bool {
        let p = &self.procs[i];
        let earlier = self
            .probes
            .remove(&p.spec.name)
            .filter(|(at, _)| p.started.is_none_or(|started| *at >= started));
        let probe = match earlier {
            Some((at, fd)) => match tcp_poll(fd) {
                Probe::Failed => (Instant::now(), tcp_start(address)),
                probe => (at, probe),
            },
            None => (Instant::now(), tcp_start(address)),
        };
        match probe {
            (_, Probe::Connected) => true,
            (_, Probe::Failed) => false,
            (at, Probe::Pending(fd)) => {
                self.probes.insert(p.spec.name.clone(), (at, fd));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a probe ends up, looking again (as the next intervals would) while it is
    /// under way.
    fn settle(mut probe: Probe) -> Probe {
        for _ in 0..100 {
            match probe {
                Probe::Pending(fd) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    probe = tcp_poll(fd);
                }
                done => return done,
            }
        }
        probe
    }

    #[test]
    fn a_listening_port_connects_and_a_closed_one_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert!(matches!(settle(tcp_start(&open)), Probe::Connected));
        drop(listener);
        assert!(matches!(settle(tcp_start(&open)), Probe::Failed));
    }
}
