//! The server end of the control socket: bound in a 0700 directory, each peer's uid
//! checked, each request read with a time limit so that a silent client never holds
//! up the loop.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::{ControlError, REQUEST_TIMEOUT, Request};
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
