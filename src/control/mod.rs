//! The control socket: a running `launch run` answers `launch status`, `health`,
//! `reload`, `restart NAME`, `stop NAME` and `start NAME` on a Unix socket that only
//! root can reach (a 0700 directory, and the peer's uid checked with SO_PEERCRED).
//!
//! The protocol is one request line; the answer is text, ending with `exit N`, the
//! client's exit code.
//!
//! - `server`: the socket the supervisor's loop answers on.
//! - `client`: the commands that ask a running launch.
//! - `status`: what `launch status` shows.
//! - [`metrics`]: the optional Prometheus listener (`metrics: {listen: ADDR}`).

mod client;
pub mod metrics;
mod server;
mod status;

use std::io;
use std::path::{Path, PathBuf};

/// Where the socket is unless `--control` or `$LAUNCH_CONTROL` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/launch/control.sock";

/// The most connections (control or metrics) that may wait for their request at once;
/// a further one closes the oldest, so silent clients cannot use up launch's descriptors.
pub const MAX_PENDING: usize = 32;

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created.
    #[error(
        "{path}: cannot create the control socket: {source}\n  fix: {}",
        bind_fix(source.raw_os_error(), nix::unistd::geteuid().as_raw(), path)
    )]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What to do when the socket cannot be made, for the user launch runs as.
fn bind_fix(errno: Option<i32>, uid: u32, path: &std::path::Path) -> String {
    let dir = path
        .parent()
        .map_or_else(|| "/".into(), |d| d.display().to_string());
    let above = path
        .parent()
        .and_then(std::path::Path::parent)
        .map_or_else(|| "/".into(), |d| d.display().to_string());
    match errno {
        Some(libc::EROFS) => format!(
            "{dir} is on a read-only file system: mount a tmpfs on /run (docker run --read-only --tmpfs /run), or give --control PATH on one that is writable"
        ),
        _ if uid != 0 => format!(
            "launch runs as uid {uid}, not root: make {dir} (or {above}, to make it in) writable by uid {uid}: docker run --tmpfs /run does; or give --control PATH"
        ),
        _ => format!(
            "make {dir} (or {above}, to make it in) writable by root, or give --control PATH"
        ),
    }
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
    /// `last-reload`: what the last reload came to (for `launch check`), its exit code
    /// that of `launch reload`.
    LastReload,
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
            ["last-reload"] => Request::LastReload,
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
            Request::LastReload => "last-reload".into(),
            Request::Restart(n) => format!("restart {n}"),
            Request::Stop(n) => format!("stop {n}"),
            Request::Start(n) => format!("start {n}"),
        }
    }
}

/// Where a running `launch run` records its `--set` flags: beside its socket.
pub fn sets_file(socket: &Path) -> PathBuf {
    socket.with_file_name("sets.json")
}

/// Records the `--set` flags of `launch run`, so that `launch check` and `launch
/// reconfigure` inside the container apply them too (0600, root's, beside the socket).
/// Run-time state, like the socket, written at every start: replaced whole, not flushed.
pub fn record_sets(socket: &Path, sets: &[String]) -> Result<(), String> {
    let file = sets_file(socket);
    let text = serde_json::to_string(sets).map_err(|e| e.to_string())?;
    crate::volume::atomic::write_unflushed(
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

pub use client::{ask, call};
pub use server::{Received, Server, read_request, respond};
pub use status::{Own, ProcessStatus, Report, status_table};

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
            Request::LastReload,
            Request::Restart("a".into()),
            Request::Stop("b".into()),
            Request::Start("c".into()),
        ] {
            assert_eq!(Request::parse(&r.line()), Some(r));
        }
        assert_eq!(Request::parse("restart"), None);
        assert_eq!(Request::parse("rm -rf /"), None);
    }

    #[test]
    fn the_fix_for_a_socket_fits_who_launch_is() {
        let path = std::path::Path::new("/run/launch/control.sock");
        for (errno, uid, says, never) in [
            (
                Some(libc::EACCES),
                0,
                "make /run/launch (or /run, to make it in) writable by root",
                "uid",
            ),
            (
                Some(libc::EACCES),
                1000,
                "launch runs as uid 1000, not root: make /run/launch (or /run, to make it in) writable by uid 1000",
                "by root",
            ),
            (
                Some(libc::EROFS),
                1000,
                "read-only file system: mount a tmpfs on /run",
                "writable by",
            ),
        ] {
            let fix = bind_fix(errno, uid, path);
            assert!(fix.contains(says), "{fix}");
            assert!(!fix.contains(never), "{fix}");
        }
    }
}
