//! The client end: `launch status`, `health`, `reload`, `restart`, `stop` and `start`
//! ask the running launch and print its answer.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::Request;
use crate::exit::code;

/// The exit code when no launch answers: 77 for a caller that may not ask, else 69;
/// `health` says 1, "unhealthy", which is all a health check may say besides 0.
fn unreachable_code(request: &Request, denied: bool) -> i32 {
    match (request, denied) {
        (Request::Health, _) => 1,
        (_, true) => code::NO_PERMISSION,
        _ => code::UNAVAILABLE,
    }
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
    // A reload answers once the processes it touched are ready again, or it was rolled
    // back: launch bounds that by their own timeouts, so the client waits it out.
    let timeout = match request {
        Request::Reload => None,
        _ => Some(Duration::from_secs(30)),
    };
    let _ = stream.set_read_timeout(timeout);
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

/// Asks the launch at `path` quietly: its answer and exit code, or `None` when none
/// answers (no launch runs here: `launch check` on a host).
pub fn ask(path: &Path, request: &Request) -> Option<(String, i32)> {
    let mut stream = UnixStream::connect(path).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&stream),
        format!("{}\n", request.line()).as_bytes(),
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    );
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (body, last) = answer
        .trim_end_matches('\n')
        .rsplit_once('\n')
        .unwrap_or(("", &answer));
    let exit = last.strip_prefix("exit ")?.trim().parse().ok()?;
    Some((
        if body.is_empty() {
            String::new()
        } else {
            format!("{body}\n")
        },
        exit,
    ))
}
