//! `launch run`: the spec's processes under launch as PID 1 of a PID namespace, with
//! real processes (sh scripts) that record what happens to them in files.

mod support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::project::Project;
use support::{Launched, Mode, children_of, descendants, wait_until};

/// The control socket of a test's launch (the tests share the machine's /run).
fn socket(p: &Project) -> String {
    p.path("control/launch.sock").display().to_string()
}

/// Starts `launch run` as PID 1 on the project, with extra arguments.
fn start_with(p: &Project, extra: &[&str]) -> Launched {
    let root = p.root.display().to_string();
    let mut args = vec!["run", "--root", root.as_str()];
    args.extend_from_slice(extra);
    let mut cmd = support::command(Mode::Pid1, &args);
    cmd.env("LAUNCH_CONTROL", socket(p))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

/// Starts `launch run` as PID 1 on the project.
fn start(p: &Project) -> Launched {
    start_with(p, &[])
}

/// Runs a control command (`launch status`, ...) against the project's launch.
fn control(p: &Project, args: &[&str]) -> (i32, String) {
    let out = support::ask(socket(p), args);
    (out.status.code().unwrap_or(-1), support::output_text(&out))
}

fn wait_for_file(path: &std::path::Path, timeout: Duration) -> String {
    wait_until(timeout, || {
        fs::read_to_string(path).ok().filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| panic!("{} never appeared", path.display()))
}

fn stderr_has(launch: &Launched, needle: &str, timeout: Duration) {
    assert!(
        launch.stderr.wait_for(needle, timeout),
        "no {needle:?} in launch's log:\n{}",
        launch.stderr.text()
    );
}

/// launch's last line: that it exits, with what code and why.
fn last_line(launch: &Launched) -> String {
    let log = launch.stderr.text();
    log.lines().last().unwrap_or_default().to_string()
}

fn nanos(text: &str) -> u128 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a timestamp: {text:?}"))
}

#[test]
fn a_chain_of_ten_starts_each_after_the_previous_is_ready() {
    let p = Project::new("run-chain");
    let out = p.out();
    let mut spec = String::from("processes:\n");
    for i in 0..10 {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("    depends_on: [p{}]\n", i - 1)
        };
        // Each records when it started, takes 50 ms to become ready, then says so.
        spec.push_str(&format!(
            "  p{i}:\n    command: \"date +%s%N > {out}/p{i}.start; sleep 0.05; date +%s%N > {out}/p{i}.ready.tmp; mv {out}/p{i}.ready.tmp {out}/p{i}.ready; exec sleep 1000\"\n    ready: {{file: {out}/p{i}.ready, interval: 10ms}}\n{deps}"
        ));
    }
    p.write("project/launch.yml", &spec);
    let mut launch = start(&p);
    wait_for_file(&p.path("out/p9.ready"), Duration::from_secs(20));
    for i in 1..10 {
        let started = nanos(&fs::read_to_string(p.path(&format!("out/p{i}.start"))).unwrap());
        let before_ready =
            nanos(&fs::read_to_string(p.path(&format!("out/p{}.ready", i - 1))).unwrap());
        assert!(
            started >= before_ready,
            "p{i} started before p{} was ready",
            i - 1
        );
    }
    launch.signal(libc::SIGTERM);
    assert_eq!(
        launch.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        launch.stderr.text()
    );
}

#[test]
fn a_failing_oneshot_stops_the_container_with_its_code() {
    let p = Project::new("run-oneshot");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  migrate: {{command: \"exit 3\", kind: oneshot}}\n  app:\n    command: \"touch {out}/app-ran; exec sleep 1000\"\n    depends_on: [migrate]\n"),
    );
    let mut launch = start(&p);
    assert_eq!(
        launch.wait(Duration::from_secs(10)).code(),
        Some(3),
        "{}",
        launch.stderr.text()
    );
    assert!(
        !p.path("out/app-ran").exists(),
        "the dependent must not start"
    );
    assert!(
        launch
            .stderr
            .text()
            .contains("migrate exited (exit code 3)"),
        "{}",
        launch.stderr.text()
    );
    assert_eq!(
        last_line(&launch),
        "launch: exiting with 3: migrate failed (exit code 3)"
    );
}

#[test]
fn a_successful_oneshot_lets_its_dependents_start() {
    let p = Project::new("run-oneshot-ok");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  migrate: {{command: \"sleep 0.2; touch {out}/migrated\", kind: oneshot}}\n  app:\n    command: \"test -e {out}/migrated && touch {out}/app-ran; exec sleep 1000\"\n    depends_on: [migrate]\n"),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/app-ran"));
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    assert_eq!(
        last_line(&launch),
        "launch: exiting with 0: stopped by SIGTERM"
    );
}

#[test]
fn restarts_back_off_and_a_crash_loop_of_a_critical_process_ends_launch() {
    let p = Project::new("run-backoff");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  flaky:\n    command: \"date +%s%N >> {out}/starts; exit 4\"\n    restart: on-failure\n    critical: true\n    max_restarts: 5\n"),
    );
    let mut launch = start(&p);
    let status = launch.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(4), "{}", launch.stderr.text());
    let starts: Vec<u128> = fs::read_to_string(p.path("out/starts"))
        .unwrap()
        .lines()
        .map(nanos)
        .collect();
    assert_eq!(starts.len(), 5, "given up at the fifth exit");
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // Each wait is at least its backoff (a loaded machine only adds to it, so only the
    // lower bounds are checked here; the log below says the waits themselves).
    for (i, gap) in gaps.iter().enumerate() {
        assert!(*gap >= 100 << i, "100 ms doubling: {gaps:?} ms");
    }
    let log = launch.stderr.text();
    assert!(
        log.contains("restarting in 100ms") && log.contains("restarting in 800ms"),
        "{log}"
    );
    assert!(
        log.contains("flaky exited 5 times within 1m: giving up"),
        "{log}"
    );
    assert_eq!(
        last_line(&launch),
        "launch: exiting with 4: flaky failed (crash loop: 5 exits within 1m)"
    );
}

#[test]
fn ten_slow_stoppers_stop_in_parallel() {
    let p = Project::new("run-parallel-stop");
    let out = p.out();
    let mut spec = String::from("processes:\n");
    for i in 0..10 {
        spec.push_str(&format!(
            "  s{i}:\n    command: \"trap 'sleep 1; exit 0' TERM; touch {out}/s{i}; while :; do sleep 0.1; done\"\n"
        ));
    }
    p.write("project/launch.yml", &spec);
    let mut launch = start(&p);
    for i in 0..10 {
        wait_for_file_exists(&p.path(&format!("out/s{i}")));
    }
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    assert_eq!(
        launch.wait(Duration::from_secs(8)).code(),
        Some(0),
        "{}",
        launch.stderr.text()
    );
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "10 x 1 s stops took {took:?}: not in parallel"
    );
}

fn wait_for_file_exists(path: &std::path::Path) {
    wait_until(Duration::from_secs(10), || path.exists().then_some(()))
        .unwrap_or_else(|| panic!("{} never appeared", path.display()));
}

#[test]
fn a_process_ignoring_term_is_killed_after_its_stop_timeout() {
    let p = Project::new("run-stubborn");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  stubborn:\n    command: \"trap '' TERM; touch {out}/up; while :; do sleep 0.1; done\"\n    stop_timeout: 1s\nshutdown: {{grace: 4s}}\n"),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/up"));
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    assert_eq!(
        launch.wait(Duration::from_secs(4)).code(),
        Some(0),
        "{}",
        launch.stderr.text()
    );
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "it had its stop timeout"
    );
    assert!(
        launch
            .stderr
            .text()
            .contains("did not stop within 1s: SIGKILL"),
        "{}",
        launch.stderr.text()
    );
}

#[test]
fn shutdown_stops_in_reverse_start_order() {
    let p = Project::new("run-order");
    let out = p.out();
    let proc = |name: &str, dep: &str| {
        let deps = if dep.is_empty() {
            String::new()
        } else {
            format!("    depends_on: [{dep}]\n")
        };
        format!(
            "  {name}:\n    command: \"trap 'echo {name} >> {out}/stopped; exit 0' TERM; touch {out}/{name}; while :; do sleep 0.05; done\"\n{deps}"
        )
    };
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n{}{}{}",
            proc("db", ""),
            proc("app", "db"),
            proc("web", "app")
        ),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/web"));
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    assert_eq!(
        fs::read_to_string(p.path("out/stopped")).unwrap(),
        "web\napp\ndb\n"
    );
}

#[test]
fn term_during_a_long_readiness_wait_ends_launch_at_once() {
    let p = Project::new("run-term-while-starting");
    p.write(
        "project/launch.yml",
        "processes:\n  slow:\n    command: \"exec sleep 1000\"\n    ready: {file: /nonexistent, timeout: 30s}\n  after:\n    command: \"exec sleep 1000\"\n    depends_on: [slow]\n",
    );
    let mut launch = start(&p);
    stderr_has(&launch, "slow started", Duration::from_secs(5));
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(3)).code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?}",
        asked.elapsed()
    );
    assert!(!launch.stderr.text().contains("after started"));
}

#[test]
fn sighup_reloads_or_restarts_only_the_notified_processes() {
    let p = Project::new("run-hup");
    let out = p.out();
    p.write("project/pillar.yml", "port: 1\n")
        .write("project/templates/web.conf", "port={{ pillar.port }}\n")
        .write("project/templates/worker.conf", "port={{ pillar.port }}\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/web.conf, dest: {out}/web.conf, notify: [web]}}\n  - {{src: templates/worker.conf, dest: {out}/worker.conf, notify: [worker]}}\n\
                 processes:\n  web:\n    command: \"trap 'echo reloaded >> {out}/web.log' HUP; echo $$ > {out}/web.pid; while :; do sleep 0.05; done\"\n    reload_signal: SIGHUP\n\
                 \x20 worker:\n    command: \"echo $$ >> {out}/worker.pids; exec sleep 1000\"\n\
                 \x20 bystander:\n    command: \"echo $$ >> {out}/bystander.pids; exec sleep 1000\"\n"
            ),
        );
    let mut launch = start(&p);
    wait_for_file(&p.path("out/web.pid"), Duration::from_secs(10));
    wait_for_file(&p.path("out/worker.pids"), Duration::from_secs(10));
    wait_for_file(&p.path("out/bystander.pids"), Duration::from_secs(10));
    let web_pid = fs::read_to_string(p.path("out/web.pid")).unwrap();

    p.write("data/configuration/pillar.yml", "port: 2\n");
    launch.signal(libc::SIGHUP);
    wait_for_file(&p.path("out/web.log"), Duration::from_secs(10));
    wait_until(Duration::from_secs(10), || {
        (fs::read_to_string(p.path("out/worker.pids"))
            .ok()?
            .lines()
            .count()
            == 2)
            .then_some(())
    })
    .expect("the worker (no reload_signal) is restarted");
    assert_eq!(
        fs::read_to_string(p.path("out/worker.conf")).unwrap(),
        "port=2\n"
    );
    assert_eq!(
        fs::read_to_string(p.path("out/web.pid")).unwrap(),
        web_pid,
        "web was reloaded, not restarted"
    );
    assert_eq!(
        fs::read_to_string(p.path("out/bystander.pids"))
            .unwrap()
            .lines()
            .count(),
        1,
        "nothing else is disturbed"
    );

    // A broken configuration: reported, and everything keeps running.
    p.write("data/configuration/pillar.yml", "port: [\n");
    launch.signal(libc::SIGHUP);
    stderr_has(&launch, "keeping the running one", Duration::from_secs(10));
    assert!(launch.running());
    assert_eq!(
        fs::read_to_string(p.path("out/bystander.pids"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert_eq!(
        fs::read_to_string(p.path("out/worker.conf")).unwrap(),
        "port=2\n"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn processes_added_and_removed_on_sighup() {
    let p = Project::new("run-hup-spec");
    let out = p.out();
    let spec = |extra: bool| {
        let mut s = format!(
            "processes:\n  keep:\n    command: \"echo $$ >> {out}/keep.pids; exec sleep 1000\"\n"
        );
        if extra {
            s.push_str(&format!(
                "  extra:\n    command: \"touch {out}/extra; exec sleep 1000\"\n"
            ));
        }
        s
    };
    p.write("project/launch.yml", &spec(false));
    let launch = start(&p);
    wait_for_file(&p.path("out/keep.pids"), Duration::from_secs(10));
    p.write("project/launch.yml", &spec(true));
    launch.signal(libc::SIGHUP);
    wait_for_file_exists(&p.path("out/extra"));
    p.write("project/launch.yml", &spec(false));
    launch.signal(libc::SIGHUP);
    stderr_has(
        &launch,
        "extra is no longer in the spec",
        Duration::from_secs(10),
    );
    wait_until(Duration::from_secs(10), || {
        (children_of(launch.pid).len() == 1).then_some(())
    })
    .expect("extra is stopped");
    assert_eq!(
        fs::read_to_string(p.path("out/keep.pids"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_process_runs_as_its_user() {
    let p = Project::new("run-user");
    p.write(
        "project/launch.yml",
        "processes:\n  app:\n    command: \"exec sleep 1000\"\n    user: nobody\n",
    );
    let launch = start(&p);
    // The app, not the configuration worker that came first.
    let status = wait_until(Duration::from_secs(10), || {
        children_of(launch.pid).into_iter().find_map(|pid| {
            let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            // Once it has exec'd sleep (not "State: D (disk sleep)" of a child still
            // between fork and exec).
            s.lines().any(|l| l == "Name:\tsleep").then_some(s)
        })
    })
    .unwrap();
    assert!(
        status.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{status}"
    );
    assert!(
        status.contains("Gid:\t65534\t65534\t65534\t65534"),
        "{status}"
    );
}

#[test]
fn log_prefix_keeps_lines_whole_and_bytes_intact() {
    let p = Project::new("run-logs");
    p.write(
        "project/launch.yml",
        "processes:\n  a: {command: \"i=0; while [ $i -lt 10000 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done; printf 'no newline'; exec sleep 1000\", log_prefix: true}\n\
         \x20 b: {command: \"i=0; while [ $i -lt 10000 ]; do echo line-$i-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb; i=$((i+1)); done; printf 'bin \\\\377\\\\376\\\\n'; exec sleep 1000\", log_prefix: true}\n",
    );
    let mut launch = start(&p);
    assert!(
        launch
            .stdout
            .wait_for_n("\n", 20001, Duration::from_secs(20)),
        "got {} lines",
        launch.stdout.text().lines().count()
    );
    launch.signal(libc::SIGTERM);
    launch.wait(Duration::from_secs(10));
    let text = launch.stdout.text();
    let mut counts = [0usize; 2];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("a | line-") {
            assert!(rest.ends_with(&"a".repeat(40)), "whole line: {line:?}");
            counts[0] += 1;
        } else if let Some(rest) = line.strip_prefix("b | line-") {
            assert!(rest.ends_with(&"b".repeat(40)), "whole line: {line:?}");
            counts[1] += 1;
        } else {
            assert!(
                line == "a | no newline" || line.starts_with("b | bin "),
                "stray line: {line:?}"
            );
        }
    }
    assert_eq!(counts, [10000, 10000]);
    assert!(
        text.contains("a | no newline\n"),
        "a last line without newline is flushed at exit"
    );
    // The support reader is lossy for display; the raw bytes are checked by length here.
    assert!(
        text.contains("b | bin \u{FFFD}\u{FFFD}"),
        "non-UTF-8 passes through"
    );
}

#[test]
fn a_burst_of_signals_leaves_launch_consistent() {
    let p = Project::new("run-burst");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  app:\n    command: \"trap '' USR1 HUP; echo $$ >> {out}/pids; while :; do sleep 0.05; done\"\n"),
    );
    let mut launch = start(&p);
    wait_for_file(&p.path("out/pids"), Duration::from_secs(10));
    for i in 0..1000 {
        launch.signal(if i % 2 == 0 {
            libc::SIGHUP
        } else {
            libc::SIGUSR1
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(launch.running());
    assert_eq!(
        fs::read_to_string(p.path("out/pids"))
            .unwrap()
            .lines()
            .count(),
        1,
        "the app was never restarted"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    assert!(descendants(launch.pid).is_empty());
}

#[test]
fn a_broken_spec_at_start_runs_nothing() {
    let p = Project::new("run-broken");
    p.write("project/launch.yml", "processes:\n  app: {comand: [x]}\n");
    let mut launch = start(&p);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(78));
    assert!(launch.stderr.text().contains("did you mean `command`?"));
    assert_eq!(
        last_line(&launch),
        "launch: exiting with 78: the configuration is not valid; nothing was started"
    );
}

/// The first start on an empty volume sums up, in one line, what it made; a later start
/// does not; and launch's last line says it exits, with what code and why.
#[test]
fn the_first_start_is_summed_up_and_the_last_line_says_why_launch_exits() {
    let p = Project::new("run-first-start");
    let out = p.out();
    p.write("project/pillar.yml", "greeting: hello\n")
        .write("project/templates/a", "{{ pillar.greeting }}\n")
        .write("project/templates/b", "b\n")
        .write("project/seed/data/one", "1\n")
        .write("project/seed/data/two", "2\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/a, dest: {out}/a}}\n  - {{src: templates/b, dest: {out}/b}}\n\
                 seed:\n  - {{from: seed/data, to: data}}\n\
                 processes:\n  app: {{command: \"exec sleep 1000\"}}\n"
            ),
        );
    fs::remove_dir_all(p.path("data")).unwrap();
    let data = p.path("data").display().to_string();
    for first in [true, false] {
        let mut launch = start(&p);
        launch.expect_log("app started");
        launch.signal(libc::SIGTERM);
        assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
        let log = launch.stderr.text();
        let summary = format!(
            "launch: first start of the volume {data}: created configuration/pillar.yml \
             (edit it to configure the service: every setting is there, commented out), \
             seeded data (2 files), wrote 2 configuration files\n"
        );
        assert_eq!(log.contains(&summary), first, "{log}");
        assert_eq!(
            last_line(&launch),
            "launch: exiting with 0: stopped by SIGTERM"
        );
    }
}

#[test]
fn a_missing_program_backs_off_without_starving_the_others() {
    let p = Project::new("run-missing");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  ghost: {{command: [/no/such/program], max_restarts: 100}}\n  app:\n    command: \"touch {out}/app; exec sleep 1000\"\n"),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/app"));
    stderr_has(&launch, "restarting in 200ms", Duration::from_secs(5));
    assert!(
        launch
            .stderr
            .text()
            .contains("ghost: cannot start: /no/such/program: no such file")
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn notify_fd_readiness_gates_dependents() {
    let p = Project::new("run-notify");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  db:\n    command: \"sleep 0.3; date +%s%N > {out}/db.ready; echo ready >&3; exec sleep 1000\"\n    ready: {{notify_fd: 3}}\n  app:\n    command: \"date +%s%N > {out}/app.start; exec sleep 1000\"\n    depends_on: [db]\n"),
    );
    let mut launch = start(&p);
    let started = nanos(&wait_for_file(
        &p.path("out/app.start"),
        Duration::from_secs(10),
    ));
    let ready = nanos(&fs::read_to_string(p.path("out/db.ready")).unwrap());
    assert!(started >= ready, "app started before db said it was ready");
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn the_control_socket_answers_status_health_restart_stop_start() {
    let p = Project::new("run-control");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  app:\n    command: \"echo $$ >> {out}/app.pids; exec sleep 1000\"\n  web:\n    command: \"exec sleep 1000\"\n    ready: {{file: {out}/web.ready, interval: 20ms}}\n"),
    );
    let mut launch = start(&p);
    wait_for_file(&p.path("out/app.pids"), Duration::from_secs(10));
    stderr_has(&launch, "web started", Duration::from_secs(10));

    // Not ready yet: unhealthy, and status says why.
    let (code, text) = control(&p, &["health"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("web: starting"), "{text}");
    fs::write(p.path("out/web.ready"), "").unwrap();
    stderr_has(&launch, "web is ready", Duration::from_secs(10));
    assert_eq!(control(&p, &["health"]), (0, "healthy\n".to_string()));

    let (code, text) = control(&p, &["status"]);
    assert_eq!(code, 0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("app") && l.contains("running")),
        "{text}"
    );
    let (_, json) = control(&p, &["status", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["processes"][0]["name"], "app");
    assert_eq!(parsed["processes"][0]["state"], "running");
    assert!(parsed["processes"][0]["pid"].as_i64().unwrap() > 1);

    // A restart asked for is a new process, not a crash.
    assert_eq!(control(&p, &["restart", "app"]).0, 0);
    wait_until(Duration::from_secs(10), || {
        (fs::read_to_string(p.path("out/app.pids"))
            .ok()?
            .lines()
            .count()
            == 2)
            .then_some(())
    })
    .expect("app restarted");
    assert!(
        !launch.stderr.text().contains("restarting in"),
        "no backoff for a requested restart"
    );

    // Stop keeps it stopped (a deliberate stop, not a sickness); start brings it back.
    assert_eq!(control(&p, &["stop", "app"]).0, 0);
    wait_until(Duration::from_secs(10), || {
        control(&p, &["status"]).1.contains("stopped").then_some(())
    })
    .expect("app stopped");
    assert_eq!(control(&p, &["health"]).0, 0);
    assert_eq!(control(&p, &["start", "app"]).0, 0);
    wait_until(Duration::from_secs(10), || {
        (fs::read_to_string(p.path("out/app.pids"))
            .ok()?
            .lines()
            .count()
            == 3)
            .then_some(())
    })
    .expect("app started again");
    assert_eq!(control(&p, &["restart", "nope"]).0, 1);
    assert_eq!(
        control(&p, &["reload"]),
        (0, "nothing changed\nreloaded\n".to_string())
    );

    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    assert!(
        !p.path("control/launch.sock").exists(),
        "the socket is removed at exit"
    );
    let (code, text) = control(&p, &["status"]);
    assert_eq!(code, 69, "{text}");
    assert!(text.contains("cannot reach a running launch"), "{text}");
}

#[test]
fn a_non_root_client_is_refused() {
    let p = Project::new("run-control-nobody");
    p.write(
        "project/launch.yml",
        "processes:\n  app: {command: \"exec sleep 1000\"}\n",
    );
    let launch = start(&p);
    stderr_has(&launch, "app started", Duration::from_secs(10));
    // Let nobody traverse to the socket, so that the peer check itself is what refuses.
    fs::set_permissions(
        p.root.as_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = p.path("control");
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fs::set_permissions(
        dir.join("launch.sock"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut cmd = Command::new(support::launch_bin());
    cmd.arg("status").env("LAUNCH_CONTROL", socket(&p));
    // SAFETY: between fork and exec; setgid/setuid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(77), "{text}");
    assert!(text.contains("refused: only root"), "{text}");
    // And with the directory as launch makes it (0700), nobody cannot even reach it:
    // refused all the same (77, as documented).
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(77));
}

#[test]
fn events_can_be_logged_as_json() {
    let p = Project::new("run-json");
    p.write(
        "project/launch.yml",
        "processes:\n  app: {command: \"exec sleep 1000\"}\n",
    );
    let mut launch = start_with(&p, &["--log-format", "json"]);
    stderr_has(&launch, "app started", Duration::from_secs(10));
    launch.signal(libc::SIGTERM);
    launch.wait(Duration::from_secs(10));
    for line in launch.stderr.text().lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            event["time"].as_f64().is_some() && event["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn the_restart_policy_matrix_against_real_exits() {
    let p = Project::new("run-matrix");
    let out = p.out();
    let mut spec = String::from("processes:\n");
    let exits = [
        ("ok", "exit 0"),
        ("fail", "exit 1"),
        ("killed", "kill -9 $$"),
    ];
    for policy in ["always", "on-failure", "never"] {
        for (name, how) in exits {
            spec.push_str(&format!(
                "  {policy}-{name}:\n    command: \"echo x >> {out}/{policy}-{name}; {how}\"\n    restart: {policy}\n    max_restarts: 100\n"
            ));
        }
    }
    spec.push_str("  keepalive: {command: \"exec sleep 1000\"}\n");
    p.write("project/launch.yml", &spec);
    let mut launch = start(&p);
    // 100 ms, then 200 ms: by 1 s a restarted process has run at least three times.
    std::thread::sleep(Duration::from_millis(1200));
    let runs =
        |f: &str| fs::read_to_string(p.path(&format!("out/{f}"))).map_or(0, |s| s.lines().count());
    for (policy, restarted) in [
        ("always", [true, true, true]),
        ("on-failure", [false, true, true]),
        ("never", [false, false, false]),
    ] {
        for ((name, _), want) in exits.iter().zip(restarted) {
            let n = runs(&format!("{policy}-{name}"));
            if want {
                assert!(
                    n >= 3,
                    "{policy} against {name}: ran {n} times, must be restarted"
                );
            } else {
                assert_eq!(n, 1, "{policy} against {name}: must not be restarted");
            }
        }
    }
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_readiness_timeout_is_a_failure() {
    let p = Project::new("run-ready-timeout");
    p.write(
        "project/launch.yml",
        "processes:\n  never-ready:\n    command: \"exec sleep 1000\"\n    ready: {file: /nonexistent, timeout: 300ms}\n    max_restarts: 100\n",
    );
    let mut launch = start(&p);
    stderr_has(
        &launch,
        "never-ready is not ready after 300ms: killing it",
        Duration::from_secs(10),
    );
    stderr_has(
        &launch,
        "never-ready exited (killed by SIGKILL (code 137)); restarting in",
        Duration::from_secs(10),
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn an_orphan_with_a_recycled_pid_is_not_taken_for_the_process() {
    let p = Project::new("run-pid-reuse");
    let out = p.out();
    // victim records its pid and exits 7 (not restarted). Then forker makes the namespace
    // hand that pid out again, to an orphan that exits 0.
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n  victim:\n    command: \"echo $$ > {out}/victim.pid; exit 7\"\n    restart: never\n\
             \x20 forker:\n    command: \"while [ ! -s {out}/victim.pid ]; do sleep 0.01; done; sleep 0.3; v=$(cat {out}/victim.pid); (echo $((v - 1)) > /proc/sys/kernel/ns_last_pid; sh -c 'echo $$ > {out}/orphan.pid; sleep 0.2; exit 0' &); exec sleep 1000\"\n"
        ),
    );
    let mut launch = start(&p);
    let victim = wait_for_file(&p.path("out/victim.pid"), Duration::from_secs(10));
    let orphan = wait_for_file(&p.path("out/orphan.pid"), Duration::from_secs(10));
    assert_eq!(
        orphan.trim(),
        victim.trim(),
        "the test needs the orphan to get the victim's pid"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, json) = control(&p, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["processes"][0]["name"], "victim");
    assert_eq!(status["processes"][0]["state"], "exited");
    assert_eq!(status["processes"][0]["last_exit"], "exit code 7", "{json}");
    assert_eq!(status["processes"][0]["restarts"], 0);
    assert_eq!(
        launch.stderr.text().matches("victim exited").count(),
        1,
        "{}",
        launch.stderr.text()
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn tcp_and_command_readiness_env_cwd_and_umask() {
    let p = Project::new("run-ready-kinds");
    let out = p.out();
    let port = 30000 + (std::process::id() % 20000) as u16;
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n\
             \x20 server:\n    command: [python3, -c, \"import socket,time; time.sleep(0.3); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(1000)\"]\n    ready: {{tcp: \"localhost:{port}\", interval: 50ms}}\n\
             \x20 flagged:\n    command: \"sleep 0.3; touch {out}/flag; exec sleep 1000\"\n    ready: {{cmd: [test, -e, {out}/flag], interval: 50ms}}\n\
             \x20 app:\n    command: \"echo $GREETING > {out}/env; pwd > {out}/cwd; umask > {out}/umask; exec sleep 1000\"\n    depends_on: [server, flagged]\n    env: {{GREETING: hello}}\n    cwd: {out}\n    umask: \"0027\"\n"
        ),
    );
    let mut launch = start(&p);
    wait_for_file(&p.path("out/umask"), Duration::from_secs(15));
    // "app started" is logged after the spawn returns: the file can come first.
    stderr_has(&launch, "app started", Duration::from_secs(10));
    let log = launch.stderr.text();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    assert!(at("server is ready") < at("app started"), "{log}");
    assert!(at("flagged is ready") < at("app started"), "{log}");
    assert_eq!(fs::read_to_string(p.path("out/env")).unwrap(), "hello\n");
    assert_eq!(fs::read_to_string(p.path("out/cwd")).unwrap().trim(), out);
    assert_eq!(
        fs::read_to_string(p.path("out/umask")).unwrap().trim(),
        "0027"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn an_optional_oneshot_may_fail_and_a_second_term_kills_at_once() {
    let p = Project::new("run-optional");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n  warmup: {{command: \"exit 5\", kind: oneshot, optional: true}}\n  app:\n    command: \"trap '' TERM; touch {out}/app; while :; do sleep 0.05; done\"\n    depends_on: [warmup]\n    stop_timeout: 30s\nshutdown: {{grace: 30s}}\n"
        ),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/app"));
    launch.signal(libc::SIGTERM);
    stderr_has(&launch, "shutting down", Duration::from_secs(5));
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(5)).code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the second TERM did not wait out the 30 s"
    );
    assert!(launch.stderr.text().contains("killing everything now"));
}

#[test]
fn a_missing_working_directory_is_named_and_ends_a_critical_process() {
    let p = Project::new("bad-cwd");
    p.write(
        "project/launch.yml",
        "processes:\n  app: {command: [/bin/true], cwd: /no/such/dir, restart: never, critical: true}\n",
    );
    let mut launch = start(&p);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(126));
    let err = launch.stderr.text();
    assert!(
        err.contains("cannot enter the working directory /no/such/dir: No such file or directory"),
        "{err}"
    );
}

#[test]
fn a_process_that_moved_to_another_group_still_stops() {
    let p = Project::new("run-setpgid");
    let out = p.out();
    // `mover` leaves its own process group for `holder`'s: a signal to its old group
    // reaches nobody.
    p.write(
        "project/launch.yml",
        &format!(
            r#"processes:
  holder:
    command: "echo $$ > {out}/holder.pid; exec sleep 1000"
  mover:
    command: |
      while [ ! -s {out}/holder.pid ]; do sleep 0.01; done
      exec perl -e 'setpgrp(0, $ARGV[0]) or die "setpgrp: $!"; open(F, ">", $ARGV[1]); close F; sleep 1000' "$(cat {out}/holder.pid)" {out}/moved
    stop_timeout: 1s
"#
        ),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/moved"));
    assert_eq!(control(&p, &["stop", "mover"]).0, 0);
    let stopped = wait_until(Duration::from_secs(5), || {
        let (_, text) = control(&p, &["status"]);
        text.lines()
            .any(|l| l.starts_with("mover") && l.contains("stopped"))
            .then_some(())
    });
    assert!(
        stopped.is_some(),
        "{}\n{}",
        control(&p, &["status"]).1,
        launch.stderr.text()
    );
    let (_, text) = control(&p, &["status"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("holder") && l.contains("running")),
        "{text}"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_restart_ends_what_the_old_process_left_in_its_session_and_group() {
    let p = Project::new("run-setsid");
    let tag = support::unique_tag("setsid");
    let probe = support::probe().display().to_string();
    let out = p.out();
    // One helper escapes into a session of its own, one stays in the process's group
    // and ignores TERM; neither is a direct concern of launch once `app` is gone.
    p.write(
        "project/launch.yml",
        &format!(
            r#"processes:
  app:
    command: |
      setsid {probe} tag={tag} sleep &
      {probe} tag={tag} stubborn &
      echo $$ >> {out}/app.pids
      exec sleep 1000
    stop_timeout: 1s
"#
        ),
    );
    let mut launch = start(&p);
    let first = wait_until(Duration::from_secs(10), || {
        let found = support::tagged(&tag);
        (found.len() >= 2).then_some(found)
    })
    .expect("the helpers started");
    assert_eq!(control(&p, &["restart", "app"]).0, 0);
    wait_until(Duration::from_secs(10), || {
        (fs::read_to_string(p.path("out/app.pids"))
            .ok()?
            .lines()
            .count()
            == 2)
            .then_some(())
    })
    .expect("app restarted");
    let gone = wait_until(Duration::from_secs(5), || {
        let now = support::tagged(&tag);
        first.iter().all(|pid| !now.contains(pid)).then_some(())
    });
    assert!(
        gone.is_some(),
        "the old helpers {first:?} survive the restart: {:?}\n{}",
        support::tagged(&tag),
        launch.stderr.text()
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

/// `launch restart NAME` of five copies stops them in one turn of the loop. Each leaves
/// a helper in a session of its own (found through the parent links before the stop)
/// and, from its TERM trap, an orphan in its process group that the stop signal never
/// reached (found only by looking for the group once the copy has ended, in a reading
/// of /proc taken after the reap): every one gets SIGTERM, which ends it, and none
/// waits for the SIGKILL of the stop timeout.
#[test]
fn restarting_many_copies_at_once_ends_what_each_left_with_sigterm() {
    let p = Project::new("run-setsid-many");
    let tag = support::unique_tag("setsid-many");
    let probe = support::probe().display().to_string();
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            r#"processes:
  app:
    instances: 5
    command: |
      trap '( {probe} tag={tag} sleep & ); exit 0' TERM
      setsid {probe} tag={tag} sleep &
      echo $$ >> {out}/app.pids
      while :; do sleep 0.1; done
    stop_timeout: 2s
"#
        ),
    );
    let mut launch = start_with(&p, &["-v"]);
    let first = wait_until(Duration::from_secs(15), || {
        let found = support::tagged(&tag);
        (found.len() >= 5).then_some(found)
    })
    .unwrap_or_else(|| panic!("the helpers started: {:?}", support::tagged(&tag)));
    assert_eq!(control(&p, &["restart", "app"]).0, 0);
    let ended = "(killed by SIGTERM";
    assert!(
        launch.stderr.wait_for_n(ended, 10, Duration::from_secs(10)),
        "not all 10 helpers ended by SIGTERM:\n{}",
        launch.stderr.text()
    );
    let restarted = wait_until(Duration::from_secs(10), || {
        let pids = fs::read_to_string(p.path("out/app.pids")).ok()?;
        (pids.lines().count() == 10).then_some(())
    });
    assert!(restarted.is_some(), "{}", launch.stderr.text());
    let now = support::tagged(&tag);
    assert!(
        first.iter().all(|pid| !now.contains(pid)),
        "old helpers survive the restart: {first:?} {now:?}"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    let log = launch.stderr.text();
    assert!(!log.contains("SIGKILL"), "{log}");
}

#[test]
fn a_spec_without_processes_shuts_down_without_waiting() {
    let p = Project::new("run-empty");
    p.write(
        "project/launch.yml",
        "processes: {}\nshutdown: {grace: 5s}\n",
    );
    let started = Instant::now();
    let mut launch = start(&p);
    let status = launch.wait(Duration::from_secs(10));
    let took = started.elapsed();
    let log = launch.stderr.text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(took < Duration::from_secs(2), "took {took:?}\n{log}");
    assert!(!log.contains("did not die"), "{log}");
    assert!(!log.contains("grace is over"), "{log}");
}

#[test]
fn a_process_stopped_on_request_keeps_the_container_healthy() {
    let p = Project::new("run-stop-healthy");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("processes:\n  app:\n    command: \"touch {out}/app; exec sleep 1000\"\n  db:\n    command: \"exec sleep 1000\"\n"),
    );
    let mut launch = start(&p);
    wait_for_file_exists(&p.path("out/app"));
    stderr_has(&launch, "db started", Duration::from_secs(10));
    assert_eq!(control(&p, &["health"]), (0, "healthy\n".to_string()));
    assert_eq!(control(&p, &["stop", "app"]).0, 0);
    wait_until(Duration::from_secs(10), || {
        control(&p, &["status"]).1.contains("stopped").then_some(())
    })
    .expect("app stopped");
    let (_, json) = control(&p, &["status", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["processes"][0]["name"], "app");
    assert_eq!(parsed["processes"][0]["state"], "stopped", "{json}");
    assert_eq!(control(&p, &["health"]), (0, "healthy\n".to_string()));
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_failed_start_is_never_reported_running() {
    let p = Project::new("run-failed-start");
    p.write(
        "project/launch.yml",
        "processes:\n  ghost: {command: [/no/such/program], max_restarts: 100}\n  app: {command: \"exec sleep 1000\"}\n",
    );
    let mut launch = start(&p);
    stderr_has(&launch, "app started", Duration::from_secs(10));
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let (code, json) = control(&p, &["status", "--json"]);
        assert_eq!(code, 0, "{json}");
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let ghost = &parsed["processes"][0];
        assert_eq!(ghost["name"], "ghost");
        assert!(ghost["pid"].is_null(), "{json}");
        assert_ne!(ghost["state"], "running", "{json}");
        assert_ne!(ghost["state"], "starting", "{json}");
    }
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}
