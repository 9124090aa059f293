//! The server end of the control socket: bound in a 0700 directory, each peer's uid
//! checked. Nothing here blocks: the event loop reads each connection's request line as
//! it arrives (a silent client costs a descriptor, never a wait) and writes the answer
//! without waiting for a client that does not read.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::{ControlError, Request};
use crate::exit::code;

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

    /// Every pending connection from a peer that may control launch, non-blocking (the
    /// others are answered and closed here).
    pub fn accept(&self) -> Vec<UnixStream> {
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
            if stream.set_nonblocking(true).is_ok() {
                out.push(stream);
            }
        }
        out
    }
}

/// The longest request line; a longer one is answered as unknown.
const REQUEST_LIMIT: usize = 1024;

/// What a connection's request line came to so far.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// Not whole yet: read again when the socket is readable.
    Partial,
    /// The whole line: the request, or `None` when launch does not know it.
    Request(Option<Request>),
}

/// Reads what the client sent so far into `line`, without blocking.
pub fn read_request(stream: &mut UnixStream, line: &mut Vec<u8>) -> Received {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                let end = line.iter().position(|b| *b == b'\n');
                if n == 0 || end.is_some() || line.len() >= REQUEST_LIMIT {
                    let text = String::from_utf8_lossy(&line[..end.unwrap_or(line.len())]);
                    return Received::Request(Request::parse(&text));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::Partial,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Received::Request(None),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes an answer and the client's exit code, and closes. Never waits: an answer is
/// a few KiB and fits in the socket's buffer; a client that lets its buffer fill up
/// loses the rest rather than holding up launch.
pub fn respond(mut stream: UnixStream, body: &str, exit: i32) {
    let _ = stream.set_nonblocking(true);
    // Formatted first, so that the answer goes out in one write.
    let _ = stream.write_all(format!("{body}exit {exit}\n").as_bytes());
}
