//! The pure decisions of supervision, kept apart from the loop so that they can be
//! tested as tables: whether an exit is restarted, how long to back off, when a crash
//! loop gives up, and in which order processes start and stop.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::spec::{Kind, Process, Restart, order};
use crate::exit::Exit;

/// The first restart waits this long; each further one twice as long...
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that stayed up this long starts its backoff from the beginning again.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Whether a process that ended on its own is started again.
pub fn restarts(policy: Restart, exit: Exit) -> bool {
    match policy {
        Restart::Always => true,
        Restart::OnFailure => !exit.success(),
        Restart::Never => false,
    }
}

/// What follows the end of a process that ended on its own while launch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// A oneshot that succeeded: done.
    Finished,
    /// Started again after a backoff.
    Restart,
    /// Not started again: `failed` marks it failed (a crash loop, a failed oneshot)
    /// rather than exited, and `fatal` stops launch.
    Rest {
        /// Failed, rather than exited.
        failed: bool,
        /// The container stops.
        fatal: bool,
    },
}

/// What follows an `exit` of `process`; `looping` says its exits make a crash loop.
pub fn after_exit(process: &Process, exit: Exit, looping: bool) -> AfterExit {
    let oneshot = process.kind == Kind::Oneshot;
    if oneshot && exit.success() {
        return AfterExit::Finished;
    }
    if restarts(process.restart, exit) && !looping {
        return AfterExit::Restart;
    }
    AfterExit::Rest {
        failed: looping || oneshot,
        fatal: process.critical || (oneshot && !process.optional),
    }
}

/// The wait before restart number `attempt` (1-based): 100 ms, 200 ms, 400 ms, ... 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (BACKOFF_MIN * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// Remembers recent exits to tell a crash loop.
#[derive(Debug, Clone, Default)]
pub struct ExitHistory {
    recent: VecDeque<Instant>,
}

impl ExitHistory {
    /// Records an exit at `now`; true when there were `max` exits within `window`.
    pub fn record(&mut self, now: Instant, max: u32, window: Duration) -> bool {
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
        max > 0 && self.recent.len() >= max as usize
    }
}

/// Each process's level: 0 for no dependencies, else one more than its deepest
/// dependency. Processes start level by level and stop in reverse. The walk is the
/// spec's own ([`order::levels`]), which has already refused cycles; should one reach
/// here, every process is level 0.
pub fn levels(processes: &[Process]) -> BTreeMap<String, usize> {
    order::levels(processes)
        .unwrap_or_else(|_| processes.iter().map(|p| (p.name.clone(), 0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_matrix() {
        let ok = Exit::Code(0);
        let failed = Exit::Code(1);
        let killed = Exit::Signal(9);
        let table = [
            (Restart::Always, [true, true, true]),
            (Restart::OnFailure, [false, true, true]),
            (Restart::Never, [false, false, false]),
        ];
        for (policy, expected) in table {
            for (exit, want) in [ok, failed, killed].into_iter().zip(expected) {
                assert_eq!(restarts(policy, exit), want, "{policy:?} {exit:?}");
            }
        }
    }

    #[test]
    fn what_follows_an_exit() {
        use AfterExit::{Finished, Rest, Restart as Again};
        use Kind::{Oneshot, Service};
        use Restart::{Always, Never, OnFailure};
        let (ok, bad) = (Exit::Code(0), Exit::Code(1));
        let rest = |failed, fatal| Rest { failed, fatal };
        // kind, restart, critical, optional, exit, looping => what follows
        #[rustfmt::skip]
        let table = [
            (Oneshot, Never,     false, false, ok,  false, Finished),
            (Oneshot, Never,     false, false, ok,  true,  Finished),
            (Oneshot, Never,     false, false, bad, false, rest(true, true)),
            (Oneshot, Never,     false, true,  bad, false, rest(true, false)),
            (Oneshot, OnFailure, false, true,  bad, false, Again),
            (Oneshot, OnFailure, false, true,  bad, true,  rest(true, false)),
            (Service, Always,    false, false, ok,  false, Again),
            (Service, Always,    false, false, bad, true,  rest(true, false)),
            (Service, Always,    true,  false, bad, true,  rest(true, true)),
            (Service, OnFailure, false, false, ok,  false, rest(false, false)),
            (Service, OnFailure, true,  false, ok,  false, rest(false, true)),
            (Service, Never,     false, false, bad, false, rest(false, false)),
            (Service, Never,     true,  false, bad, false, rest(false, true)),
        ];
        for (kind, restart, critical, optional, exit, looping, want) in table {
            let p = Process {
                kind,
                restart,
                critical,
                optional,
                ..Process::service("p", vec!["true".into()])
            };
            let row = (kind, restart, critical, optional, exit, looping);
            assert_eq!(after_exit(&p, exit, looping), want, "{row:?}");
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let waits: Vec<u128> = (1..=12).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            waits,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn crash_loop_is_five_exits_in_the_window() {
        let mut h = ExitHistory::default();
        let t = Instant::now();
        let window = Duration::from_secs(60);
        for i in 0..4 {
            assert!(!h.record(t + Duration::from_secs(i), 5, window));
        }
        assert!(h.record(t + Duration::from_secs(4), 5, window));
        let mut slow = ExitHistory::default();
        for i in 0..10 {
            assert!(
                !slow.record(t + Duration::from_secs(i * 20), 5, window),
                "spread out: no loop"
            );
        }
    }

    fn proc(name: &str, deps: &[&str]) -> Process {
        Process {
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            ..Process::service(name, vec!["true".into()])
        }
    }

    #[test]
    fn levels_follow_the_deepest_dependency() {
        let ps = [
            proc("web", &["app", "cache"]),
            proc("app", &["db"]),
            proc("db", &[]),
            proc("cache", &[]),
        ];
        let l = levels(&ps);
        assert_eq!((l["db"], l["cache"], l["app"], l["web"]), (0, 0, 1, 2));
    }
}
