//! launch as PID 1 but not root (`docker run -u 4242`), on a read-only root file system
//! (`docker run --read-only --tmpfs /run`): it configures and supervises the spec as
//! itself, and what it cannot do is said with the path, the permission and the fix.
//!
//! Each run is PID 1 of a fresh PID and mount namespace, where the project's volume is
//! bound writable, `/` is remounted read-only, `/run` is a tmpfs (or not), the image's
//! accounts (an `app` user, uid 4242) are bound over /etc/passwd and /etc/group, and
//! launch is started by `setpriv` as uid 4242.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;
use support::{Launched, Mode};

const APP: u32 = 4242;

/// How the run's file system looks.
struct Setup {
    /// A tmpfs on /run (else /run is the read-only root's).
    tmpfs_run: bool,
    /// Directories of the project kept writable (the volume always is).
    writable: &'static [&'static str],
}

/// `launch run` on `p` as uid 4242, PID 1, on a read-only `/`.
fn run_unprivileged(p: &Project, setup: Setup) -> Launched {
    let passwd = p.path("image/passwd");
    let group = p.path("image/group");
    fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    fs::write(
        &passwd,
        fs::read_to_string("/etc/passwd").unwrap()
            + &format!("app:x:{APP}:{APP}::/nonexistent:/bin/sh\n"),
    )
    .unwrap();
    fs::write(
        &group,
        fs::read_to_string("/etc/group").unwrap() + &format!("app:x:{APP}:\n"),
    )
    .unwrap();
    // The volume is the app's, as a volume made for `-u 4242` is.
    let chown = Command::new("chown")
        .args(["-R", &format!("{APP}:{APP}")])
        .arg(p.path("data"))
        .status()
        .unwrap();
    assert!(chown.success());
    let run = if setup.tmpfs_run {
        "mount -t tmpfs -o mode=1777 tmpfs /run && "
    } else {
        ""
    };
    let script = format!(
        "bin=$0 root=$1; mount --bind \"$2\" /etc/passwd && mount --bind \"$3\" /etc/group \
         && shift 3 && for d in \"$@\"; do mount --bind \"$d\" \"$d\" || exit 1; done \
         && mount --bind / / && mount -o remount,bind,ro / \
         && {run}exec setpriv --reuid {APP} --regid {APP} --clear-groups \"$bin\" run --root \"$root\""
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
        &script,
    ])
    .arg(support::launch_bin())
    .arg(&p.root)
    .arg(&passwd)
    .arg(&group)
    .arg(p.path("data"))
    .args(setup.writable.iter().map(|d| p.path(d)))
    .env_remove("LAUNCH_CONTROL")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    Launched::spawn(Mode::Pid1, cmd)
}

/// Reads `rel` in the volume once it has content.
fn volume_file(p: &Project, rel: &str, launch: &Launched) -> String {
    support::wait_until(Duration::from_secs(15), || {
        fs::read_to_string(p.path(&format!("data/{rel}")))
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .unwrap_or_else(|| panic!("no data/{rel}:\n{}", launch.stderr.text()))
}

#[test]
fn a_non_root_launch_on_a_read_only_root_runs_the_spec_as_itself() {
    let p = Project::new("unprivileged");
    let data = p.path("data").display().to_string();
    p.write("project/pillar.yml", "greeting: hello\n")
        .write("project/templates/page", "{{ pillar.greeting }}\n")
        .write("project/seed/data/seeded", "from the image\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n\
                 \x20 - {{src: templates/page, dest: /run/www/page, mode: \"0640\", owner: root:app}}\n\
                 seed:\n  - {{from: seed/data, to: data, owner: app:app}}\n\
                 data_owner: app:app\n\
                 processes:\n\
                 \x20 app:\n\
                 \x20   command: \"(id -u; cat /run/www/page; stat -c %u:%a /run/www/page) > {data}/data/app.tmp && mv {data}/data/app.tmp {data}/data/app; exec sleep 1000\"\n\
                 \x20   user: app\n\
                 \x20 status:\n\
                 \x20   command: \"sleep 0.3; launch status > {data}/data/status.tmp 2>&1; mv {data}/data/status.tmp {data}/data/status\"\n\
                 \x20   kind: oneshot\n\
                 \x20   depends_on: [app]\n\
                 \x20   env: {{PATH: \"{}:/usr/bin:/bin\"}}\n\
                 \x20 as-root: {{command: [sleep, \"1000\"], user: root, max_restarts: 1}}\n",
                std::path::Path::new(support::launch_bin())
                    .parent()
                    .unwrap()
                    .display()
            ),
        );
    let setup = Setup {
        tmpfs_run: true,
        writable: &[],
    };
    let mut launch = run_unprivileged(&p, setup);
    // The app runs as 4242 (launch itself), reads the page launch rendered on the tmpfs,
    // which is 4242's, with the spec's mode: launch cannot give it to root.
    let app = volume_file(&p, "data/app", &launch);
    assert_eq!(app, format!("{APP}\nhello\n{APP}:640\n"));
    // The control socket is made on the tmpfs, and answers launch's own user.
    let status = volume_file(&p, "data/status", &launch);
    assert!(
        status.contains("app") && status.contains("running"),
        "{status}"
    );
    launch.expect_log("as-root exited 1 time within 1m: giving up");
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(10)).code(), Some(0));
    let log = launch.stderr.text();
    for needle in [
        format!(
            "warning: /run/www/page: owner 0:{APP} not given: launch runs as uid {APP}, not root"
        ),
        format!(
            "as-root: not started (and never as launch's own user instead): cannot run as user \"root\" (uid 0): launch runs as uid {APP}, not root"
        ),
        "seeded".to_string(),
        "launch: exiting with 0: stopped by SIGTERM".to_string(),
    ] {
        assert!(log.contains(&needle), "no {needle:?} in:\n{log}");
    }
    assert!(!log.contains("control socket"), "{log}");
    let meta = fs::metadata(p.path("data/data/seeded")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), APP);
}

#[test]
fn what_a_non_root_launch_cannot_write_is_named_with_its_permission() {
    let p = Project::new("unprivileged-denied");
    p.write("project/templates/page", "x\n");
    // /run is the read-only root's (and root's): the control socket cannot be made (a
    // warning), and a template there cannot be written (launch ends, 77, nothing
    // started).
    p.write(
        "project/launch.yml",
        "templates:\n  - {src: templates/page, dest: /run/www/page}\nprocesses:\n  app: {command: [sleep, \"1000\"]}\n",
    );
    let setup = Setup {
        tmpfs_run: false,
        writable: &[],
    };
    let mut launch = run_unprivileged(&p, setup);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(77));
    let log = launch.stderr.text();
    for needle in [
        "/run/launch/control.sock: cannot create the control socket: Permission denied",
        "fix: launch runs as uid 4242, not root: make /run/launch (or /run, to make it in) writable by uid 4242: docker run --tmpfs /run does",
        "/run/www: cannot create the directory: Read-only file system",
        "this path must be on a tmpfs (--tmpfs DIR) or in the volume",
        "launch: exiting with 77: the configuration could not be written for lack of permission",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
    assert!(!log.contains("by root"), "{log}");

    // A writable file system, but a directory only root may write in: the permission,
    // the path and who launch is.
    let out = p.path("out");
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
    let dest = out.join("page").display().to_string();
    p.write(
        "project/launch.yml",
        &format!("templates:\n  - {{src: templates/page, dest: {dest}}}\nprocesses:\n  app: {{command: [sleep, \"1000\"]}}\n"),
    );
    let setup = Setup {
        tmpfs_run: true,
        writable: &["out"],
    };
    let mut launch = run_unprivileged(&p, setup);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(77));
    let log = launch.stderr.text();
    for needle in [
        "Permission denied".to_string(),
        format!("launch runs as uid {APP}, not root: uid {APP} needs this permission here"),
    ] {
        assert!(log.contains(&needle), "no {needle:?} in:\n{log}");
    }
}
