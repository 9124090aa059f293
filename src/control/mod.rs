//! The control socket: a running `launch run` answers `launch status`, `health`,
//! `reload`, `restart NAME`, `stop NAME` and `start NAME` on a Unix socket that only
//! root can reach (a 0700 directory, and the peer's uid checked with SO_PEERCRED).
//!
//! The protocol is one request line; the answer is text, ending with `exit N`, the
//! client's exit code.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use crate::exit::code;

/// Where the socket is unless `--control` or `$LAUNCH_CONTROL` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/launch/control.sock";

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created.
    #[error(
        "{path}: cannot create the control socket: {source}\n  fix: make its directory writable by root, or give --control PATH"
    )]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `status`, `status --json`.
    Status {
        /// As JSON.
        json: bool,
    },
    /// `health`.
    Health,
    /// `reload`.
    Reload,
    /// `restart NAME`.
    Restart(String),
    /// `stop NAME`.
    Stop(String),
    /// `start NAME`.
    Start(String),
}

impl Request {
    /// Reads a request line.
    pub fn parse(line: &str) -> Option<Request> {
        let words: Vec<&str> = line.split_whitespace().collect();
        Some(match words.as_slice() {
            ["status"] => Request::Status { json: false },
            ["status", "--json"] => Request::Status { json: true },
            ["health"] => Request::Health,
            ["reload"] => Request::Reload,
            ["restart", name] => Request::Restart(name.to_string()),
            ["stop", name] => Request::Stop(name.to_string()),
            ["start", name] => Request::Start(name.to_string()),
            _ => return None,
        })
    }

    /// The request line.
    pub fn line(&self) -> String {
        match self {
            Request::Status { json: false } => "status".into(),
            Request::Status { json: true } => "status --json".into(),
            Request::Health => "health".into(),
            Request::Reload => "reload".into(),
            Request::Restart(n) => format!("restart {n}"),
            Request::Stop(n) => format!("stop {n}"),
            Request::Start(n) => format!("start {n}"),
        }
    }
}

/// One process as `launch status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessStatus {
    /// Its name.
    pub name: String,
    /// Its state: waiting, starting, running, backoff, stopping, exited, failed, stopped.
    pub state: String,
    /// Its pid while it runs.
    pub pid: Option<i32>,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
    /// How often it was restarted.
    pub restarts: u32,
    /// How it last ended.
    pub last_exit: Option<String>,
}

/// `launch status` as a table.
pub fn status_table(processes: &[ProcessStatus]) -> String {
    let mut out = format!(
        "{:<16} {:<9} {:>7} {:>8} {:>8}  {}\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"
    );
    for p in processes {
        let pid = p.pid.map_or("-".into(), |p| p.to_string());
        let up = p.uptime_s.map_or("-".into(), |s| {
            crate::duration::format(Duration::from_secs(s))
        });
        let last = p.last_exit.clone().unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<16} {:<9} {:>7} {:>8} {:>8}  {}\n",
            p.name, p.state, pid, up, p.restarts, last
        ));
    }
    out
}

/// The exit code when no launch answers: 77 for a caller that may not ask, else 69;
/// `health` says 1, "unhealthy", which is all a health check may say besides 0.
pub fn unreachable_code(request: &Request, denied: bool) -> i32 {
    match (request, denied) {
        (Request::Health, _) => 1,
        (_, true) => code::NO_PERMISSION,
        _ => code::UNAVAILABLE,
    }
}

/// Where a running `launch run` records its `--set` flags: beside its socket.
pub fn sets_file(socket: &Path) -> PathBuf {
    socket.with_file_name("sets.json")
}

/// Records the `--set` flags of `launch run`, so that `launch check` and `launch
/// reconfigure` inside the container apply them too (0600, root's, beside the socket).
pub fn record_sets(socket: &Path, sets: &[String]) -> Result<(), String> {
    let file = sets_file(socket);
    let text = serde_json::to_string(sets).map_err(|e| e.to_string())?;
    crate::volume::atomic::write(
        &file,
        text.as_bytes(),
        crate::volume::atomic::Attributes::mode(0o600),
        &crate::volume::access::Trust::default(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The `--set` flags a running launch recorded; none when there is no record.
pub fn recorded_sets(socket: &Path) -> Vec<String> {
    let file = sets_file(socket);
    let limit = crate::volume::access::max_file_size();
    match crate::volume::access::read_path(&file, &crate::volume::access::Trust::default(), limit) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The server end, owned by the supervisor.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Creates the socket (in a 0700 directory, itself 0600), replacing a stale one.
    pub fn bind(path: &Path) -> Result<Server, ControlError> {
        let error = |source| ControlError::Bind {
            path: path.into(),
            source,
        };
        // A directory launch makes is root's alone (0700); one that exists is the
        // operator's, and its mode is left as it is: the socket is 0600 and every peer
        // is checked with SO_PEERCRED anyway.
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            // Made with its mode (never chmodded by path afterwards).
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(error)?;
        }
        if UnixStream::connect(path).is_ok() {
            return Err(error(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another launch is answering on it",
            )));
        }
        let _ = fs::remove_file(path);
        // The socket is created 0600 (a umask around bind; launch is single-threaded
        // here), never chmodded by path after it exists.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        Ok(Server {
            listener,
            path: path.into(),
        })
    }

    /// The listening socket, for the event loop.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Every pending connection, with its request (refused peers are answered here).
    pub fn accept(&self) -> Vec<(UnixStream, Option<Request>)> {
        let mut out = Vec::new();
        while let Ok((stream, _)) = self.listener.accept() {
            // Only root, or launch's own user, may control launch.
            let uid = getsockopt(&stream, PeerCredentials)
                .map(|c| c.uid())
                .unwrap_or(u32::MAX);
            if uid != 0 && uid != nix::unistd::geteuid().as_raw() {
                respond(
                    stream,
                    "launch: refused: only root may control launch\n",
                    code::NO_PERMISSION,
                );
                continue;
            }
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
            let mut line = String::new();
            let _ = BufReader::new((&stream).take(1024)).read_line(&mut line);
            let request = Request::parse(&line);
            out.push((stream, request));
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes an answer and the client's exit code, and closes.
pub fn respond(mut stream: UnixStream, body: &str, exit: i32) {
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let _ = writeln!(stream, "{body}exit {exit}");
}

/// The client: sends `request` to the launch at `path`, prints the answer, and returns
/// the exit code it says.
pub fn call(path: &Path, request: &Request) -> i32 {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            let denied = e.kind() == io::ErrorKind::PermissionDenied;
            eprintln!(
                "launch: cannot reach a running launch at {}: {e}\n  fix: {}",
                path.display(),
                if denied {
                    "only root (or launch's own user) may talk to launch: run it as that user \
                     (docker exec -u 0 CONTAINER launch ...)"
                        .to_string()
                } else {
                    format!(
                        "run this inside the container (docker exec CONTAINER launch {}), or give --control PATH",
                        request.line()
                    )
                }
            );
            return unreachable_code(request, denied);
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // MSG_NOSIGNAL: a launch that refuses us may close first; that must not kill the
    // client with SIGPIPE, and its answer is still there to read.
    let line = format!("{}\n", request.line());
    let _ = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&stream),
        line.as_bytes(),
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if answer.is_empty() {
        eprintln!("launch: the running launch closed the connection without an answer");
        return code::UNAVAILABLE;
    }
    let mut exit = code::UNAVAILABLE;
    let mut out = io::stdout().lock();
    for line in answer.lines() {
        match line.strip_prefix("exit ").and_then(|n| n.parse().ok()) {
            Some(n) => exit = n,
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Status { json: true },
            Request::Status { json: false },
            Request::Health,
            Request::Reload,
            Request::Restart("a".into()),
            Request::Stop("b".into()),
            Request::Start("c".into()),
        ] {
            assert_eq!(Request::parse(&r.line()), Some(r));
        }
        assert_eq!(Request::parse("restart"), None);
        assert_eq!(Request::parse("rm -rf /"), None);
    }
}
