//! Starting a child that looks as if launch were not there: its own process group,
//! launch's original signal mask and ignored signals, the working directory launch was
//! started in, the terminal's foreground when stdin is a terminal, and none of launch's
//! own descriptors (everything launch opens is close-on-exec).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{Gid, Pid, Uid, getpid, tcsetpgrp};

use super::signals::Inherited;
use crate::exit::code;

/// A child that could not be started. The message is what the shell would say.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No such program (on PATH, or at the path given).
    #[error("{program}: not found (is it installed and on PATH={path}?)")]
    NotFound {
        /// The program as written.
        program: String,
        /// The PATH it was looked up in.
        path: String,
    },
    /// It exists but cannot be executed.
    #[error("{program}: permission denied (is it executable, and not a directory?)")]
    NotExecutable {
        /// The program as written.
        program: String,
    },
    /// Any other failure of fork or exec.
    #[error("{program}: cannot execute: {source}")]
    Other {
        /// The program as written.
        program: String,
        /// The system's reason.
        source: io::Error,
    },
    /// An empty command.
    #[error("the command is empty")]
    Empty,
}

impl SpawnError {
    /// The exit code a shell would give for this failure: 127 not found, 126 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } | SpawnError::Empty => code::NOT_FOUND,
            _ => code::NOT_EXECUTABLE,
        }
    }
}

/// How children are started; captured once, used for every spawn.
#[derive(Debug, Clone)]
pub struct ChildSetup {
    /// Signal state to restore.
    pub inherited: Inherited,
    /// The directory launch was started in (launch itself moves to `/`).
    pub cwd: Option<PathBuf>,
    /// Hand the terminal on stdin to the child's process group.
    pub take_terminal: bool,
}

/// What one child needs beyond the common [`ChildSetup`]. The default is the plain-init
/// child: launch's environment, stdio and descriptors.
#[derive(Debug, Default)]
pub struct Extra {
    /// Variables set on top of launch's environment.
    pub env: Vec<(String, String)>,
    /// Working directory (else the one launch was started in).
    pub cwd: Option<PathBuf>,
    /// Switch to this user (setgroups, setgid, setuid, in that order).
    pub user: Option<Credentials>,
    /// umask.
    pub umask: Option<u32>,
    /// Replaces stdout.
    pub stdout: Option<OwnedFd>,
    /// Replaces stderr.
    pub stderr: Option<OwnedFd>,
    /// A readiness pipe's write end, to appear in the child as this descriptor number.
    pub notify: Option<(OwnedFd, i32)>,
    /// Mark every inherited descriptor from 3 up close-on-exec (but the readiness one).
    pub close_fds: bool,
}

/// Who a child runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Starts `argv` (the program is looked up on PATH) in a new process group.
pub fn spawn(argv: &[OsString], setup: &ChildSetup) -> Result<Pid, SpawnError> {
    spawn_with(argv, setup, Extra::default())
}

/// Starts `argv` in a new process group with the per-child settings of `extra`.
pub fn spawn_with(argv: &[OsString], setup: &ChildSetup, extra: Extra) -> Result<Pid, SpawnError> {
    let (program, args) = argv.split_first().ok_or(SpawnError::Empty)?;
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    command.envs(extra.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = extra.cwd.as_ref().or(setup.cwd.as_ref()) {
        command.current_dir(cwd);
    }
    if let Some(fd) = extra.stdout {
        command.stdout(fd);
    }
    if let Some(fd) = extra.stderr {
        command.stderr(fd);
    }
    let mask = setup.inherited.mask;
    let pipe_ignored = setup.inherited.pipe_ignored;
    let take_terminal = setup.take_terminal;
    let groups: Vec<Gid> = extra
        .user
        .iter()
        .flat_map(|u| u.groups.iter().map(|&g| Gid::from_raw(g)))
        .collect();
    let ids = extra
        .user
        .as_ref()
        .map(|u| (Uid::from_raw(u.uid), Gid::from_raw(u.gid)));
    let umask = extra.umask;
    let close_fds = extra.close_fds;
    let notify = extra
        .notify
        .as_ref()
        .map(|(fd, target)| (fd.as_raw_fd(), *target));
    // SAFETY: the closure runs between fork and exec in a single-threaded launch and
    // calls only async-signal-safe functions (sigprocmask, tcsetpgrp, setgroups, setgid,
    // setuid, umask, dup2, close_range, signal); it allocates nothing (the group list
    // was built before the fork) and captures only plain copies.
    unsafe {
        command.pre_exec(move || {
            restore_in_child(&mask, pipe_ignored, take_terminal)?;
            if let Some((uid, gid)) = ids {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
            }
            if let Some(mask) = umask {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
            }
            if let Some((fd, target)) = notify {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                let rc = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if close_fds {
                // Close-on-exec rather than close: std's own error pipe must stay open
                // until the exec, so that a failed exec is still reported.
                let keep = notify.map_or(-1, |(_, target)| target);
                mark_cloexec_from(3, keep);
            }
            Ok(())
        });
    }
    let result = command.spawn();
    drop(extra.notify);
    match result {
        // The std Child handle is dropped on purpose: launch reaps with waitpid(-1).
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) => {
            let program = program.to_string_lossy().into_owned();
            Err(match e.kind() {
                io::ErrorKind::NotFound => SpawnError::NotFound {
                    program,
                    path: std::env::var("PATH").unwrap_or_default(),
                },
                io::ErrorKind::PermissionDenied => SpawnError::NotExecutable { program },
                _ => SpawnError::Other { program, source: e },
            })
        }
    }
}

/// Marks every descriptor from `first` up close-on-exec, except `keep`.
fn mark_cloexec_from(first: u32, keep: i32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    let ranges: [(u32, u32); 2] = if keep >= first as i32 {
        [(first, keep as u32 - 1), (keep as u32 + 1, u32::MAX)]
    } else {
        [(first, u32::MAX), (1, 0)]
    };
    for (lo, hi) in ranges {
        if lo <= hi {
            // SAFETY: close_range only changes flags of this process's descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, lo, hi, CLOSE_RANGE_CLOEXEC) };
        }
    }
}

/// Runs in the child, after the standard library has put it in its process group. The
/// mask is whatever std left (today: launch's, with everything blocked), so it is set
/// outright rather than trusted.
fn restore_in_child(mask: &SigSet, pipe_ignored: bool, take_terminal: bool) -> io::Result<()> {
    if take_terminal {
        // A background group that calls tcsetpgrp gets SIGTTOU unless it blocks it.
        let ttou = SigSet::from(Signal::SIGTTOU);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None)?;
        // SAFETY: fd 0 is open (take_terminal was set because it is a terminal) and
        // stays open for this call.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        // Not our controlling terminal (launch under `script`, say): nothing to hand on.
        let _ = tcsetpgrp(stdin, getpid());
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)?;
    if pipe_ignored {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }?;
    }
    Ok(())
}
