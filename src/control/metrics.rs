//! Metrics in Prometheus's text format, for the optional listener (`metrics: {listen:
//! ADDR}` in launch.yml): per process up, ready, restarts, last exit code and uptime;
//! reloads by result; launch's own resident memory and open descriptors. A pure
//! function of what the supervisor knows, so the event loop only formats and writes.

use std::fmt::Write as _;

/// One process, as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessMetrics {
    /// Its name.
    pub name: String,
    /// It runs.
    pub up: bool,
    /// It passed its readiness check (or has none and runs).
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// The code it last exited with (128+N for signal N), if it has exited.
    pub last_exit_code: Option<i32>,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
}

/// launch's own figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Own {
    /// Reloads by result ("reloaded", "refused", "rolled back", "abandoned").
    pub reloads: Vec<(String, u64)>,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Open descriptors.
    pub open_fds: u64,
}

/// The `/metrics` body.
pub fn render(processes: &[ProcessMetrics], own: &Own) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per = |f: &dyn Fn(&ProcessMetrics) -> Option<String>| {
        processes
            .iter()
            .filter_map(|p| f(p).map(|v| (format!("{{process=\"{}\"}}", escape(&p.name)), v)))
            .collect::<Vec<_>>()
    };
    family(
        "launch_process_up",
        "gauge",
        "1 while the process runs.",
        per(&|p| Some(u8::from(p.up).to_string())),
    );
    family(
        "launch_process_ready",
        "gauge",
        "1 once the process passed its readiness check.",
        per(&|p| Some(u8::from(p.ready).to_string())),
    );
    family(
        "launch_process_restarts_total",
        "counter",
        "Restarts of the process.",
        per(&|p| Some(p.restarts.to_string())),
    );
    family(
        "launch_process_last_exit_code",
        "gauge",
        "How the process last ended (128+N: signal N).",
        per(&|p| p.last_exit_code.map(|c| c.to_string())),
    );
    family(
        "launch_process_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
        per(&|p| p.uptime_s.map(|s| s.to_string())),
    );
    family(
        "launch_reloads_total",
        "counter",
        "Reloads, by result.",
        own.reloads
            .iter()
            .map(|(r, n)| (format!("{{result=\"{}\"}}", escape(r)), n.to_string()))
            .collect(),
    );
    family(
        "launch_resident_memory_bytes",
        "gauge",
        "launch's own resident memory.",
        vec![(String::new(), own.rss_bytes.to_string())],
    );
    family(
        "launch_open_fds",
        "gauge",
        "launch's own open descriptors.",
        vec![(String::new(), own.open_fds.to_string())],
    );
    out
}

/// A label value: backslash, quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics listener: a TCP socket the event loop watches, whose connections are
/// answered without ever blocking (a client that sends nothing costs a descriptor until
/// it goes, never a wait).
#[derive(Debug)]
pub struct Listener {
    listener: std::net::TcpListener,
    /// Where it listens.
    pub address: std::net::SocketAddr,
}

/// The most of a request launch reads before it answers (the request itself is not
/// looked at: every path gets the metrics).
const REQUEST_LIMIT: usize = 8192;

impl Listener {
    /// Listens on `address`, non-blocking.
    pub fn bind(address: std::net::SocketAddr) -> std::io::Result<Listener> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(Listener { listener, address })
    }

    /// The socket, for the event loop.
    pub fn socket(&self) -> &std::net::TcpListener {
        &self.listener
    }

    /// Every pending connection, non-blocking.
    pub fn accept(&self) -> Vec<std::net::TcpStream> {
        let mut out = Vec::new();
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                out.push(stream);
            }
        }
        out
    }
}

/// Reads what a connection sent so far into `request`; `true` once the request is
/// complete (its blank line, its end, or the limit), and then it is time to answer.
pub fn read_request(stream: &mut std::net::TcpStream, request: &mut Vec<u8>) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 2048];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                request.extend_from_slice(&buf[..n]);
                if request.len() >= REQUEST_LIMIT
                    || request.windows(4).any(|w| w == b"\r\n\r\n")
                    || request.windows(2).any(|w| w == b"\n\n")
                {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Answers with `body`, as much as the socket takes now (a few KiB: all of it), then
/// the connection is dropped.
pub fn respond(stream: &mut std::net::TcpStream, body: &str) {
    use std::io::Write;
    let answer = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write(answer.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// launch's own resident memory (bytes) and open descriptors, from /proc/self.
pub fn own_usage() -> (u64, u64) {
    let page = 4096;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (rss, fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_with_escaped_labels() {
        let p = ProcessMetrics {
            name: "we\"b".into(),
            up: true,
            ready: false,
            restarts: 2,
            last_exit_code: Some(143),
            uptime_s: Some(7),
        };
        let own = Own {
            reloads: vec![("reloaded".into(), 3)],
            rss_bytes: 4096,
            open_fds: 9,
        };
        let text = render(&[p], &own);
        for line in [
            "# TYPE launch_process_up gauge",
            "launch_process_up{process=\"we\\\"b\"} 1",
            "launch_process_ready{process=\"we\\\"b\"} 0",
            "launch_process_restarts_total{process=\"we\\\"b\"} 2",
            "launch_process_last_exit_code{process=\"we\\\"b\"} 143",
            "launch_process_uptime_seconds{process=\"we\\\"b\"} 7",
            "launch_reloads_total{result=\"reloaded\"} 3",
            "launch_resident_memory_bytes 4096",
            "launch_open_fds 9",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
