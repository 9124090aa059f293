//! Fault injection: a full disk, a read-only volume, children killed at random moments,
//! a storm of signals, a child that exhausts its descriptors or forks thousands of
//! processes. launch must lose nothing, say clearly what went wrong, never leave a
//! zombie, and still shut down with the right exit code.

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::project::Project;
use support::{Launched, Mode, descendants, wait_until, zombies_of};

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

/// `launch status` against the project's launch: its exit code and output.
fn status(p: &Project) -> (i32, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg(support::launch_bin())
        .arg("status")
        .env("LAUNCH_CONTROL", p.path("control.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `script` (sh) in a private mount namespace, with $0 = launch and $1 = the root.
fn in_mount_namespace(p: &Project, script: &str) -> (i32, String, String) {
    let out = Command::new("timeout")
        .args(["60", "unshare", "--mount", "sh", "-c", script])
        .arg(support::launch_bin())
        .arg(&p.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_while_rendering_keeps_the_old_files_and_says_so() {
    let p = Project::new("fault-disk-full");
    p.write(
        "project/launch.yml",
        "templates:\n  - {src: templates/big.conf, dest: \"{{ project.dir }}/../out/big.conf\"}\n  - {src: templates/small.conf, dest: \"{{ project.dir }}/../out/small.conf\"}\nprocesses: {}\n",
    )
    .write("project/pillar.yml", "size: 10\nversion: 1\n")
    .write(
        "project/templates/big.conf",
        "{% for i in range(end=pillar.size) %}line {{ i }} of a large generated file\n{% endfor %}",
    )
    .write("project/templates/small.conf", "version={{ pillar.version }}\n");
    fs::create_dir_all(p.path("out")).unwrap();
    // out/ is a 64 KiB tmpfs: the first render fits, the second (2 MB) cannot.
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$1/out" || exit 90
        "$0" reconfigure --root "$1" || exit 91
        before=$(cat "$1/out/small.conf"; wc -c < "$1/out/big.conf")
        "$0" reconfigure --root "$1" --set size=60000 --set version=2
        echo "code=$?"
        after=$(cat "$1/out/small.conf"; wc -c < "$1/out/big.conf")
        [ "$before" = "$after" ] && echo unchanged
        ls -A "$1/out"
    "#;
    let (code, out, err) = in_mount_namespace(&p, script);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("code=78"), "{out}\n{err}");
    assert!(out.contains("unchanged"), "old files changed: {out}");
    // Nothing staged is left behind, only the two outputs.
    let listing: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("unchanged"))
        .skip(1)
        .collect();
    assert_eq!(listing, ["big.conf", "small.conf"], "{out}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("out/big.conf"),
        "the message names the file: {err}"
    );
}

#[test]
fn a_read_only_volume_is_refused_before_anything_starts() {
    let p = Project::new("fault-read-only");
    let marker = p.path("started");
    p.write(
        "project/launch.yml",
        &format!(
            "processes:\n  app: {{command: \"touch {} && exec sleep 1000\"}}\n",
            marker.display()
        ),
    );
    fs::create_dir_all(p.path("data")).unwrap();
    let script = r#"
        mount --bind -o ro "$1/data" "$1/data" || exit 90
        exec timeout 20 "$0" run --root "$1" --control "$1/control.sock"
    "#;
    let (code, out, err) = in_mount_namespace(&p, script);
    // 77, not 78: the configuration is valid; the system refused to let it be written.
    assert_eq!(code, 77, "{out}\n{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(
        err.contains(
            "exiting with 77: the configuration could not be written for lack of permission"
        ),
        "{err}"
    );
    assert!(
        err.contains("/data/data: cannot make or set up this directory of the volume"),
        "the message names the path: {err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    assert!(
        !marker.exists(),
        "a process started on a half-configured volume"
    );
}

/// Random SIGKILLs to every process under launch, for as long as it starts and while it
/// shuts down: launch restarts what it should, reaps everything, never leaves a zombie,
/// and still exits 0 on SIGTERM.
#[test]
fn children_killed_at_random_moments_leave_no_zombie() {
    let p = Project::new("fault-random-kills");
    p.write(
        "project/launch.yml",
        // Many kills land on the same process: the crash-loop limit is out of the way,
        // or launch would (rightly) give the processes up and stop before the check.
        "processes:\n  setup: {command: \"sleep 0.05\", kind: oneshot, optional: true}\n  a: {command: \"sleep 0.2; exec sleep 1000\", depends_on: [setup], max_restarts: 1000}\n  b: {command: \"(sleep 1000 &); exec sleep 1000\", depends_on: [a], max_restarts: 1000}\n  c: {command: \"trap '' TERM; while :; do sleep 0.05; done\", depends_on: [b], stop_timeout: 300ms, max_restarts: 1000}\n",
    );
    let mut launch = start(&p);
    let pid = launch.pid;
    // A cheap pseudo-random sequence: which process to kill, and when.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // Not the configuration worker: killed at start, it rightly ends launch (78).
        let victims: Vec<i32> = descendants(pid)
            .into_iter()
            .filter(|v| {
                !fs::read(format!("/proc/{v}/cmdline"))
                    .is_ok_and(|c| c.windows(11).any(|w| w == b"__configure"))
            })
            .collect();
        if !victims.is_empty() {
            let victim = victims[(next() % victims.len() as u64) as usize];
            kills += usize::from(support::kill_descendant(pid, victim, libc::SIGKILL));
        }
        std::thread::sleep(Duration::from_millis(next() % 40));
    }
    assert!(kills > 10, "only {kills} kills");
    // launch is still there and answers.
    let (code, text) = status(&p);
    assert_eq!(code, 0, "{text}\n{}", launch.stderr.text());
    // Shut down while the killing goes on.
    launch.signal(libc::SIGTERM);
    let stop = Instant::now() + Duration::from_millis(300);
    while Instant::now() < stop {
        for victim in descendants(pid) {
            support::kill_descendant(pid, victim, libc::SIGKILL);
        }
        assert_eq!(zombies_of(pid), 0, "a zombie under launch");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = launch.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
}

/// 10,000 signals in a burst (forwarded USR1s), with the TERM that stops the container
/// in the middle of it: no crash, and the shutdown is not lost.
#[test]
fn a_storm_of_signals_loses_no_shutdown() {
    let script = "trap 'n=$((n+1))' USR1; trap 'echo \"got TERM\"; exit 0' TERM; n=0; \
                  echo ready; while :; do sleep 0.01; done";
    let mut cmd = support::command(Mode::Pid1, &["--", "sh", "-c", script]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut launch = Launched::spawn(Mode::Pid1, cmd);
    assert!(launch.stdout.wait_for("ready", Duration::from_secs(10)));
    let pid = launch.pid;
    for i in 0..10_000 {
        let signal = if i == 5_000 {
            libc::SIGTERM
        } else {
            libc::SIGUSR1
        };
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(pid, signal) };
    }
    let status = launch.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    assert!(launch.stdout.text().contains("got TERM"));
}

/// A child that uses up its descriptors and one that forks 5,000 short-lived
/// processes: launch keeps answering, reaps them all, and shuts down cleanly.
#[test]
fn a_child_that_exhausts_descriptors_or_forks_thousands_leaves_launch_responsive() {
    let p = Project::new("fault-fork-storm");
    p.write(
        "project/launch.yml",
        r#"processes:
  hog:
    command: |
      ulimit -n 256
      exec perl -e '$| = 1; my @f; while (open(my $fh, "<", "/dev/null")) { push @f, $fh }
        print "hog: out of descriptors after ", scalar(@f), "\n"; sleep 1000'
  forker:
    command: |
      for i in $(seq 5000); do (sleep 0.2 &); done
      echo "forker: forked 5000"
      exec sleep 1000
"#,
    );
    let mut launch = start(&p);
    assert!(
        launch
            .stdout
            .wait_for("hog: out of descriptors after 25", Duration::from_secs(20)),
        "{}{}",
        launch.stdout.text(),
        launch.stderr.text()
    );
    // While the forker forks, launch answers its control socket.
    let (code, text) = status(&p);
    assert_eq!(code, 0, "{text}");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let out = launch.stdout.text() + &launch.stderr.text();
            out.contains("forker: forked 5000").then_some(())
        })
        .is_some(),
        "{}",
        launch.stderr.text()
    );
    // Every orphan is reaped: only the two services (and their shells) are left.
    let pid = launch.pid;
    let settled = wait_until(Duration::from_secs(20), || {
        (descendants(pid).len() <= 4 && zombies_of(pid) == 0).then_some(())
    });
    assert!(
        settled.is_some(),
        "{} processes left, {} zombies",
        descendants(pid).len(),
        zombies_of(pid)
    );
    let (code, text) = status(&p);
    assert_eq!(code, 0);
    assert!(text.contains("hog") && text.contains("forker"), "{text}");
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}

/// `launch run` with a `yes` flood under `log_prefix` and launch's stdout a pipe that the
/// test holds open but does not read (yet): returns launch and that pipe.
fn flooded(p: &Project) -> (Launched, std::process::ChildStdout) {
    p.write(
        "project/launch.yml",
        "processes:\n  flood: {command: [yes], log_prefix: true}\n  quiet: {command: \"exec sleep 1000\"}\n",
    );
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = support::Output::collect(child.stderr.take().unwrap());
    let launch = Launched::adopt(Mode::Pid1, child, Default::default(), stderr);
    assert!(
        launch
            .stderr
            .wait_for("quiet started", Duration::from_secs(10)),
        "{}",
        launch.stderr.text()
    );
    // Long enough for the pipe to fill, and for launch to take its reader for stuck (1 s
    // without taking anything) and drop lines rather than hold `yes`.
    std::thread::sleep(Duration::from_millis(1500));
    (launch, stdout)
}

#[test]
fn a_log_flood_to_a_stuck_reader_never_blocks_launch() {
    let p = Project::new("fault-log-flood");
    let (mut launch, _unread) = flooded(&p);
    let asked = Instant::now();
    let (code, text) = status(&p);
    let answered = asked.elapsed();
    assert_eq!(code, 0, "{text}\n{}", launch.stderr.text());
    assert!(text.contains("flood") && text.contains("quiet"), "{text}");
    assert!(
        answered < Duration::from_secs(2),
        "status took {answered:?}"
    );
    let asked = Instant::now();
    launch.signal(libc::SIGTERM);
    let status = launch.wait(Duration::from_secs(10));
    let took = asked.elapsed();
    eprintln!("status answered in {answered:?}; SIGTERM ended launch in {took:?}");
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

#[test]
fn lines_dropped_for_a_stuck_reader_are_counted_once_it_reads() {
    let p = Project::new("fault-log-dropped");
    let (mut launch, unread) = flooded(&p);
    let _reader = support::Output::collect(unread);
    let said = "lines of flood's output: the reader of launch's output was not reading";
    assert!(
        launch.stderr.wait_for(said, Duration::from_secs(10)),
        "{}",
        launch.stderr.text()
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}
