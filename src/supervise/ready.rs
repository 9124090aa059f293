//! Readiness checks that launch performs itself: a TCP connection and a file's
//! existence. (A command is a child like any other, reaped by the loop; a notification
//! pipe is a descriptor in the loop.)

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// The longest a TCP check may hold up the loop: a loopback connection answers at once,
/// a remote one that does not is retried at the next interval.
const CONNECT_LIMIT: Duration = Duration::from_millis(100);

/// True when a TCP connection to `address` (`host:port`) succeeds. `localhost` is
/// resolved without NSS (the binary is static).
pub fn tcp(address: &str) -> bool {
    let address = address.replacen("localhost:", "127.0.0.1:", 1);
    let target: Option<SocketAddr> = address
        .parse()
        .ok()
        .or_else(|| address.to_socket_addrs().ok()?.next());
    target.is_some_and(|addr| TcpStream::connect_timeout(&addr, CONNECT_LIMIT).is_ok())
}

/// True when `path` exists.
pub fn file(path: &Path) -> bool {
    path.exists()
}
