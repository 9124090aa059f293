//! A reload is a transaction: the processes it touched (restarted, signalled, added)
//! must come back ready, or the previous files and spec are put back. The decisions,
//! as pure functions of the specs and of what the process table shows at each turn of
//! the loop, tested as tables: which processes a reload touches ([`touched`]), how long
//! it may take ([`deadline`]), and whether it is done, still pending or to be rolled
//! back ([`Watch::verdict`]). The supervisor acts on them in `reload`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::config::spec::Process;
use crate::exit::Exit;

/// How long a touched process must stay up once it is ready before the reload counts as
/// done: an app that cannot bind its port may pass a TCP check against the process that
/// holds it, and crash a moment later; one without a check is ready at once.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

/// Time on top of the slowest touched process's stop and readiness timeouts before a
/// reload that is still not done is rolled back (starting takes time too).
const SLACK: Duration = Duration::from_secs(5);

/// What a reload does to the processes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Touched {
    /// New in the spec.
    pub(super) started: Vec<String>,
    /// Changed in the spec, or their templates changed and they have no reload signal.
    pub(super) restarted: Vec<String>,
    /// Their templates changed: sent their reload signal.
    pub(super) signalled: Vec<(String, String)>,
    /// No longer in the spec.
    pub(super) stopped: Vec<String>,
}

impl Touched {
    /// The processes that must come back ready.
    pub(super) fn watched(&self) -> BTreeSet<String> {
        self.started
            .iter()
            .chain(&self.restarted)
            .chain(self.signalled.iter().map(|(name, _)| name))
            .cloned()
            .collect()
    }

    /// In words, one line per kind: `restarted app, worker`.
    pub(super) fn lines(&self) -> Vec<String> {
        let signalled: Vec<String> = self
            .signalled
            .iter()
            .map(|(name, signal)| format!("{name} ({signal})"))
            .collect();
        [
            ("restarted", &self.restarted),
            ("signalled", &signalled),
            ("started", &self.started),
            ("stopped", &self.stopped),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{what} {}", names.join(", ")))
        .collect()
    }
}

/// What adopting `new` after `old` does, with `notify` the processes whose templates
/// changed: the same comparison the supervisor makes when it adopts a spec (a process
/// whose line in launch.yml moved, or whose output gets prefixed now, is the same).
pub(super) fn touched(old: &[Process], new: &[Process], notify: &BTreeSet<String>) -> Touched {
    let mut out = Touched::default();
    for process in new {
        match old.iter().find(|p| p.name == process.name) {
            None => out.started.push(process.name.clone()),
            Some(before) => {
                let mut before = before.clone();
                before.line = process.line;
                before.log_prefix = process.log_prefix;
                if before != *process {
                    out.restarted.push(process.name.clone());
                } else if notify.contains(&process.name) {
                    match process.reload_signal {
                        Some(signo) => out.signalled.push((
                            process.name.clone(),
                            crate::init::signals::name(signo).to_string(),
                        )),
                        None => out.restarted.push(process.name.clone()),
                    }
                }
            }
        }
    }
    out.stopped = old
        .iter()
        .filter(|p| !new.iter().any(|n| n.name == p.name))
        .map(|p| p.name.clone())
        .collect();
    out
}

/// When a reload that began at `now` and touched `watched` is rolled back if it is not
/// done: the slowest one's stop and readiness timeouts, the settling time and some slack.
pub(super) fn deadline(now: Instant, watched: &[&Process]) -> Instant {
    let slowest = watched
        .iter()
        .map(|p| p.stop_timeout + p.ready.as_ref().map_or(Duration::ZERO, |r| r.timeout))
        .max()
        .unwrap_or(Duration::ZERO);
    now + slowest + SETTLE + SLACK
}

/// A touched process as the process table shows it at one turn of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// It runs; `ready` once its check passed.
    Up {
        /// Its pid (a new pid is a new start).
        pid: i32,
        /// Passed its readiness check.
        ready: bool,
    },
    /// On its way: waiting for its turn or its dependencies, or stopping to restart.
    Between,
    /// Ended on its own: in a backoff, exited or failed.
    Down {
        /// When it was last started.
        started: Option<Instant>,
        /// How it last ended.
        exit: Option<Exit>,
    },
    /// Nothing more to wait for: a oneshot that finished, stopped on request, gone.
    Done,
}

/// Why a reload is rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cause {
    /// A touched process ended.
    Exited {
        /// Which.
        name: String,
        /// How, when known.
        exit: Option<Exit>,
    },
    /// These were not up and ready for [`SETTLE`] by the deadline.
    NotReady {
        /// Which.
        names: Vec<String>,
        /// The time they had.
        within: Duration,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Exited {
                name,
                exit: Some(exit),
            } => write!(f, "{name} exited ({exit})"),
            Cause::Exited { name, exit: None } => write!(f, "{name} exited"),
            Cause::NotReady { names, within } => write!(
                f,
                "{} {} not ready within {}",
                names.join(", "),
                if names.len() == 1 { "was" } else { "were" },
                crate::duration::format(*within)
            ),
        }
    }
}

/// What a pending reload comes to at one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not yet known.
    Wait,
    /// Every touched process is up, ready and settled.
    Commit,
    /// Put the previous configuration back.
    Rollback(Cause),
}

/// What a pending reload remembers of each touched process between turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    /// It ran when the reload began: going down from here is the reload's doing.
    up_at_start: bool,
    /// Since when it has been up and ready, and as which pid.
    ready_since: Option<(i32, Instant)>,
}

/// A pending reload, watching the processes it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Watch {
    since: Instant,
    deadline: Instant,
    procs: BTreeMap<String, Memory>,
    /// An end the supervisor reported as it happened (one that would have stopped the
    /// container).
    ended: Option<(String, Exit)>,
}

impl Watch {
    /// Watches `start`: each touched process and how it was when the reload began
    /// (before its new spec was adopted; [`Seen::Done`] for a new one).
    pub(super) fn new(since: Instant, deadline: Instant, start: &[(String, Seen)]) -> Watch {
        let procs = start
            .iter()
            .map(|(name, seen)| {
                let memory = Memory {
                    up_at_start: matches!(seen, Seen::Up { .. }),
                    ready_since: None,
                };
                (name.clone(), memory)
            })
            .collect();
        Watch {
            since,
            deadline,
            procs,
            ended: None,
        }
    }

    /// True when `name` is one of the processes watched.
    pub(super) fn watches(&self, name: &str) -> bool {
        self.procs.contains_key(name)
    }

    /// The processes watched.
    pub(super) fn names(&self) -> impl Iterator<Item = &String> {
        self.procs.keys()
    }

    /// When the reload began.
    pub(super) fn since(&self) -> Instant {
        self.since
    }

    /// When it is rolled back if it is not done.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `name` ended with `exit` in a way that would have stopped the container: the
    /// reload is rolled back instead. False when `name` is not watched.
    pub(super) fn ended(&mut self, name: &str, exit: Exit) -> bool {
        if !self.watches(name) {
            return false;
        }
        self.ended.get_or_insert((name.to_string(), exit));
        true
    }

    /// The next time the verdict may change without anything else happening: a
    /// settling time that ends, or the deadline.
    pub(super) fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.procs
            .values()
            .filter_map(|m| m.ready_since.map(|(_, t)| t + SETTLE))
            .filter(|t| *t > now)
            .chain(Some(self.deadline))
            .min()
    }

    /// The verdict at `now`, `seen` being every watched process as the table shows it
    /// (one missing from it is gone: done).
    pub(super) fn verdict(&mut self, seen: &[(String, Seen)], now: Instant) -> Verdict {
        if let Some((name, exit)) = &self.ended {
            return Verdict::Rollback(Cause::Exited {
                name: name.clone(),
                exit: Some(*exit),
            });
        }
        let seen_of = |name: &str| {
            seen.iter()
                .find(|(n, _)| n == name)
                .map_or(Seen::Done, |(_, s)| *s)
        };
        let mut waiting = Vec::new();
        for (name, memory) in &mut self.procs {
            let now_seen = seen_of(name);
            if let Seen::Down { started, exit } = now_seen {
                // Down since before the reload (a backoff it started from): not yet.
                if memory.up_at_start || started.is_some_and(|t| t >= self.since) {
                    return Verdict::Rollback(Cause::Exited {
                        name: name.clone(),
                        exit,
                    });
                }
            }
            memory.ready_since = match (now_seen, memory.ready_since) {
                (Seen::Up { pid, ready: true }, Some((was, t))) if was == pid => Some((pid, t)),
                (Seen::Up { pid, ready: true }, _) => Some((pid, now)),
                _ => None,
            };
            let settled = match now_seen {
                Seen::Done => true,
                Seen::Up { .. } => memory.ready_since.is_some_and(|(_, t)| now >= t + SETTLE),
                _ => false,
            };
            if !settled {
                waiting.push(name.clone());
            }
        }
        if waiting.is_empty() {
            Verdict::Commit
        } else if now >= self.deadline {
            Verdict::Rollback(Cause::NotReady {
                names: waiting,
                within: self.deadline.saturating_duration_since(self.since),
            })
        } else {
            Verdict::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::{Ready, ReadyCheck};

    fn proc(name: &str) -> Process {
        Process::service(name, vec!["app".into()])
    }

    #[test]
    fn what_a_reload_touches() {
        let signalled = Process {
            reload_signal: Some(libc::SIGHUP),
            ..proc("web")
        };
        let changed = Process {
            env: [("A".to_string(), "1".to_string())].into(),
            ..proc("worker")
        };
        let moved = Process {
            line: 40,
            log_prefix: true,
            ..proc("bystander")
        };
        let old = [
            proc("app"),
            signalled.clone(),
            proc("worker"),
            proc("bystander"),
            proc("gone"),
        ];
        let new = [proc("app"), signalled, changed, moved, proc("extra")];
        let notify: BTreeSet<String> = ["app", "web", "bystander-not-changed"]
            .map(String::from)
            .into();
        let t = touched(&old, &new, &notify);
        assert_eq!(t.restarted, ["app", "worker"]);
        assert_eq!(t.signalled, [("web".to_string(), "SIGHUP".to_string())]);
        assert_eq!(t.started, ["extra"]);
        assert_eq!(t.stopped, ["gone"]);
        let watched: Vec<String> = t.watched().into_iter().collect();
        assert_eq!(watched, ["app", "extra", "web", "worker"]);
        assert_eq!(
            t.lines(),
            [
                "restarted app, worker",
                "signalled web (SIGHUP)",
                "started extra",
                "stopped gone"
            ]
        );
        assert_eq!(touched(&old, &old, &BTreeSet::new()), Touched::default());
    }

    #[test]
    fn the_deadline_follows_the_slowest_process() {
        let now = Instant::now();
        let slow = Process {
            ready: Some(Ready {
                check: ReadyCheck::File("/x".into()),
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(60),
            }),
            ..proc("slow")
        };
        let quick = proc("quick");
        assert_eq!(
            deadline(now, &[&quick]),
            now + Duration::from_secs(5) + SETTLE + SLACK
        );
        assert_eq!(
            deadline(now, &[&quick, &slow]),
            now + Duration::from_secs(65) + SETTLE + SLACK
        );
        assert_eq!(deadline(now, &[]), now + SETTLE + SLACK);
    }

    const UP: Seen = Seen::Up {
        pid: 10,
        ready: true,
    };
    const STARTING: Seen = Seen::Up {
        pid: 10,
        ready: false,
    };

    fn down(started: Option<Instant>) -> Seen {
        Seen::Down {
            started,
            exit: Some(Exit::Code(1)),
        }
    }

    /// A reload of one process, "app", that was `at_start` when it began: at each of
    /// `turns` (seconds after the start, what the table shows), the verdict.
    fn run(at_start: Seen, turns: &[(f64, Seen)]) -> Vec<Verdict> {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut watch = Watch::new(t0, at(10.0), &[("app".into(), at_start)]);
        turns
            .iter()
            .map(|(s, seen)| watch.verdict(&[("app".into(), *seen)], at(*s)))
            .collect()
    }

    #[test]
    fn verdicts_as_the_table_changes() {
        use Verdict::{Commit, Wait};
        let t0 = Instant::now();
        let exited = || {
            Verdict::Rollback(Cause::Exited {
                name: "app".into(),
                exit: Some(Exit::Code(1)),
            })
        };
        let late = || {
            Verdict::Rollback(Cause::NotReady {
                names: vec!["app".into()],
                within: Duration::from_secs(10),
            })
        };
        let restarted = Seen::Up {
            pid: 11,
            ready: true,
        };
        let later = Some(t0 + Duration::from_secs(1));
        #[rustfmt::skip]
        type Turns = Vec<(f64, Seen)>;
        let table: Vec<(&str, Seen, Turns, Vec<Verdict>)> = vec![
            (
                "restarted, ready, settles",
                UP,
                vec![
                    (0.0, Seen::Between),
                    (0.5, STARTING),
                    (1.0, UP),
                    (1.5, UP),
                    (2.0, UP),
                ],
                vec![Wait, Wait, Wait, Wait, Commit],
            ),
            (
                "signalled, stays up",
                UP,
                vec![(0.0, UP), (0.9, UP), (1.0, UP)],
                vec![Wait, Wait, Commit],
            ),
            (
                "ready, then crashes within the settling time",
                UP,
                vec![(0.0, UP), (0.5, down(later))],
                vec![Wait, exited()],
            ),
            (
                "a new pid starts its settling again",
                UP,
                vec![
                    (0.0, UP),
                    (0.9, restarted),
                    (1.5, restarted),
                    (1.9, restarted),
                ],
                vec![Wait, Wait, Wait, Commit],
            ),
            (
                "never ready: rolled back at the deadline",
                UP,
                vec![(0.0, STARTING), (9.9, STARTING), (10.0, STARTING)],
                vec![Wait, Wait, late()],
            ),
            (
                "crash-looping before the reload: waits for its next start",
                down(None),
                vec![
                    (0.0, down(None)),
                    (0.5, Seen::Between),
                    (0.6, UP),
                    (1.6, UP),
                ],
                vec![Wait, Wait, Wait, Commit],
            ),
            (
                "crash-looping before, crashes again after its start",
                down(None),
                vec![(0.0, down(None)), (1.0, down(later))],
                vec![Wait, exited()],
            ),
            (
                "a new process that cannot start",
                Seen::Done,
                vec![(0.0, Seen::Between), (0.1, down(later))],
                vec![Wait, exited()],
            ),
            (
                "stopped on request, or removed: nothing to wait for",
                UP,
                vec![(0.0, Seen::Done)],
                vec![Commit],
            ),
        ];
        for (what, at_start, turns, want) in table {
            assert_eq!(run(at_start, &turns), want, "{what}");
        }
    }

    #[test]
    fn an_end_reported_at_once_rolls_back_and_only_for_a_watched_process() {
        let t0 = Instant::now();
        let mut watch = Watch::new(t0, t0 + Duration::from_secs(10), &[("app".into(), UP)]);
        assert!(!watch.ended("other", Exit::Code(3)));
        assert_eq!(watch.verdict(&[("app".into(), UP)], t0), Verdict::Wait);
        assert!(watch.ended("app", Exit::Signal(9)));
        assert_eq!(
            watch.verdict(&[("app".into(), UP)], t0),
            Verdict::Rollback(Cause::Exited {
                name: "app".into(),
                exit: Some(Exit::Signal(9))
            })
        );
    }

    #[test]
    fn it_wakes_when_a_settling_time_ends_or_at_the_deadline() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(10);
        let mut watch = Watch::new(t0, deadline, &[("app".into(), UP)]);
        assert_eq!(watch.next_wake(t0), Some(deadline));
        watch.verdict(&[("app".into(), UP)], t0);
        assert_eq!(watch.next_wake(t0), Some(t0 + SETTLE));
        assert_eq!(watch.next_wake(t0 + SETTLE), Some(deadline));
    }

    #[test]
    fn causes_in_words() {
        let exited = Cause::Exited {
            name: "app".into(),
            exit: Some(Exit::Code(1)),
        };
        assert_eq!(exited.to_string(), "app exited (exit code 1)");
        let late = Cause::NotReady {
            names: vec!["app".into(), "web".into()],
            within: Duration::from_secs(12),
        };
        assert_eq!(late.to_string(), "app, web were not ready within 12s");
    }
}
