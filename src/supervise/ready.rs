//! Readiness checks that launch performs itself: a TCP connection and a file's
//! existence. (A command is a child like any other, reaped by the loop; a notification
//! pipe is a descriptor in the loop.) And the supervisor's side: checking a starting
//! process at each interval until it is ready or its check times out.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::Supervisor;
use super::stop::signal_process;
use super::table::State;
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
    pub(super) fn check_ready(&mut self, i: usize, pid: Pid, now: Instant) {
        let Some(ready) = self.procs[i].spec.ready.clone() else {
            return;
        };
        let Some(r) = self.procs[i].readiness.clone() else {
            return;
        };
        if now >= r.deadline {
            let message = format!(
                "{} is not ready after {}: killing it (a failure)",
                self.procs[i].spec.name,
                crate::duration::format(ready.timeout)
            );
            self.log(message);
            self.procs[i].readiness = None;
            signal_process(pid, libc::SIGKILL);
            return;
        }
        if r.check_pid.is_some() || now < r.next_try {
            return;
        }
        let next_try = now + ready.interval;
        let ok = match &ready.check {
            ReadyCheck::Tcp(address) => tcp(address),
            ReadyCheck::File(path) => file(path),
            ReadyCheck::NotifyFd(_) => false,
            ReadyCheck::Cmd(argv) => {
                let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
                let check_pid = spawn::spawn_with(
                    &argv,
                    &self.setup,
                    Extra {
                        close_fds: true,
                        // The process's own environment: a copy's check knows which
                        // copy it checks (LAUNCH_INSTANCE), as the process does.
                        env: self.procs[i]
                            .spec
                            .env
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        ..Extra::default()
                    },
                )
                .ok();
                if let Some(r) = self.procs[i].readiness.as_mut() {
                    r.check_pid = check_pid;
                    r.next_try = next_try;
                }
                return;
            }
        };
        if ok {
            self.mark_ready(i);
        } else if let Some(r) = self.procs[i].readiness.as_mut() {
            r.next_try = next_try;
        }
    }

    pub(super) fn mark_ready(&mut self, i: usize) {
        let p = &mut self.procs[i];
        if matches!(p.state, State::Running { .. }) && !p.ready {
            p.ready = true;
            p.readiness = None;
            let message = format!("{} is ready", p.spec.name);
            self.log(message);
        }
    }
}
