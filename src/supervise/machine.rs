//! The process table's transitions, as one pure function: [`step`] takes a process, an
//! [`Event`] and the [`Context`] (the time, and where launch is in its life) and moves
//! the process to its next state, returning the [`Effect`]s that the executor
//! (`execute`) performs: signals, spawns, readiness checks, log lines. Nothing here
//! touches a process, a file or a clock; the decisions of [`policy`] are called from
//! here.
//!
//! No effect arms a timer: every deadline follows from a state ([`deadline`]), and
//! [`due`] says which event a deadline that has passed stands for. So the loop sleeps
//! until the nearest deadline of any process, and never polls.
//!
//! Where an effect's result matters, the executor feeds it back as an event: `Spawn`
//! comes back as `Spawned` or `SpawnFailed`, `CheckReady` as `ReadyPassed`,
//! `ReadyNotYet` or `CheckSpawned`.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::KILL_WAIT;
use super::policy::{self, AfterExit, ExitHistory};
use super::table::{Managed, Readiness, State, Then};
use crate::config::spec::ReadyCheck;
use crate::exit::Exit;
use crate::init::signals;

/// What happened to a process, or what is asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// Everything it depends on is satisfied: it may start.
    DepsSatisfied,
    /// It was started as `pid`.
    Spawned { pid: Pid },
    /// It could not be started: `why` is said, and it counts as an exit with `code`.
    SpawnFailed { code: i32, why: String },
    /// It was reaped.
    Exited(Exit),
    /// Its readiness is to be checked again.
    ReadyCheckDue,
    /// Its readiness check command runs as `pid`.
    CheckSpawned { pid: Pid },
    /// Its readiness check did not pass (or could not run).
    ReadyNotYet,
    /// Its readiness check command ended without passing.
    CheckFailed,
    /// It is ready (a check passed, or it wrote its line on the notify descriptor).
    ReadyPassed,
    /// It was not ready within its readiness timeout.
    ReadyTimedOut,
    /// It has run for its `max_age`.
    MaxAgeReached,
    /// Stop it, and then this.
    StopRequested(Then),
    /// `launch start NAME`.
    StartRequested,
    /// A template it uses has changed.
    Notified,
    /// Its stop timeout is over and it still runs.
    KillDue,
    /// Its backoff is over.
    BackoffDue,
    /// launch has begun to shut down.
    ShutdownBegan,
}

/// Who a signal reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// The process group alone (what the process asked for by staying in it).
    Group,
    /// The process and its group: a process that moved to another group still gets it.
    ProcessAndGroup,
}

/// What the executor is to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Effect {
    /// Start the process (its user, pipes, program); the result comes back as an event.
    Spawn,
    /// Note its descendants while it still runs (the parent links lead to them), so
    /// that what it leaves behind can be ended after it.
    Snapshot { pid: Pid },
    /// Send a signal.
    Signal { pid: Pid, signo: i32, reach: Reach },
    /// SIGKILL to what the snapshot holds.
    KillSnapshot,
    /// It has ended after a stop: what it left behind gets SIGTERM now, SIGKILL at
    /// `kill_at`.
    EndLeftovers { pid: Pid, kill_at: Instant },
    /// Check its readiness once; the result comes back as an event.
    CheckReady,
    /// Say something in launch's log (only with `-v` when `verbose`).
    Log { message: String, verbose: bool },
    /// Stop the container with this code.
    /// (`why` goes to the log now, `reason` to launch's last line.)
    Shutdown {
        code: i32,
        why: String,
        reason: String,
    },
    /// The command of `launch -- CMD` ended: launch ends, with its code.
    ExitLauncher { exit: Exit },
    /// Forget the process: it is no longer in the spec. Always the last effect.
    Forget,
}

/// What [`step`] needs to know besides the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Context {
    /// Now.
    pub(super) now: Instant,
    /// `launch -- CMD`: the one process's end is launch's.
    pub(super) plain: bool,
    /// launch is shutting down: nothing starts or restarts by itself.
    pub(super) shutting_down: bool,
}

/// Moves `p` on `event`; returns what is to be done, in order.
pub(super) fn step(p: &mut Managed, event: Event, at: Context) -> Vec<Effect> {
    let mut out = Vec::new();
    match event {
        Event::DepsSatisfied if p.state == State::Waiting && !at.shutting_down => {
            out.push(Effect::Spawn)
        }
        Event::Spawned { pid } if p.state == State::Waiting => spawned(p, pid, at, &mut out),
        Event::SpawnFailed { code, why } if p.state == State::Waiting => {
            out.push(log(why));
            p.started = Some(at.now);
            ended(p, Exit::Code(code), at, &mut out);
        }
        Event::Exited(exit) if p.pid().is_some() => ended(p, exit, at, &mut out),
        Event::ReadyCheckDue if checking(p).is_some_and(|r| r.check_pid.is_none()) => {
            out.push(Effect::CheckReady)
        }
        Event::CheckSpawned { pid } => retry(p, Some(pid), at),
        Event::ReadyNotYet => retry(p, None, at),
        Event::CheckFailed => {
            if let Some(r) = p.readiness.as_mut().filter(|_| !p.ready) {
                r.check_pid = None;
            }
        }
        Event::ReadyPassed if checking(p).is_some() => {
            p.ready = true;
            p.readiness = None;
            out.push(log(format!("{} is ready", p.spec.name)));
        }
        Event::ReadyTimedOut => timed_out(p, &mut out),
        Event::MaxAgeReached if recycle_at(p, at).is_some() => {
            let age = p.spec.max_age.map(crate::duration::format);
            out.push(log(format!(
                "{} has run for its max_age ({}): restarting it",
                p.spec.name,
                age.unwrap_or_default()
            )));
            stop(p, Then::Restart, at, &mut out);
        }
        Event::StopRequested(then) => stop(p, then, at, &mut out),
        Event::StartRequested if p.pid().is_none() => {
            p.state = State::Waiting;
            p.attempt = 0;
            p.history = ExitHistory::default();
        }
        Event::Notified => notified(p, at, &mut out),
        Event::KillDue => kill(p, at, &mut out),
        Event::BackoffDue if matches!(p.state, State::Backoff { .. }) => p.state = State::Waiting,
        Event::ShutdownBegan if matches!(p.state, State::Waiting | State::Backoff { .. }) => {
            p.state = State::Stopped
        }
        _ => {}
    }
    out
}

/// The event that a deadline of `p` passed by `at.now` stands for, if any.
pub(super) fn due(p: &Managed, at: Context) -> Option<Event> {
    match p.state {
        State::Backoff { until } if at.now >= until => Some(Event::BackoffDue),
        State::Stopping { kill_at, .. } if at.now >= kill_at => Some(Event::KillDue),
        State::Running { .. } => {
            let r = checking(p);
            if r.is_some_and(|r| at.now >= r.deadline) {
                Some(Event::ReadyTimedOut)
            } else if recycle_at(p, at).is_some_and(|t| at.now >= t) {
                Some(Event::MaxAgeReached)
            } else if next_try(p).is_some_and(|t| at.now >= t) {
                Some(Event::ReadyCheckDue)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The nearest deadline of `p`: when [`due`] will have an event for it.
pub(super) fn deadline(p: &Managed, at: Context) -> Option<Instant> {
    match p.state {
        State::Backoff { until } => Some(until),
        State::Stopping { kill_at, .. } => Some(kill_at),
        State::Running { .. } => [
            checking(p).map(|r| r.deadline),
            next_try(p),
            recycle_at(p, at),
        ]
        .into_iter()
        .flatten()
        .min(),
        _ => None,
    }
}

/// A log line.
fn log(message: String) -> Effect {
    Effect::Log {
        message,
        verbose: false,
    }
}

/// A log line for `-v` only.
fn verbose(message: String) -> Effect {
    Effect::Log {
        message,
        verbose: true,
    }
}

/// `signo` to the process and its group.
fn signal(pid: Pid, signo: i32) -> Effect {
    Effect::Signal {
        pid,
        signo,
        reach: Reach::ProcessAndGroup,
    }
}

/// The readiness check of a process that runs and is not ready yet.
fn checking(p: &Managed) -> Option<&Readiness> {
    match p.state {
        State::Running { .. } if !p.ready => p.readiness.as_ref(),
        _ => None,
    }
}

/// When its readiness is to be tried again: never while a check command runs, nor for
/// a notify descriptor (the process writes its line when it is ready).
fn next_try(p: &Managed) -> Option<Instant> {
    let polled = p
        .spec
        .ready
        .as_ref()
        .is_some_and(|r| !matches!(r.check, ReadyCheck::NotifyFd(_)));
    checking(p)
        .filter(|r| polled && r.check_pid.is_none())
        .map(|r| r.next_try)
}

/// When a running process is due to be recycled (its `max_age`); never at shutdown.
fn recycle_at(p: &Managed, at: Context) -> Option<Instant> {
    match (p.state, p.spec.max_age, p.started) {
        (State::Running { .. }, Some(age), Some(started)) if !at.shutting_down => {
            started.checked_add(age)
        }
        _ => None,
    }
}

fn spawned(p: &mut Managed, pid: Pid, at: Context, out: &mut Vec<Effect>) {
    p.state = State::Running { pid };
    p.started = Some(at.now);
    p.readiness = p.spec.ready.as_ref().map(|r| Readiness {
        deadline: at.now + r.timeout,
        next_try: at.now,
        check_pid: None,
    });
    p.ready = p.readiness.is_none();
    let message = format!("{} started (pid {pid})", p.spec.name);
    // The command of `launch -- CMD` is all there is: launch says nothing unasked.
    out.push(if at.plain {
        verbose(message)
    } else {
        log(message)
    });
}

/// A check that did not pass, or a check command that now runs: try again after the
/// interval.
fn retry(p: &mut Managed, check_pid: Option<Pid>, at: Context) {
    let interval = p.spec.ready.as_ref().map_or(Duration::ZERO, |r| r.interval);
    if checking(p).is_none() {
        return;
    }
    if let Some(r) = p.readiness.as_mut() {
        r.check_pid = check_pid;
        r.next_try = at.now + interval;
    }
}

fn timed_out(p: &mut Managed, out: &mut Vec<Effect>) {
    let State::Running { pid } = p.state else {
        return;
    };
    if checking(p).is_none() {
        return;
    }
    let timeout = p.spec.ready.as_ref().map_or(Duration::ZERO, |r| r.timeout);
    out.push(log(format!(
        "{} is not ready after {}: killing it (a failure)",
        p.spec.name,
        crate::duration::format(timeout)
    )));
    p.readiness = None;
    out.push(signal(pid, libc::SIGKILL));
}

/// Asks `p` to stop: its stop signal (and SIGCONT) to it and its group, SIGKILL after
/// its stop timeout; then `then`. One that does not run is at `then` at once.
fn stop(p: &mut Managed, then: Then, at: Context, out: &mut Vec<Effect>) {
    match p.state {
        State::Running { pid } => {
            let signo = p.spec.stop_signal;
            out.push(Effect::Snapshot { pid });
            out.push(signal(pid, signo));
            out.push(signal(pid, libc::SIGCONT));
            p.state = State::Stopping {
                pid,
                kill_at: at.now + p.spec.stop_timeout,
                then,
            };
            let name = &p.spec.name;
            out.push(verbose(format!(
                "stopping {name} ({})",
                signals::name(signo)
            )));
        }
        State::Stopping { pid, kill_at, .. } => p.state = State::Stopping { pid, kill_at, then },
        _ => rest(p, then),
    }
}

/// Where a stopped process goes.
fn rest(p: &mut Managed, then: Then) {
    p.state = match then {
        Then::Rest | Then::Remove => State::Stopped,
        Then::Hold => State::Held,
        Then::Restart => {
            p.attempt = 0;
            State::Waiting
        }
    };
}

/// A changed template: the reload signal to its group, or a restart.
fn notified(p: &mut Managed, at: Context, out: &mut Vec<Effect>) {
    let State::Running { pid } = p.state else {
        return;
    };
    let name = &p.spec.name;
    match p.spec.reload_signal {
        Some(signo) => {
            out.push(log(format!(
                "{name}: its configuration changed: sending {}",
                signals::name(signo)
            )));
            out.push(Effect::Signal {
                pid,
                signo,
                reach: Reach::Group,
            });
        }
        None => {
            out.push(log(format!(
                "{name}: its configuration changed: restarting it"
            )));
            stop(p, Then::Restart, at, out);
        }
    }
}

/// The stop timeout is over: SIGKILL to it, its group and its snapshot, and again
/// after a while should it still not be reaped.
fn kill(p: &mut Managed, at: Context, out: &mut Vec<Effect>) {
    let State::Stopping { pid, then, .. } = p.state else {
        return;
    };
    out.push(log(format!(
        "{} did not stop within {}: SIGKILL",
        p.spec.name,
        crate::duration::format(p.spec.stop_timeout)
    )));
    out.push(signal(pid, libc::SIGKILL));
    out.push(Effect::KillSnapshot);
    p.state = State::Stopping {
        pid,
        kill_at: at.now + KILL_WAIT,
        then,
    };
}

/// `p` ended with `exit` (reaped, or it could not start).
fn ended(p: &mut Managed, exit: Exit, at: Context, out: &mut Vec<Effect>) {
    p.ready = false;
    p.readiness = None;
    p.last_exit = Some(exit);
    let name = &p.spec.name;
    match p.state {
        State::Stopping { pid, then, .. } => {
            out.push(verbose(format!("{name} stopped: {exit}")));
            out.push(Effect::EndLeftovers {
                pid,
                kill_at: at.now + p.spec.stop_timeout,
            });
            rest(p, then);
            if then == Then::Remove {
                out.push(Effect::Forget);
            }
        }
        _ if at.plain => {
            out.push(verbose(format!("{name} ended: {exit}")));
            p.state = State::Exited(exit);
            out.push(Effect::ExitLauncher { exit });
        }
        _ if at.shutting_down => p.state = State::Exited(exit),
        _ => on_its_own(p, exit, at, out),
    }
}

/// A process of `launch run` ended on its own: finished, restarted after a backoff,
/// or given up (which stops launch when it is fatal).
fn on_its_own(p: &mut Managed, exit: Exit, at: Context, out: &mut Vec<Effect>) {
    let now = at.now;
    if p.started
        .is_some_and(|t| now.duration_since(t) >= policy::BACKOFF_RESET)
    {
        p.attempt = 0;
    }
    let looping = p
        .history
        .record(now, p.spec.max_restarts, p.spec.restart_window);
    let name = &p.spec.name;
    match policy::after_exit(&p.spec, exit, looping) {
        AfterExit::Finished => {
            p.state = State::Exited(exit);
            out.push(log(format!("{name} finished")));
        }
        AfterExit::Restart => {
            p.attempt += 1;
            p.restarts += 1;
            let wait = policy::backoff(p.attempt);
            p.state = State::Backoff { until: now + wait };
            out.push(log(format!(
                "{name} exited ({exit}); restarting in {}",
                crate::duration::format(wait)
            )));
        }
        AfterExit::Rest { failed, fatal } => {
            p.state = if failed {
                State::Failed(exit)
            } else {
                State::Exited(exit)
            };
            let window = crate::duration::format(p.spec.restart_window);
            let exits = |one, many| crate::plural::count(p.spec.max_restarts as usize, one, many);
            let (why, reason) = if looping {
                (
                    format!(
                        "{name} exited {} within {window}: giving up",
                        exits("time", "times")
                    ),
                    format!(
                        "{name} failed (crash loop: {} within {window})",
                        exits("exit", "exits")
                    ),
                )
            } else {
                (
                    format!("{name} exited ({exit})"),
                    format!("{name} failed ({exit})"),
                )
            };
            out.push(log(why.clone()));
            if fatal {
                out.push(Effect::Shutdown {
                    code: exit.code(),
                    why,
                    reason,
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
