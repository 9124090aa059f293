//! A reload is a transaction: `launch reload` answers once the processes it touched are
//! ready again, and when they do not come back the previous files and spec are put back.
//! The service is a real TCP server (the probe's `serve`) on the port the operator's
//! pillar names, and the broken edit is the one operators make: a port another process
//! already holds.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::project::Project;
use support::{Launched, Mode};

fn control(p: &Project, args: &[&str]) -> Output {
    support::ask(p.path("control/launch.sock"), args)
}

fn text(out: &Output) -> String {
    support::output_text(out)
}

/// A port nobody listens on (now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service answers on `port`: a connection, and its greeting.
fn answers(port: u16) -> bool {
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&at, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut said = String::new();
    let _ = stream.read_to_string(&mut said);
    said == format!("hello from {port}\n")
}

/// A project whose `app` serves on the pillar's `port` (its file written from a template
/// that notifies it), ready once that port answers; `options` are more of its settings.
fn service(name: &str, port: u16, options: &str) -> Project {
    let p = Project::new(name);
    let out = p.out();
    let probe = support::probe().display().to_string();
    p.write("project/pillar.yml", &format!("# the port\nport: {port}\n"))
        .write("project/templates/app.conf", "port={{ pillar.port }}\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/app.conf, dest: {out}/app.conf, notify: [app]}}\n\
                 processes:\n  app:\n    command: [{probe}, serve, {out}/app.conf]\n    \
                 ready: {{tcp: \"127.0.0.1:{{{{ pillar.port }}}}\", interval: 50ms}}\n    \
                 critical: true\n{options}"
            ),
        );
    p
}

fn start(p: &Project) -> Launched {
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let launch = Launched::spawn(Mode::Pid1, cmd);
    launch.expect_log("app is ready");
    launch
}

fn stop(mut launch: Launched) {
    launch.signal(libc::SIGTERM);
    assert_eq!(
        launch.wait(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        launch.stderr.text()
    );
}

/// A client that connects to `port` again and again on a thread, noting each time
/// whether the service answered.
struct Poller {
    done: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, bool)>>>,
    thread: thread::JoinHandle<()>,
}

impl Poller {
    fn start(port: u16) -> Poller {
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (d, s) = (done.clone(), seen.clone());
        let thread = thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let ok = answers(port);
                s.lock().unwrap().push((Instant::now(), ok));
                thread::sleep(Duration::from_millis(5));
            }
        });
        Poller { done, seen, thread }
    }

    fn stop(self) -> Vec<(Instant, bool)> {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

#[test]
fn a_port_another_process_holds_is_rolled_back_and_the_service_answers_throughout() {
    let port = free_port();
    // Another process has the port the operator is about to choose: it listens, so the
    // app's TCP readiness check even passes against it for a moment.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let p = service("txn-port", port, "");
    let launch = start(&p);
    assert!(answers(port));

    let edit = format!("# moved, said the ticket\nport: {taken}\n");
    p.write("data/configuration/pillar.yml", &edit);
    let checked = p.run("check", &[]);
    assert_eq!(
        checked.code, 0,
        "check passes: the port is only taken at run time"
    );

    let poller = Poller::start(port);
    let asked = Instant::now();
    let reloaded = control(&p, &["reload"]);
    let answered = Instant::now();
    thread::sleep(Duration::from_millis(100));
    let seen = poller.stop();
    let said = text(&reloaded);
    assert_eq!(reloaded.status.code(), Some(79), "{said}");
    let conf = p.path("out/app.conf").display().to_string();
    for needle in [
        format!("wrote {conf}\n"),
        "restarted app\n".to_string(),
        format!("put back {conf}\n"),
        "rolled back: app exited (exit code 1); the previous configuration runs again\n"
            .to_string(),
    ] {
        assert!(said.contains(&needle), "no {needle:?} in:\n{said}");
    }

    // The service answered all along but for one gap, the restarts, inside the reload.
    let failed: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i].1).collect();
    if let (Some(&first), Some(&last)) = (failed.first(), failed.last()) {
        assert!(
            seen[first..=last].iter().all(|(_, ok)| !ok),
            "more than one gap: {:?}",
            seen.iter().map(|(_, ok)| *ok).collect::<Vec<_>>()
        );
        assert!(seen[first].0 >= asked && seen[last].0 <= answered);
    }
    assert!(seen.last().is_some_and(|(_, ok)| *ok));
    assert!(answers(port), "the previous configuration serves again");

    // The previous file is back, the operator's edit is as they wrote it, and `check`
    // shows what was refused against what runs.
    assert_eq!(
        std::fs::read_to_string(p.path("out/app.conf")).unwrap(),
        format!("port={port}\n")
    );
    assert_eq!(
        std::fs::read_to_string(p.path("data/configuration/pillar.yml")).unwrap(),
        edit
    );
    let socket = p.path("control/launch.sock").display().to_string();
    let checked = p.run_env("check", &[], &[("LAUNCH_CONTROL", &socket)]);
    for needle in [
        "the running launch's last reload: ".into(),
        "rolled back: app exited (exit code 1)".into(),
        format!("-port={port}"),
        format!("+port={taken}"),
        "1 of 1 file would change".into(),
    ] {
        assert!(
            checked.stdout.contains(&needle),
            "{needle:?}:\n{}",
            checked.stdout
        );
    }

    let status = text(&control(&p, &["status"]));
    for needle in [
        "app ",
        "running",
        "s ago): rolled back: app exited (exit code 1); the previous configuration runs again\n",
        &format!("  wrote {conf}\n"),
        &format!("  put back {conf}\n"),
    ] {
        assert!(status.contains(needle), "no {needle:?} in:\n{status}");
    }
    launch.expect_log("reload: rolled back: app exited (exit code 1)");
    drop(squatter);
    stop(launch);
}

#[test]
fn reload_answers_once_the_service_is_ready_and_refuses_a_broken_edit_untouched() {
    let p = service("txn-codes", free_port(), "");
    let launch = start(&p);

    // Reloaded: the answer comes once the app serves on its new port.
    let moved = free_port();
    p.write("data/configuration/pillar.yml", &format!("port: {moved}\n"));
    let reloaded = control(&p, &["reload"]);
    let said = text(&reloaded);
    assert_eq!(reloaded.status.code(), Some(0), "{said}");
    assert!(said.ends_with("restarted app\nreloaded\n"), "{said}");
    assert!(answers(moved), "ready when `launch reload` returned");
    let status = text(&control(&p, &["status"]));
    assert!(status.contains("s ago): reloaded\n"), "{status}");

    // Refused before anything changed.
    p.write("data/configuration/pillar.yml", "port: [\n");
    let refused = control(&p, &["reload"]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(78), "{said}");
    assert!(
        said.contains("refused: the new configuration is not valid; keeping the running one"),
        "{said}"
    );
    assert!(answers(moved));
    let status = text(&control(&p, &["status"]));
    assert!(
        status.contains(
            "s ago): refused: the new configuration is not valid; keeping the running one\n"
        ),
        "{status}"
    );
    assert!(status.contains("configuration/pillar.yml:2:"), "{status}");
    assert_eq!(
        std::fs::read_to_string(p.path("out/app.conf")).unwrap(),
        format!("port={moved}\n")
    );
    stop(launch);
}

#[test]
fn a_critical_process_that_fails_during_a_reload_rolls_it_back_instead_of_ending_launch() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let port = free_port();
    // Never restarted: its first exit would stop the container.
    let p = service("txn-critical", port, "    restart: never\n");
    let mut launch = start(&p);

    p.write("data/configuration/pillar.yml", &format!("port: {taken}\n"));
    launch.signal(libc::SIGHUP);
    // Nobody to answer: the log says it all.
    launch.expect_log("app is one the pending reload touched");
    launch.expect_log("reload: rolled back: app exited (exit code 1)");
    launch.expect_log(&format!("  put back {}", p.path("out/app.conf").display()));
    assert!(launch.running(), "{}", launch.stderr.text());
    assert!(
        support::wait_until(Duration::from_secs(10), || answers(port).then_some(())).is_some(),
        "{}",
        launch.stderr.text()
    );
    let status = text(&control(&p, &["status"]));
    assert!(
        status.contains("rolled back: app exited (exit code 1)"),
        "{status}"
    );
    drop(squatter);
    stop(launch);
}

#[test]
fn reload_waits_for_readiness_and_status_shows_it_pending() {
    let p = Project::new("txn-pending");
    let out = p.out();
    p.write("project/pillar.yml", &format!("flag: {out}/ready-1\n"))
        .write(
            "project/launch.yml",
            "processes:\n  app:\n    command: [sleep, \"1000\"]\n    \
             ready: {file: \"{{ pillar.flag }}\", interval: 50ms}\n",
        );
    std::fs::write(p.path("out/ready-1"), "").unwrap();
    let launch = start(&p);

    p.write(
        "data/configuration/pillar.yml",
        &format!("flag: {out}/ready-2\n"),
    );
    let mut cmd = Command::new(support::launch_bin());
    cmd.arg("reload")
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdout(Stdio::piped());
    let reload = cmd.spawn().unwrap();
    let pending = support::wait_until(Duration::from_secs(15), || {
        let status = text(&control(&p, &["status"]));
        status
            .contains("reload in progress: waiting for app to be ready")
            .then_some(status)
    });
    assert!(pending.is_some(), "{}", launch.stderr.text());
    std::fs::write(p.path("out/ready-2"), "").unwrap();
    let answered = reload.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&answered.stdout);
    assert_eq!(answered.status.code(), Some(0), "{said}");
    assert!(said.ends_with("restarted app\nreloaded\n"), "{said}");
    let status = text(&control(&p, &["status"]));
    assert!(!status.contains("reload in progress"), "{status}");
    stop(launch);
}

#[test]
fn a_write_that_fails_midway_is_rolled_back_before_any_process_is_told() {
    let p = Project::new("txn-midway");
    let out = p.out();
    p.write("project/pillar.yml", "version: 1\n")
        .write(
            "project/templates/app.conf",
            "version={{ pillar.version }}\n",
        )
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/app.conf, dest: {out}/app.conf, notify: [app]}}\n\
                 processes:\n  app: {{command: \"echo $$ >> {out}/app.pids; exec sleep 1000\"}}\n"
            ),
        );
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let launch = Launched::spawn(Mode::Pid1, cmd);
    launch.expect_log("app started");

    // The image's layer changes the output; the operator's file is gone, and where launch
    // runs, configuration/ has become read-only: the output is written, then writing
    // the operator's file again fails.
    let conf = p.path("data/configuration").display().to_string();
    let mounted = Command::new("nsenter")
        .args(["-t", &launch.pid.to_string(), "-m", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\"")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(mounted.success());
    std::fs::remove_file(p.path("data/configuration/pillar.yml")).unwrap();
    p.write("pillar/10-image.yml", "version: 2\n");

    let reloaded = control(&p, &["reload"]);
    let said = text(&reloaded);
    assert_eq!(reloaded.status.code(), Some(79), "{said}");
    for needle in [
        format!("written before it: {out}/app.conf"),
        format!("put back {out}/app.conf"),
        "rolled back: writing the new configuration failed midway; the previous configuration runs again".into(),
    ] {
        assert!(said.contains(&needle), "no {needle:?} in:\n{said}");
    }
    assert_eq!(
        std::fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "version=1\n"
    );
    let pids = std::fs::read_to_string(p.path("out/app.pids")).unwrap();
    assert_eq!(pids.lines().count(), 1, "the app was told: {pids}");
    stop(launch);
}
