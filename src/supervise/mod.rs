//! Supervision: launch as PID 1 (or as a child subreaper when it is not PID 1).
//!
//! One loop ([`events`]) waits on signals and deadlines together; [`spawn`] starts clean
//! children; [`reap`] collects every ended child; [`cleanup`] ends what is left. The
//! plain-init mode, `launch -- CMD`, is this supervisor with a single process whose end
//! ends launch, and with every signal forwarded to it.

pub mod cleanup;
pub mod events;
pub mod reap;
pub mod signals;
pub mod spawn;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use nix::unistd::{Pid, getpgrp, getpid, isatty, tcgetpgrp, tcsetpgrp};

use crate::exit::{Exit, Remap, code};
use cleanup::Scope;
use events::{EventError, EventLoop, Wake};
use reap::Children;
use signals::{Signals, send};
use spawn::ChildSetup;

/// How long launch waits for SIGKILLed processes to be reaped before it gives up on
/// them (only a process stuck in the kernel takes that long).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// What `launch -- CMD` was asked to do.
#[derive(Debug, Clone)]
pub struct PlainInit {
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// Forward signals to the command's whole process group, not just to it.
    pub forward_to_group: bool,
    /// How long the processes left when the command ends get between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Exit code rewrites.
    pub remap: Remap,
    /// Say what launch does, on stderr.
    pub verbose: bool,
}

/// Errors that stop launch before the command runs.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The loop or the signals could not be set up.
    #[error(transparent)]
    Events(#[from] EventError),
    /// The command could not be started.
    #[error(transparent)]
    Spawn(#[from] spawn::SpawnError),
}

impl StartError {
    /// launch's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Events(_) => code::INTERNAL,
            StartError::Spawn(e) => e.exit_code(),
        }
    }
}

/// Runs the plain-init mode to its end and returns launch's exit code.
pub fn plain_init(options: PlainInit) -> i32 {
    match Supervisor::start(&options) {
        Ok(mut supervisor) => supervisor.run(&options),
        Err(e) => {
            eprintln!("launch: {e}");
            e.exit_code()
        }
    }
}

/// Where the supervisor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The main process runs; signals are forwarded to it.
    Running,
    /// The main process has ended; what is left got SIGTERM and has until the deadline.
    Draining { until: Instant },
    /// What was left got SIGKILL; launch waits for the reaping, at most until the deadline.
    Killing { until: Instant },
}

struct Supervisor {
    events: EventLoop,
    scope: Scope,
    main: Pid,
    main_exit: Option<Exit>,
    /// Whether the terminal was handed to the main process (and is to be taken back).
    terminal: bool,
    phase: Phase,
    children: Children,
}

impl Supervisor {
    fn start(options: &PlainInit) -> Result<Supervisor, StartError> {
        let signals = Signals::install().map_err(EventError::from)?;
        let scope = become_reaper(options.verbose);
        let events = EventLoop::new(signals)?;
        // Children start where launch was started; launch itself moves to `/` so that it
        // never keeps a mounted volume busy.
        let cwd = std::env::current_dir().ok();
        let _ = nix::unistd::chdir("/");
        let terminal = owns_terminal();
        let setup = ChildSetup {
            inherited: events.signals().inherited().clone(),
            cwd,
            take_terminal: terminal,
        };
        let main = spawn::spawn(&options.command, &setup)?;
        if options.verbose {
            eprintln!(
                "launch: started {} as pid {main}",
                options.command[0].to_string_lossy()
            );
        }
        Ok(Supervisor {
            events,
            scope: match scope {
                Scope::Descendants { .. } => Scope::Descendants {
                    fallback_group: Some(main),
                },
                other => other,
            },
            main,
            main_exit: None,
            terminal,
            phase: Phase::Running,
            children: Children::Remain,
        })
    }

    fn run(&mut self, options: &PlainInit) -> i32 {
        let mut wakes = Vec::new();
        loop {
            wakes.clear();
            let deadline = match self.phase {
                Phase::Running => None,
                Phase::Draining { until } | Phase::Killing { until } => Some(until),
            };
            if let Err(e) = self.events.wait(deadline, &mut wakes) {
                // Without its loop launch can do nothing safely: end everything now
                // rather than leave the command running unsupervised.
                eprintln!("launch: {e}; killing all processes");
                cleanup::signal_all(self.scope, libc::SIGKILL);
                return code::INTERNAL;
            }
            for &wake in &wakes {
                match wake {
                    Wake::Signal(received) if received.signo == libc::SIGCHLD => self.reap(options),
                    Wake::Signal(received) => self.on_signal(received.signo, options),
                    Wake::Deadline => self.on_deadline(options),
                    Wake::Readable(_) => {}
                }
            }
            if let (Some(exit), Children::None) = (self.main_exit, self.children) {
                return options.remap.apply(exit.code());
            }
            if matches!(self.phase, Phase::Killing { until } if Instant::now() >= until) {
                eprintln!("launch: some processes did not die of SIGKILL; exiting without them");
                return options
                    .remap
                    .apply(self.main_exit.map_or(code::INTERNAL, Exit::code));
            }
        }
    }

    fn reap(&mut self, options: &PlainInit) {
        let main = self.main;
        let mut main_ended = None;
        self.children = reap::drain(|pid, exit| {
            if pid == main {
                main_ended = Some(exit);
            }
        });
        if let Some(exit) = main_ended {
            self.main_exit = Some(exit);
            if options.verbose {
                eprintln!(
                    "launch: {} ended: {exit}",
                    options.command[0].to_string_lossy()
                );
            }
            self.take_terminal_back();
            if self.children == Children::Remain {
                self.terminate_rest(options.grace);
            }
        }
    }

    fn on_signal(&mut self, signo: i32, options: &PlainInit) {
        match self.phase {
            Phase::Running if signals::is_forwarded(signo) => {
                let target = if options.forward_to_group {
                    Pid::from_raw(-self.main.as_raw())
                } else {
                    self.main
                };
                if options.verbose {
                    eprintln!("launch: forwarding {} to {target}", signals::name(signo));
                }
                let _ = send(target, signo);
            }
            // Asked again to stop while waiting for stragglers: stop waiting.
            Phase::Draining { .. } if signo == libc::SIGTERM || signo == libc::SIGINT => {
                eprintln!(
                    "launch: {} during shutdown: killing what is left now",
                    signals::name(signo)
                );
                self.kill_rest();
            }
            _ => {}
        }
    }

    fn on_deadline(&mut self, options: &PlainInit) {
        if let Phase::Draining { .. } = self.phase {
            eprintln!(
                "launch: processes still running {} after SIGTERM; sending SIGKILL",
                crate::duration::format(options.grace)
            );
            self.kill_rest();
        }
    }

    fn terminate_rest(&mut self, grace: Duration) {
        cleanup::signal_all(self.scope, libc::SIGTERM);
        self.phase = Phase::Draining {
            until: Instant::now() + grace,
        };
    }

    fn kill_rest(&mut self) {
        cleanup::signal_all(self.scope, libc::SIGKILL);
        self.phase = Phase::Killing {
            until: Instant::now() + KILL_WAIT,
        };
    }

    fn take_terminal_back(&mut self) {
        if std::mem::take(&mut self.terminal) {
            // SAFETY: fd 0 was a terminal at start and launch never closes it.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            // SIGTTOU is blocked in launch, so this cannot stop it.
            let _ = tcsetpgrp(stdin, getpgrp());
        }
    }
}

/// PID 1 reaps by nature; anywhere else launch asks to inherit its orphans.
fn become_reaper(verbose: bool) -> Scope {
    if getpid().as_raw() == 1 {
        return Scope::Namespace;
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!(
            "launch: warning: cannot become a child subreaper ({e}); orphans will not be reaped by launch"
        );
    } else if verbose {
        eprintln!("launch: not PID 1; reaping orphans as a child subreaper");
    }
    Scope::Descendants {
        fallback_group: None,
    }
}

/// True when stdin is a terminal whose foreground is launch's own process group
/// (`docker run -ti`, or launch run in the foreground of a shell): then the command
/// gets the foreground, so Ctrl-C and job control reach it.
fn owns_terminal() -> bool {
    // SAFETY: fd 0 is only looked at, never closed here.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    isatty(stdin).unwrap_or(false) && tcgetpgrp(stdin).is_ok_and(|group| group == getpgrp())
}
