//! Running a template's `check` command with a time limit and a bounded output.
//!
//! A check is the image author's command, but what it checks is the operator's, and a
//! check that hangs (waiting on the network, reading a FIFO) must not hang `launch
//! check`, `launch reconfigure` or a reload: after [`CHECK_TIMEOUT`] its whole process
//! group is killed and the check counts as failed.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How long one check may run before it is killed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a check's output is kept for the message (the rest is read and dropped).
const MAX_OUTPUT: usize = 64 << 10;

/// How a check ended.
#[derive(Debug)]
pub struct Ran {
    /// Its exit status; `None` when it was killed for taking too long.
    pub status: Option<ExitStatus>,
    /// What it printed on stdout and stderr, interleaved, its first 64 KiB.
    pub output: Vec<u8>,
}

/// The memory limit the configuration worker had before it lowered its own, which the
/// checks it runs get back (a check is the image's program, not the pillar's input).
static CHILD_LIMIT: OnceLock<libc::rlimit> = OnceLock::new();

/// Records the address-space limit that check commands get instead of the caller's.
pub fn restore_limit_in_checks(limit: libc::rlimit) {
    let _ = CHILD_LIMIT.set(limit);
}

/// Runs `script` with `/bin/sh -c`, `$STAGED` set to `staged`, stdin empty, in a process
/// group of its own, for at most `limit`.
pub fn run(script: &str, staged: &Path, limit: Duration) -> io::Result<Ran> {
    let deadline = Instant::now() + limit;
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", script])
        .env("STAGED", staged)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write.try_clone()?))
        .stderr(Stdio::from(write))
        .process_group(0);
    if let Some(&original) = CHILD_LIMIT.get() {
        // SAFETY: runs between fork and exec and only makes the setrlimit system call
        // with a value copied before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_AS, &original) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn()?;
    // Our copies of the write end must go, or the output would never end.
    drop(command);
    let output = read_until(read, deadline);
    let pid = child.id() as i32;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ran {
                status: Some(status),
                output,
            });
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) with plain integers; the group is the check's own.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Ran {
                status: None,
                output,
            });
        }
        // The output has ended, the shell has not yet: it exits in a moment (or, if it
        // closed its output and runs on, at the deadline).
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Everything readable from `fd` until its end or `deadline`, the first [`MAX_OUTPUT`]
/// bytes kept.
fn read_until(fd: OwnedFd, deadline: Instant) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return kept;
        }
        let millis = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return kept,
            Ok(_) => {}
        }
        match file.read(&mut buf) {
            Ok(0) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_hangs_is_killed_with_its_group() {
        let started = Instant::now();
        let ran = run(
            "echo before; sleep 30 & sleep 30",
            Path::new("/dev/null"),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(ran.status.is_none());
        assert_eq!(ran.output, b"before\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_and_status_come_back_bounded() {
        let ran = run(
            "head -c 200000 /dev/zero; echo \"$STAGED\" >&2; exit 3",
            Path::new("/some/file"),
            CHECK_TIMEOUT,
        )
        .unwrap();
        assert_eq!(ran.status.and_then(|s| s.code()), Some(3));
        assert_eq!(ran.output.len(), MAX_OUTPUT);
    }
}
