//! `launch import`: circus, supervisord and Procfile configurations become a
//! launch.yml that launch's own parser accepts (and runs), with what could not be
//! carried over said at its top and on stderr.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Launched, Mode};

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `launch ARGS...` (not as PID 1: import and check need none).
fn launch(args: &[&str]) -> (i32, String, String) {
    let ran = Command::new(support::launch_bin())
        .args(args)
        .env_remove("LAUNCH_ROOT")
        .env_remove("LAUNCH_PROJECT")
        .env_remove("LAUNCH_DATA")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        ran.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&ran.stdout).into_owned(),
        String::from_utf8_lossy(&ran.stderr).into_owned(),
    )
}

/// Imports `file` into `dir/project` and checks the result with `launch check`;
/// returns the launch.yml and import's stderr.
fn import_and_check(dir: &Path, file: &str) -> (String, String) {
    import_and_check_with(dir, file, &[])
}

/// The same, with more arguments for `launch check`.
fn import_and_check_with(dir: &Path, file: &str, check_args: &[&str]) -> (String, String) {
    let project = dir.join("project").display().to_string();
    let data = dir.join("data").display().to_string();
    let (code, stdout, stderr) = launch(&["import", file, "--out", &project]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let yml = fs::read_to_string(dir.join("project/launch.yml")).unwrap();
    let mut args = vec!["check", "--project", &project, "--data", &data];
    args.extend_from_slice(check_args);
    let (code, stdout, check) = launch(&args);
    assert_eq!(code, 0, "launch check refused:\n{yml}\n{stdout}\n{check}");
    (yml, stderr)
}

/// The shape of the seeds' registry image's circus.ini (its user is nobody here, so
/// that `launch check` finds it in this machine's /etc/passwd).
const REGISTRY: &str = "\
[circus]
check_delay = 5
endpoint = tcp://127.0.0.1:5555
pubsub_endpoint = tcp://127.0.0.1:5556
statsd = false

[watcher:registry]
cmd = /usr/bin/registry
args = serve /etc/docker/registry/config.yml
working_dir = /srv/projects/registry/data
uid = nobody
gid = nogroup
copy_env = true
numprocesses = 1
max_age = 86400
stop_signal = QUIT

[env:registry]
REGISTRY_HTTP_ADDR = 0.0.0.0:5000
REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY = /srv/projects/registry/data/registry
";

#[test]
fn the_registry_image_circus_config_becomes_a_valid_launch_yml() {
    let dir = scratch("import-registry");
    let file = dir.join("circus.ini");
    fs::write(&file, REGISTRY).unwrap();
    // Checked against the registry image's files: its accounts and its program, which
    // this machine does not have.
    let image = dir.join("image");
    fs::create_dir_all(image.join("etc")).unwrap();
    fs::create_dir_all(image.join("usr/bin")).unwrap();
    fs::write(
        image.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    fs::write(image.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let registry = image.join("usr/bin/registry");
    fs::write(&registry, "").unwrap();
    fs::set_permissions(&registry, fs::Permissions::from_mode(0o755)).unwrap();
    let root = image.display().to_string();
    let checked = ["--image-root", root.as_str()];
    let (yml, stderr) = import_and_check_with(&dir, &file.display().to_string(), &checked);
    for want in [
        "  registry:\n",
        "    command: [\"/usr/bin/registry\", \"serve\", \"/etc/docker/registry/config.yml\"]\n",
        "    user: \"nobody\"\n",
        "    group: \"nogroup\"\n",
        "    cwd: \"/srv/projects/registry/data\"\n",
        "    stop_signal: \"SIGQUIT\"\n",
        "    max_age: \"24h\"\n",
        "      REGISTRY_HTTP_ADDR: \"0.0.0.0:5000\"\n",
    ] {
        assert!(yml.contains(want), "lacks {want:?}:\n{yml}");
    }
    // What is not carried over: at the top, and on stderr with file:line.
    assert!(yml.starts_with("# Imported by `launch import` from circus.ini (circus).\n"));
    assert!(!stderr.contains("max_age"), "max_age maps: {stderr}");
    assert!(stderr.contains("circus.ini:1: [circus]"), "{stderr}");
    assert!(
        !yml.contains("numprocesses"),
        "numprocesses = 1 maps: {yml}"
    );
}

#[test]
fn supervisord_programs_run_under_launch_as_under_supervisord() {
    let dir = scratch("import-supervisord");
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let out = out.display().to_string();
    // Each program writes its argv, cwd and one variable, then stays up.
    let record = |name: &str| {
        format!(
            "/bin/sh -c 'printf \"%%s|\" \"$0\" \"$@\" \"$(pwd)\" \"$GREETING\" > {out}/{name}.tmp && \
             mv {out}/{name}.tmp {out}/{name}; exec sleep 30'"
        )
    };
    let conf = format!(
        "; a typical image's supervisord.conf\n\
         [supervisord]\nnodaemon=true\nlogfile=/dev/null\n\n\
         [program:db]\ncommand={} %(program_name)s\npriority=10\ndirectory=/tmp\n\
         environment=GREETING=\"hello, world\"\nautorestart=true\nstopsignal=INT\nstopwaitsecs=3\n\n\
         [program:web]\ncommand={} 'a b' \"{{{{ x }}}}\" ;inline comment\npriority=20\n\
         environment=GREETING=\"it's\"\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n\
         redirect_stderr=true\nnumprocs=1\n\n\
         [program:cron]\ncommand={}\npriority=30\nautostart=false\nstartsecs=5\n\
         stdout_logfile=/var/log/cron.log\n",
        record("db"),
        record("web"),
        record("cron"),
    );
    let file = dir.join("supervisord.conf");
    fs::write(&file, &conf).unwrap();
    let (yml, stderr) = import_and_check(&dir, &file.display().to_string());
    for want in [
        "    depends_on: [\"db\"]\n",
        "    depends_on: [\"web\"]\n",
        "    restart: always\n",
        "    stop_signal: \"SIGINT\"\n",
        "    stop_timeout: \"3s\"\n",
        "    cwd: \"/tmp\"\n",
    ] {
        assert!(yml.contains(want), "lacks {want:?}:\n{yml}");
    }
    for want in [
        "redirect_stderr=true",
        "autostart=false",
        "startsecs=5",
        "/var/log/cron.log",
        "[supervisord]",
    ] {
        let want = want.replace('=', " = ");
        assert!(stderr.contains(&want), "stderr lacks {want:?}:\n{stderr}");
    }

    let project = dir.join("project").display().to_string();
    fs::create_dir_all(dir.join("data")).unwrap();
    let data = dir.join("data").display().to_string();
    let control = dir.join("control.sock").display().to_string();
    let mut cmd = support::command(
        Mode::Pid1,
        &[
            "run",
            "--project",
            &project,
            "--data",
            &data,
            "--control",
            &control,
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut launched = Launched::spawn(Mode::Pid1, cmd);
    let read = |name: &str| {
        support::wait_until(Duration::from_secs(20), || {
            fs::read_to_string(Path::new(&out).join(name)).ok()
        })
        .unwrap_or_else(|| panic!("{name} never ran: {}", launched.stderr.text()))
    };
    // sh -c SCRIPT ARG0 ARGS...: the first word after the script is $0.
    assert_eq!(read("db"), "db|/tmp|hello, world|");
    assert!(read("web").starts_with("a b|{{ x }}|"), "{}", read("web"));
    assert!(read("web").ends_with("|it's|"), "{}", read("web"));
    assert!(!read("cron").is_empty());
    launched.signal(libc::SIGTERM);
    launched.wait(Duration::from_secs(20));
}

/// Runs `launch run` on `dir/project` (imported) until `files` are all in `out`.
fn run_until_written(dir: &Path, out: &Path, files: &[&str]) {
    let project = dir.join("project").display().to_string();
    fs::create_dir_all(dir.join("data")).unwrap();
    let data = dir.join("data").display().to_string();
    let control = dir.join("control.sock").display().to_string();
    let args = [
        "run",
        "--project",
        &project,
        "--data",
        &data,
        "--control",
        &control,
    ];
    let mut cmd = support::command(Mode::Pid1, &args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut launched = Launched::spawn(Mode::Pid1, cmd);
    for file in files {
        support::wait_until(Duration::from_secs(20), || {
            fs::read_to_string(out.join(file))
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| panic!("no {file}: {}", launched.stderr.text()));
    }
    launched.signal(libc::SIGTERM);
    assert_eq!(launched.wait(Duration::from_secs(20)).code(), Some(0));
}

/// circus's numprocesses and supervisord's numprocs become `instances:`, and the copy's
/// number in a command (`$(circus.wid)` from 1, `%(process_num)d` from numprocs_start)
/// is read from LAUNCH_INSTANCE by each copy.
#[test]
fn numprocesses_and_numprocs_become_copies_that_know_their_number() {
    let dir = scratch("import-copies");
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let o = out.display().to_string();
    let circus = dir.join("circus.ini");
    fs::write(
        &circus,
        format!(
            "[watcher:worker]\ncmd = /bin/sh -c 'echo \"$0\" > {o}/worker-$0; exec sleep 30' $(circus.wid)\n\
             numprocesses = 3\ncopy_env = true\n"
        ),
    )
    .unwrap();
    let (yml, _) = import_and_check(&dir, &circus.display().to_string());
    assert!(yml.contains("    instances: 3\n"), "{yml}");
    assert!(yml.contains("\\\"$LAUNCH_INSTANCE\\\""), "{yml}");
    run_until_written(&dir, &out, &["worker-1", "worker-2", "worker-3"]);

    fs::remove_dir_all(dir.join("project")).unwrap();
    let supervisord = dir.join("supervisord.conf");
    fs::write(
        &supervisord,
        format!(
            "[program:queue]\ncommand=/bin/sh -c 'echo %(numprocs)d > {o}/queue-$0; exec sleep 30' %(process_num)d\n\
             process_name=%(program_name)s_%(process_num)d\nnumprocs=2\nnumprocs_start=5\n"
        ),
    )
    .unwrap();
    let (yml, stderr) = import_and_check(&dir, &supervisord.display().to_string());
    assert!(yml.contains("    instances: 2\n"), "{yml}");
    assert!(yml.contains("$((LAUNCH_INSTANCE + 4))"), "{yml}");
    assert!(
        stderr.contains("launch names the copies queue.1, queue.2"),
        "{stderr}"
    );
    run_until_written(&dir, &out, &["queue-5", "queue-6"]);
    assert_eq!(fs::read_to_string(out.join("queue-6")).unwrap(), "2\n");
    assert!(!out.join("queue-7").exists());
}

#[test]
fn a_procfile_becomes_shell_commands() {
    let dir = scratch("import-procfile");
    let file = dir.join("Procfile");
    fs::write(
        &file,
        "web: exec python -m http.server $PORT\nworker: celery -A app worker\nrelease: ./manage.py migrate\n",
    )
    .unwrap();
    let (yml, stderr) = import_and_check(&dir, &file.display().to_string());
    assert!(
        yml.contains("  web:\n    command: \"exec python -m http.server $PORT\"\n"),
        "{yml}"
    );
    assert!(
        yml.contains("  release:\n    command: \"./manage.py migrate\"\n    kind: oneshot\n"),
        "{yml}"
    );
    assert!(
        stderr.contains("Procfile:1: web: $PORT is set by Heroku"),
        "{stderr}"
    );
}

#[test]
fn stdout_by_default_and_never_overwrites() {
    let dir = scratch("import-out");
    let file = dir.join("circus.ini");
    fs::write(&file, "[watcher:a]\ncmd = sleep 1\ncopy_env = true\n").unwrap();
    let file = file.display().to_string();
    let (code, stdout, stderr) = launch(&["import", &file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("processes:\n  a:\n    command: [\"sleep\", \"1\"]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# Every option was carried over."),
        "{stdout}"
    );

    let project = dir.join("project");
    fs::create_dir_all(&project).unwrap();
    fs::write(project.join("launch.yml"), "mine\n").unwrap();
    let (code, _, stderr) = launch(&["import", &file, "--out", &project.display().to_string()]);
    assert_eq!(code, 73, "{stderr}");
    assert!(
        stderr.contains("launch.yml: exists; launch import never overwrites"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(project.join("launch.yml")).unwrap(),
        "mine\n"
    );
}

#[test]
fn bad_input_is_refused_at_its_line_and_a_fifo_is_not_read() {
    let dir = scratch("import-bad");
    let cases = [
        (
            "bad.conf",
            "[program:a]\ncommand=run 'unclosed\n",
            "bad.conf:2: command: a ' that never closes",
        ),
        (
            "none.ini",
            "[circus]\nstatsd = 1\n",
            "none.ini: no [program:x], [watcher:x]",
        ),
        ("Procfile", "web\n", "Procfile:1: expected `name: command`"),
    ];
    for (name, text, want) in cases {
        let file = dir.join(name);
        fs::write(&file, text).unwrap();
        let (code, stdout, stderr) = launch(&["import", &file.display().to_string()]);
        assert_eq!(code, 65, "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
    let fifo = dir.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // No writer: a blocking open(2) would wait forever.
    let (code, _, stderr) = launch(&["import", &fifo.display().to_string()]);
    assert_eq!(code, 65, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

/// The argv and cwd of every process below `pid` whose command line holds `tag`.
fn tagged_below(pid: i32, tag: &str) -> Vec<(Vec<String>, PathBuf)> {
    let mut found: Vec<(Vec<String>, PathBuf)> = support::descendants(pid)
        .into_iter()
        .filter_map(|p| {
            let cmdline = fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let argv: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let cwd = fs::read_link(format!("/proc/{p}/cwd")).ok()?;
            argv.iter().any(|a| a == tag).then_some((argv, cwd))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn supervisord_and_the_imported_launch_yml_start_the_same_processes() {
    if Command::new("supervisord")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: supervisord is not installed (Debian package `supervisor`)");
        return;
    }
    let dir = scratch("import-same-argv");
    let tag = format!("same-argv-{}", std::process::id() % 10_000 + 1_000_000);
    let conf = format!(
        "[supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\n\n\
         [program:one]\ncommand=/bin/sh -c 'while :; do sleep 1; done' {tag} one 'two words' %(program_name)s\n\
         directory=/tmp\n\n\
         [program:two]\ncommand=/bin/sh -c \"while :; do sleep 1; done\" {tag} \"it's\" a\\ b \"{{{{ x }}}}\"\n\
         directory=/\n\n\
         [program:three]\ncommand=/bin/sh -c 'while :; do sleep 1; done' {tag} 100%% %(process_num)02d\n\
         directory=/tmp\n",
        dir = dir.display()
    );
    let file = dir.join("supervisord.conf");
    fs::write(&file, &conf).unwrap();

    let mut supervisord = Command::new("supervisord")
        .args(["-n", "-c"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = supervisord.id() as i32;
    let under_supervisord = support::wait_until(Duration::from_secs(20), || {
        let found = tagged_below(pid, &tag);
        (found.len() == 3).then_some(found)
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = supervisord.wait();
    let under_supervisord = under_supervisord.expect("supervisord started its three programs");
    let words: Vec<&str> = under_supervisord
        .iter()
        .flat_map(|(argv, _)| argv.iter().map(String::as_str))
        .collect();
    for word in ["two words", "one", "it's", "a b", "{{ x }}", "100%", "00"] {
        assert!(
            words.contains(&word),
            "{word:?} not in {under_supervisord:?}"
        );
    }

    import_and_check(&dir, &file.display().to_string());
    fs::create_dir_all(dir.join("data")).unwrap();
    let project = dir.join("project").display().to_string();
    let data = dir.join("data").display().to_string();
    let control = dir.join("control.sock").display().to_string();
    let mut cmd = support::command(
        Mode::Pid1,
        &[
            "run",
            "--project",
            &project,
            "--data",
            &data,
            "--control",
            &control,
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut launched = Launched::spawn(Mode::Pid1, cmd);
    let under_launch = support::wait_until(Duration::from_secs(20), || {
        let found = tagged_below(launched.pid, &tag);
        (found.len() == 3).then_some(found)
    });
    launched.signal(libc::SIGTERM);
    launched.wait(Duration::from_secs(20));
    let under_launch = under_launch.expect("launch started the three processes");
    assert_eq!(under_launch, under_supervisord);
}
