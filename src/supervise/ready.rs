//! Readiness checks that launch performs itself: a TCP connection and a file's
//! existence. (A command is a child like any other, reaped by the loop; a notification
//! pipe is a descriptor in the loop.)

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The longest a TCP check may hold up the loop: a loopback connection answers at once,
/// a remote one that does not is retried at the next interval.
const CONNECT_LIMIT: Duration = Duration::from_millis(100);

/// True when a TCP connection to `address` succeeds.
pub fn tcp(address: &SocketAddr) -> bool {
    TcpStream::connect_timeout(address, CONNECT_LIMIT).is_ok()
}

/// True when `path` exists.
pub fn file(path: &Path) -> bool {
    path.exists()
}
