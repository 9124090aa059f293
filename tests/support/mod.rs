//! The shared test harness: runs the real `launch` binary, as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`) or as a plain child (a subreaper),
//! with real child programs, and never lets anything outlive its deadline.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod docker;
pub mod project;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn launch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_launch")
}

/// The probe program (tests/support/probe.c), compiled once per test run.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/probe.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("probe");
        let staged = out.with_extension(format!("{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&staged)
            .arg(&source)
            .status()
            .expect("a C compiler (cc) is needed to build the test probe");
        assert!(status.success(), "compiling {} failed", source.display());
        // Several test binaries may compile at once; rename is atomic.
        fs::rename(&staged, &out).unwrap();
        out
    })
}

/// How launch is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a new PID namespace, with its own /proc.
    Pid1,
    /// An ordinary child of the test: launch becomes a child subreaper.
    Subreaper,
}

/// A command that runs launch with `args` in `mode`; stdio is the caller's to set.
pub fn command(mode: Mode, args: &[&str]) -> Command {
    let mut cmd = match mode {
        Mode::Pid1 => {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(launch_bin());
            c
        }
        Mode::Subreaper => Command::new(launch_bin()),
    };
    cmd.args(args);
    cmd
}

/// Text a process wrote, collected as it comes.
#[derive(Default)]
pub struct Output {
    text: Mutex<String>,
    grew: Condvar,
}

impl Output {
    /// Collects everything `reader` produces, on a thread.
    pub fn collect(reader: impl Read + Send + 'static) -> Arc<Output> {
        let out = Arc::new(Output::default());
        let sink = out.clone();
        thread::spawn(move || {
            let mut lines = BufReader::new(reader);
            let mut line = Vec::new();
            // Bytes, not UTF-8 lines: children may write anything.
            while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                sink.text
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                sink.grew.notify_all();
                line.clear();
            }
        });
        out
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until the text contains `needle` `times` times; false at the deadline.
    pub fn wait_for_n(&self, needle: &str, times: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        loop {
            if text.matches(needle).count() >= times {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.grew.wait_timeout(text, left).unwrap().0;
        }
    }

    /// Waits until the text contains `needle`; false at the deadline.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_n(needle, 1, timeout)
    }
}

/// A running launch, killed with everything under it when dropped or overdue.
pub struct Launched {
    child: Child,
    mode: Mode,
    /// launch's pid as this test sees it.
    pub pid: i32,
    /// launch's stdout (its children's, really).
    pub stdout: Arc<Output>,
    /// launch's stderr.
    pub stderr: Arc<Output>,
    deadline: Instant,
}

/// The default hard deadline of one launch run.
pub const DEADLINE: Duration = Duration::from_secs(30);

impl Launched {
    /// Starts launch with `args`, stdout and stderr captured.
    pub fn start(mode: Mode, args: &[&str]) -> Launched {
        let mut cmd = command(mode, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Launched::spawn(mode, cmd)
    }

    /// Starts a prepared command (stdout and stderr must be piped).
    pub fn spawn(mode: Mode, mut cmd: Command) -> Launched {
        let mut child = cmd.spawn().expect("cannot start launch");
        let stdout = Output::collect(child.stdout.take().expect("stdout piped"));
        let stderr = Output::collect(child.stderr.take().expect("stderr piped"));
        Launched::adopt(mode, child, stdout, stderr)
    }

    /// Wraps an already started command whose output the caller collects.
    pub fn adopt(mode: Mode, child: Child, stdout: Arc<Output>, stderr: Arc<Output>) -> Launched {
        let outer = child.id() as i32;
        let pid = match mode {
            Mode::Subreaper => outer,
            // launch may have come and gone already: then there is no pid to know.
            Mode::Pid1 => wait_until(Duration::from_secs(10), || {
                children_of(outer).first().copied().or_else(|| {
                    let gone = fs::read_to_string(format!("/proc/{outer}/stat"))
                        .map_or(true, |stat| stat.contains(") Z "));
                    gone.then_some(-1)
                })
            })
            .expect("unshare did not start launch"),
        };
        Launched {
            child,
            mode,
            pid,
            stdout,
            stderr,
            deadline: Instant::now() + DEADLINE,
        }
    }

    /// Sends `signal` to launch.
    pub fn signal(&self, signal: i32) {
        assert!(self.pid > 0, "launch has already exited");
        // SAFETY: kill(2) with plain integers.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(rc, 0, "cannot signal launch");
    }

    /// Waits for launch to exit, at most `timeout` (and never past the hard deadline);
    /// kills everything and fails the test when it does not.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers catch the last lines.
                thread::sleep(Duration::from_millis(20));
                return status;
            }
            if Instant::now() >= until {
                self.kill_all();
                panic!(
                    "launch did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a line on stdout, failing the test with all output at the deadline.
    pub fn expect(&self, needle: &str) {
        if !self.stdout.wait_for(needle, Duration::from_secs(10)) {
            panic!(
                "no {needle:?} on stdout within 10s\nstdout:\n{}\nstderr:\n{}",
                self.stdout.text(),
                self.stderr.text()
            );
        }
    }

    /// Waits for `needle` in launch's log (stderr), failing the test with the log at
    /// the deadline (15 s: a loaded machine starts processes slowly).
    pub fn expect_log(&self, needle: &str) {
        assert!(
            self.stderr.wait_for(needle, Duration::from_secs(15)),
            "no {needle:?} in the log:\n{}",
            self.stderr.text()
        );
    }

    /// Whether launch is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn kill_all(&mut self) {
        for pid in descendants(self.pid) {
            kill_descendant(self.pid, pid, libc::SIGKILL);
        }
        // In Pid1 mode this ends the namespace and all in it (launch may have gone, and
        // its pid be another's: only the outer process's child is signalled).
        if self.pid > 0 && self.pid != self.child.id() as i32 {
            kill_descendant(self.child.id() as i32, self.pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill_all();
        }
        let _ = self.mode;
    }
}

/// Runs `check` every few milliseconds until it returns something or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One process as /proc shows it.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its parent's.
    pub ppid: i32,
    /// Its state letter (R, S, Z, ...).
    pub state: char,
}

/// Every process on the machine.
pub fn processes() -> Vec<Proc> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        all.push(Proc { pid, ppid, state });
    }
    all
}

/// The children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    processes()
        .iter()
        .filter(|p| p.ppid == pid)
        .map(|p| p.pid)
        .collect()
}

/// The zombie children of `pid`.
pub fn zombies_of(pid: i32) -> usize {
    processes()
        .iter()
        .filter(|p| p.ppid == pid && p.state == 'Z')
        .count()
}

/// Every process below `pid`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in processes() {
        kids.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for &k in kids.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(k);
            stack.push(k);
        }
    }
    found
}

/// The parent of `pid` now, from `/proc`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Sends `signal` to `pid` only if it is (still) a descendant of `root`; returns whether
/// it was sent. Tests run in parallel and pids are recycled (pid_max is often 32768):
/// a pid seen in `/proc` a moment ago may already be another test's process, and a
/// plain kill(2) would hit it. A pidfd pins the process first; if the pid then leads up
/// to `root`, the pidfd is that descendant (or it has died since, and the signal is
/// lost on nobody).
pub fn kill_descendant(root: i32, pid: i32, signal: i32) -> bool {
    // SAFETY: pidfd_open with plain integers; the descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return false;
    }
    let mut up = Some(pid);
    let mut ours = false;
    for _ in 0..64 {
        match up.and_then(parent_of) {
            Some(parent) if parent == root => {
                ours = true;
                break;
            }
            Some(parent) if parent > 1 => up = Some(parent),
            _ => break,
        }
    }
    // SAFETY: the pidfd opened above, a null siginfo, no flags; then closed.
    let sent = ours
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd as i32) };
    sent
}

/// The probes whose command line holds `tag=<tag>` (the probe accepts and ignores it;
/// launch, which has it among its own arguments, is not counted).
pub fn tagged(tag: &str) -> Vec<i32> {
    let needle = format!("tag={tag}");
    processes()
        .iter()
        .filter(|p| {
            let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", p.pid)) else {
                return false;
            };
            let mut args = cmdline.split(|&b| b == 0);
            args.next().is_some_and(|argv0| argv0.ends_with(b"probe"))
                && args.next() == Some(needle.as_bytes())
        })
        .map(|p| p.pid)
        .collect()
}

/// A tag unique to this test process and call site.
pub fn unique_tag(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// The static release binary that goes into images, built once per test run (`cargo
/// static`) into a target directory of its own, so as not to wait on the lock of the
/// `cargo test` that runs us.
pub fn static_launch() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-build");
        let status = Command::new(env!("CARGO"))
            .args(["static", "--locked", "-q", "--target-dir"])
            .arg(&target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "cargo static failed");
        target_dir.join("x86_64-unknown-linux-gnu/release/launch")
    })
}

/// Spawns `cmd` as the leader of a new session whose controlling terminal is a fresh
/// pseudo-terminal, as a shell in `docker run -ti` or a terminal window would; returns
/// the child and the terminal's master side (what is typed goes there).
pub fn spawn_on_pty(cmd: &mut Command) -> (Child, fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let pty = nix::pty::openpty(None, None).unwrap();
    cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    let slave = pty.slave.as_raw_fd();
    // SAFETY: runs between fork and exec; setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let _ = slave;
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    // Only the processes under test may hold the terminal now: a copy left open here
    // would keep the master from ever seeing the end.
    drop(pty.slave);
    (child, fs::File::from(pty.master))
}

/// A control command (`launch status`, `reload`, ...) against the launch answering on
/// `socket`.
pub fn ask(socket: impl AsRef<Path>, args: &[&str]) -> std::process::Output {
    Command::new(launch_bin())
        .args(args)
        .env("LAUNCH_CONTROL", socket.as_ref())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What a command printed: its stdout, then its stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
