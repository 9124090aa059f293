//! Log relaying: the children's output, prefixed line by line, onto launch's own
//! stdout and stderr, paused while a slow reader catches up; and launch's own log.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::Supervisor;
use super::logs::Stream;
use super::metrics::report;
use super::table::Watch;
use crate::control::{self, Request};
use crate::exit::code;

impl Supervisor {
    pub(super) fn log(&self, message: String) {
        if self.log_json {
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let line = serde_json::json!({"time": time, "source": "launch", "message": message});
            self.write_log(format!("{line}\n"));
        } else {
            self.write_log(format!("launch: {message}\n"));
        }
    }

    pub(super) fn write_log(&self, line: String) {
        // Never while `out` is borrowed: only the loop's own steps log, one at a time.
        if let Ok(mut out) = self.out.try_borrow_mut() {
            out.stderr.write_line(line.as_bytes(), "launch");
        }
    }

    /// After each turn of the loop: finishes lines a reader took in part, says what was
    /// dropped once a reader reads again, watches an output for room only while launch
    /// waits for its reader, and reads the pipes that go to it only while it accepts.
    pub(super) fn sync_output(&mut self) {
        let now = Instant::now();
        let mut said = Vec::new();
        for k in 0..2 {
            let mut out = self.out.borrow_mut();
            let sink = if k == 0 {
                &mut out.stdout
            } else {
                &mut out.stderr
            };
            sink.flush();
            said.extend(sink.drained());
            let paused = !sink.accepting(now);
            match (sink.pending(), self.out_watched[k], sink.watchable()) {
                (true, None, Some(fd)) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    if self.events.watch_writable(fd, token).is_ok() {
                        self.out_watched[k] = Some(token);
                    }
                }
                (false, Some(_), Some(fd)) => {
                    let _ = self.events.unwatch(fd);
                    self.out_watched[k] = None;
                }
                _ => {}
            }
            drop(out);
            if paused != self.out_paused[k] {
                self.out_paused[k] = paused;
                self.pause_logs(k, paused);
            }
        }
        for (source, lines) in said {
            self.log(format!(
                "dropped {} of {source}'s output: the reader of launch's output was not reading",
                crate::plural::count(lines as usize, "line", "lines")
            ));
        }
    }

    /// Stops (or starts again) reading the log pipes that go to output `k` (0 stdout,
    /// 1 stderr): a process whose pipe is full waits, as it would for a slow reader
    /// without launch.
    pub(super) fn pause_logs(&self, k: usize, paused: bool) {
        for (&token, watch) in &self.watches {
            if let Watch::Log(pipe) = watch
                && stream_index(pipe.stream) == k
            {
                let _ = if paused {
                    self.events.unwatch(pipe.fd.as_fd())
                } else {
                    self.events.watch(pipe.fd.as_fd(), token)
                };
            }
        }
    }

    pub(super) fn watch(&mut self, watch: Watch) {
        if watch.is_connection() {
            self.close_oldest_connection();
        }
        let token = self.next_token;
        self.next_token += 1;
        let registered = match &watch {
            // Read once its output takes lines again (see `pause_logs`).
            Watch::Log(pipe) if self.out_paused[stream_index(pipe.stream)] => Ok(()),
            watch => self.events.watch(watch.fd(), token),
        };
        if registered.is_ok() {
            self.watches.insert(token, watch);
        }
    }

    /// Makes room for one more connection when [`control::MAX_PENDING`] are waiting.
    fn close_oldest_connection(&mut self) {
        let pending = self.watches.iter().filter(|(_, w)| w.is_connection());
        if pending.clone().count() >= control::MAX_PENDING {
            // Tokens only grow: the smallest is the oldest.
            if let Some(oldest) = pending.map(|(token, _)| *token).min() {
                self.unwatch(oldest);
            }
        }
    }

    fn unwatch(&mut self, token: u64) {
        if let Some(watch) = self.watches.remove(&token) {
            let _ = self.events.unwatch(watch.fd());
        }
    }

    pub(super) fn on_readable(&mut self, token: u64) {
        if self.control.as_ref().is_some_and(|(t, _)| *t == token) {
            let streams = self
                .control
                .as_ref()
                .map(|(_, server)| server.accept())
                .unwrap_or_default();
            for stream in streams {
                self.watch(Watch::Control {
                    stream,
                    request: Vec::new(),
                });
            }
            return;
        }
        if self.configuring.watches(token) {
            return self.worker_readable();
        }
        if self.metrics.as_ref().is_some_and(|(t, _)| *t == token) {
            return self.metrics_accept();
        }
        let Some(watch) = self.watches.get_mut(&token) else {
            return;
        };
        let (open, ready_process) = match watch {
            Watch::Log(pipe) => (pipe.pump(&mut self.out.borrow_mut()), None),
            Watch::Control { stream, request } => match control::read_request(stream, request) {
                control::Received::Partial => return,
                control::Received::Request(request) => {
                    if let Some(Watch::Control { stream, .. }) = self.watches.remove(&token) {
                        let _ = self.events.unwatch(stream.as_fd());
                        self.control_request(stream, request);
                    }
                    return;
                }
            },
            Watch::Metrics { stream, request } => {
                if control::metrics::read_request(stream, request) {
                    let body = control::metrics::render(&report(&self.procs, &self.configuring));
                    control::metrics::respond(stream, &body);
                    (false, None)
                } else {
                    (true, None)
                }
            }
            Watch::Notify { process, fd } => {
                let mut buf = [0u8; 512];
                match nix::unistd::read(&*fd, &mut buf) {
                    Ok(0) | Err(_) => (false, None),
                    Ok(n) => (true, buf[..n].contains(&b'\n').then(|| process.clone())),
                }
            }
        };
        if let Some(name) = ready_process {
            if let Some(i) = self.procs.iter().position(|p| p.spec.name == name) {
                self.mark_ready(i);
            }
        }
        if !open {
            self.unwatch(token);
        }
    }

    /// A whole request line from the control socket: answered now, or (a reload) when
    /// the worker has finished.
    fn control_request(&mut self, stream: UnixStream, request: Option<Request>) {
        if request == Some(Request::Reload) {
            return self.request_reload(Some(stream));
        }
        let (body, exit) = match request {
            Some(request) => self.answer(request),
            None => (
                "launch: unknown request; see `launch --help`\n".to_string(),
                code::USAGE,
            ),
        };
        control::respond(stream, &body, exit);
    }
}

/// The index of a stream in the supervisor's per-output arrays.
pub(super) fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}
