//! The promises of docs/security.md, one test each where no other test file holds it:
//! a dropped privilege stays dropped, secrets never show, every file launch writes has
//! the mode the design gives it. (The control socket's refusal of non-root peers is
//! `a_non_root_client_is_refused` in tests/run.rs; seeding through hostile symlinks is
//! tests/seed.rs and tests/properties.rs.)

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;
use support::{Launched, Mode};

fn start(p: &Project, env: &[(&str, String)]) -> Launched {
    let root = p.root.display().to_string();
    let mut cmd = support::command(Mode::Pid1, &["run", "--root", &root]);
    cmd.env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

#[test]
fn a_dropped_privilege_cannot_be_taken_back() {
    let p = Project::new("sec-privilege");
    p.write(
        "project/launch.yml",
        r#"processes:
  app:
    user: nobody
    kind: oneshot
    command: |
      grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status
      perl -e 'use POSIX; print defined(POSIX::setuid(0)) ? "setuid(0) worked\n" : "setuid(0) refused: $!\n";
               print defined(POSIX::setgid(0)) ? "setgid(0) worked\n" : "setgid(0) refused: $!\n"'
"#,
    );
    let mut launch = start(&p, &[]);
    let status = launch.wait(Duration::from_secs(15));
    let out = launch.stdout.text();
    assert_eq!(status.code(), Some(0), "{out}{}", launch.stderr.text());
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
    };
    assert_eq!(
        field("Uid:"),
        ["65534"; 4],
        "real, effective, saved, fs uid"
    );
    assert_eq!(field("Gid:"), ["65534"; 4]);
    assert!(!field("Groups:").contains(&"0"), "root's group kept: {out}");
    assert_eq!(field("CapPrm:"), ["0000000000000000"]);
    assert_eq!(field("CapEff:"), ["0000000000000000"]);
    assert_eq!(field("CapAmb:"), ["0000000000000000"]);
    assert!(
        out.contains("setuid(0) refused: Operation not permitted"),
        "{out}"
    );
    assert!(
        out.contains("setgid(0) refused: Operation not permitted"),
        "{out}"
    );
}

#[test]
fn secrets_never_show_in_errors_logs_or_check_output() {
    const SECRET: &str = "hunter2-very-secret";
    let p = Project::new("sec-secrets");
    p.write("secrets/db_password", &format!("{SECRET}\n"))
        .write(
            "project/templates/app.conf",
            "password={{ secret(name=\"db_password\") }}\n",
        )
        // A check that prints what it checks: its output is shown when it fails.
        .write(
            "project/launch.yml",
            "templates:\n  - {src: templates/app.conf, dest: \"{{ project.dir }}/../out/app.conf\", check: \"cat {{ staged }}; exit {{ pillar.check_exit }}\"}\nprocesses:\n  app: {command: \"exec sleep 1000\", env: {PW: \"{{ secret(name='db_password') }}\"}, restart: {{ pillar.restart }}}\n",
        )
        .write("project/pillar.yml", "check_exit: 1\nrestart: always\n");
    let secrets = p.path("secrets").display().to_string();
    let env = [("LAUNCH_SECRETS_DIR", secrets.as_str())];
    let shown = |ran: &support::project::Ran| format!("{}{}", ran.stdout, ran.stderr);

    // A failing check that printed the staged file.
    let ran = p.run_env("check", &[], &env);
    assert_eq!(ran.code, 78);
    assert!(shown(&ran).contains("password=********"), "{}", shown(&ran));
    assert!(!shown(&ran).contains(SECRET), "{}", shown(&ran));
    let ran = p.run_env("reconfigure", &[], &env);
    assert_eq!(ran.code, 78);
    assert!(!shown(&ran).contains(SECRET), "{}", shown(&ran));

    // A spec error on a line that holds a secret: the excerpt is masked.
    let ran = p.run_env(
        "check",
        &["--set", "check_exit=0", "--set", "restart=sometimes"],
        &env,
    );
    assert_eq!(ran.code, 78);
    assert!(shown(&ran).contains("PW: \"********\""), "{}", shown(&ran));
    assert!(!shown(&ran).contains(SECRET), "{}", shown(&ran));

    // A running launch: start-up, a reload refused for the same mistake, status, stop.
    fs::write(
        p.path("project/pillar.yml"),
        "check_exit: 0\nrestart: always\n",
    )
    .unwrap();
    let mut launch = start(&p, &[("LAUNCH_SECRETS_DIR", secrets.clone())]);
    launch.expect_log("app started");
    fs::create_dir_all(p.path("data/configuration")).unwrap();
    fs::write(
        p.path("data/configuration/pillar.yml"),
        "restart: sometimes\n",
    )
    .unwrap();
    launch.signal(libc::SIGHUP);
    launch.expect_log("keeping the running one");
    let status = Command::new(support::launch_bin())
        .args(["status", "--json"])
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&status.stdout).contains(SECRET));
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    let logs = launch.stdout.text() + &launch.stderr.text();
    assert!(logs.contains("PW: \"********\""), "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
    // And the file itself has it, for the program.
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        format!("password={SECRET}\n")
    );
}

#[test]
fn every_file_launch_writes_has_the_mode_the_design_gives_it() {
    let p = Project::new("sec-modes");
    let port = 20000 + ((std::process::id() + 4099) % 20000) as u16;
    p.write(
        "project/launch.yml",
        &format!(
            "data_owner: nobody:nogroup\nssh: {{user: root, sshd: true, port: {port}}}\ntemplates:\n  - {{src: templates/t.conf, dest: \"{{{{ project.dir }}}}/../out/t.conf\", mode: \"0640\", owner: \"root:nogroup\"}}\nprocesses:\n  app: {{command: \"exec sleep 1000\"}}\n"
        ),
    )
    .write("project/templates/t.conf", "x\n")
    .write("project/pillar.yml", "a: 1\n");
    let mut launch = p.run_with_private_root(&p.path("control/launch.sock"));
    launch.expect_log("sshd started");
    let mode = |rel: &str| {
        let meta = fs::symlink_metadata(p.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
    };
    let nobody = 65534;
    assert_eq!(mode("data/configuration"), (0o750, 0, 0));
    assert_eq!(mode("data/configuration/pillar.yml"), (0o640, 0, 0));
    assert_eq!(mode("data/data"), (0o750, nobody, nobody));
    assert_eq!(mode("data/ssh"), (0o700, 0, 0));
    assert_eq!(mode("data/ssh/host"), (0o700, 0, 0));
    assert_eq!(mode("data/ssh/host/ssh_host_ed25519_key"), (0o600, 0, 0));
    assert_eq!(mode("data/ssh/host/sshd_config"), (0o600, 0, 0));
    assert_eq!(mode("out/t.conf"), (0o640, 0, nobody));
    assert_eq!(mode("control"), (0o700, 0, 0));
    assert_eq!(mode("control/launch.sock").0, 0o600);
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}

#[test]
fn pillar_values_marked_secret_are_used_but_never_shown() {
    const SECRET: &str = "tagged-hunter2";
    let p = Project::new("sec-tagged");
    p.write(
        "project/pillar.yml",
        "db:\n  user: app\n  password: !secret default-password\nrestart: always\n",
    )
    .write(
        "project/templates/app.conf",
        "user={{ pillar.db.user }}\npassword={{ pillar.db.password }}\n",
    )
    .write(
        "project/launch.yml",
        "templates:\n  - {src: templates/app.conf, dest: \"{{ project.dir }}/../out/app.conf\"}\nprocesses:\n  app: {command: \"exec sleep 1000\", env: {PW: \"{{ pillar.db.password }}\"}, restart: {{ pillar.restart | default(value='always') }}}\n",
    );
    // The operator overrides it in the volume, marked the same way.
    fs::create_dir_all(p.path("data/configuration")).unwrap();
    fs::write(
        p.path("data/configuration/pillar.yml"),
        format!("db:\n  password: !secret {SECRET}\n"),
    )
    .unwrap();
    let shown = |ran: &support::project::Ran| format!("{}{}", ran.stdout, ran.stderr);
    let ran = p.run("check", &["--show-pillar"]);
    assert_eq!(ran.code, 0, "{}", shown(&ran));
    assert!(
        shown(&ran).contains("db.password: \"********\""),
        "{}",
        shown(&ran)
    );
    assert!(
        shown(&ran).contains("+password=********"),
        "{}",
        shown(&ran)
    );
    assert!(shown(&ran).contains("db.user: \"app\""), "{}", shown(&ran));
    assert!(!shown(&ran).contains(SECRET), "{}", shown(&ran));
    // A spec error on the line that holds it.
    let ran = p.run("check", &["--set", "restart=sometimes"]);
    assert_eq!(ran.code, 78);
    assert!(shown(&ran).contains("PW: \"********\""), "{}", shown(&ran));
    assert!(!shown(&ran).contains(SECRET), "{}", shown(&ran));
    // The program gets the value itself.
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", shown(&ran));
    assert!(!shown(&ran).contains(SECRET));
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        format!("user=app\npassword={SECRET}\n")
    );
}

/// Rewrites a file in place (same inode: the bind mount shows the new content).
fn rewrite(path: &std::path::Path, edit: impl FnOnce(String) -> String) {
    let text = fs::read_to_string(path).unwrap();
    fs::write(path, edit(text)).unwrap();
}

/// The processes under launch whose command line is exactly `argv`.
fn running(launch: &Launched, argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    support::descendants(launch.pid)
        .into_iter()
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// The real, effective, saved and filesystem uids of `pid`, once it has exec'd `argv0`.
fn uids(pid: i32, argv0: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.contains(&format!("Name:\t{argv0}")).then_some(())?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    Some(
        line["Uid:".len()..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[test]
fn a_user_added_after_launch_started_is_the_one_a_reload_runs() {
    let p = Project::new("sec-user-added");
    p.write("project/pillar.yml", "worker_user: \"\"\n").write(
        "project/launch.yml",
        "processes:\n  early: {command: [sleep, \"1000\"], user: nobody}\n\
         {% if pillar.worker_user %}\
         \x20 worker: {command: [sleep, \"1001\"], user: \"{{ pillar.worker_user }}\"}\n\
         {% endif %}",
    );
    let launch = p.run_with_accounts("", "");
    // A process with a user has started: a copy of the accounts made then lacks the
    // user added next.
    launch.expect_log("early started");
    rewrite(&p.path("etc/passwd"), |t| {
        t + "latecomer:x:4321:4321::/nonexistent:/bin/sh\n"
    });
    rewrite(&p.path("etc/group"), |t| t + "latecomer:x:4321:\n");
    p.write("data/configuration/pillar.yml", "worker_user: latecomer\n");
    launch.signal(libc::SIGHUP);
    let pid = support::wait_until(Duration::from_secs(15), || {
        running(&launch, &["sleep", "1001"]).first().copied()
    })
    .unwrap_or_else(|| panic!("no worker:\n{}", launch.stderr.text()));
    let uid = support::wait_until(Duration::from_secs(5), || uids(pid, "sleep")).unwrap();
    assert_eq!(uid, "4321 4321 4321 4321", "{}", launch.stderr.text());
}

#[test]
fn a_user_removed_before_a_restart_is_refused_never_run_as_root() {
    let p = Project::new("sec-user-removed");
    let leaver = "leaver:x:4322:4322::/nonexistent:/bin/sh\n";
    p.write("project/pillar.yml", "worker_user: leaver\n").write(
        "project/launch.yml",
        "processes:\n  worker:\n    command: [sleep, \"1002\"]\n    user: \"{{ pillar.worker_user }}\"\n\
         \x20   restart: always\n    max_restarts: 50\n",
    );
    let launch = p.run_with_accounts(leaver, "leaver:x:4322:\n");
    let worker = || running(&launch, &["sleep", "1002"]).first().copied();
    let first = support::wait_until(Duration::from_secs(15), worker)
        .unwrap_or_else(|| panic!("no worker:\n{}", launch.stderr.text()));
    let uid = support::wait_until(Duration::from_secs(5), || uids(first, "sleep")).unwrap();
    assert_eq!(uid, "4322 4322 4322 4322");

    // The user goes; the worker dies and is due for a restart.
    rewrite(&p.path("etc/passwd"), |t| t.replace(leaver, ""));
    // SAFETY: kill(2) with plain integers.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    launch.expect_log("worker: not started");
    // Several tries (backoff 100, 200, 400 ms...): each refused, none started.
    assert!(
        launch
            .stderr
            .wait_for_n("worker: not started", 3, Duration::from_secs(10)),
        "{}",
        launch.stderr.text()
    );
    assert_eq!(worker(), None, "started without its user");
    let log = launch.stderr.text();
    assert!(
        log.contains("user \"leaver\" is not in /etc/passwd"),
        "{log}"
    );
    assert!(log.contains("fix: create the user"), "{log}");
    assert_eq!(log.matches("worker started (pid").count(), 1, "{log}");

    // Back in the image: the next try starts it as that user again.
    rewrite(&p.path("etc/passwd"), |t| t + leaver);
    let again = support::wait_until(Duration::from_secs(10), worker)
        .unwrap_or_else(|| panic!("not restarted:\n{}", launch.stderr.text()));
    let uid = support::wait_until(Duration::from_secs(5), || uids(again, "sleep")).unwrap();
    assert_eq!(uid, "4322 4322 4322 4322");
}

/// The attack as it was found: a spec that follows this page's advice (list form,
/// `user: nobody`), and an operator value holding a quote, a bracket and newlines. When
/// the spec was rendered as text and then parsed, the value closed the list and added
/// a process of its own, which ran as root. Now the value is one argument, nothing more.
#[test]
fn an_operator_value_cannot_add_a_process() {
    let p = Project::new("sec-structure");
    let out = p.out();
    // What today's text rendering turns into a second process (`evil`, no user: root)
    // and a third that swallows the rest of the author's line.
    let value = format!(
        "x\"]\n  evil: {{command: [/bin/sh, -c, \"id -u > {out}/pwned\"]}}\n  decoy:\n    command: [sleep, \"1000\"] #"
    );
    p.write("project/pillar.yml", "greeting: hello\n")
        .write(
            "project/launch.yml",
            "processes:\n  app:\n    command: [/bin/sh, -c, 'printf \"<%s>\\n\" \"$1\"; exec sleep 1000', sh, \"{{ pillar.greeting }}\"]\n    user: nobody\n",
        );
    fs::create_dir_all(p.path("data/configuration")).unwrap();
    let operator = serde_json::to_string(&value).unwrap();
    fs::write(
        p.path("data/configuration/pillar.yml"),
        format!("greeting: {operator}\n"),
    )
    .unwrap();
    let mut launch = start(&p, &[]);
    launch.expect_log("app started");
    // The argument arrives whole, newlines and all.
    assert!(
        launch
            .stdout
            .wait_for(&format!("<{value}>"), Duration::from_secs(10)),
        "app did not get the value as one argument:\n{}",
        launch.stdout.text()
    );
    let status = Command::new(support::launch_bin())
        .args(["status", "--json"])
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    let table: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let names: Vec<&str> = table["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["app"], "the value added processes");
    assert!(
        !p.path("out/pwned").exists(),
        "a process of the operator's ran as root"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_generated_secret_is_made_once_kept_in_the_volume_and_never_shown() {
    let p = Project::new("sec-generate");
    let out = p.out();
    p.write("project/pillar.yml", "user: app\n")
        .write(
            "project/templates/db.conf",
            "user={{ pillar.user }}\npassword={{ secret(name=\"db_password\", generate=24) }}\n",
        )
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/db.conf, dest: {out}/db.conf, mode: \"0600\"}}\n"
            ),
        );
    let env = [(
        "LAUNCH_SECRETS_DIR",
        p.path("no-secrets").display().to_string(),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ran = p.run_env("check", &[], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("would generate secret \"db_password\""),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("+password=********"), "{}", ran.stdout);
    assert!(
        !p.path("data/configuration/secrets").exists(),
        "check wrote a secret"
    );

    let ran = p.run_env("reconfigure", &[], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let kept = p.path("data/configuration/secrets/db_password");
    let value = fs::read_to_string(&kept).unwrap().trim_end().to_string();
    assert_eq!(value.len(), 24);
    assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "{value}");
    let meta = fs::metadata(&kept).unwrap();
    assert_eq!((meta.permissions().mode() & 0o7777, meta.uid()), (0o600, 0));
    let dir = fs::metadata(kept.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o7777, 0o700);
    let rendered = fs::read_to_string(p.path("out/db.conf")).unwrap();
    assert_eq!(rendered, format!("user=app\npassword={value}\n"));
    assert!(!ran.stderr.contains(&value), "{}", ran.stderr);

    // The same value at every later run; the operator may put their own there.
    p.write("project/pillar.yml", "user: app2\n");
    let ran = p.run_env("reconfigure", &[], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        fs::read_to_string(p.path("out/db.conf"))
            .unwrap()
            .ends_with(&format!("password={value}\n"))
    );
    fs::write(&kept, "chosen-by-operator\n").unwrap();
    let ran = p.run_env("check", &[], &env);
    assert!(
        ran.stdout.contains("-******** (a line of the old file"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("chosen-by-operator"), "{}", ran.stdout);
    assert!(!ran.stdout.contains(&value), "{}", ran.stdout);
}
