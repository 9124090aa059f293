//! The state machine as tables: every event in every state, then the stories that
//! take several steps (crash loops, backoff, stops, max_age, readiness, oneshots).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::*;
use crate::config::spec::{Kind, Process, Ready, Restart};

const PID: Pid = Pid::from_raw(100);

/// A service with a TCP readiness check, a max_age and every other setting at its
/// default.
fn spec() -> Process {
    let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    Process {
        ready: Some(Ready {
            check: ReadyCheck::Tcp(address),
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
        }),
        max_age: Some(Duration::from_secs(3600)),
        ..Process::service("app", vec!["app".into()])
    }
}

fn run(now: Instant) -> Context {
    Context {
        now,
        plain: false,
        shutting_down: false,
    }
}

/// The process in the state the matrix's columns name, as of `t0`.
fn fixture(column: &str, t0: Instant) -> Managed {
    let mut p = Managed::new(spec(), 0);
    p.started = Some(t0);
    let readiness = Readiness {
        deadline: t0 + Duration::from_secs(60),
        next_try: t0,
        check_pid: None,
    };
    p.state = match column {
        "waiting" => State::Waiting,
        "starting" => {
            p.readiness = Some(readiness);
            State::Running { pid: PID }
        }
        "running" => {
            p.ready = true;
            State::Running { pid: PID }
        }
        "backoff" => State::Backoff {
            until: t0 + Duration::from_secs(1),
        },
        "stopping" => State::Stopping {
            pid: PID,
            kill_at: t0 + Duration::from_secs(5),
            then: Then::Rest,
        },
        "exited" => State::Exited(Exit::Code(0)),
        "failed" => State::Failed(Exit::Code(1)),
        "stopped" => State::Stopped,
        "held" => State::Held,
        _ => unreachable!("{column}"),
    };
    p
}

/// A state as the matrix writes it.
fn label(p: &Managed) -> &'static str {
    match p.state {
        State::Held => "held",
        _ => p.state_name(),
    }
}

/// Effects as the matrix writes them: their names, joined by `+`.
fn names(effects: &[Effect]) -> String {
    let name = |e: &Effect| match e {
        Effect::Spawn => "Spawn",
        Effect::Snapshot { .. } => "Snapshot",
        Effect::Signal { .. } => "Signal",
        Effect::KillSnapshot => "KillSnapshot",
        Effect::EndLeftovers { .. } => "EndLeftovers",
        Effect::CheckReady => "CheckReady",
        Effect::Log { .. } => "Log",
        Effect::Shutdown { .. } => "Shutdown",
        Effect::ExitLauncher { .. } => "ExitLauncher",
        Effect::Forget => "Forget",
    };
    effects.iter().map(name).collect::<Vec<_>>().join("+")
}

const COLUMNS: [&str; 9] = [
    "waiting", "starting", "running", "backoff", "stopping", "exited", "failed", "stopped", "held",
];

/// Every event in every state. A cell is the state that follows and the effects, or
/// `-`: nothing at all changes (the process is the same, field for field).
#[test]
fn every_event_in_every_state() {
    let stop = "stopping Snapshot+Signal+Signal+Log";
    let recycle = "stopping Log+Snapshot+Signal+Signal+Log";
    #[rustfmt::skip]
    let table: [(Event, [&str; 9]); 20] = [
        // event                          waiting            starting                  running           backoff    stopping                      exited     failed     stopped    held
        (Event::DepsSatisfied,            ["waiting Spawn",  "-",                      "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::Spawned { pid: PID },     ["starting Log",   "-",                      "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::SpawnFailed { code: 127, why: "no".into() },
                                          ["backoff Log+Log","-",                      "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::Exited(Exit::Code(1)),    ["-",              "backoff Log",            "backoff Log",    "-",       "stopped Log+EndLeftovers",   "-",       "-",       "-",       "-"]),
        (Event::ReadyCheckDue,            ["-",              "starting CheckReady",    "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::CheckSpawned { pid: PID },["-",              "starting",               "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::ReadyNotYet,              ["-",              "starting",               "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::CheckFailed,              ["-",              "-",                      "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::ReadyPassed,              ["-",              "running Log",            "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::ReadyTimedOut,            ["-",              "starting Log+Signal",     "-",              "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::MaxAgeReached,            ["-",              recycle,                  recycle,          "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::StopRequested(Then::Rest),["stopped",        stop,                     stop,             "stopped", "-",                          "stopped", "stopped", "-",       "stopped"]),
        (Event::StopRequested(Then::Hold),["held",           stop,                     stop,             "held",    "stopping",                   "held",    "held",    "held",    "-"]),
        (Event::StopRequested(Then::Restart),
                                          ["-",              stop,                     stop,             "waiting", "stopping",                   "waiting", "waiting", "waiting", "waiting"]),
        (Event::StopRequested(Then::Remove),
                                          ["stopped",        stop,                     stop,             "stopped", "stopping",                   "stopped", "stopped", "-",       "stopped"]),
        (Event::StartRequested,           ["-",              "-",                      "-",              "waiting", "-",                          "waiting", "waiting", "waiting", "waiting"]),
        (Event::Notified,                 ["-",              "stopping Log+Snapshot+Signal+Signal+Log",
                                                                                       "stopping Log+Snapshot+Signal+Signal+Log",
                                                                                                         "-",       "-",                          "-",       "-",       "-",       "-"]),
        (Event::KillDue,                  ["-",              "-",                      "-",              "-",       "stopping Log+Signal+KillSnapshot", "-", "-",       "-",       "-"]),
        (Event::BackoffDue,               ["-",              "-",                      "-",              "waiting", "-",                          "-",       "-",       "-",       "-"]),
        (Event::ShutdownBegan,            ["stopped",        "-",                      "-",              "stopped", "-",                          "-",       "-",       "-",       "-"]),
    ];
    let t0 = Instant::now();
    let now = t0 + Duration::from_secs(2);
    for (event, row) in table {
        for (column, want) in COLUMNS.into_iter().zip(row) {
            let mut p = fixture(column, t0);
            let before = format!("{p:?}");
            let effects = step(&mut p, event.clone(), run(now));
            let got = if format!("{p:?}") == before && effects.is_empty() {
                "-".to_string()
            } else if effects.is_empty() {
                label(&p).to_string()
            } else {
                format!("{} {}", label(&p), names(&effects))
            };
            assert_eq!(got, want, "{event:?} in {column}");
        }
    }
}

/// Starts `p` at `now` through the machine, as the executor would.
fn start(p: &mut Managed, pid: i32, now: Instant) {
    assert_eq!(step(p, Event::DepsSatisfied, run(now)), [Effect::Spawn]);
    let pid = Pid::from_raw(pid);
    step(p, Event::Spawned { pid }, run(now));
    assert_eq!(p.state, State::Running { pid });
}

fn messages(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_crash_loop_backs_off_doubling_then_gives_up() {
    for critical in [false, true] {
        let spec = Process {
            critical,
            ..Process::service("app", vec!["app".into()])
        };
        let mut p = Managed::new(spec, 0);
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for n in 1..=5 {
            start(&mut p, 100 + n, now);
            now += Duration::from_secs(1);
            let effects = step(&mut p, Event::Exited(Exit::Code(3)), run(now));
            match p.state {
                State::Backoff { until } => {
                    waits.push((until - now).as_millis());
                    assert_eq!(due(&p, run(until - Duration::from_millis(1))), None);
                    assert_eq!(due(&p, run(until)), Some(Event::BackoffDue));
                    now = until;
                    step(&mut p, Event::BackoffDue, run(now));
                }
                State::Failed(exit) => {
                    assert_eq!((n, exit), (5, Exit::Code(3)));
                    let said = messages(&effects);
                    assert_eq!(said, ["app exited 5 times within 1m: giving up"]);
                    let shutdown = effects.iter().any(|e| {
                        matches!(e, Effect::Shutdown { code: 3, why, .. } if why.contains("giving up"))
                    });
                    assert_eq!(
                        shutdown, critical,
                        "only a critical one stops the container"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [100, 200, 400, 800]);
        assert_eq!(p.restarts, 4);
    }
}

#[test]
fn exits_spread_beyond_the_window_are_no_loop_and_a_long_run_resets_the_backoff() {
    let mut p = Managed::new(Process::service("app", vec!["app".into()]), 0);
    let mut now = Instant::now();
    for n in 0..20 {
        start(&mut p, 100 + n, now);
        // Up for 20 s each time: under 5 exits in any 60 s, and past the backoff reset.
        now += Duration::from_secs(20);
        step(&mut p, Event::Exited(Exit::Code(1)), run(now));
        let State::Backoff { until } = p.state else {
            panic!("exit {n}: {:?}", p.state);
        };
        assert_eq!(until - now, policy::BACKOFF_MIN, "exit {n}");
        now = until;
        step(&mut p, Event::BackoffDue, run(now));
    }
}

#[test]
fn oneshots_finish_fail_or_are_optional() {
    // exit, optional => state, satisfies its dependents, stops the container
    #[rustfmt::skip]
    let table = [
        (Exit::Code(0), false, State::Exited(Exit::Code(0)), true,  false),
        (Exit::Code(2), false, State::Failed(Exit::Code(2)), false, true),
        (Exit::Code(2), true,  State::Failed(Exit::Code(2)), true,  false),
        (Exit::Signal(9), true, State::Failed(Exit::Signal(9)), true, false),
    ];
    for (exit, optional, state, satisfies, fatal) in table {
        let spec = Process {
            kind: Kind::Oneshot,
            restart: Restart::Never,
            optional,
            ..Process::service("migrate", vec!["migrate".into()])
        };
        let mut p = Managed::new(spec, 0);
        let now = Instant::now();
        start(&mut p, 100, now);
        assert!(!p.satisfies(), "a running oneshot satisfies nobody");
        let effects = step(&mut p, Event::Exited(exit), run(now));
        let row = (exit, optional);
        assert_eq!(p.state, state, "{row:?}");
        assert_eq!(p.satisfies(), satisfies, "{row:?}");
        let shutdown = effects.iter().find_map(|e| match e {
            Effect::Shutdown { code, .. } => Some(*code),
            _ => None,
        });
        assert_eq!(shutdown, fatal.then(|| exit.code()), "{row:?}");
    }
}

#[test]
fn a_critical_service_that_ends_for_good_stops_the_container_with_its_code() {
    let spec = Process {
        critical: true,
        restart: Restart::OnFailure,
        ..Process::service("app", vec!["app".into()])
    };
    let mut p = Managed::new(spec, 0);
    let now = Instant::now();
    start(&mut p, 100, now);
    let effects = step(&mut p, Event::Exited(Exit::Code(0)), run(now));
    assert_eq!(p.state, State::Exited(Exit::Code(0)));
    assert_eq!(
        effects.last(),
        Some(&Effect::Shutdown {
            code: 0,
            why: "app exited (exit code 0)".into(),
            reason: "app failed (exit code 0)".into()
        })
    );
}

#[test]
fn a_stop_signals_the_process_and_its_group_then_kills_then_ends_what_it_left() {
    let spec = Process {
        stop_signal: libc::SIGQUIT,
        stop_timeout: Duration::from_secs(3),
        ..Process::service("app", vec!["app".into()])
    };
    let mut p = Managed::new(spec, 0);
    let t0 = Instant::now();
    start(&mut p, 100, t0);
    let effects = step(&mut p, Event::StopRequested(Then::Restart), run(t0));
    let to_both = |signo| Effect::Signal {
        pid: PID,
        signo,
        reach: Reach::ProcessAndGroup,
    };
    assert_eq!(
        effects[..3],
        [
            Effect::Snapshot { pid: PID },
            to_both(libc::SIGQUIT),
            to_both(libc::SIGCONT)
        ]
    );
    let kill_at = t0 + Duration::from_secs(3);
    assert_eq!(deadline(&p, run(t0)), Some(kill_at));
    assert_eq!(due(&p, run(kill_at)), Some(Event::KillDue));
    let effects = step(&mut p, Event::KillDue, run(kill_at));
    assert_eq!(effects[1..], [to_both(libc::SIGKILL), Effect::KillSnapshot]);
    // Still not reaped: SIGKILL again a while later.
    assert_eq!(deadline(&p, run(kill_at)), Some(kill_at + KILL_WAIT));
    let end = kill_at + Duration::from_millis(10);
    let effects = step(&mut p, Event::Exited(Exit::Signal(9)), run(end));
    assert!(effects.contains(&Effect::EndLeftovers {
        pid: PID,
        kill_at: end + Duration::from_secs(3)
    }));
    // A restart asked for is no crash: no backoff, nothing counted.
    assert_eq!((p.state, p.attempt, p.restarts), (State::Waiting, 0, 0));
}

#[test]
fn a_removed_process_is_forgotten_once_it_has_stopped() {
    let mut p = Managed::new(Process::service("app", vec!["app".into()]), 0);
    let now = Instant::now();
    start(&mut p, 100, now);
    step(&mut p, Event::StopRequested(Then::Remove), run(now));
    let effects = step(&mut p, Event::Exited(Exit::Code(0)), run(now));
    assert_eq!(effects.last(), Some(&Effect::Forget));
    assert_eq!(names(&effects), "Log+EndLeftovers+Forget");
}

#[test]
fn max_age_recycles_a_service_gracefully_and_never_makes_a_crash_loop() {
    let spec = Process {
        max_age: Some(Duration::from_secs(1)),
        max_restarts: 2,
        ..Process::service("app", vec!["app".into()])
    };
    let mut p = Managed::new(spec, 0);
    let mut now = Instant::now();
    for n in 0..10 {
        start(&mut p, 100 + n, now);
        let age = now + Duration::from_secs(1);
        assert_eq!(deadline(&p, run(now)), Some(age));
        assert_eq!(due(&p, run(age - Duration::from_millis(1))), None);
        assert_eq!(due(&p, run(age)), Some(Event::MaxAgeReached));
        now = age;
        let effects = step(&mut p, Event::MaxAgeReached, run(now));
        assert_eq!(
            messages(&effects)[0],
            "app has run for its max_age (1s): restarting it"
        );
        assert!(matches!(
            p.state,
            State::Stopping {
                then: Then::Restart,
                ..
            }
        ));
        now += Duration::from_millis(50);
        step(&mut p, Event::Exited(Exit::Signal(15)), run(now));
        assert_eq!((p.state, p.restarts), (State::Waiting, 0), "recycle {n}");
    }
    // At shutdown, launch stops it anyway: no recycling then.
    start(&mut p, 200, now);
    let later = now + Duration::from_secs(5);
    let stopping = Context {
        shutting_down: true,
        ..run(later)
    };
    assert_eq!(due(&p, stopping), None);
    assert_eq!(deadline(&p, stopping), None);
    assert!(step(&mut p, Event::MaxAgeReached, stopping).is_empty());
}

#[test]
fn readiness_is_tried_at_each_interval_until_it_passes_or_times_out() {
    let mut p = Managed::new(spec(), 0);
    let t0 = Instant::now();
    start(&mut p, 100, t0);
    assert!(!p.ready);
    assert_eq!(due(&p, run(t0)), Some(Event::ReadyCheckDue));
    assert_eq!(
        step(&mut p, Event::ReadyCheckDue, run(t0)),
        [Effect::CheckReady]
    );
    step(&mut p, Event::ReadyNotYet, run(t0));
    let next = t0 + Duration::from_millis(200);
    assert_eq!(deadline(&p, run(t0)), Some(next));
    // A check command runs: nothing is tried until it ends, but the timeout holds.
    step(
        &mut p,
        Event::CheckSpawned {
            pid: Pid::from_raw(300),
        },
        run(next),
    );
    assert_eq!(due(&p, run(next + Duration::from_secs(1))), None);
    let timeout = t0 + Duration::from_secs(60);
    assert_eq!(deadline(&p, run(next)), Some(timeout));
    step(&mut p, Event::CheckFailed, run(next));
    assert_eq!(
        due(&p, run(next + Duration::from_millis(200))),
        Some(Event::ReadyCheckDue)
    );
    // Not ready by the timeout: killed, a failure that the exit then shows.
    assert_eq!(due(&p, run(timeout)), Some(Event::ReadyTimedOut));
    let effects = step(&mut p, Event::ReadyTimedOut, run(timeout));
    assert_eq!(
        messages(&effects),
        ["app is not ready after 1m: killing it (a failure)"]
    );
    assert!(effects.contains(&Effect::Signal {
        pid: PID,
        signo: libc::SIGKILL,
        reach: Reach::ProcessAndGroup
    }));
    assert!(step(&mut p, Event::ReadyPassed, run(timeout)).is_empty());
    step(&mut p, Event::Exited(Exit::Signal(9)), run(timeout));
    assert!(matches!(p.state, State::Backoff { .. }));
}

#[test]
fn a_notify_descriptor_is_waited_for_not_polled() {
    let spec = Process {
        ready: Some(Ready {
            check: ReadyCheck::NotifyFd(3),
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
        }),
        ..Process::service("app", vec!["app".into()])
    };
    let mut p = Managed::new(spec, 0);
    let t0 = Instant::now();
    start(&mut p, 100, t0);
    assert_eq!(due(&p, run(t0 + Duration::from_secs(1))), None);
    assert_eq!(deadline(&p, run(t0)), Some(t0 + Duration::from_secs(60)));
    step(&mut p, Event::ReadyPassed, run(t0));
    assert!(p.ready && p.satisfies());
    assert_eq!(
        deadline(&p, run(t0)),
        None,
        "an idle launch does not wake up"
    );
}

#[test]
fn a_template_change_sends_the_reload_signal_to_the_group() {
    let spec = Process {
        reload_signal: Some(libc::SIGHUP),
        ..Process::service("nginx", vec!["nginx".into()])
    };
    let mut p = Managed::new(spec, 0);
    let now = Instant::now();
    start(&mut p, 100, now);
    let effects = step(&mut p, Event::Notified, run(now));
    assert_eq!(
        effects[1],
        Effect::Signal {
            pid: PID,
            signo: libc::SIGHUP,
            reach: Reach::Group
        }
    );
    assert_eq!(p.state, State::Running { pid: PID });
}

#[test]
fn at_shutdown_nothing_starts_and_an_end_is_just_an_end() {
    let t0 = Instant::now();
    let stopping = Context {
        shutting_down: true,
        ..run(t0)
    };
    let mut p = fixture("waiting", t0);
    assert!(step(&mut p, Event::DepsSatisfied, stopping).is_empty());
    let mut p = fixture("running", t0);
    assert!(step(&mut p, Event::Exited(Exit::Code(1)), stopping).is_empty());
    assert_eq!(p.state, State::Exited(Exit::Code(1)));
    assert_eq!(p.restarts, 0);
}

#[test]
fn the_plain_init_command_ends_launch_and_says_so_only_when_asked() {
    let plain = Context {
        plain: true,
        ..run(Instant::now())
    };
    let mut p = Managed::new(Process::service("sleep", vec!["sleep".into()]), 0);
    let effects = step(&mut p, Event::Spawned { pid: PID }, plain);
    assert!(matches!(&effects[..], [Effect::Log { verbose: true, .. }]));
    let effects = step(&mut p, Event::Exited(Exit::Signal(15)), plain);
    assert_eq!(p.state, State::Exited(Exit::Signal(15)));
    assert!(matches!(
        &effects[..],
        [
            Effect::Log { verbose: true, .. },
            Effect::ExitLauncher {
                exit: Exit::Signal(15)
            }
        ]
    ));
}

/// For every state: what [`due`] says is due at the [`deadline`], and not before.
#[test]
fn each_deadline_is_when_its_event_is_due() {
    let t0 = Instant::now();
    for column in COLUMNS {
        let p = fixture(column, t0);
        let context = run(t0);
        match deadline(&p, context) {
            Some(at) => {
                if at > t0 {
                    let before = at - Duration::from_millis(1);
                    assert_eq!(due(&p, run(before)), None, "{column}");
                }
                assert!(due(&p, run(at)).is_some(), "{column}");
            }
            None => {
                let late = t0 + Duration::from_secs(86400 * 365);
                assert_eq!(due(&p, run(late)), None, "{column}");
            }
        }
    }
}
