//! The plain-init mode, `launch -- CMD`, as PID 1 and as a subreaper, with real
//! processes and real signals.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Launched, Mode, children_of, probe, tagged, unique_tag, wait_until, zombies_of};

fn probe_str() -> &'static str {
    probe().to_str().unwrap()
}

fn run(mode: Mode, args: &[&str]) -> (i32, Launched) {
    let mut launched = Launched::start(mode, args);
    let status = launched.wait(Duration::from_secs(20));
    (status.code().expect("launch exited normally"), launched)
}

fn orphans_are_reaped(mode: Mode) {
    let tag = unique_tag(&format!("orphans-{mode:?}"));
    let tag_arg = format!("tag={tag}");
    let mut launch = Launched::start(mode, &["--", probe_str(), &tag_arg, "orphans", "1000"]);
    launch.expect("released");
    // While CMD still runs: every orphan is reaped, none left as a zombie.
    let settled = wait_until(Duration::from_secs(10), || {
        (zombies_of(launch.pid) == 0 && children_of(launch.pid).len() == 1).then_some(())
    });
    assert!(
        settled.is_some(),
        "zombies left under launch: {} of {} children",
        zombies_of(launch.pid),
        children_of(launch.pid).len()
    );
    assert!(launch.running());
    launch.signal(libc::SIGTERM);
    let status = launch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    // And after: nothing of the probe's is left anywhere.
    assert_eq!(tagged(&tag), Vec::<i32>::new());
}

#[test]
fn orphans_are_reaped_as_pid1() {
    orphans_are_reaped(Mode::Pid1);
}

#[test]
fn orphans_are_reaped_as_subreaper() {
    orphans_are_reaped(Mode::Subreaper);
}

const FORWARDED: [(i32, &str); 8] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGALRM, "SIGALRM"),
];

fn signals_reach_cmd_once(mode: Mode, group: bool) {
    let count = FORWARDED.len().to_string();
    let mut args = vec![];
    if group {
        args.push("--group");
    }
    args.extend(["--", probe_str(), "signals", &count]);
    if group {
        args.push("group");
    }
    let roles: &[&str] = if group {
        &["main", "grandchild"]
    } else {
        &["main"]
    };
    let mut launch = Launched::start(mode, &args);
    for role in roles {
        launch.expect(&format!("{role} ready"));
    }
    for (signal, name) in FORWARDED {
        launch.signal(signal);
        for role in roles {
            launch.expect(&format!("{role} {name}"));
        }
    }
    let status = launch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    let out = launch.stdout.text();
    for role in roles {
        let got: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{role} ")))
            .filter(|l| *l != "ready")
            .collect();
        let want: Vec<&str> = FORWARDED.iter().map(|(_, name)| *name).collect();
        assert_eq!(
            got, want,
            "{role} must get each signal exactly once, in order"
        );
    }
}

#[test]
fn each_signal_reaches_cmd_exactly_once_as_pid1() {
    signals_reach_cmd_once(Mode::Pid1, false);
}

#[test]
fn each_signal_reaches_cmd_exactly_once_as_subreaper() {
    signals_reach_cmd_once(Mode::Subreaper, false);
}

#[test]
fn with_group_signals_reach_the_grandchild_too() {
    signals_reach_cmd_once(Mode::Pid1, true);
}

#[test]
fn without_group_the_grandchild_is_spared() {
    let mut launch = Launched::start(Mode::Pid1, &["--", probe_str(), "signals", "1", "group"]);
    launch.expect("main ready");
    launch.expect("grandchild ready");
    launch.signal(libc::SIGUSR1);
    launch.expect("main SIGUSR1");
    // The main probe waits for its grandchild, which got nothing: launch keeps running.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!launch.stdout.text().contains("grandchild SIGUSR1"));
    assert!(launch.running());
}

#[test]
fn exit_codes_pass_through() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        assert_eq!(run(mode, &["--", probe_str(), "exit", "0"]).0, 0);
        assert_eq!(run(mode, &["--", probe_str(), "exit", "3"]).0, 3);
        assert_eq!(run(mode, &["--", probe_str(), "killself", "9"]).0, 137);
    }
}

#[test]
fn exit_remap_applies() {
    let p = probe_str();
    assert_eq!(
        run(
            Mode::Subreaper,
            &["--exit-remap", "3:0", "--", p, "exit", "3"]
        )
        .0,
        0
    );
    assert_eq!(
        run(
            Mode::Subreaper,
            &["-e", "137:5", "-e", "3:9", "--", p, "killself", "9"]
        )
        .0,
        5
    );
    assert_eq!(
        run(Mode::Subreaper, &["-e", "143:0", "--", p, "exit", "4"]).0,
        4
    );
}

#[test]
fn death_by_sigterm_is_143_and_remappable() {
    for (args, want) in [(vec![], 143), (vec!["-e", "143:0"], 0)] {
        let mut all = args.clone();
        all.extend(["--", "sleep", "100"]);
        let mut launch = Launched::start(Mode::Pid1, &all);
        wait_until(Duration::from_secs(5), || {
            (!children_of(launch.pid).is_empty()).then_some(())
        })
        .expect("sleep started");
        launch.signal(libc::SIGTERM);
        assert_eq!(launch.wait(Duration::from_secs(5)).code(), Some(want));
    }
}

fn stubborn_descendant_is_killed_after_grace(mode: Mode) {
    let tag = unique_tag(&format!("stubborn-{mode:?}"));
    let tag_arg = format!("tag={tag}");
    let started = Instant::now();
    let mut launch = Launched::start(
        mode,
        &["--grace", "1s", "--", probe_str(), &tag_arg, "stubborn"],
    );
    let status = launch.wait(Duration::from_secs(2) + Duration::from_millis(500));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", launch.stderr.text());
    assert!(
        took >= Duration::from_secs(1),
        "the straggler got its grace ({took:?})"
    );
    assert!(
        launch.stderr.text().contains("SIGKILL"),
        "{}",
        launch.stderr.text()
    );
    assert_eq!(
        tagged(&tag),
        Vec::<i32>::new(),
        "nothing may be left running"
    );
}

#[test]
fn stubborn_descendant_is_killed_after_grace_as_pid1() {
    stubborn_descendant_is_killed_after_grace(Mode::Pid1);
}

#[test]
fn stubborn_descendant_is_killed_after_grace_as_subreaper() {
    stubborn_descendant_is_killed_after_grace(Mode::Subreaper);
}

#[test]
fn second_term_during_grace_kills_at_once() {
    let tag = unique_tag("second-term");
    let tag_arg = format!("tag={tag}");
    let mut launch = Launched::start(
        Mode::Subreaper,
        &["--grace", "30s", "--", probe_str(), &tag_arg, "stubborn"],
    );
    launch.expect("stubborn");
    wait_until(Duration::from_secs(5), || {
        launch.stderr.text().is_empty().then_some(())?;
        let left = children_of(launch.pid);
        (left.len() == 1 && tagged(&tag) == left).then_some(())
    })
    .expect("only the stubborn grandchild is left");
    std::thread::sleep(Duration::from_millis(100));
    launch.signal(libc::SIGTERM);
    let status = launch.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert_eq!(tagged(&tag), Vec::<i32>::new());
}

#[test]
fn children_exiting_with_cmd_do_not_hang_launch() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        for _ in 0..10 {
            let (code, launch) = run(mode, &["--", probe_str(), "burst", "300"]);
            assert_eq!(code, 0, "{}", launch.stderr.text());
            assert!(launch.stdout.text().contains("burst 300"));
        }
    }
}

#[test]
fn usage_errors_say_what_and_exit_64() {
    let (code, launch) = run(Mode::Subreaper, &["--"]);
    assert_eq!(code, 64);
    assert!(
        launch.stderr.text().contains("no command given"),
        "{}",
        launch.stderr.text()
    );
    assert!(launch.stderr.text().contains("launch [OPTIONS] -- CMD"));

    // Alone, launch is `launch run`: with no project it says how to run one command.
    let (code, launch) = run(Mode::Subreaper, &[]);
    assert_eq!(code, 78);
    assert!(
        launch.stderr.text().contains("launch -- CMD"),
        "{}",
        launch.stderr.text()
    );

    let (code, launch) = run(Mode::Subreaper, &["nginx"]);
    assert_eq!(code, 64);
    assert!(
        launch.stderr.text().contains("launch -- CMD"),
        "{}",
        launch.stderr.text()
    );

    let (code, launch) = run(Mode::Subreaper, &["--grace", "soon", "--", "true"]);
    assert_eq!(code, 64);
    assert!(
        launch.stderr.text().contains("5s, 250ms or 1m30s"),
        "{}",
        launch.stderr.text()
    );

    let (code, _) = run(Mode::Subreaper, &["--exit-remap", "143", "--", "true"]);
    assert_eq!(code, 64);
}

#[test]
fn missing_and_unexecutable_commands() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let (code, launch) = run(mode, &["--", "no-such-command-here"]);
        assert_eq!(code, 127);
        assert!(
            launch
                .stderr
                .text()
                .starts_with("launch: no-such-command-here: not found"),
            "{}",
            launch.stderr.text()
        );
        let plain = std::env::temp_dir().join(format!("not-executable-{}", std::process::id()));
        std::fs::write(&plain, "#!/bin/sh\necho ran\n").unwrap();
        let (code, launch) = run(mode, &["--", plain.to_str().unwrap()]);
        std::fs::remove_file(&plain).unwrap();
        assert_eq!(code, 126);
        assert!(
            launch.stderr.text().contains("not-executable"),
            "{}",
            launch.stderr.text()
        );
        assert!(launch.stderr.text().contains(": permission denied"));
        let (code, _) = run(mode, &["--", "/"]);
        assert_eq!(code, 126);
    }
}

#[test]
fn a_missing_path_is_no_such_file_not_a_path_lookup() {
    for program in ["/doesnotexist", "./nowhere/app"] {
        let (code, launch) = run(Mode::Subreaper, &["--", program]);
        let err = launch.stderr.text();
        assert_eq!(code, 127, "{err}");
        assert!(
            err.starts_with(&format!("launch: {program}: no such file (check the path")),
            "{err}"
        );
        assert!(
            !err.contains("PATH="),
            "a path is not looked up on PATH: {err}"
        );
    }
}

/// `-v` promises "start, forward, reap, stop": each orphan reaped is said, and so are
/// the SIGTERM and the SIGKILL that end what CMD left behind, with their pids.
#[test]
fn verbose_says_each_orphan_reaped_and_what_is_left_ended() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let (code, launch) = run(
            mode,
            &["-v", "--grace", "1s", "--", probe_str(), "stubborn"],
        );
        let err = launch.stderr.text();
        assert_eq!(code, 0, "{err}");
        let out = launch.stdout.text();
        let left = out
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no pid from the probe: {out}"));
        for needle in [
            format!("{} started (pid", probe_str()),
            format!("SIGTERM to 1 process left behind (pid {left})"),
            "the shutdown grace is over: sending SIGKILL".to_string(),
            format!("reaped orphan pid {left} (killed by SIGKILL"),
        ] {
            assert!(err.contains(&needle), "{mode:?}: no {needle:?} in:\n{err}");
        }

        let mut launch = Launched::start(mode, &["-v", "--", probe_str(), "orphans", "3"]);
        launch.expect("released");
        assert!(
            launch
                .stderr
                .wait_for_n("reaped orphan pid", 3, Duration::from_secs(10)),
            "{mode:?}: {}",
            launch.stderr.text()
        );
        launch.signal(libc::SIGTERM);
        assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
        assert!(
            launch.stderr.text().contains("forwarding SIGTERM"),
            "{}",
            launch.stderr.text()
        );
    }
}

#[test]
fn a_script_without_a_shebang_runs_under_the_shell_and_path_order_holds() {
    // execvp's rules, which launch follows itself: ENOEXEC falls back to /bin/sh, and
    // a missing PATH entry is skipped for the next one.
    let dir = std::env::temp_dir().join(format!("no-shebang-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("greet");
    std::fs::write(&script, "echo \"no shebang, args: $*\"\nexit 4\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = support::command(Mode::Subreaper, &["--", "greet", "a", "b"]);
    cmd.env(
        "PATH",
        format!("/no/such/dir:{}:/usr/bin:/bin", dir.display()),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut launch = Launched::spawn(Mode::Subreaper, cmd);
    let status = launch.wait(Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(status.code(), Some(4), "{}", launch.stderr.text());
    assert_eq!(launch.stdout.text(), "no shebang, args: a b\n");
}

#[test]
fn help_and_version_teach() {
    let (code, launch) = run(Mode::Subreaper, &["--help"]);
    assert_eq!(code, 0);
    let help = launch.stdout.text();
    assert!(
        help.contains("ENTRYPOINT [\"/usr/local/bin/launch\", \"--\"]"),
        "{help}"
    );
    assert!(help.contains("--exit-remap"));
    let (code, launch) = run(Mode::Subreaper, &["--version"]);
    assert_eq!(code, 0);
    assert!(launch.stdout.text().starts_with("launch "));
}

/// The probe's report of its signal state, fds, cwd and process group, started with
/// SIGUSR2 blocked, SIGHUP and SIGPIPE ignored and fd 7 inherited.
/// `with_launch` false runs the probe the same way but without launch (unshare alone in
/// Pid1 mode), which is the baseline.
fn status_report(mode: Mode, with_launch: bool, cwd: &std::path::Path) -> String {
    let mut cmd = match (mode, with_launch) {
        (_, true) => support::command(mode, &["--", probe_str(), "status"]),
        (Mode::Pid1, false) => {
            let mut c = std::process::Command::new("unshare");
            c.args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                probe_str(),
                "status",
            ]);
            c
        }
        (Mode::Subreaper, false) => std::process::Command::new(probe_str()),
    };
    if !with_launch && mode == Mode::Subreaper {
        cmd.arg("status");
    }
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: runs between fork and exec; only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            if libc::dup2(2, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cmd_gets_the_signal_state_fds_and_cwd_it_would_have_without_launch() {
    let dir = std::env::temp_dir();
    for mode in [Mode::Pid1, Mode::Subreaper] {
        let baseline = status_report(mode, false, &dir);
        let ignored = baseline
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .unwrap();
        let ignored = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(
            ignored & 0x1001,
            0x1001,
            "the baseline ignores SIGHUP and SIGPIPE: {baseline}"
        );
        assert!(
            baseline.contains("SigBlk:\t0000000000000800"),
            "and blocks SIGUSR2: {baseline}"
        );
        assert!(baseline.contains("fd 7\n"));
        let report = status_report(mode, true, &dir);
        let signal_lines = |s: &str| {
            s.lines()
                .filter(|l| l.starts_with("Sig") || l.starts_with("fd "))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            signal_lines(&report),
            signal_lines(&baseline),
            "mode {mode:?}"
        );
        assert!(
            report.contains(&format!("cwd {}", dir.display())),
            "{report}"
        );
        assert!(
            report.contains("pgid-is-pid 1"),
            "CMD leads its own group: {report}"
        );
    }
}

#[test]
fn launch_itself_moves_to_root_and_holds_no_terminal_group() {
    let dir = std::env::temp_dir();
    let mut cmd = support::command(Mode::Subreaper, &["--", probe_str(), "sleep"]);
    cmd.current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let launch = Launched::spawn(Mode::Subreaper, cmd);
    launch.expect("ready");
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", launch.pid)).unwrap();
    assert_eq!(cwd, std::path::Path::new("/"));
}

#[test]
fn ctrl_c_on_a_terminal_reaches_cmd_once() {
    use std::io::Write;

    let mut cmd = support::command(Mode::Pid1, &["--", probe_str(), "signals", "1"]);
    let (child, master) = support::spawn_on_pty(&mut cmd);
    drop(cmd);
    let mut writer = master.try_clone().unwrap();
    let output = support::Output::collect(master);
    let mut launch = Launched::adopt(
        Mode::Pid1,
        child,
        output.clone(),
        support::Output::collect(std::io::empty()),
    );
    assert!(
        output.wait_for("main ready", Duration::from_secs(10)),
        "{}",
        output.text()
    );
    // The probe must have the terminal's foreground before ^C is typed.
    let probe_pid = wait_until(Duration::from_secs(5), || {
        children_of(launch.pid).first().copied()
    })
    .unwrap();
    wait_until(Duration::from_secs(5), || {
        let stat = std::fs::read_to_string(format!("/proc/{probe_pid}/stat")).ok()?;
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        // fields[2] is the pgrp, fields[5] the terminal's foreground group.
        (fields[2] == fields[5]).then_some(())
    })
    .expect("the probe's group is the terminal's foreground");
    writer.write_all(b"\x03").unwrap();
    assert!(
        output.wait_for("main SIGINT", Duration::from_secs(10)),
        "{}",
        output.text()
    );
    let status = launch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        output.text().matches("SIGINT").count(),
        1,
        "{}",
        output.text()
    );
}

/// launch started by `perl`, which sets SIGCHLD (and SIGUSR1) to "ignore" and execs it:
/// the state a careless parent leaves (POSIX keeps SIG_IGN across exec).
fn with_sigchld_ignored(mode: Mode, args: &[&str]) -> Launched {
    let ignore = [
        "perl",
        "-e",
        "$SIG{CHLD} = $SIG{USR1} = 'IGNORE'; exec @ARGV or die",
    ];
    let mut cmd = match mode {
        Mode::Pid1 => {
            let mut c = std::process::Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .args(ignore);
            c
        }
        Mode::Subreaper => {
            let mut c = std::process::Command::new(ignore[0]);
            c.args(&ignore[1..]);
            c
        }
    };
    cmd.arg(support::launch_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(mode, cmd)
}

#[test]
fn an_ignored_sigchld_hides_no_exit_from_launch() {
    for mode in [Mode::Pid1, Mode::Subreaper] {
        // With SIGCHLD ignored the kernel reaps the command itself and says nothing.
        let mut launch = with_sigchld_ignored(mode, &["--", "sh", "-c", "exit 3"]);
        let status = launch.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(3), "{mode:?}: {}", launch.stderr.text());

        // And TERM, forwarded, ends the command and so launch.
        let mut launch = with_sigchld_ignored(mode, &["--", "sleep", "100"]);
        wait_until(Duration::from_secs(5), || {
            (!children_of(launch.pid).is_empty()).then_some(())
        })
        .expect("sleep started");
        launch.signal(libc::SIGTERM);
        let status = launch.wait(Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(143),
            "{mode:?}: {}",
            launch.stderr.text()
        );
    }
}

#[test]
fn an_ignored_sigchld_is_not_passed_on_but_other_ignored_signals_are() {
    let mut launch = with_sigchld_ignored(Mode::Subreaper, &["--", probe_str(), "status"]);
    assert_eq!(launch.wait(Duration::from_secs(5)).code(), Some(0));
    let out = launch.stdout.text();
    let ignored = out
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no SigIgn line in {out:?}"));
    assert_eq!(ignored & (1 << (libc::SIGCHLD - 1)), 0, "{out}");
    assert_ne!(ignored & (1 << (libc::SIGUSR1 - 1)), 0, "{out}");
}
