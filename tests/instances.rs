//! `instances: N`: N copies of one process under `launch run` as PID 1, each supervised
//! as any process, each knowing its number; a dependent waits for all of them, and the
//! control commands that name the process act on every copy.

mod support;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use support::project::Project;
use support::{Launched, Mode, wait_until};

fn socket(p: &Project) -> String {
    p.path("control/launch.sock").display().to_string()
}

fn start(p: &Project) -> Launched {
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", socket(p))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

fn control(p: &Project, args: &[&str]) -> (i32, String) {
    let out = support::ask(socket(p), args);
    (out.status.code().unwrap_or(-1), support::output_text(&out))
}

/// The pid of each process named in `launch status --json`, by name.
fn pids(p: &Project) -> Vec<(String, i64)> {
    let (_, text) = control(p, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    status["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["pid"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn copies_run_with_their_number_a_dependent_waits_for_all_and_restart_takes_all() {
    let p = Project::new("instances");
    let out = p.out();
    // Copy i is ready after i * 300 ms; `after` records which copies were ready when it
    // started.
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n\
             \x20 web:\n\
             \x20   command: \"echo $LAUNCH_INSTANCE >> {out}/started; sleep 0.$((LAUNCH_INSTANCE * 3)); touch {out}/ready.$LAUNCH_INSTANCE; echo ready >&3; exec sleep 1000\"\n\
             \x20   instances: 3\n\
             \x20   ready: {{notify_fd: 3}}\n\
             \x20 after:\n\
             \x20   command: \"ls {out} > {out}/seen-by-after; exec sleep 1000\"\n\
             \x20   depends_on: [web]\n"
        ),
    );
    let mut launch = start(&p);
    let seen = wait_until(Duration::from_secs(15), || {
        fs::read_to_string(p.path("out/seen-by-after"))
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| panic!("after never started:\n{}", launch.stderr.text()));
    for i in 1..=3 {
        assert!(
            seen.contains(&format!("ready.{i}")),
            "after started before web.{i} was ready: {seen}"
        );
    }
    let mut started: Vec<String> = fs::read_to_string(p.path("out/started"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    started.sort();
    assert_eq!(started, ["1", "2", "3"]);

    let before = pids(&p);
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["web.1", "web.2", "web.3", "after"]);
    assert!(before.iter().all(|(_, pid)| *pid > 0), "{before:?}");

    let (code, said) = control(&p, &["restart", "web"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        said,
        "restarting web.1\nrestarting web.2\nrestarting web.3\n"
    );
    let restarted = wait_until(Duration::from_secs(15), || {
        let now = pids(&p);
        let web_all_new = now
            .iter()
            .zip(&before)
            .all(|((n, pid), (_, old))| *pid > 0 && (n == "after") == (pid == old));
        (now.len() == 4 && web_all_new).then_some(now)
    });
    assert!(restarted.is_some(), "{}", launch.stderr.text());
    let (code, said) = control(&p, &["restart", "web.2"]);
    assert_eq!((code, said.as_str()), (0, "restarting web.2\n"));
    let (code, said) = control(&p, &["stop", "we"]);
    assert_eq!(code, 1, "{said}");

    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_count_that_is_not_a_number_of_copies_is_refused_at_its_line() {
    let p = Project::new("instances-bad");
    p.write(
        "project/launch.yml",
        "processes:\n  web:\n    command: [sleep, \"1\"]\n    instances: 0\n  web.2: {command: [sleep, \"1\"]}\n  other:\n    command: [sleep, \"1\"]\n    instances: lots\n  db:\n    command: [sleep, \"1\"]\n    instance: 2\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[
        "launch.yml:4: instances 0 is not a number of copies",
        "fix: write a whole number from 1 to 1000",
        "launch.yml:8: instances lots is not a number of copies",
        "did you mean `instances`?",
    ]);
    p.write(
        "project/launch.yml",
        "processes:\n  web:\n    command: [sleep, \"1\"]\n    instances: 2\n  web.2: {command: [sleep, \"1\"]}\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&["launch.yml:4: the copy web.2 of web has the name of another process"]);
}
