//! Starting a child that looks as if launch were not there: its own process group,
//! launch's original signal mask and ignored signals, the working directory launch was
//! started in, the terminal's foreground when stdin is a terminal, and none of launch's
//! own descriptors (everything launch opens is close-on-exec).

use std::ffi::OsString;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{Pid, getpid, tcsetpgrp};

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

/// Starts `argv` (the program is looked up on PATH) in a new process group.
pub fn spawn(argv: &[OsString], setup: &ChildSetup) -> Result<Pid, SpawnError> {
    let (program, args) = argv.split_first().ok_or(SpawnError::Empty)?;
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    if let Some(cwd) = &setup.cwd {
        command.current_dir(cwd);
    }
    let mask = setup.inherited.mask;
    let pipe_ignored = setup.inherited.pipe_ignored;
    let take_terminal = setup.take_terminal;
    // SAFETY: the closure runs between fork and exec in a single-threaded launch and
    // calls only async-signal-safe functions (sigprocmask, tcsetpgrp, signal); it
    // allocates nothing and captures only plain copies.
    unsafe {
        command.pre_exec(move || restore_in_child(&mask, pipe_ignored, take_terminal));
    }
    match command.spawn() {
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
