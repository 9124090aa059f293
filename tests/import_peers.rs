//! `launch import` against the real tools: a realistic circus.ini and supervisord.conf
//! run under circusd (from PyPI) and supervisord (Debian's `supervisor`), then, imported,
//! under launch as PID 1; every process records what it was started with, and both
//! runs must have started the same processes: same programs, same number of copies,
//! same argv, working directory, user and variables.
//!
//! Skipped when the tool is missing, except in CI (LAUNCH_CI=1: scripts/test installs
//! both).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Launched, Mode};

/// The variables the programs record: those the configurations set.
const RECORDED: &str = "^(REGISTRY|WORKER|APP)_";

/// A scratch directory for one test, with `bin/` (the programs), `out/` (their records,
/// writable by the non-root users they run as) and `home/` (where the tool and launch
/// start, the working directory of a program that sets none).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for sub in ["bin", "out", "home", "data"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::set_permissions(dir.join("out"), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Installs the programs `names` in `dir/bin`: each writes its argv, working directory,
/// ids and [`RECORDED`] variables to a file of `dir/out`, then stays up.
fn programs(dir: &Path, names: &[&str]) {
    let out = dir.join("out").display().to_string();
    let script = format!(
        "#!/bin/sh\n\
         # What this process was started with; then it stays up.\n\
         rec={out}/.$$\n\
         {{\n\
         \x20 printf 'argv:'; printf ' [%s]' \"$0\" \"$@\"; echo\n\
         \x20 echo \"cwd: $(pwd -P)\"\n\
         \x20 echo \"ids: $(id -u):$(id -g)\"\n\
         \x20 env | grep -E '{RECORDED}' | sort\n\
         }} > \"$rec\" && mv \"$rec\" {out}/$$\n\
         exec sleep 60\n"
    );
    for name in names {
        let path = dir.join("bin").join(name);
        fs::write(&path, &script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The records in `out`, sorted (their file names are pids, which differ).
fn records(out: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(out)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            (!name.to_string_lossy().starts_with('.')).then(|| fs::read_to_string(e.path()).ok())?
        })
        .collect();
    found.sort();
    found
}

/// Runs `program args...` as PID 1 of a fresh PID namespace (so that all it started
/// dies with it), started in `dir/home`, until `dir/out` holds `count` records; stops
/// it and returns them, emptying `dir/out` for the next run.
fn run_until_recorded(dir: &Path, program: &str, args: &[&str], count: usize) -> Vec<String> {
    let out = dir.join("out");
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", program])
        .args(args)
        .current_dir(dir.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = Launched::spawn(Mode::Pid1, cmd);
    let all = support::wait_until(Duration::from_secs(30), || {
        (records(&out).len() >= count).then_some(())
    });
    // A copy too many would have started by now, with the others.
    std::thread::sleep(Duration::from_millis(500));
    let found = records(&out);
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(20));
    assert!(
        all.is_some(),
        "{program}: {} of {count} records:\n{found:#?}\n{}{}",
        found.len(),
        running.stdout.text(),
        running.stderr.text()
    );
    for e in fs::read_dir(&out).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    found
}

/// Imports `file` into `dir/project` and runs it under launch as PID 1 until `count`
/// records are written.
fn import_and_run(dir: &Path, file: &Path, count: usize) -> Vec<String> {
    let project = dir.join("project").display().to_string();
    let ran = Command::new(support::launch_bin())
        .args(["import", &file.display().to_string(), "--out", &project])
        .env_remove("LAUNCH_ROOT")
        .env_remove("LAUNCH_PROJECT")
        .env_remove("LAUNCH_DATA")
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let state = dir.join("state").display().to_string();
    let control = dir.join("control.sock").display().to_string();
    let args = [
        "run",
        "--project",
        &project,
        "--data",
        &state,
        "--control",
        &control,
    ];
    let records = run_until_recorded(dir, support::launch_bin(), &args, count);
    let yml = fs::read_to_string(dir.join("project/launch.yml")).unwrap();
    eprintln!("{yml}");
    records
}

/// The tool's command: on PATH, else in Python's scripts directory (where pip puts
/// circusd when that is not on PATH); `None` when it is not installed, which fails in
/// CI.
fn tool(name: &str, install: &str) -> Option<String> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let found = std::iter::once(name.to_string())
        .chain(scripts.map(|dir| format!("{dir}/{name}")))
        .find(|program| runs(program));
    if found.is_none() {
        assert!(
            std::env::var("LAUNCH_CI").as_deref() != Ok("1"),
            "{name} is missing: {install}"
        );
        eprintln!("skipped: no {name} ({install})");
    }
    found
}

/// The shape of the seeds' registry image's circus.ini, with a second watcher of
/// several copies in a shell.
#[test]
fn circus_and_the_imported_launch_yml_run_the_same_processes() {
    let Some(circusd) = tool("circusd", "pip install circus") else {
        return;
    };
    let dir = scratch("peer-circus");
    programs(&dir, &["registry", "worker"]);
    let (bin, data) = (dir.join("bin"), dir.join("data"));
    let (bin, data) = (bin.display(), data.display());
    // Endpoints in the start directory: circus's own, where parallel tests cannot meet.
    let ini = format!(
        "[circus]\n\
         check_delay = 5\n\
         endpoint = ipc://circus.sock\n\
         pubsub_endpoint = ipc://circus-pubsub.sock\n\
         statsd = false\n\
         \n\
         [watcher:registry]\n\
         cmd = {bin}/registry\n\
         args = serve /etc/docker/registry/config.yml\n\
         working_dir = {data}\n\
         uid = nobody\n\
         gid = nogroup\n\
         copy_env = true\n\
         numprocesses = 1\n\
         max_age = 86400\n\
         graceful_timeout = 10\n\
         stop_signal = QUIT\n\
         \n\
         [env:registry]\n\
         REGISTRY_HTTP_ADDR = 0.0.0.0:5000\n\
         REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY = {data}/registry\n\
         \n\
         [watcher:worker]\n\
         cmd = {bin}/worker --id $(circus.wid)\n\
         args = --queue \"jobs and more\" $WORKER_QUEUE 100%\n\
         shell = true\n\
         numprocesses = 3\n\
         graceful_timeout = 2.5\n\
         \n\
         [env:worker]\n\
         WORKER_QUEUE = jobs\n"
    );
    let file = dir.join("circus.ini");
    fs::write(&file, ini).unwrap();
    let file_arg = file.display().to_string();
    let under_circus = run_until_recorded(&dir, &circusd, &[&file_arg], 4);
    let under_launch = import_and_run(&dir, &file, 4);
    // circus numbers its copies (wid) from 1, as launch does (LAUNCH_INSTANCE): nothing
    // to normalise. Its `shell = true` quotes every word for the shell, so the worker
    // gets `$WORKER_QUEUE` as written.
    let home = dir.join("home").canonicalize().unwrap();
    for want in [
        format!(
            "argv: [{bin}/registry] [serve] [/etc/docker/registry/config.yml]\ncwd: {data}\nids: 65534:65534\nREGISTRY_HTTP_ADDR=0.0.0.0:5000\n"
        ),
        format!(
            "argv: [{bin}/worker] [--id] [3] [--queue] [jobs and more] [$WORKER_QUEUE] [100%]\ncwd: {}\nids: 0:0\nWORKER_QUEUE=jobs\n",
            home.display()
        ),
    ] {
        assert!(
            under_circus.iter().any(|r| r.starts_with(&want)),
            "circus did not start {want}\n{under_circus:#?}"
        );
    }
    assert_eq!(under_launch, under_circus);
}

/// A typical image's supervisord.conf: priorities, directories, environments (global,
/// per program, from supervisord's), a user, and numprocs with `%(process_num)d`.
#[test]
fn supervisord_and_the_imported_launch_yml_run_the_same_processes() {
    let Some(supervisord) = tool("supervisord", "apt-get install supervisor") else {
        return;
    };
    let dir = scratch("peer-supervisord");
    programs(&dir, &["db", "web", "cron"]);
    let (bin, data, d) = (dir.join("bin"), dir.join("data"), dir.display());
    let (bin, data) = (bin.display(), data.display());
    let conf = format!(
        "; supervisord as an image's entrypoint\n\
         [supervisord]\n\
         nodaemon=true\n\
         logfile=/dev/null\n\
         logfile_maxbytes=0\n\
         pidfile={d}/supervisord.pid\n\
         childlogdir={d}\n\
         environment=APP_ENV=\"production\",APP_SHARED=\"from [supervisord]\"\n\
         \n\
         [program:db]\n\
         command={bin}/db --data %(here)s/data --name %(program_name)s\n\
         priority=10\n\
         directory={data}\n\
         user=nobody\n\
         environment=APP_SHARED=\"db's own\",APP_DB_PORT=5432\n\
         stdout_logfile=/dev/stdout\n\
         stdout_logfile_maxbytes=0\n\
         redirect_stderr=true\n\
         \n\
         [program:web]\n\
         command={bin}/web --listen :80%(process_num)d \"it's\" 'a  b' %(numprocs)d\n\
         process_name=%(program_name)s_%(process_num)02d\n\
         numprocs=2\n\
         priority=20\n\
         directory=/tmp\n\
         environment=APP_PATH=\"%(ENV_PATH)s:/opt/web/bin\"\n\
         autorestart=true\n\
         stopsignal=INT\n\
         stopwaitsecs=3\n\
         \n\
         [program:cron]\n\
         command={bin}/cron -f\n\
         priority=30\n"
    );
    let file = dir.join("supervisord.conf");
    fs::write(&file, conf).unwrap();
    let file_arg = file.display().to_string();
    let under_supervisord = run_until_recorded(&dir, &supervisord, &["-n", "-c", &file_arg], 4);
    let under_launch = import_and_run(&dir, &file, 4);
    // supervisord numbers its copies (process_num) from numprocs_start, 0 here; launch
    // from 1: the import reads $((LAUNCH_INSTANCE - 1)), so nothing to normalise.
    let path = std::env::var("PATH").unwrap();
    for want in [
        format!(
            "argv: [{bin}/db] [--data] [{d}/data] [--name] [db]\ncwd: {data}\nids: 65534:65534\nAPP_DB_PORT=5432\nAPP_ENV=production\nAPP_SHARED=db's own\n"
        ),
        format!(
            "argv: [{bin}/web] [--listen] [:801] [it's] [a  b] [2]\ncwd: /tmp\nids: 0:0\nAPP_ENV=production\nAPP_PATH={path}:/opt/web/bin\nAPP_SHARED=from [supervisord]\n"
        ),
    ] {
        assert!(
            under_supervisord.contains(&want),
            "supervisord did not start {want}\n{under_supervisord:#?}"
        );
    }
    assert_eq!(under_launch, under_supervisord);
}
