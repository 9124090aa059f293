//! Readiness checks that launch performs itself: a TCP connection and a file's
//! existence. (A command is a child like any other, reaped by the loop; a notification
//! pipe is a descriptor in the loop.) And the supervisor's side: checking a starting
//! process at each interval until it is ready or its check times out.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::Supervisor;
use super::machine::Event;
use crate::config::spec::ReadyCheck;
use crate::init::spawn::{self, Extra};

/// The longest a TCP check may hold up the loop: a loopback connection answers at once,
/// a remote one that does not is retried at the next interval.
const CONNECT_LIMIT: Duration = Duration::from_millis(100);

/// True when a TCP connection to `address` succeeds.
pub fn tcp(address: &SocketAddr) -> bool {
    TcpStream::connect_timeout(address, CONNECT_LIMIT).is_ok()
}

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
            ReadyCheck::Tcp(address) => tcp(address),
            ReadyCheck::File(path) => file(path),
            ReadyCheck::NotifyFd(_) => false,
            ReadyCheck::Cmd(argv) => {
                let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
                let extra = Extra {
                    close_fds: true,
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
}
