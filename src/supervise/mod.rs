//! Supervision: launch as PID 1 (or as a child subreaper when it is not PID 1).
//!
//! The PID-1 mechanics are `init`'s: one loop waits on signals, child output
//! pipes and the nearest deadline; clean children are spawned, every ended child reaped,
//! and what is left ended. Here, one `Supervisor` with a module per concern: `table`
//! (each process and its state), `machine` (every transition of a process, a pure
//! function of its state, an event and the time, returning effects), `execute` (which
//! performs those effects), `start` (adopting a spec, starting in dependency order),
//! `stop` (reaping, and what stopped processes leave), `shutdown` (the phases and their
//! timers),
//! [`ready`] (readiness checks), `answers` (the control socket's requests), `relay` and
//! [`logs`] (the children's output and launch's own log), `worker` (each configuration
//! in a child process, so that the loop never waits on one), `reload` (a reload as a
//! transaction: watched until its processes are ready, or rolled back) and
//! `last_reload` (what it came to); [`policy`] and `transaction` hold the decisions
//! that are pure functions of state, tested as tables.
//!
//! Two modes share this one supervisor. `launch -- CMD` is a single process whose end
//! ends launch and to which every signal is forwarded. `launch run` runs the spec's
//! processes in dependency order, restarts them, reloads on SIGHUP and stops them in
//! reverse order on SIGTERM.

use table::Managed;
use table::State;
use table::Watch;

mod answers;
mod execute;
mod last_reload;
pub mod logs;
mod machine;
mod metrics;
pub mod policy;
pub mod ready;
mod relay;
mod reload;
mod shutdown;
mod start;
mod stop;
mod table;
mod transaction;
mod worker;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::{Pid, getpgrp, getpid, isatty, tcgetpgrp, tcsetpgrp};

use crate::config::reconfigure;
use crate::config::spec::{self, Process, Restart};
use crate::control::{self};
use crate::exit::{Remap, code};
use crate::init::cleanup::{self, Scope};
use crate::init::events::{EventError, EventLoop, Wake};
use crate::init::leftover::Leftovers;
use crate::init::output::{self, Outputs};
use crate::init::proc_table::ProcTable;
use crate::init::reap::Children;
use crate::init::signals::{self, Signals, send};
use crate::init::spawn::{self, ChildSetup};

/// How long launch waits for SIGKILLed processes to be reaped before it gives up on
/// them (only a process stuck in the kernel takes that long).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// How long launch waits at its end for a slow reader to take its last lines.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// The least time processes left behind get after the managed ones have stopped.
const ORPHAN_GRACE_MIN: Duration = Duration::from_millis(500);

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

/// Errors that stop launch before any process runs.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The loop or the signals could not be set up.
    #[error(transparent)]
    Events(#[from] EventError),
}

impl StartError {
    /// launch's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        code::INTERNAL
    }
}

/// Runs the plain-init mode to its end and returns launch's exit code.
pub fn plain_init(options: PlainInit) -> i32 {
    let mut supervisor = match Supervisor::new(
        Mode::Plain {
            forward_to_group: options.forward_to_group,
            remap: options.remap.clone(),
            grace: options.grace,
        },
        options.verbose,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("launch: {e}");
            return e.exit_code();
        }
    };
    // Plain init fails loudly before anything runs: a command that cannot start is
    // launch's own error (127, 126), not a crash to back off from.
    let argv = options.command.clone();
    let pid = match spawn::spawn(&argv, &supervisor.setup) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("launch: {e}");
            return e.exit_code();
        }
    };
    let name = options.command[0].to_string_lossy().into_owned();
    // Without /proc, what is left is found by the command's process group.
    if let Scope::Descendants { fallback_group } = &mut supervisor.scope {
        *fallback_group = Some(pid);
    }
    supervisor.procs.push(Managed::new(plain_process(&name), 0));
    supervisor.apply(0, machine::Event::Spawned { pid });
    supervisor.run()
}

/// What `launch run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where the configuration is.
    pub config: reconfigure::Options,
    /// Also say what launch does in detail.
    pub verbose: bool,
    /// Where the control socket goes.
    pub control: std::path::PathBuf,
    /// Log events as JSON lines.
    pub log_json: bool,
    /// The time and memory one configuration may take.
    pub limits: crate::config::configure_worker::Limits,
}

/// `launch run`: configure (as `launch reconfigure`), then supervise the spec's
/// processes until shutdown. Returns launch's exit code.
pub fn run(options: RunOptions) -> i32 {
    // Signals first: a TERM that arrives while configuring is kept, and acted on.
    let mut supervisor = match Supervisor::new(
        Mode::Run {
            config: options.config.clone(),
            grace: spec::Shutdown::default().grace,
        },
        options.verbose,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("launch: {e}");
            eprintln!(
                "launch: exiting with {}: launch could not set up its signals and event loop",
                e.exit_code()
            );
            return e.exit_code();
        }
    };
    supervisor.log_json = options.log_json;
    match control::Server::bind(&options.control) {
        Ok(server) => {
            let token = supervisor.next_token;
            supervisor.next_token += 1;
            if supervisor
                .events
                .watch(server.listener().as_fd(), token)
                .is_ok()
            {
                supervisor.control = Some((token, server));
            }
        }
        // The application matters more than the socket: run without it, and say so.
        Err(e) => supervisor.log(format!("warning: {e}; `launch status` will not work")),
    }
    // Configured by a worker, as every reload is: until it answers, the loop reaps,
    // answers `launch status` and acts on a TERM.
    supervisor.configuring.limits = options.limits;
    supervisor.start_configuring(true, Vec::new());
    // One truth for --set: `launch check` inside the container applies these too.
    // Written while the worker runs (it does not read them back: they are its argv).
    if supervisor.control.is_some() {
        if let Err(e) = control::record_sets(&options.control, &options.config.sets) {
            supervisor.log(format!(
                "warning: cannot record the --set flags for `launch check`: {e}"
            ));
        }
    }
    supervisor.run()
}

/// The single process of the plain-init mode, as a spec would describe it.
fn plain_process(name: &str) -> Process {
    Process {
        restart: Restart::Never,
        critical: true,
        max_restarts: 0,
        restart_window: Duration::ZERO,
        ..Process::service(name, vec![name.to_string()])
    }
}

/// The two modes.
#[derive(Debug, Clone)]
enum Mode {
    /// `launch -- CMD`.
    Plain {
        forward_to_group: bool,
        remap: Remap,
        grace: Duration,
    },
    /// `launch run`.
    Run {
        config: reconfigure::Options,
        grace: Duration,
    },
}

/// Where the supervisor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Processes run (or wait to).
    Running,
    /// Managed processes are being stopped, in reverse order, until `grace_until`.
    Stopping { grace_until: Instant, code: i32 },
    /// They are gone; what is left got SIGTERM and has until `until`.
    Draining { until: Instant, code: i32 },
    /// Everything got SIGKILL; launch waits for the reaping until `until`.
    Killing { until: Instant, code: i32 },
}

struct Supervisor {
    events: EventLoop,
    scope: Scope,
    setup: ChildSetup,
    mode: Mode,
    procs: Vec<Managed>,
    watches: HashMap<u64, Watch>,
    next_token: u64,
    phase: Phase,
    children: Children,
    /// Whether the terminal was handed to the plain-init command (and is to be taken back).
    terminal: bool,
    verbose: bool,
    log_json: bool,
    /// The control socket and its token.
    control: Option<(u64, control::Server)>,
    /// The metrics listener (`metrics: {listen:}` in the spec) and its token.
    metrics: Option<(u64, control::metrics::Listener)>,
    /// The configuration worker (`launch run`).
    configuring: worker::Configuring,
    /// What stopped processes left behind, each to be killed at its time.
    leftovers: Vec<Leftovers>,
    /// `/proc` as read once in this turn of the loop, for every stop and sweep of the
    /// turn (see [`Supervisor::proc_table`]).
    proc_table: Option<ProcTable>,
    /// launch's stdout and stderr, never blocking (a cell: the log is written from
    /// `&self`).
    out: RefCell<Outputs>,
    /// The tokens of stdout and stderr, while watched for room (a reader was slow).
    out_watched: [Option<u64>; 2],
    /// Whether the pipes that go to stdout, stderr are left unread for a slow reader.
    out_paused: [bool; 2],
    /// TCP readiness connections still under way.
    probes: ready::Probes,
    /// Why launch is ending, for its last line (`exiting with 0: stopped by SIGTERM`).
    exit_reason: String,
}

impl Supervisor {
    fn new(mode: Mode, verbose: bool) -> Result<Supervisor, StartError> {
        let signals = Signals::install().map_err(EventError::from)?;
        let scope = become_reaper(verbose);
        let events = EventLoop::new(signals)?;
        // Children start where launch was started; launch itself moves to `/` so that it
        // never keeps a mounted volume busy.
        let cwd = std::env::current_dir().ok();
        let _ = nix::unistd::chdir("/");
        let terminal = matches!(mode, Mode::Plain { .. }) && owns_terminal();
        let setup = ChildSetup {
            inherited: events.signals().inherited().clone(),
            cwd,
            take_terminal: terminal,
        };
        Ok(Supervisor {
            events,
            scope,
            setup,
            mode,
            procs: Vec::new(),
            watches: HashMap::new(),
            next_token: 1,
            phase: Phase::Running,
            children: Children::Remain,
            terminal,
            verbose,
            log_json: false,
            control: None,
            metrics: None,
            configuring: worker::Configuring::default(),
            leftovers: Vec::new(),
            proc_table: None,
            out: RefCell::new(Outputs::open()),
            out_watched: [None, None],
            out_paused: [false, false],
            probes: ready::Probes::new(),
            exit_reason: String::new(),
        })
    }

    fn log_verbose(&self, message: String) {
        if self.verbose {
            self.log(message);
        }
    }

    fn run(&mut self) -> i32 {
        let mut wakes = Vec::new();
        loop {
            // /proc as this turn finds it (see `proc_table`).
            self.proc_table = None;
            // A phase that changes may have more to do at once (a shutdown with nothing
            // running is over at once): go on until it settles.
            loop {
                let before = self.phase;
                self.advance();
                if self.phase == before {
                    break;
                }
            }
            // A pending reload is judged from the table as this turn left it (processes
            // started just now included, so that its next wake-up counts from them).
            self.settle_reload(Instant::now());
            if let Some(code) = self.finished() {
                self.say_exit(code);
                // The last lines (the shutdown's own) still reach a reader that is slow,
                // within a bound: launch does not wait on a stuck one.
                self.out.borrow_mut().finish(Instant::now() + FINAL_FLUSH);
                return code;
            }
            wakes.clear();
            if let Err(e) = self.events.wait(self.next_deadline(), &mut wakes) {
                // Without its loop launch can do nothing safely: end everything now
                // rather than leave processes running unsupervised.
                self.log(format!("{e}; killing all processes"));
                cleanup::signal_all(self.scope, libc::SIGKILL);
                self.exit_reason = format!("launch's event loop failed: {e}");
                self.say_exit(code::INTERNAL);
                self.out.borrow_mut().finish(Instant::now() + FINAL_FLUSH);
                return code::INTERNAL;
            }
            self.proc_table = None;
            for &wake in &wakes {
                match wake {
                    Wake::Signal(received) if received.signo == libc::SIGCHLD => self.reap(),
                    Wake::Signal(received) => self.on_signal(received.signo),
                    Wake::Readable(token) => self.on_readable(token),
                    Wake::Deadline => {}
                }
            }
            self.on_time(Instant::now());
            self.sync_output();
        }
    }

    /// launch's last line: that it exits, with what code, and why. Always under `launch
    /// run`; with `-v` only for plain init, which is otherwise as quiet as CMD.
    fn say_exit(&self, code: i32) {
        if matches!(self.mode, Mode::Run { .. }) || self.verbose {
            let why = if self.exit_reason.is_empty() {
                "everything has stopped"
            } else {
                &self.exit_reason
            };
            self.log(format!("exiting with {code}: {why}"));
        }
    }

    /// launch's exit code, once everything is over.
    fn finished(&self) -> Option<i32> {
        let code = match self.phase {
            Phase::Running => return None,
            Phase::Stopping { code, .. } | Phase::Draining { code, .. } => code,
            Phase::Killing { until, code } => {
                if self.children == Children::Remain && Instant::now() >= until {
                    self.log("some processes did not die of SIGKILL; exiting without them".into());
                    return Some(code);
                }
                code
            }
        };
        (self.children == Children::None && self.procs.iter().all(|p| p.pid().is_none()))
            .then_some(code)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Running => None,
            Phase::Stopping { grace_until: t, .. }
            | Phase::Draining { until: t, .. }
            | Phase::Killing { until: t, .. } => Some(t),
        };
        let phase = phase
            .into_iter()
            .chain(self.configuring.deadline())
            .chain(self.reload_wake(Instant::now()));
        let context = self.context();
        let procs = self
            .procs
            .iter()
            .filter_map(|p| machine::deadline(p, context));
        let leftovers = self.leftovers.iter().map(|l| l.kill_at);
        // A slow reader becomes a stuck one: then its pipes are read (and dropped) again.
        let out = self.out.borrow();
        let stuck = [out.stdout.stuck_at(), out.stderr.stuck_at()];
        phase
            .into_iter()
            .chain(procs)
            .chain(leftovers)
            .chain(stuck.into_iter().flatten())
            .min()
    }

    // ---- processes ----

    // ---- signals ----

    fn on_signal(&mut self, signo: i32) {
        let stop_request = signo == libc::SIGTERM || signo == libc::SIGINT;
        match (&self.mode, self.phase) {
            (
                Mode::Plain {
                    forward_to_group, ..
                },
                Phase::Running,
            ) => {
                if let Some(pid) = self.procs.first().and_then(Managed::pid) {
                    if signals::is_forwarded(signo) {
                        let target = if *forward_to_group {
                            Pid::from_raw(-pid.as_raw())
                        } else {
                            pid
                        };
                        self.log_verbose(format!(
                            "forwarding {} to {target}",
                            signals::name(signo)
                        ));
                        let _ = send(target, signo);
                    }
                }
            }
            (Mode::Run { .. }, Phase::Running) => match signo {
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                    let name = signals::name(signo);
                    self.begin_shutdown(0, &name, format!("stopped by {name}"));
                }
                libc::SIGHUP => self.request_reload(None),
                libc::SIGUSR1 | libc::SIGUSR2 | libc::SIGWINCH => {
                    for p in &self.procs {
                        if let State::Running { pid } = p.state {
                            let _ = send(Pid::from_raw(-pid.as_raw()), signo);
                        }
                    }
                }
                _ => {}
            },
            // Asked again to stop while stopping: stop waiting.
            (_, Phase::Stopping { code, .. } | Phase::Draining { code, .. }) if stop_request => {
                self.log(format!(
                    "{} during shutdown: killing everything now",
                    signals::name(signo)
                ));
                self.exit_reason.push_str(&format!(
                    " (a second {} killed what was left at once)",
                    signals::name(signo)
                ));
                self.kill_everything(code);
            }
            _ => {}
        }
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

/// A close-on-exec pipe whose read end does not block.
fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
    nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
    Some((read, write))
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
