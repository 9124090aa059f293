//! A slow or hostile configuration (a check that hangs, a pillar too big for memory, a
//! worker that dies) costs at most that configuration: PID 1 keeps reaping, answering
//! `launch status` and acting on TERM, and the running service is left as it was.

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::project::Project;
use support::{Launched, Mode, descendants, wait_until, zombies_of};

/// A project whose template check hangs (after leaving an orphan) while `out/hang`
/// exists, and kills its own parent (the configuration) while `out/kill` does.
fn project(name: &str) -> Project {
    let p = Project::new(name);
    let out = p.out();
    p.write("project/pillar.yml", "port: 1\n")
        .write("project/templates/app.conf", "port={{ pillar.port }}\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - src: templates/app.conf\n    dest: {out}/app.conf\n    check: \"test ! -e {out}/kill || kill -9 $PPID; test ! -e {out}/hang || (touch {out}/checking; (sh -c 'sleep 0.2; touch {out}/orphan-ended' &); exec sleep 30)\"\n\
                 processes:\n  app:\n    command: \"trap 'exit 0' TERM; echo $$ > {out}/app.pid; while :; do sleep 0.05; done\"\n"
            ),
        );
    p
}

fn start(p: &Project, extra: &[&str], env: &[(&str, &str)]) -> Launched {
    let root = p.root.display().to_string();
    let mut args = vec!["run", "--root", root.as_str()];
    args.extend_from_slice(extra);
    let mut cmd = support::command(Mode::Pid1, &args);
    cmd.env("LAUNCH_CONTROL", p.path("control.sock"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

fn wait_log(launch: &Launched, needle: &str) {
    assert!(
        launch.stderr.wait_for(needle, Duration::from_secs(20)),
        "no {needle:?} in the log:\n{}",
        launch.stderr.text()
    );
}

fn wait_file(path: &std::path::Path) {
    wait_until(Duration::from_secs(20), || path.exists().then_some(()))
        .unwrap_or_else(|| panic!("{} never appeared", path.display()));
}

/// The app's pid, once `echo $$ >` has written it (the file exists a moment before).
fn app_pid(p: &Project) -> String {
    wait_until(Duration::from_secs(20), || {
        fs::read_to_string(p.path("out/app.pid"))
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .unwrap_or_else(|| panic!("the app never wrote its pid"))
}

/// `launch status` or `reload` against the project's launch: code, output, time taken.
fn control(p: &Project, request: &str) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["40", support::launch_bin(), request])
        .env("LAUNCH_CONTROL", p.path("control.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

/// The app runs, once, and its file holds `port=1`.
fn app_untouched(p: &Project, pid: &str) {
    assert_eq!(fs::read_to_string(p.path("out/app.pid")).unwrap(), pid);
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "port=1\n"
    );
}

/// Whether any process of launch's namespace runs `sleep 30` (a hung check).
fn hung_check_left(launch: &Launched) -> bool {
    descendants(launch.pid)
        .iter()
        .any(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x0030\x00"))
}

/// Ends launch with TERM: promptly, and with the clean shutdown's 0.
fn stop(mut launch: Launched) {
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    let status = launch.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[test]
fn a_hung_check_in_a_reload_leaves_pid_1_answering_reaping_and_stopping() {
    let p = project("stall-hung-check");
    let launch = start(&p, &[], &[]);
    wait_log(&launch, "app started");
    let pid = app_pid(&p);

    fs::write(p.path("out/hang"), "").unwrap();
    p.write("data/configuration/pillar.yml", "port: 2\n");
    launch.signal(libc::SIGHUP);
    wait_file(&p.path("out/checking"));

    let (code, text, took) = control(&p, "status");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("app") && text.contains("running"), "{text}");
    assert!(took < Duration::from_secs(1), "status took {took:?}");
    // The orphan the check left behind has ended: PID 1 reaps it while the check hangs.
    wait_file(&p.path("out/orphan-ended"));
    wait_until(Duration::from_secs(3), || {
        (zombies_of(launch.pid) == 0).then_some(())
    })
    .expect("the orphan left by the check was not reaped");
    app_untouched(&p, &pid);
    assert!(hung_check_left(&launch));
    stop(launch);
}

#[test]
fn a_reload_past_its_deadline_is_abandoned_and_a_queued_one_follows() {
    let p = project("stall-deadline");
    let launch = start(&p, &["--reload-timeout", "2s"], &[]);
    wait_log(&launch, "app started");
    let pid = app_pid(&p);

    fs::write(p.path("out/hang"), "").unwrap();
    p.write("data/configuration/pillar.yml", "port: 2\n");
    launch.signal(libc::SIGHUP);
    wait_file(&p.path("out/checking"));
    // Asked again while it runs: one more reload after it, not three, not at once.
    launch.signal(libc::SIGHUP);
    launch.signal(libc::SIGHUP);
    let (code, text, _) = control(&p, "status");
    assert_eq!(code, 0, "{text}");
    fs::remove_file(p.path("out/hang")).unwrap();
    wait_log(
        &launch,
        "did not finish within 2s: killed, with its check commands",
    );
    wait_log(
        &launch,
        "reload: abandoned: no answer from the configuration worker; keeping the running configuration",
    );
    wait_log(&launch, "reconfiguring again");
    let wrote = format!("wrote {}", p.path("out/app.conf").display());
    assert!(
        launch.stderr.wait_for_n(&wrote, 2, Duration::from_secs(20)),
        "{}",
        launch.stderr.text()
    );
    let log = launch.stderr.text();
    assert_eq!(log.matches("SIGHUP: reconfiguring").count(), 1, "{log}");
    assert_eq!(log.matches("reconfiguring again").count(), 1, "{log}");
    assert!(!hung_check_left(&launch), "the hung check was not killed");
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "port=2\n"
    );
    assert_eq!(fs::read_to_string(p.path("out/app.pid")).unwrap(), pid);

    // `launch reload` waits for the worker and says how it went.
    let (code, text, _) = control(&p, "reload");
    assert_eq!(code, 0, "{text}");
    assert!(text.ends_with("reloaded\n"), "{text}");
    stop(launch);
}

#[test]
fn a_reload_worker_that_runs_out_of_memory_or_is_killed_costs_only_that_reload() {
    let p = project("stall-worker-dies");
    let launch = start(&p, &[], &[("LAUNCH_RELOAD_MEMORY", "64M")]);
    wait_log(&launch, "app started");
    let pid = app_pid(&p);

    // A pillar whose parsing needs hundreds of megabytes.
    let mut big = String::from("port: 2\nbig:\n");
    for i in 0..300_000 {
        big.push_str(&format!("  k{i}: [1, 2, 3, \"x\"]\n"));
    }
    p.write("data/configuration/pillar.yml", &big);
    let (code, text, _) = control(&p, "reload");
    assert_eq!(code, 78, "{text}");
    assert!(
        text.contains("the configuration worker ended without an answer (killed by SIGABRT"),
        "{text}"
    );
    assert!(text.contains("LAUNCH_RELOAD_MEMORY"), "{text}");
    wait_log(&launch, "keeping the running configuration");
    app_untouched(&p, &pid);

    // Killed outright (the check kills its parent, the worker).
    p.write("data/configuration/pillar.yml", "port: 2\n");
    fs::write(p.path("out/kill"), "").unwrap();
    let (code, text, _) = control(&p, "reload");
    assert_eq!(code, 78, "{text}");
    assert!(
        text.contains("ended without an answer (killed by SIGKILL"),
        "{text}"
    );
    app_untouched(&p, &pid);
    let (code, text, _) = control(&p, "status");
    assert_eq!(code, 0, "{text}");
    stop(launch);

    // At start, the same failure is a configuration error: nothing starts.
    fs::remove_file(p.path("out/app.pid")).unwrap();
    let mut launch = start(&p, &[], &[]);
    let status = launch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78), "{}", launch.stderr.text());
    let log = launch.stderr.text();
    assert!(log.contains("killed by SIGKILL"), "{log}");
    assert!(log.contains("nothing was started"), "{log}");
    assert!(!p.path("out/app.pid").exists());
}

#[test]
fn term_during_a_slow_first_configuration_ends_launch_at_once() {
    let p = project("stall-first");
    fs::write(p.path("out/hang"), "").unwrap();
    let mut launch = start(&p, &[], &[]);
    wait_file(&p.path("out/checking"));
    let (code, text, took) = control(&p, "status");
    assert_eq!(code, 0, "{text}");
    assert!(took < Duration::from_secs(1), "status took {took:?}");
    let (code, text, _) = control(&p, "health");
    assert_eq!((code, text.as_str()), (1, "configuring\n"));
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    let status = launch.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(!p.path("out/app.pid").exists(), "the app started");
    assert!(!p.path("out/app.conf").exists(), "the file was written");
}

#[test]
fn silent_control_clients_hold_up_nothing() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let p = project("stall-silent-clients");
    let launch = start(&p, &[], &[]);
    wait_log(&launch, "app started");
    let pid = app_pid(&p);
    // More silent clients than launch keeps (the oldest are closed), and one that sends
    // half its request now and the rest later.
    let silent: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(p.path("control.sock")).unwrap())
        .collect();
    let mut slow = UnixStream::connect(p.path("control.sock")).unwrap();
    slow.write_all(b"sta").unwrap();

    let (code, text, took) = control(&p, "status");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("running"), "{text}");
    // Read one request at a time for up to half a second each, as launch once did,
    // this took 20 s.
    assert!(took < Duration::from_secs(2), "status took {took:?}");

    slow.write_all(b"tus\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(
        answer.contains("running") && answer.ends_with("exit 0\n"),
        "{answer}"
    );
    // Launch closed the oldest silent ones to stay within its limit of descriptors.
    let mut oldest = &silent[0];
    let mut byte = [0u8; 1];
    oldest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        oldest.read(&mut byte).unwrap(),
        0,
        "the oldest was not closed"
    );
    app_untouched(&p, &pid);
    stop(launch);
}
