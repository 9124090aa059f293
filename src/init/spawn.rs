//! Starting a child that looks as if launch were not there: its own process group,
//! launch's original signal mask and ignored signals, the working directory launch was
//! started in, the terminal's foreground when stdin is a terminal, and none of launch's
//! own descriptors (everything launch opens is close-on-exec).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::unistd::Pid;

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
    /// The program names a path (it contains '/') and nothing is there: PATH played no
    /// part, so the message does not mention it.
    #[error(
        "{program}: no such file (check the path; for a script, its #! interpreter must exist too)"
    )]
    NoSuchFile {
        /// The program as written.
        program: String,
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
            SpawnError::NotFound { .. } | SpawnError::NoSuchFile { .. } | SpawnError::Empty => {
                code::NOT_FOUND
            }
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
    /// Replaces stdin.
    pub stdin: Option<OwnedFd>,
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
///
/// The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as posix_spawn does: it
/// borrows launch's memory until it execs, so nothing is copied and launch's pages take
/// no copy-on-write faults (the standard library forks in a static binary, and that was
/// most of launch's start-up overhead over tini's). Everything the child needs is
/// prepared here, before the clone; the child only makes system calls.
pub fn spawn_with(argv: &[OsString], setup: &ChildSetup, extra: Extra) -> Result<Pid, SpawnError> {
    let (program, _) = argv.split_first().ok_or(SpawnError::Empty)?;
    let plan = Plan::new(argv, setup, &extra)?;
    // On this thread's own stack: no heap that would stay allocated after the spawn.
    let mut stack = [0u8; CHILD_STACK];
    // SAFETY: the stack pointer is the (16-aligned) top of a live buffer that outlives
    // the child's use of it: with CLONE_VFORK this thread sleeps until the child has
    // exec'd or exited. `plan` is only read by the child, and stays alive and unmoved
    // for the same reason. SIGCHLD makes it an ordinary child for waitpid.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = top.sub(top as usize % 16);
        libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&plan as *const Plan).cast_mut().cast(),
        )
    };
    drop(extra);
    let program = program.to_string_lossy().into_owned();
    if pid < 0 {
        return Err(SpawnError::Other {
            program,
            source: io::Error::last_os_error(),
        });
    }
    let failed = plan.failure.load(Ordering::Acquire);
    if failed == 0 {
        return Ok(Pid::from_raw(pid));
    }
    // The child exited without exec'ing: reap it here, so the supervisor never sees a
    // pid it did not start.
    let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    let errno = failed & 0xffff;
    let source = io::Error::from_raw_os_error(errno);
    Err(match (failed >> 16, errno) {
        (STAGE_EXEC, libc::ENOENT | libc::ENOTDIR) if program.contains('/') => {
            SpawnError::NoSuchFile { program }
        }
        (STAGE_EXEC, libc::ENOENT | libc::ENOTDIR) => SpawnError::NotFound {
            program,
            path: plan.path_text,
        },
        (STAGE_EXEC, libc::EACCES | libc::EISDIR) => SpawnError::NotExecutable { program },
        (STAGE_SETUP, _) => SpawnError::Other {
            program,
            source: io::Error::new(
                source.kind(),
                format!(
                    "cannot set the process up before it runs (its process group, user and groups, output): {source}"
                ),
            ),
        },
        (STAGE_CHDIR, _) => SpawnError::Other {
            program,
            source: io::Error::new(
                source.kind(),
                format!(
                    "cannot enter the working directory {}: {source}",
                    plan.cwd_text
                ),
            ),
        },
        _ => SpawnError::Other { program, source },
    })
}

/// The child's stack: it only makes system calls from one shallow frame.
const CHILD_STACK: usize = 16 * 1024;

/// Where the child failed (the high half of [`Plan::failure`]; the low half is errno).
const STAGE_SETUP: i32 = 1;
const STAGE_CHDIR: i32 = 2;
const STAGE_EXEC: i32 = 3;

/// Everything the child does, prepared by the parent: C strings and plain numbers.
struct Plan {
    /// Full paths to try, in PATH order (one when the program names a path).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    /// Per candidate, `/bin/sh CANDIDATE ARGS...`: execvp's way with a script that has
    /// no `#!` line (ENOEXEC).
    script_argv: Vec<Vec<*const libc::c_char>>,
    envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    /// `sigset_t` of the mask to restore.
    mask: libc::sigset_t,
    take_terminal: bool,
    user: Option<(libc::uid_t, libc::gid_t)>,
    groups: Vec<libc::gid_t>,
    umask: Option<libc::mode_t>,
    stdin: Option<i32>,
    stdout: Option<i32>,
    stderr: Option<i32>,
    notify: Option<(i32, i32)>,
    close_fds: bool,
    /// Set by the child when it gives up: stage << 16 | errno. Zero: it exec'd.
    failure: AtomicI32,
    /// For messages only.
    path_text: String,
    cwd_text: String,
}

impl Plan {
    fn new(argv: &[OsString], setup: &ChildSetup, extra: &Extra) -> Result<Plan, SpawnError> {
        let program = &argv[0];
        let nul = |what: &OsString| {
            CString::new(what.as_bytes()).map_err(|_| SpawnError::Other {
                program: program.to_string_lossy().into_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"),
            })
        };
        let argv: Vec<CString> = argv.iter().map(nul).collect::<Result<_, _>>()?;
        let env = environment(extra);
        let envp: Vec<CString> = env
            .iter()
            .filter_map(|(k, v)| {
                let mut pair = k.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(v.as_bytes());
                CString::new(pair).ok()
            })
            .collect();
        // The program is looked up on the PATH the child will have, as execvp would.
        let path_text = env
            .iter()
            .find(|(k, _)| k.as_bytes() == b"PATH")
            .map_or_else(
                || DEFAULT_PATH.to_string(),
                |(_, v)| v.to_string_lossy().into_owned(),
            );
        let candidates = candidates(program, &argv[0], &path_text);
        let cwd_path = extra.cwd.as_ref().or(setup.cwd.as_ref());
        let cwd = cwd_path
            .map(|c| CString::new(c.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| SpawnError::Other {
                program: program.to_string_lossy().into_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "cwd contains a NUL byte"),
            })?;
        let mut plan = Plan {
            candidates,
            argv_ptrs: Vec::new(),
            script_argv: Vec::new(),
            argv,
            envp_ptrs: Vec::new(),
            envp,
            cwd,
            mask: *setup.inherited.mask.as_ref(),
            take_terminal: setup.take_terminal,
            user: extra.user.as_ref().map(|u| (u.uid, u.gid)),
            groups: extra
                .user
                .iter()
                .flat_map(|u| u.groups.iter().copied())
                .collect(),
            umask: extra.umask.map(|m| m as libc::mode_t),
            stdin: extra.stdin.as_ref().map(|fd| fd.as_raw_fd()),
            stdout: extra.stdout.as_ref().map(|fd| fd.as_raw_fd()),
            stderr: extra.stderr.as_ref().map(|fd| fd.as_raw_fd()),
            notify: extra
                .notify
                .as_ref()
                .map(|(fd, target)| (fd.as_raw_fd(), *target)),
            close_fds: extra.close_fds,
            failure: AtomicI32::new(0),
            path_text,
            cwd_text: cwd_path
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
        };
        plan.argv_ptrs = plan.argv.iter().map(|a| a.as_ptr()).collect();
        plan.argv_ptrs.push(std::ptr::null());
        plan.script_argv = plan
            .candidates
            .iter()
            .map(|c| {
                let mut v = vec![SHELL.as_ptr(), c.as_ptr()];
                v.extend_from_slice(&plan.argv_ptrs[1..]);
                v
            })
            .collect();
        plan.envp_ptrs = plan.envp.iter().map(|e| e.as_ptr()).collect();
        plan.envp_ptrs.push(std::ptr::null());
        Ok(plan)
    }
}

/// launch's environment, with the process's own variables on top.
fn environment(extra: &Extra) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            !extra
                .env
                .iter()
                .any(|(name, _)| k.as_bytes() == name.as_bytes())
        })
        .collect();
    env.extend(extra.env.iter().map(|(k, v)| (k.into(), v.into())));
    env
}

/// Where `program` may be, in order: itself when it names a path, else each directory
/// of `path_text` (an empty one is the current directory), as execvp would look.
fn candidates(program: &OsString, argv0: &CString, path_text: &str) -> Vec<CString> {
    if program.as_bytes().contains(&b'/') {
        return vec![argv0.clone()];
    }
    path_text
        .split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .filter_map(|dir| {
            let mut full = dir.as_bytes().to_vec();
            full.push(b'/');
            full.extend_from_slice(program.as_bytes());
            CString::new(full).ok()
        })
        .collect()
}

/// The shell that runs a script without a `#!` line.
const SHELL: &std::ffi::CStr = c"/bin/sh";

/// PATH when the environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The child, between clone and exec. It shares launch's memory, so it only reads the
/// plan and makes raw system calls (no allocation, no locks, no glibc wrapper that
/// keeps state, such as setuid's, which would signal launch's threads); it reports a
/// failure through `plan.failure` and exits 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Plan`, alive and unchanged until this child execs
    // or exits (CLONE_VFORK).
    let plan = unsafe { &*(arg as *const Plan) };
    // SAFETY: both run in this child only, on the plan above; see each.
    let stage = match unsafe { prepare_child(plan) } {
        Ok(()) => unsafe { exec_child(plan) },
        Err(stage) => stage,
    };
    // SAFETY: errno is this thread's; exit_group ends this child only.
    unsafe {
        let errno = *libc::__errno_location();
        plan.failure
            .store(stage << 16 | (errno & 0xffff).max(1), Ordering::Release);
        libc::syscall(libc::SYS_exit_group, 127);
    }
    127
}

/// Returns whether a raw system call succeeded (errno then says why not).
fn ok(rc: libc::c_long) -> bool {
    rc >= 0
}

/// The child's own process state, in the order that matters: its group (and the
/// terminal), the user, umask, descriptors, directory, and the signal mask last. On
/// failure, the stage it failed in (errno says why).
///
/// # Safety
/// Only in the child of [`child_main`]: raw system calls on its own state, with pointers
/// into `plan`, which outlives them.
unsafe fn prepare_child(plan: &Plan) -> Result<(), i32> {
    // SAFETY: see the function's contract; each call changes this process only.
    unsafe {
        if !ok(libc::syscall(libc::SYS_setpgid, 0, 0)) {
            return Err(STAGE_SETUP);
        }
        if plan.take_terminal {
            // A background group that calls tcsetpgrp gets SIGTTOU unless it blocks it
            // (it is blocked now: the mask is still launch's, everything blocked). Not
            // our controlling terminal (launch under `script`, say): nothing to hand on.
            let me: libc::pid_t = libc::syscall(libc::SYS_getpid) as libc::pid_t;
            libc::syscall(
                libc::SYS_ioctl,
                0,
                libc::TIOCSPGRP,
                &me as *const libc::pid_t,
            );
        }
        if let Some((uid, gid)) = plan.user {
            if !ok(libc::syscall(
                libc::SYS_setgroups,
                plan.groups.len(),
                plan.groups.as_ptr(),
            )) || !ok(libc::syscall(libc::SYS_setgid, gid))
                || !ok(libc::syscall(libc::SYS_setuid, uid))
            {
                return Err(STAGE_SETUP);
            }
        }
        if let Some(mask) = plan.umask {
            libc::syscall(libc::SYS_umask, mask);
        }
        let fds = [(plan.stdin, 0), (plan.stdout, 1), (plan.stderr, 2)];
        let notify = plan.notify.map(|(fd, target)| (Some(fd), target));
        for (fd, target) in fds.into_iter().chain(notify) {
            // dup onto itself (launch started with that descriptor closed) would keep
            // close-on-exec: clear it instead.
            let rc = match fd {
                None => 0,
                Some(fd) if fd == target => libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFD, 0),
                Some(fd) => libc::syscall(libc::SYS_dup3, fd, target, 0),
            };
            if !ok(rc) {
                return Err(STAGE_SETUP);
            }
        }
        if plan.close_fds {
            mark_cloexec_from(3, plan.notify.map_or(-1, |(_, target)| target));
        }
        if let Some(cwd) = &plan.cwd
            && !ok(libc::syscall(libc::SYS_chdir, cwd.as_ptr()))
        {
            return Err(STAGE_CHDIR);
        }
        // The mask last: from here a signal acts on the child as it would on CMD.
        if !ok(libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &plan.mask as *const libc::sigset_t,
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        )) {
            return Err(STAGE_SETUP);
        }
    }
    Ok(())
}

/// Execs the command by execvp's rules: each PATH entry in turn; a permission error is
/// remembered and wins over a later "not found"; any other error stops the search; a
/// file without a shebang (ENOEXEC) runs under the shell. Returns only when nothing
/// could be executed, with the stage (errno says why).
///
/// # Safety
/// Only in the child of [`child_main`], after [`prepare_child`]: the pointers are
/// `plan`'s, NUL-terminated arrays that outlive the calls.
unsafe fn exec_child(plan: &Plan) -> i32 {
    let mut denied = false;
    // SAFETY: see the function's contract; execve returns only on failure.
    unsafe {
        for (candidate, script_argv) in plan.candidates.iter().zip(&plan.script_argv) {
            libc::syscall(
                libc::SYS_execve,
                candidate.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
            if *libc::__errno_location() == libc::ENOEXEC {
                libc::syscall(
                    libc::SYS_execve,
                    SHELL.as_ptr(),
                    script_argv.as_ptr(),
                    plan.envp_ptrs.as_ptr(),
                );
                *libc::__errno_location() = libc::ENOEXEC;
            }
            match *libc::__errno_location() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return STAGE_EXEC,
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
    }
    STAGE_EXEC
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
