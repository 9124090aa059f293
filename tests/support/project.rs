//! A project layout in a scratch directory, and launch's configuration commands run
//! against it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Launched, Mode, command};

/// `<tmp>/<name>-<pid>/` holding `project/`, `pillar/`, `data/` and `out/` (where the
/// tests' templates render to).
pub struct Project {
    /// The root (`--root`).
    pub root: PathBuf,
}

/// What a launch run printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Ran {
    /// Fails the test unless stderr contains every needle.
    pub fn says(&self, needles: &[&str]) -> &Ran {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Every file under a directory: path -> (content, mode, mtime in ns).
pub type Snapshot = BTreeMap<PathBuf, (Vec<u8>, u32, i128)>;

impl Project {
    /// A fresh, empty layout.
    pub fn new(name: &str) -> Project {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["project/templates", "pillar", "data", "out"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        Project { root }
    }

    /// Writes `text` to `rel` (under the root), creating directories.
    pub fn write(&self, rel: &str, text: &str) -> &Project {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    /// The root's `out/` directory, as text (for templates' dest).
    pub fn out(&self) -> String {
        self.root.join("out").display().to_string()
    }

    /// A path under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Runs `launch SUBCOMMAND --root ROOT ARGS...` with extra environment.
    pub fn run_env(&self, sub: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let root = self.root.display().to_string();
        let mut all = vec![sub, "--root", root.as_str()];
        all.extend_from_slice(args);
        let mut cmd = command(Mode::Subreaper, &all);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut launched = Launched::spawn(Mode::Subreaper, cmd);
        let status = launched.wait(Duration::from_secs(60));
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: launched.stdout.text(),
            stderr: launched.stderr.text(),
        }
    }

    /// Runs `launch SUBCOMMAND --root ROOT ARGS...`.
    pub fn run(&self, sub: &str, args: &[&str]) -> Ran {
        self.run_env(sub, args, &[])
    }

    /// Every file under the root.
    pub fn snapshot(&self) -> Snapshot {
        let mut all = Snapshot::new();
        for entry in walk(&self.root) {
            let meta = fs::symlink_metadata(&entry).unwrap();
            if meta.is_file() {
                let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
                all.insert(
                    entry.clone(),
                    (fs::read(&entry).unwrap(), meta.permissions().mode(), mtime),
                );
            }
        }
        all
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            found.push(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(walk(&p));
            }
        }
    }
    found
}

impl Project {
    /// `launch run` on this project as PID 1, with a private, empty /root: the SSH step
    /// manages root's authorized_keys, and the machine's own must not be touched.
    pub fn run_with_private_root(&self, control: &Path) -> Launched {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
        ])
        .arg("mount -t tmpfs -o mode=0700 tmpfs /root && exec \"$0\" run --root \"$1\"")
        .arg(super::launch_bin())
        .arg(&self.root)
        .env("LAUNCH_CONTROL", control)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        Launched::spawn(Mode::Pid1, cmd)
    }
}

impl Project {
    /// `launch run` as PID 1 seeing `etc/passwd` and `etc/group` of the project's root (a
    /// copy of the machine's plus `extra_passwd` and `extra_group`, which the test may
    /// edit while launch runs) in place of the real ones: bind mounts in launch's own
    /// mount namespace, gone with it. The control socket is `control/launch.sock`.
    pub fn run_with_accounts(&self, extra_passwd: &str, extra_group: &str) -> Launched {
        let passwd = self.path("etc/passwd");
        let group = self.path("etc/group");
        fs::create_dir_all(passwd.parent().unwrap()).unwrap();
        fs::write(
            &passwd,
            fs::read_to_string("/etc/passwd").unwrap() + extra_passwd,
        )
        .unwrap();
        fs::write(
            &group,
            fs::read_to_string("/etc/group").unwrap() + extra_group,
        )
        .unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
        ])
        .arg(
            "mount --bind \"$2\" /etc/passwd && mount --bind \"$3\" /etc/group \
             && exec \"$0\" run --root \"$1\"",
        )
        .arg(super::launch_bin())
        .arg(&self.root)
        .arg(&passwd)
        .arg(&group)
        .env("LAUNCH_CONTROL", self.path("control/launch.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        Launched::spawn(Mode::Pid1, cmd)
    }
}
