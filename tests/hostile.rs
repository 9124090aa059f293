//! The volume's writer and the app user as attackers (docs/security.md): what they plant
//! in the directories they control (symlinks, FIFOs, guessed names, huge or deep files)
//! never makes launch read, write, chown or chmod anything else, never stalls it, and
//! never leaks another file's bytes into the log. Victims are stand-in files outside the
//! volume; the app user is a real non-root uid.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::project::Project;
use support::{Launched, Mode};

const NOBODY: u32 = 65534;

/// A project with one template and one long-running process.
fn project(name: &str) -> Project {
    let p = Project::new(name);
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "templates:\n  - {{src: templates/app.conf, dest: {out}/app.conf}}\nprocesses:\n  app: {{command: [sleep, \"1000\"]}}\n"
        ),
    )
    .write("project/pillar.yml", "name: demo\n")
    .write("project/templates/app.conf", "name={{ pillar.name }}\n");
    p
}

/// A root-only file outside the volume, and what it holds.
fn victim(p: &Project, name: &str) -> (std::path::PathBuf, &'static str) {
    let path = p.path(name);
    let text = "root-only: the victim's secret line\n";
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    (path, text)
}

fn assert_untouched(path: &Path, text: &str) {
    let meta = fs::symlink_metadata(path).unwrap();
    assert_eq!(
        fs::read_to_string(path).unwrap(),
        text,
        "{}",
        path.display()
    );
    assert_eq!(
        (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 0, 0),
        "{} changed owner or mode",
        path.display()
    );
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

fn start(p: &Project) -> Launched {
    fs::create_dir_all(p.path("control")).unwrap();
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

/// `launch status` against a running launch: answers, and how long it took.
fn status(p: &Project) -> (bool, Duration) {
    let started = Instant::now();
    let out = Command::new(support::launch_bin())
        .arg("status")
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), started.elapsed())
}

/// `launch reconfigure` as PID 1 of its own namespace: its pid is 1, as in a
/// container, so the names it would once have staged under are known in advance.
fn reconfigure_as_pid1(p: &Project) -> (i32, String) {
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["reconfigure", "--root", &root]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut launched = Launched::spawn(Mode::Pid1, cmd);
    let status = launched.wait(Duration::from_secs(30));
    (status.code().unwrap_or(-1), launched.stderr.text())
}

#[test]
fn a_symlink_at_a_staging_name_in_the_volume_is_never_followed() {
    // Finding 1: the volume's writer put a symlink at the name launch used to stage a
    // host key's .pub under (`.launch-tmp.<pid>.<name>`); launch then chmodded the
    // victim 0644 through it.
    let p = project("hostile-hostkey");
    p.write(
        "project/launch.yml",
        "ssh: {user: root, sshd: true, port: 2222}\n",
    );
    let (secret, text) = victim(&p, "victim");
    let host = p.path("data/ssh/host");
    fs::create_dir_all(&host).unwrap();
    for name in [
        "ssh_host_ed25519_key.pub",
        "ssh_host_ed25519_key",
        "sshd_config",
    ] {
        symlink(&secret, host.join(format!(".launch-tmp.1.{name}"))).unwrap();
    }
    let root = tempdir_private_root(&p);
    let (code, stderr) = reconfigure_in_private_root(&p, &root);
    assert_eq!(code, 0, "{stderr}");
    assert_untouched(&secret, text);
    let public = fs::read_to_string(host.join("ssh_host_ed25519_key.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    // The planted links were a killed launch's leftovers by their names: removed.
    for name in [
        "ssh_host_ed25519_key.pub",
        "ssh_host_ed25519_key",
        "sshd_config",
    ] {
        assert!(fs::symlink_metadata(host.join(format!(".launch-tmp.1.{name}"))).is_err());
    }
}

/// A private, empty /root for a run that installs root's authorized_keys.
fn tempdir_private_root(p: &Project) -> std::path::PathBuf {
    let dir = p.path("root-home");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn reconfigure_in_private_root(p: &Project, root_home: &Path) -> (i32, String) {
    let script = "mount --bind \"$2\" /root && exec \"$0\" reconfigure --root \"$1\"";
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            script,
        ])
        .arg(support::launch_bin())
        .arg(&p.root)
        .arg(root_home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_fifo_as_the_operators_pillar_is_refused_and_never_stalls_pid_1() {
    // Finding 2: a FIFO as configuration/pillar.yml left PID 1 stuck in open().
    let p = project("hostile-fifo");
    let mut launch = start(&p);
    launch.expect_log("app started");
    let file = p.path("data/configuration/pillar.yml");
    fs::remove_file(&file).unwrap();
    mkfifo(&file);
    launch.signal(libc::SIGHUP);
    launch.expect_log("is a FIFO, not a regular file");
    launch.expect_log("keeping the running one");
    let (answered, took) = status(&p);
    assert!(answered, "status did not answer");
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    launch.signal(libc::SIGTERM);
    assert!(launch.wait(Duration::from_secs(15)).code().is_some());

    // And at start: refused at once, with the reason.
    let started = Instant::now();
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    ran.says(&["configuration/pillar.yml: is a FIFO, not a regular file"]);
}

#[test]
fn a_fifo_planted_at_a_staging_name_never_blocks_a_write() {
    // Finding 2 through finding 1's names: the app user can write out/ (where the
    // template goes); a FIFO at every name launch used to stage under.
    let p = project("hostile-fifo-stage");
    for pid in 1..64 {
        mkfifo(&p.path(&format!("out/.launch-tmp.{pid}.app.conf")));
    }
    let started = Instant::now();
    let (code, stderr) = reconfigure_as_pid1(&p);
    assert_eq!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "name=demo\n"
    );
}

#[test]
fn the_operators_pillar_as_a_symlink_leaks_nothing_of_its_target() {
    // Finding 6: configuration/pillar.yml -> a root-only file (or /proc/self/environ):
    // the YAML error quoted the target's line in the log.
    let p = project("hostile-leak");
    let (secret, text) = victim(&p, "victim.yml");
    fs::create_dir_all(p.path("data/configuration")).unwrap();
    symlink(&secret, p.path("data/configuration/pillar.yml")).unwrap();
    let ran = p.run_env(
        "check",
        &[],
        &[("LEAK_TEST_PASSWORD", "hunter2-in-environ")],
    );
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&["configuration/pillar.yml: is a symlink"]);
    assert!(!ran.stderr.contains("victim's secret"), "{}", ran.stderr);
    assert_untouched(&secret, text);

    fs::remove_file(p.path("data/configuration/pillar.yml")).unwrap();
    symlink(
        "/proc/self/environ",
        p.path("data/configuration/pillar.yml"),
    )
    .unwrap();
    let ran = p.run_env(
        "check",
        &[],
        &[("LEAK_TEST_PASSWORD", "hunter2-in-environ")],
    );
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
    assert!(!ran.stdout.contains("hunter2"), "{}", ran.stdout);
}

#[test]
fn huge_deep_or_odd_operator_files_are_refused_with_the_limit() {
    // Finding 6's other half: the read was unbounded; and a deeply nested document.
    let p = project("hostile-huge");
    let file = p.path("data/configuration/pillar.yml");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let line = "k: [1, 2, 3]\n";
    fs::write(&file, line.repeat((17 << 20) / line.len())).unwrap();
    p.run("check", &[]).says(&[
        "configuration/pillar.yml: is 17825",
        "more than the 16777216 bytes launch reads",
        "LAUNCH_MAX_FILE_SIZE",
    ]);
    // The limit is the operator's to raise; then the next problem shows (a repeated key).
    let raised = p.run_env("check", &[], &[("LAUNCH_MAX_FILE_SIZE", "32M")]);
    assert!(
        !raised.stderr.contains("bytes launch reads"),
        "{}",
        raised.stderr
    );

    let deep = format!("a: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    fs::write(&file, deep).unwrap();
    let started = Instant::now();
    p.run("check", &[])
        .says(&["configuration/pillar.yml:1: the document nests more than 100 levels"]);
    assert!(started.elapsed() < Duration::from_secs(10));

    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    p.run("check", &[])
        .says(&["configuration/pillar.yml: is a directory, not a regular file"]);
}

#[test]
fn check_stages_in_a_directory_of_its_own_never_a_guessable_one() {
    // Finding 7: `launch check` staged into /tmp/launch-check-<pid> and reused it when
    // someone else had made it first: the app user read a rendered secret there.
    let p = project("hostile-check");
    let record = p.path("record");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "templates:\n  - src: templates/app.conf\n    dest: {out}/app.conf\n    check: \"stat -c '%a %u %n' \\\"$(dirname {{{{ staged }}}})\\\" >> {}\"\n",
            record.display()
        ),
    );
    // The attacker makes the directories of the next pids, world-writable, as uid 65534.
    let base = std::process::id();
    let mut planted = Vec::new();
    for pid in base..base + 300 {
        let dir = std::env::temp_dir().join(format!("launch-check-{pid}"));
        if fs::create_dir(&dir).is_ok() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
            planted.push(dir);
        }
    }
    for _ in 0..3 {
        let ran = p.run("check", &[]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    for dir in planted {
        let _ = fs::remove_dir_all(dir);
    }
    let lines = fs::read_to_string(&record).unwrap();
    let dirs: Vec<&str> = lines.lines().collect();
    assert_eq!(dirs.len(), 3, "{lines}");
    for line in &dirs {
        assert!(
            line.starts_with("700 0 "),
            "staged in a directory not launch's own: {line}"
        );
    }
    assert!(
        dirs[0] != dirs[1] && dirs[1] != dirs[2],
        "a reused directory: {lines}"
    );
}

#[test]
fn nothing_is_written_when_the_volume_is_refused() {
    // Finding 10: with configuration/ a symlink, outputs were written and then launch
    // refused the configuration (exit 78, "nothing was written").
    let p = project("hostile-nothing");
    let elsewhere = p.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, p.path("data/configuration")).unwrap();
    let before = p.snapshot();
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&["configuration: is a symlink", "nothing was written"]);
    assert_eq!(
        p.snapshot(),
        before,
        "a file was written before the refusal"
    );
    assert!(!p.path("out/app.conf").exists());

    // At a reload: refused, the running files kept.
    fs::remove_file(p.path("data/configuration")).unwrap();
    let mut launch = start(&p);
    launch.expect_log("app started");
    let rendered = fs::read_to_string(p.path("out/app.conf")).unwrap();
    p.write("project/pillar.yml", "name: changed\n");
    fs::rename(p.path("data/configuration"), p.path("moved")).unwrap();
    symlink(p.path("moved"), p.path("data/configuration")).unwrap();
    launch.signal(libc::SIGHUP);
    launch.expect_log("keeping the running one");
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        rendered
    );
    launch.signal(libc::SIGTERM);
    launch.wait(Duration::from_secs(15));
}

#[test]
fn files_a_killed_launch_had_staged_are_removed_at_the_next_start() {
    // Finding 11: `.launch-tmp.*` left by a SIGKILL in the middle of a reload stayed.
    let p = project("hostile-leftovers");
    let dead = p.path("out/.launch-tmp.1.0123456789abcdef.app.conf");
    let old_style = p.path("out/.launch-tmp.1.app.conf");
    let gone_pid = p.path("out/.launch-tmp.4194304.0123456789abcdef.app.conf");
    for f in [&dead, &old_style, &gone_pid] {
        fs::write(f, "half").unwrap();
    }
    let (code, stderr) = reconfigure_as_pid1(&p);
    assert_eq!(code, 0, "{stderr}");
    for f in [&dead, &old_style, &gone_pid] {
        assert!(!f.exists(), "{} was left", f.display());
    }
    // Beside a launch that still runs (this test's own pid stands in for it, in the
    // same PID namespace), `launch reconfigure` keeps that one's staged file.
    let alive = p.path(&format!(
        "out/.launch-tmp.{}.0123456789abcdef.app.conf",
        std::process::id()
    ));
    fs::write(&alive, "half").unwrap();
    fs::write(&gone_pid, "half").unwrap();
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(alive.exists(), "a running launch's staged file was removed");
    assert!(!gone_pid.exists(), "a dead launch's staged file was left");
}

#[test]
fn symlinks_are_followed_only_where_nobody_but_root_can_plant_them() {
    // A Kubernetes ConfigMap mounted as pillar/: a 0777 directory of symlinks into
    // `..data`, on a read-only mount. Read-only, its links are the cluster's and are
    // followed; the same directory writable by anyone is refused.
    let p = project("hostile-configmap");
    let pillar = p.path("pillar");
    fs::create_dir_all(pillar.join("..2026_12_02")).unwrap();
    fs::write(
        pillar.join("..2026_12_02/site.yml"),
        "name: from-configmap\n",
    )
    .unwrap();
    symlink("..2026_12_02", pillar.join("..data")).unwrap();
    symlink("..data/site.yml", pillar.join("site.yml")).unwrap();
    fs::set_permissions(&pillar, fs::Permissions::from_mode(0o777)).unwrap();

    let writable = p.run("check", &["--show-pillar"]);
    assert_eq!(writable.code, 78, "{}", writable.stderr);
    writable.says(&["pillar/site.yml: is a symlink in a directory that others can write"]);

    let script = "mount --bind \"$2\" \"$2\" && mount -o remount,bind,ro \"$2\" && exec \"$0\" check --show-pillar --root \"$1\"";
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", script, support::launch_bin()])
        .arg(&p.root)
        .arg(&pillar)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("name: \"from-configmap\""), "{stdout}");
}

/// The app user of the ssh tests: uid 4242, home under the project root.
const APP_UID: u32 = 4242;

fn app_account(p: &Project, home: &str) -> (String, String) {
    (
        format!(
            "app:x:{APP_UID}:{APP_UID}::{}:/bin/sh\n",
            p.path(home).display()
        ),
        format!("app:x:{APP_UID}:\n"),
    )
}

/// Runs `script` as the app user (a real uid, no capabilities): the attacker.
fn as_app(script: &str) {
    let status = Command::new("setpriv")
        .args([
            &format!("--reuid={APP_UID}"),
            &format!("--regid={APP_UID}"),
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "the attacker's script failed: {script}");
}

#[test]
fn what_the_ssh_user_plants_in_its_home_never_redirects_launch() {
    // Finding 1: with `ssh.user: app`, the app user owns ~/.ssh. A FIFO at the name
    // authorized_keys used to be staged under blocked PID 1 in open(); a symlink there
    // made launch chown a root file to the app user.
    let p = project("hostile-home");
    p.write(
        "project/launch.yml",
        "ssh: {user: app}\nprocesses:\n  app: {command: [sleep, \"1000\"]}\n",
    );
    p.write(
        "data/ssh/alice.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE alice\n",
    );
    let (secret, text) = victim(&p, "victim");
    let elsewhere = p.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let home = p.path("home/app");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(APP_UID), Some(APP_UID)).unwrap();
    let dot_ssh = home.join(".ssh");
    as_app(&format!(
        "mkdir -m 700 {ssh} && for pid in $(seq 1 64); do mkfifo {ssh}/.launch-tmp.$pid.authorized_keys; done",
        ssh = dot_ssh.display()
    ));
    let (passwd, group) = app_account(&p, "home/app");
    let mut launch = p.run_with_accounts(&passwd, &group);
    launch.expect_log("app started");
    let keys = fs::read_to_string(dot_ssh.join("authorized_keys")).unwrap();
    assert!(keys.contains("ssh-ed25519 AAAAC3"), "{keys}");
    let meta = fs::metadata(dot_ssh.join("authorized_keys")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (APP_UID, 0o600));

    // Now symlinks to the victim at every name launch staged under, and at the name
    // itself; then a reload.
    as_app(&format!(
        "cd {ssh} && rm -f .launch-tmp.* && for pid in $(seq 1 64); do ln -s {v} .launch-tmp.$pid.authorized_keys; done && rm authorized_keys && ln -s {v} authorized_keys",
        ssh = dot_ssh.display(),
        v = secret.display()
    ));
    launch.signal(libc::SIGHUP);
    launch.expect_log("SIGHUP: reconfiguring");
    assert!(
        support::wait_until(Duration::from_secs(10), || {
            fs::symlink_metadata(dot_ssh.join("authorized_keys"))
                .ok()
                .filter(|m| m.is_file())
        })
        .is_some(),
        "the symlink at authorized_keys was not replaced"
    );
    assert_untouched(&secret, text);

    // ~/.ssh itself swapped for a symlink to a root directory: refused, not followed.
    as_app(&format!(
        "mv {ssh} {home}/old-ssh && ln -s {e} {ssh}",
        ssh = dot_ssh.display(),
        home = home.display(),
        e = elsewhere.display()
    ));
    launch.signal(libc::SIGHUP);
    launch.expect_log(".ssh: is a symlink in a directory that others can write");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through the link"
    );
    let meta = fs::metadata(&elsewhere).unwrap();
    assert_eq!(
        meta.uid(),
        0,
        "the root directory was given to the app user"
    );
    assert_untouched(&secret, text);
    launch.signal(libc::SIGTERM);
    launch.wait(Duration::from_secs(15));
}

#[test]
fn a_missing_home_of_the_ssh_user_is_made_the_users() {
    // Finding 9: the home was made root:root 0700, so the user could not log in.
    let p = project("hostile-nohome");
    p.write(
        "project/launch.yml",
        "ssh: {user: app}\nprocesses:\n  app: {command: [sleep, \"1000\"]}\n",
    );
    let (passwd, group) = app_account(&p, "home/new");
    let mut launch = p.run_with_accounts(&passwd, &group);
    launch.expect_log("app started");
    let mode = |rel: &str| {
        let meta = fs::metadata(p.path(rel)).unwrap();
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    };
    assert_eq!(mode("home/new"), (0o750, APP_UID, APP_UID));
    assert_eq!(mode("home/new/.ssh"), (0o700, APP_UID, APP_UID));
    assert_eq!(
        mode("home/new/.ssh/authorized_keys"),
        (0o600, APP_UID, APP_UID)
    );
    launch.signal(libc::SIGTERM);
    launch.wait(Duration::from_secs(15));
}

/// What an attacker may plant at a name before launch writes.
#[derive(Debug, Clone, Copy)]
enum Plant {
    LinkToFile,
    LinkToDir,
    Fifo,
    Dir,
    File,
}

fn plant_strategy() -> impl proptest::strategy::Strategy<Value = Vec<(u8, Plant)>> {
    use proptest::prelude::*;
    let plant = prop_oneof![
        Just(Plant::LinkToFile),
        Just(Plant::LinkToDir),
        Just(Plant::Fifo),
        Just(Plant::Dir),
        Just(Plant::File),
    ];
    prop::collection::vec((0u8..4, plant), 0..6)
}

/// Everything under `dir`: path -> (kind and mode, owner, content).
fn state(dir: &Path) -> Vec<(std::path::PathBuf, u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let content = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((entry.path().to_path_buf(), meta.mode(), meta.uid(), content));
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        // Each case races a thread against three flushed writes: a hundredth of the
        // other properties (50 cases in CI)..
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).unwrap_or(1000) / 100,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever the owner of a directory plants there, before and while launch writes
    /// into it, nothing outside it changes: no write, no chown, no chmod, no new file.
    #[test]
    fn staged_writes_never_touch_anything_outside_their_directory(
        plants in plant_strategy(),
        swaps in proptest::prelude::any::<bool>(),
        case in proptest::prelude::any::<u64>(),
    ) {
        use launch::volume::access::{Attributes, Trust};
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("staged-prop-{}-{case}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (dir, outside) = (root.join("home"), root.join("outside"));
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(outside.join("victim-dir")).unwrap();
        let victim = outside.join("victim");
        fs::write(&victim, "root-only\n").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&dir, Some(APP_UID), Some(APP_UID)).unwrap();
        let before = state(&outside);
        let names = ["app.conf", ".launch-tmp.1.app.conf", ".launch-tmp.2.app.conf", "other"];
        let plant = |at: &Path, what: Plant| {
            let _ = fs::remove_file(at);
            let _ = fs::remove_dir_all(at);
            match what {
                Plant::LinkToFile => { let _ = symlink(&victim, at); }
                Plant::LinkToDir => { let _ = symlink(outside.join("victim-dir"), at); }
                Plant::Fifo => { let _ = nix::unistd::mkfifo(at, nix::sys::stat::Mode::from_bits_truncate(0o666)); }
                Plant::Dir => { let _ = fs::create_dir(at); }
                Plant::File => { let _ = fs::write(at, "planted"); }
            }
        };
        for (i, what) in &plants {
            plant(&dir.join(names[*i as usize]), *what);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = swaps.then(|| {
            let (stop, dir, victim) = (stop.clone(), dir.clone(), victim.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let name = entry.file_name();
                        if name.to_string_lossy().starts_with(".launch-tmp.") {
                            n += 1;
                            if fs::rename(entry.path(), dir.join(format!("stolen-{n}"))).is_ok() {
                                let _ = symlink(&victim, entry.path());
                            }
                        }
                    }
                }
            })
        });
        let trust = Trust::default();
        for _ in 0..3 {
            let _ = launch::volume::atomic::write(
                &dir.join("app.conf"),
                b"rendered\n",
                Attributes::owned(0o644, Some((APP_UID, APP_UID))),
                &trust,
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(racer) = racer {
            racer.join().unwrap();
        }
        let after = state(&outside);
        let _ = fs::remove_dir_all(&root);
        proptest::prop_assert_eq!(before, after);
    }
}
