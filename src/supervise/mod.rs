//! Supervision: launch as PID 1 (or as a child subreaper when it is not PID 1).
//!
//! The PID-1 mechanics are [`crate::init`]'s: one loop waits on signals, child output
//! pipes and the nearest deadline; clean children are spawned, every ended child reaped,
//! and what is left ended. Here: the process table and its phases, [`policy`] deciding
//! restarts, backoff and order, [`ready`] checks, [`logs`] relaying the children's
//! output, and `worker` running each configuration (start-up, SIGHUP, `launch reload`)
//! in a child process, so that the loop never waits on one.
//!
//! Two modes share this one supervisor. `launch -- CMD` is a single process whose end
//! ends launch and to which every signal is forwarded. `launch run` runs the spec's
//! processes in dependency order, restarts them, reloads on SIGHUP and stops them in
//! reverse order on SIGTERM.

pub mod logs;
pub mod policy;
pub mod ready;
mod worker;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::{Pid, getpgrp, getpid, isatty, tcgetpgrp, tcsetpgrp};

use crate::config::reconfigure;
use crate::config::spec::{self, Kind, Process, ReadyCheck, Restart};
use crate::control::{self, ProcessStatus, Request};
use crate::exit::{Exit, Remap, code};
use crate::init::cleanup::{self, Scope};
use crate::init::events::{EventError, EventLoop, Wake};
use crate::init::leftover::{self, Leftovers, Member};
use crate::init::output::{self, Outputs};
use crate::init::reap::{self, Children};
use crate::init::signals::{self, Signals, send};
use crate::init::spawn::{self, ChildSetup, Credentials, Extra};
use crate::volume::users::{Accounts, UserError};
use logs::{LogPipe, Stream};
use policy::ExitHistory;

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
    supervisor.log_verbose(format!("started {name} as pid {pid}"));
    // Without /proc, what is left is found by the command's process group.
    if let Scope::Descendants { fallback_group } = &mut supervisor.scope {
        *fallback_group = Some(pid);
    }
    let mut main = Managed::new(plain_process(&name), 0);
    main.state = State::Running { pid };
    main.started = Some(Instant::now());
    supervisor.procs.push(main);
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
            // One truth for --set: `launch check` inside the container applies these too.
            if let Err(e) = control::record_sets(&options.control, &options.config.sets) {
                supervisor.log(format!(
                    "warning: cannot record the --set flags for `launch check`: {e}"
                ));
            }
        }
        // The application matters more than the socket: run without it, and say so.
        Err(e) => supervisor.log(format!("warning: {e}; `launch status` will not work")),
    }
    // Configured by a worker, as every reload is: until it answers, the loop reaps,
    // answers `launch status` and acts on a TERM.
    supervisor.configuring.limits = options.limits;
    supervisor.start_configuring(true, Vec::new());
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

/// Where a managed process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started: waiting for its dependencies.
    Waiting,
    /// Running.
    Running { pid: Pid },
    /// Ended; started again at `until`.
    Backoff { until: Instant },
    /// Asked to stop; SIGKILL at `kill_at`; then `then`.
    Stopping {
        pid: Pid,
        kill_at: Instant,
        then: Then,
    },
    /// Ended for good (a oneshot that finished, or a policy that does not restart).
    Exited(Exit),
    /// Given up (crash loop, failed oneshot).
    Failed(Exit),
    /// Stopped by launch (shutdown).
    Stopped,
    /// Stopped on request (`launch stop`): deliberate, so not a sickness; stays stopped
    /// until `launch start`.
    Held,
}

/// What follows a requested stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Stay stopped.
    Rest,
    /// Stay stopped, as asked for (`launch stop`).
    Hold,
    /// Start again (reconfigured).
    Restart,
    /// Forget the process (removed from the spec).
    Remove,
}

/// A readiness check in progress.
#[derive(Debug, Clone)]
struct Readiness {
    deadline: Instant,
    next_try: Instant,
    /// A `cmd` check being run.
    check_pid: Option<Pid>,
}

/// One supervised process.
#[derive(Debug)]
struct Managed {
    spec: Process,
    level: usize,
    state: State,
    history: ExitHistory,
    /// Restarts since it last stayed up long enough (for the backoff).
    attempt: u32,
    /// Restarts in all.
    restarts: u32,
    started: Option<Instant>,
    ready: bool,
    readiness: Option<Readiness>,
    last_exit: Option<Exit>,
    /// Its descendants when it was asked to stop, ended with it (see [`leftover`]).
    snapshot: Vec<Member>,
}

impl Managed {
    fn state_name(&self) -> &'static str {
        match self.state {
            State::Waiting => "waiting",
            State::Running { .. } if !self.ready => "starting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Exited(_) => "exited",
            State::Failed(_) => "failed",
            State::Stopped | State::Held => "stopped",
        }
    }

    /// For `launch health`: a service runs and is ready; a oneshot finished (or may fail);
    /// either was stopped on request.
    fn healthy(&self) -> bool {
        if self.state == State::Held {
            return true;
        }
        match self.spec.kind {
            Kind::Service => matches!(self.state, State::Running { .. }) && self.ready,
            Kind::Oneshot => self.satisfies() || matches!(self.state, State::Running { .. }),
        }
    }

    fn new(spec: Process, level: usize) -> Managed {
        Managed {
            spec,
            level,
            state: State::Waiting,
            history: ExitHistory::default(),
            attempt: 0,
            restarts: 0,
            started: None,
            ready: false,
            readiness: None,
            last_exit: None,
            snapshot: Vec::new(),
        }
    }

    /// Its pid while it runs. Never 0 or 1: signalled as a group those would be launch's
    /// own group or every process there is.
    fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Running { pid } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
        .filter(|pid| pid.as_raw() > 1)
    }

    /// Dependents may start: it runs and is ready, or it is a oneshot that finished
    /// (or an optional one that failed).
    fn satisfies(&self) -> bool {
        match self.state {
            State::Running { .. } => self.ready && self.spec.kind == Kind::Service,
            State::Exited(exit) => self.spec.kind == Kind::Oneshot && exit.success(),
            State::Failed(_) => self.spec.optional,
            _ => false,
        }
    }
}

/// What a watched descriptor is.
#[derive(Debug)]
enum Watch {
    /// A child's output, prefixed line by line.
    Log(LogPipe),
    /// A readiness pipe of the named process.
    Notify { process: String, fd: OwnedFd },
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
    /// The configuration worker (`launch run`).
    configuring: worker::Configuring,
    /// What stopped processes left behind, each to be killed at its time.
    leftovers: Vec<Leftovers>,
    /// launch's stdout and stderr, never blocking (a cell: the log is written from
    /// `&self`).
    out: RefCell<Outputs>,
    /// The tokens of stdout and stderr, while watched for room (a reader was slow).
    out_watched: [Option<u64>; 2],
    /// Whether the pipes that go to stdout, stderr are left unread for a slow reader.
    out_paused: [bool; 2],
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
            configuring: worker::Configuring::default(),
            leftovers: Vec::new(),
            out: RefCell::new(Outputs::open()),
            out_watched: [None, None],
            out_paused: [false, false],
        })
    }

    fn log(&self, message: String) {
        if self.log_json {
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let line = serde_json::json!({"time": time, "source": "launch", "message": message});
            self.write_log(format!("{line}\n"));
        } else {
            self.write_log(format!("launch: {message}\n"));
        }
    }

    fn write_log(&self, line: String) {
        // Never while `out` is borrowed: only the loop's own steps log, one at a time.
        if let Ok(mut out) = self.out.try_borrow_mut() {
            out.stderr.write_line(line.as_bytes(), "launch");
        }
    }

    /// After each turn of the loop: finishes lines a reader took in part, says what was
    /// dropped once a reader reads again, watches an output for room only while launch
    /// waits for its reader, and reads the pipes that go to it only while it accepts.
    fn sync_output(&mut self) {
        let now = Instant::now();
        let mut said = Vec::new();
        for k in 0..2 {
            let mut out = self.out.borrow_mut();
            let sink = if k == 0 {
                &mut out.stdout
            } else {
                &mut out.stderr
            };
            sink.flush();
            said.extend(sink.drained());
            let paused = !sink.accepting(now);
            match (sink.pending(), self.out_watched[k], sink.watchable()) {
                (true, None, Some(fd)) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    if self.events.watch_writable(fd, token).is_ok() {
                        self.out_watched[k] = Some(token);
                    }
                }
                (false, Some(_), Some(fd)) => {
                    let _ = self.events.unwatch(fd);
                    self.out_watched[k] = None;
                }
                _ => {}
            }
            drop(out);
            if paused != self.out_paused[k] {
                self.out_paused[k] = paused;
                self.pause_logs(k, paused);
            }
        }
        for (source, lines) in said {
            self.log(format!(
                "dropped {lines} lines of {source}'s output: the reader of launch's output was not reading"
            ));
        }
    }

    /// Stops (or starts again) reading the log pipes that go to output `k` (0 stdout,
    /// 1 stderr): a process whose pipe is full waits, as it would for a slow reader
    /// without launch.
    fn pause_logs(&self, k: usize, paused: bool) {
        for (&token, watch) in &self.watches {
            if let Watch::Log(pipe) = watch
                && stream_index(pipe.stream) == k
            {
                let _ = if paused {
                    self.events.unwatch(pipe.fd.as_fd())
                } else {
                    self.events.watch(pipe.fd.as_fd(), token)
                };
            }
        }
    }

    fn log_verbose(&self, message: String) {
        if self.verbose {
            self.log(message);
        }
    }

    fn run(&mut self) -> i32 {
        let mut wakes = Vec::new();
        loop {
            // A phase that changes may have more to do at once (a shutdown with nothing
            // running is over at once): go on until it settles.
            loop {
                let before = self.phase;
                self.advance();
                if self.phase == before {
                    break;
                }
            }
            if let Some(code) = self.finished() {
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
                return code::INTERNAL;
            }
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
        let phase = phase.into_iter().chain(self.configuring.deadline());
        let procs = self.procs.iter().flat_map(|p| {
            let state = match p.state {
                State::Backoff { until } => Some(until),
                State::Stopping { kill_at, .. } => Some(kill_at),
                _ => None,
            };
            let ready = match (&p.state, &p.readiness) {
                (State::Running { .. }, Some(r)) if !p.ready => Some(if r.check_pid.is_some() {
                    r.deadline
                } else {
                    r.next_try.min(r.deadline)
                }),
                _ => None,
            };
            state.into_iter().chain(ready)
        });
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

    /// Takes a (new) spec: adds, changes and removes processes; `notified` are the
    /// processes whose templates changed.
    fn adopt_spec(&mut self, spec: spec::Spec, notified: &BTreeSet<String>) {
        if let Mode::Run { grace, .. } = &mut self.mode {
            *grace = spec.shutdown.grace;
        }
        let levels = policy::levels(&spec.processes);
        let wanted: BTreeSet<String> = spec.processes.iter().map(|p| p.name.clone()).collect();
        for i in 0..self.procs.len() {
            if !wanted.contains(&self.procs[i].spec.name) {
                self.log(format!(
                    "{} is no longer in the spec: stopping it",
                    self.procs[i].spec.name
                ));
                self.stop(i, Then::Remove);
            }
        }
        self.procs
            .retain(|p| wanted.contains(&p.spec.name) || p.pid().is_some());
        for process in spec.processes {
            let level = levels.get(&process.name).copied().unwrap_or(0);
            match self.procs.iter().position(|p| p.spec.name == process.name) {
                None => self.procs.push(Managed::new(process, level)),
                Some(i) => {
                    let changed = {
                        let mut old = self.procs[i].spec.clone();
                        old.line = process.line;
                        // Whether lines are prefixed follows from how many processes
                        // there are: adding one must not restart the others. It takes
                        // effect at their next start.
                        old.log_prefix = process.log_prefix;
                        old != process
                    };
                    self.procs[i].level = level;
                    if changed {
                        self.log(format!(
                            "{} changed in the spec: restarting it",
                            process.name
                        ));
                        self.procs[i].spec = process;
                        self.restart(i);
                    } else if notified.contains(&process.name) {
                        self.notify(i);
                    }
                }
            }
        }
    }

    /// A changed template: the reload signal, or a restart.
    fn notify(&mut self, i: usize) {
        let p = &self.procs[i];
        match (p.spec.reload_signal, p.state) {
            (Some(signo), State::Running { pid }) => {
                self.log(format!(
                    "{}: its configuration changed: sending {}",
                    p.spec.name,
                    signals::name(signo)
                ));
                let _ = send(Pid::from_raw(-pid.as_raw()), signo);
            }
            (None, State::Running { .. }) => {
                self.log(format!(
                    "{}: its configuration changed: restarting it",
                    p.spec.name
                ));
                self.restart(i);
            }
            _ => {}
        }
    }

    fn restart(&mut self, i: usize) {
        if self.procs[i].pid().is_some() {
            self.stop(i, Then::Restart);
        } else {
            let p = &mut self.procs[i];
            p.state = State::Waiting;
            p.attempt = 0;
        }
    }

    /// Starts every waiting process whose dependencies are satisfied; during shutdown,
    /// stops the highest level still running.
    fn advance(&mut self) {
        match self.phase {
            Phase::Running => {
                // A process started here may satisfy others at once (no readiness check):
                // go round until nothing more can start.
                // The common case (every wake-up of an idle launch): nothing waits.
                while self.procs.iter().any(|p| p.state == State::Waiting) {
                    let satisfied: BTreeSet<String> = self
                        .procs
                        .iter()
                        .filter(|p| p.satisfies())
                        .map(|p| p.spec.name.clone())
                        .collect();
                    let startable: Vec<usize> = (0..self.procs.len())
                        .filter(|&i| {
                            self.procs[i].state == State::Waiting
                                && self.procs[i]
                                    .spec
                                    .depends_on
                                    .iter()
                                    .all(|d| satisfied.contains(d))
                        })
                        .collect();
                    if startable.is_empty() || self.phase != Phase::Running {
                        break;
                    }
                    for i in startable {
                        self.start(i);
                    }
                }
                if matches!(self.mode, Mode::Run { .. })
                    && self.phase == Phase::Running
                    && self.configuring.configured
                    && self.procs.iter().all(|p| {
                        matches!(
                            p.state,
                            State::Exited(_) | State::Failed(_) | State::Stopped
                        )
                    })
                {
                    self.log("no process left to supervise".into());
                    self.begin_shutdown(0, "nothing left to run");
                }
            }
            Phase::Stopping { grace_until, code } => {
                let alive: Vec<usize> = (0..self.procs.len())
                    .filter(|&i| self.procs[i].pid().is_some())
                    .collect();
                match alive.iter().map(|&i| self.procs[i].level).max() {
                    Some(top) => {
                        for i in alive {
                            if self.procs[i].level == top
                                && matches!(self.procs[i].state, State::Running { .. })
                            {
                                self.stop(i, Then::Rest);
                            }
                        }
                    }
                    None => {
                        // Nothing may ever have run, and so no SIGCHLD have told whether
                        // any child is left: ask.
                        self.reap();
                        // The managed processes are gone: now whatever they left behind.
                        if self.children == Children::Remain {
                            cleanup::signal_all(self.scope, libc::SIGTERM);
                        }
                        let until = grace_until.max(Instant::now() + ORPHAN_GRACE_MIN);
                        self.phase = Phase::Draining { until, code };
                    }
                }
            }
            Phase::Draining { .. } | Phase::Killing { .. } => {}
        }
    }

    fn start(&mut self, i: usize) {
        let now = Instant::now();
        let spec = self.procs[i].spec.clone();
        let mut extra = Extra {
            cwd: spec.cwd.clone(),
            umask: spec.umask,
            close_fds: true,
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Extra::default()
        };
        if let Err(e) = run_as(&spec, &mut extra) {
            // Never started with launch's own credentials instead. Counted as a failed
            // start, so the restart policy and its backoff apply: a reload that brings
            // the user back heals it, a user that stays missing ends in the give-up (and
            // stops the container when the process is critical).
            let message = format!(
                "{}: not started (and never as launch's own user instead): {e}",
                spec.name
            );
            self.failed_start(i, now, message, code::CONFIG);
            return;
        }
        let mut new_watches = Vec::new();
        if spec.log_prefix {
            for stream in [Stream::Stdout, Stream::Stderr] {
                if let Some((read, write)) = pipe() {
                    match stream {
                        Stream::Stdout => extra.stdout = Some(write),
                        Stream::Stderr => extra.stderr = Some(write),
                    }
                    new_watches.push(Watch::Log(LogPipe::new(read, stream, &spec.name)));
                }
            }
        }
        if let Some(ReadyCheck::NotifyFd(n)) = spec.ready.as_ref().map(|r| &r.check) {
            if let Some((read, write)) = pipe() {
                extra.notify = Some((write, *n));
                new_watches.push(Watch::Notify {
                    process: spec.name.clone(),
                    fd: read,
                });
            }
        }
        let argv: Vec<OsString> = spec
            .command
            .argv()
            .into_iter()
            .map(OsString::from)
            .collect();
        let result = spawn::spawn_with(&argv, &self.setup, extra);
        for watch in new_watches {
            self.watch(watch);
        }
        let p = &mut self.procs[i];
        p.started = Some(now);
        p.ready = false;
        p.readiness = spec.ready.as_ref().map(|r| Readiness {
            deadline: now + r.timeout,
            next_try: now,
            check_pid: None,
        });
        match result {
            Ok(pid) => {
                p.state = State::Running { pid };
                if p.readiness.is_none() {
                    p.ready = true;
                }
                let message = format!("{} started (pid {pid})", spec.name);
                self.log(message);
            }
            Err(e) => {
                let message = format!("{}: cannot start: {e}", spec.name);
                self.failed_start(i, now, message, e.exit_code());
            }
        }
    }

    /// Process `i` could not be started at `now`: like a crash with `code`, the same
    /// backoff, so that a missing binary or user neither spins nor starves the others.
    fn failed_start(&mut self, i: usize, now: Instant, message: String, code: i32) {
        self.log(message);
        let p = &mut self.procs[i];
        p.started = Some(now);
        p.ready = false;
        p.readiness = None;
        // Its state stays what it was (waiting): `ended` decides what follows.
        self.ended(i, Exit::Code(code));
    }

    fn watch(&mut self, watch: Watch) {
        let token = self.next_token;
        self.next_token += 1;
        let registered = match &watch {
            // Read once its output takes lines again (see `pause_logs`).
            Watch::Log(pipe) if self.out_paused[stream_index(pipe.stream)] => Ok(()),
            Watch::Log(pipe) => self.events.watch(pipe.fd.as_fd(), token),
            Watch::Notify { fd, .. } => self.events.watch(fd.as_fd(), token),
        };
        if registered.is_ok() {
            self.watches.insert(token, watch);
        }
    }

    fn on_readable(&mut self, token: u64) {
        if self.control.as_ref().is_some_and(|(t, _)| *t == token) {
            let requests = self
                .control
                .as_ref()
                .map(|(_, server)| server.accept())
                .unwrap_or_default();
            for (stream, request) in requests {
                if request == Some(Request::Reload) {
                    self.request_reload(Some(stream));
                    continue;
                }
                let (body, exit) = match request {
                    Some(request) => self.answer(request),
                    None => (
                        "launch: unknown request; see `launch --help`\n".to_string(),
                        code::USAGE,
                    ),
                };
                control::respond(stream, &body, exit);
            }
            return;
        }
        if self.configuring.watches(token) {
            return self.worker_readable();
        }
        let Some(watch) = self.watches.get_mut(&token) else {
            return;
        };
        let (open, ready_process) = match watch {
            Watch::Log(pipe) => (pipe.pump(&mut self.out.borrow_mut()), None),
            Watch::Notify { process, fd } => {
                let mut buf = [0u8; 512];
                match nix::unistd::read(&*fd, &mut buf) {
                    Ok(0) | Err(_) => (false, None),
                    Ok(n) => (true, buf[..n].contains(&b'\n').then(|| process.clone())),
                }
            }
        };
        if let Some(name) = ready_process {
            if let Some(i) = self.procs.iter().position(|p| p.spec.name == name) {
                self.mark_ready(i);
            }
        }
        if !open {
            if let Some(watch) = self.watches.remove(&token) {
                let fd = match &watch {
                    Watch::Log(pipe) => pipe.fd.as_fd(),
                    Watch::Notify { fd, .. } => fd.as_fd(),
                };
                let _ = self.events.unwatch(fd);
            }
        }
    }

    fn mark_ready(&mut self, i: usize) {
        let p = &mut self.procs[i];
        if matches!(p.state, State::Running { .. }) && !p.ready {
            p.ready = true;
            p.readiness = None;
            let message = format!("{} is ready", p.spec.name);
            self.log(message);
        }
    }

    fn reap(&mut self) {
        let mut ended = Vec::new();
        self.children = reap::drain(|pid, exit| ended.push((pid, exit)));
        for (pid, exit) in ended {
            if self.configuring.reaped(pid, exit) {
                continue;
            }
            if let Some(i) = self.procs.iter().position(|p| p.pid() == Some(pid)) {
                self.ended(i, exit);
            } else if let Some(i) = self.procs.iter().position(|p| {
                p.readiness
                    .as_ref()
                    .is_some_and(|r| r.check_pid == Some(pid))
            }) {
                if exit.success() {
                    self.mark_ready(i);
                } else if let Some(r) = self.procs[i].readiness.as_mut() {
                    r.check_pid = None;
                }
            }
            // Anything else is an adopted orphan: reaped, and that is all.
        }
        self.finish_configuring();
    }

    /// Process `i` ended with `exit`.
    fn ended(&mut self, i: usize, exit: Exit) {
        let now = Instant::now();
        let name = self.procs[i].spec.name.clone();
        let state = self.procs[i].state;
        {
            let p = &mut self.procs[i];
            p.ready = false;
            p.readiness = None;
            p.last_exit = Some(exit);
        }
        if let State::Stopping { pid, then, .. } = state {
            self.log_verbose(format!("{name} stopped: {exit}"));
            self.sweep(i, pid, now);
            match then {
                Then::Rest => self.procs[i].state = State::Stopped,
                Then::Hold => self.procs[i].state = State::Held,
                Then::Restart => {
                    self.procs[i].state = State::Waiting;
                    self.procs[i].attempt = 0;
                }
                Then::Remove => {
                    self.procs.remove(i);
                }
            }
            return;
        }
        if let Mode::Plain { remap, grace, .. } = &self.mode {
            let (code, grace) = (remap.apply(exit.code()), *grace);
            self.log_verbose(format!("{name} ended: {exit}"));
            self.procs[i].state = State::Exited(exit);
            self.take_terminal_back();
            self.phase = Phase::Stopping {
                grace_until: now + grace,
                code,
            };
            return;
        }
        if self.phase != Phase::Running {
            self.procs[i].state = State::Exited(exit);
            return;
        }
        let p = &mut self.procs[i];
        if p.started
            .is_some_and(|t| now.duration_since(t) >= policy::BACKOFF_RESET)
        {
            p.attempt = 0;
        }
        let looping = p
            .history
            .record(now, p.spec.max_restarts, p.spec.restart_window);
        if p.spec.kind == Kind::Oneshot && exit.success() {
            p.state = State::Exited(exit);
            self.log(format!("{name} finished"));
            return;
        }
        if policy::restarts(p.spec.restart, exit) && !looping {
            p.attempt += 1;
            p.restarts += 1;
            let wait = policy::backoff(p.attempt);
            p.state = State::Backoff { until: now + wait };
            self.log(format!(
                "{name} exited ({exit}); restarting in {}",
                crate::duration::format(wait)
            ));
            return;
        }
        let fatal = p.spec.critical || (p.spec.kind == Kind::Oneshot && !p.spec.optional);
        p.state = if looping || p.spec.kind == Kind::Oneshot {
            State::Failed(exit)
        } else {
            State::Exited(exit)
        };
        let why = if looping {
            format!(
                "{name} exited {} times within {}: giving up",
                p.spec.max_restarts,
                crate::duration::format(p.spec.restart_window)
            )
        } else {
            format!("{name} exited ({exit})")
        };
        self.log(why.clone());
        if fatal {
            self.begin_shutdown(exit.code(), &why);
        }
    }

    /// Asks process `i` to stop: its stop signal (and SIGCONT) to its group, SIGKILL
    /// after its stop timeout.
    fn stop(&mut self, i: usize, then: Then) {
        let p = &mut self.procs[i];
        match p.state {
            State::Running { pid } => {
                // Taken before the signal: once it is gone, the parent links that lead
                // to its helpers are gone too.
                p.snapshot = leftover::snapshot(pid);
                signal_process(pid, p.spec.stop_signal);
                signal_process(pid, libc::SIGCONT);
                p.state = State::Stopping {
                    pid,
                    kill_at: Instant::now() + p.spec.stop_timeout,
                    then,
                };
                let message = format!(
                    "stopping {} ({})",
                    p.spec.name,
                    signals::name(p.spec.stop_signal)
                );
                self.log_verbose(message);
            }
            State::Stopping { pid, kill_at, .. } => {
                p.state = State::Stopping { pid, kill_at, then }
            }
            _ if then == Then::Hold => p.state = State::Held,
            _ => p.state = State::Stopped,
        }
    }

    /// Process `i` (which was `pid`) has ended after a stop: what it left gets SIGTERM
    /// now and SIGKILL after its stop timeout.
    fn sweep(&mut self, i: usize, pid: Pid, now: Instant) {
        let snapshot = std::mem::take(&mut self.procs[i].snapshot);
        let kill_at = now + self.procs[i].spec.stop_timeout;
        let spare = self.managed_pids();
        if let Some(left) = Leftovers::term(pid, snapshot, &spare, kill_at) {
            let message = format!(
                "{}: SIGTERM to what it left behind (pid {pid}'s group, session or children)",
                self.procs[i].spec.name
            );
            self.log_verbose(message);
            self.leftovers.push(left);
        }
    }

    /// The pids of the processes launch manages now.
    fn managed_pids(&self) -> Vec<Pid> {
        self.procs.iter().filter_map(Managed::pid).collect()
    }

    fn begin_shutdown(&mut self, code: i32, why: &str) {
        if self.phase != Phase::Running {
            return;
        }
        let grace = match &self.mode {
            Mode::Run { grace, .. } | Mode::Plain { grace, .. } => *grace,
        };
        self.log(format!("shutting down ({why})"));
        self.abandon_configuring();
        self.phase = Phase::Stopping {
            grace_until: Instant::now() + grace,
            code,
        };
        for p in &mut self.procs {
            if matches!(p.state, State::Waiting | State::Backoff { .. }) {
                p.state = State::Stopped;
            }
        }
    }

    fn kill_everything(&mut self, code: i32) {
        for p in &self.procs {
            if let Some(pid) = p.pid() {
                signal_process(pid, libc::SIGKILL);
            }
        }
        cleanup::signal_all(self.scope, libc::SIGKILL);
        self.phase = Phase::Killing {
            until: Instant::now() + KILL_WAIT,
            code,
        };
    }

    fn on_time(&mut self, now: Instant) {
        self.worker_on_time(now);
        if self.leftovers.iter().any(|l| now >= l.kill_at) {
            let spare = self.managed_pids();
            let (due, later) = std::mem::take(&mut self.leftovers)
                .into_iter()
                .partition(|l| now >= l.kill_at);
            self.leftovers = later;
            for left in due {
                left.kill(&spare);
            }
        }
        match self.phase {
            Phase::Stopping { grace_until, code }
            | Phase::Draining {
                until: grace_until,
                code,
            } if now >= grace_until => {
                self.log(
                    "the shutdown grace is over: sending SIGKILL to every process left".into(),
                );
                self.kill_everything(code);
            }
            _ => {}
        }
        for i in 0..self.procs.len() {
            match self.procs[i].state {
                State::Backoff { until } if now >= until => self.procs[i].state = State::Waiting,
                State::Stopping { pid, kill_at, then } if now >= kill_at => {
                    let message = format!(
                        "{} did not stop within {}: SIGKILL",
                        self.procs[i].spec.name,
                        crate::duration::format(self.procs[i].spec.stop_timeout)
                    );
                    self.log(message);
                    signal_process(pid, libc::SIGKILL);
                    leftover::kill(&self.procs[i].snapshot);
                    self.procs[i].state = State::Stopping {
                        pid,
                        kill_at: now + KILL_WAIT,
                        then,
                    };
                }
                State::Running { pid } if !self.procs[i].ready => self.check_ready(i, pid, now),
                _ => {}
            }
        }
    }

    fn check_ready(&mut self, i: usize, pid: Pid, now: Instant) {
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
            ReadyCheck::Tcp(address) => ready::tcp(address),
            ReadyCheck::File(path) => ready::file(path),
            ReadyCheck::NotifyFd(_) => false,
            ReadyCheck::Cmd(argv) => {
                let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
                let check_pid = spawn::spawn_with(
                    &argv,
                    &self.setup,
                    Extra {
                        close_fds: true,
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
                    self.begin_shutdown(0, &signals::name(signo));
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
                self.kill_everything(code);
            }
            _ => {}
        }
    }

    /// A control request: the answer and the client's exit code.
    fn answer(&mut self, request: Request) -> (String, i32) {
        let find = |procs: &[Managed], name: &str| procs.iter().position(|p| p.spec.name == name);
        match request {
            Request::Status { json } => {
                let status = self.status();
                if json {
                    (
                        format!(
                            "{}\n",
                            serde_json::to_string_pretty(&status).unwrap_or_default()
                        ),
                        0,
                    )
                } else {
                    let mut table = control::status_table(&status);
                    if let Some(last) = &self.configuring.last_reload {
                        table.push_str(&last.describe());
                    }
                    (table, 0)
                }
            }
            Request::Health => {
                let sick: Vec<String> = self
                    .procs
                    .iter()
                    .filter(|p| !p.healthy())
                    .map(|p| format!("{}: {}\n", p.spec.name, p.state_name()))
                    .collect();
                if self.phase != Phase::Running {
                    ("shutting down\n".into(), 1)
                } else if matches!(self.mode, Mode::Run { .. }) && !self.configuring.configured {
                    ("configuring\n".into(), 1)
                } else if sick.is_empty() {
                    ("healthy\n".into(), 0)
                } else {
                    (sick.concat(), 1)
                }
            }
            // Answered when the worker has (see `on_readable`).
            Request::Reload => ("reloading\n".into(), 0),
            Request::Restart(name) | Request::Stop(name) | Request::Start(name)
                if find(&self.procs, &name).is_none() =>
            {
                (format!("launch: no process named {name:?}\n"), 1)
            }
            Request::Restart(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                self.log(format!("{name}: restart asked for"));
                self.restart(i);
                (format!("restarting {name}\n"), 0)
            }
            Request::Stop(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                self.log(format!("{name}: stop asked for"));
                self.stop(i, Then::Hold);
                (format!("stopping {name}\n"), 0)
            }
            Request::Start(name) => {
                let i = find(&self.procs, &name).unwrap_or(0);
                let p = &mut self.procs[i];
                if p.pid().is_some() {
                    return (format!("{name} is already running\n"), 0);
                }
                p.state = State::Waiting;
                p.attempt = 0;
                p.history = ExitHistory::default();
                self.log(format!("{name}: start asked for"));
                (format!("starting {name}\n"), 0)
            }
        }
    }

    fn status(&self) -> Vec<ProcessStatus> {
        self.procs
            .iter()
            .map(|p| ProcessStatus {
                name: p.spec.name.clone(),
                state: p.state_name().into(),
                pid: p.pid().map(Pid::as_raw),
                uptime_s: p.pid().and(p.started).map(|t| t.elapsed().as_secs()),
                restarts: p.restarts,
                last_exit: p.last_exit.map(|e| e.to_string()),
            })
            .collect()
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

/// Sets `extra` to run as the process's user (and group), with `HOME`, `USER` and
/// `LOGNAME` to match. The accounts are read afresh at every start: a copy from a minute
/// ago may lack a user a reload has added since, or still hold one removed.
fn run_as(spec: &Process, extra: &mut Extra) -> Result<(), UserError> {
    let Some(user) = &spec.user else {
        return Ok(());
    };
    let found = Accounts::read(std::path::Path::new("/"))?.resolve(user, spec.group.as_deref())?;
    extra
        .env
        .push(("HOME".into(), found.home.display().to_string()));
    extra.env.push(("USER".into(), found.name.clone()));
    extra.env.push(("LOGNAME".into(), found.name.clone()));
    extra.user = Some(Credentials {
        uid: found.uid,
        gid: found.gid,
        groups: std::iter::once(found.gid)
            .chain(found.groups.iter().copied())
            .collect(),
    });
    Ok(())
}

/// Sends `signo` to process `pid` and its group. Sent to the group alone, it would miss a
/// process that moved to another group (setpgid, setsid); sent to both, a process
/// still in its own group would get it twice.
fn signal_process(pid: Pid, signo: i32) {
    let _ = send(Pid::from_raw(-pid.as_raw()), signo);
    if nix::unistd::getpgid(Some(pid)).is_ok_and(|group| group != pid) {
        let _ = send(pid, signo);
    }
}

/// The index of a stream in the supervisor's per-output arrays.
fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
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
