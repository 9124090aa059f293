//! `max_age:` with launch as PID 1: a service that has run that long is stopped
//! gracefully and started again, as often as it comes round, without ever counting as
//! a crash.

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;
use support::{Launched, Mode, wait_until};

/// `launch run` as PID 1 on the project, with its control socket inside the project.
fn start(p: &Project) -> Launched {
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

/// A control command against the project's launch: its exit code and output.
fn control(p: &Project, args: &[&str]) -> (i32, String) {
    let out = Command::new(support::launch_bin())
        .args(args)
        .env("LAUNCH_CONTROL", p.path("control.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_service_past_its_max_age_is_recycled_gracefully_and_the_container_stays_healthy() {
    let p = Project::new("max-age");
    let events = p.path("out/events");
    // The app says when it starts and when it is asked to stop. Fewer restarts in the
    // window than it will be recycled: a recycle that counted as a crash would give up.
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n  app:\n    command: \"trap 'echo term $$ >> {e}; exit 0' TERM; echo start $$ >> {e}; sleep 1000 & wait\"\n    max_age: 1s\n    max_restarts: 2\n    critical: true\n  db:\n    command: \"exec sleep 1000\"\n",
            e = events.display()
        ),
    );
    let mut launch = start(&p);
    let log = wait_until(Duration::from_secs(20), || {
        let text = fs::read_to_string(&events).unwrap_or_default();
        (text.matches("start").count() >= 4).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "app was not recycled 3 times:\n{}\n{}",
            fs::read_to_string(&events).unwrap_or_default(),
            launch.stderr.text()
        )
    });
    let lines: Vec<(&str, &str)> = log
        .lines()
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    // start A, term A, start B, term B, ...: each one stopped by its stop signal
    // before the next, and each a new process.
    for (n, pair) in lines.chunks(2).take(3).enumerate() {
        let [start, term] = pair else {
            panic!("{log}");
        };
        assert_eq!((start.0, term.0), ("start", "term"), "{log}");
        assert_eq!(start.1, term.1, "recycle {n}: {log}");
        assert_ne!(
            lines[2 * n + 2].1,
            start.1,
            "recycle {n}: the pid changed: {log}"
        );
    }
    launch.expect_log("app has run for its max_age (1s): restarting it");
    assert!(launch.running(), "{}", launch.stderr.text());
    let healthy = wait_until(Duration::from_secs(10), || {
        (control(&p, &["health"]) == (0, "healthy\n".to_string())).then_some(())
    });
    assert!(healthy.is_some(), "{}", launch.stderr.text());
    // Not a crash: nothing counted, nothing given up.
    let (_, json) = control(&p, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["processes"][0]["name"], "app", "{json}");
    assert_eq!(status["processes"][0]["restarts"], 0, "{json}");
    let text = launch.stderr.text();
    assert!(!text.contains("giving up"), "{text}");
    assert!(!text.contains("restarting in"), "no backoff: {text}");
    assert!(
        text.contains("db started") && text.matches("db started").count() == 1,
        "the others are left alone: {text}"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}
