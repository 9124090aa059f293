//! launch's own stdout and stderr, written so that launch never blocks on them.
//!
//! Under Docker they are pipes, and a slow or stuck reader (a log driver that stalls,
//! `docker logs` piped into a pager) would block PID 1 in `write`: no signal handled,
//! no child reaped, no control request answered. So launch writes through an open file
//! description of its own with O_NONBLOCK: a pipe (or terminal) reopened through
//! `/proc/self/fd/N` gets a new description, and the children that share the original
//! one keep writing to it as before, blocking as they always did. A socket (journald's
//! stream) cannot be reopened, so it is written with MSG_DONTWAIT; a regular file never
//! blocks for long and is written as it is, at its own offset.
//!
//! A slow reader slows the processes down, as it would without launch: what the pipe
//! did not take is kept (lines stay whole), and the supervisor stops reading the
//! processes' pipes for that output until there is room again ([`Sink::accepting`]).
//! A reader that takes nothing for [`STUCK`] is stuck: then lines are dropped rather
//! than the processes held, counted by source, and the count said once the reader
//! reads again.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{Mode, SFlag, fstat};

/// How long a reader may take nothing before its lines are dropped.
pub const STUCK: Duration = Duration::from_secs(1);

/// The most kept for a reader that is slow but not stuck: a turn's worth of a pipe
/// (`supervise::logs::BUDGET`) cut into its longest lines, and launch's own log.
const OWED_MAX: usize = 256 * 1024;

/// How one of launch's outputs is written.
#[derive(Debug)]
enum Via {
    /// A description of launch's own, non-blocking.
    Reopened(OwnedFd),
    /// The original descriptor, a socket: `send` with MSG_DONTWAIT.
    Socket(i32),
    /// The original descriptor, written as it is (a regular file, or what could not be
    /// reopened).
    Plain(i32),
}

/// One of launch's outputs (stdout or stderr).
#[derive(Debug)]
pub struct Sink {
    via: Via,
    /// What the reader has not taken yet: whole lines, the first maybe in part.
    owed: Vec<u8>,
    /// When the reader last took anything.
    progress: Instant,
    /// Lines dropped since the reader last kept up, by source.
    dropped: BTreeMap<String, u64>,
    /// The reader is gone for good (EPIPE, or another error than "full"): nothing
    /// more is written, or waited for.
    gone: bool,
}

impl Sink {
    /// The output on descriptor `fd` (1 or 2).
    pub fn open(fd: i32) -> Sink {
        Sink {
            via: via(fd),
            owed: Vec::new(),
            progress: Instant::now(),
            dropped: BTreeMap::new(),
            gone: false,
        }
    }

    /// Writes `line` (newline included) whole, keeps it for a slow reader, or drops it
    /// and counts it for `source` when the reader is stuck. Never blocks (but on a
    /// regular file).
    pub fn write_line(&mut self, line: &[u8], source: &str) {
        self.write_lines(line, 1, source);
    }

    /// [`Sink::write_line`] for `lines` whole lines in one write (dropped together, and
    /// counted as that many).
    pub fn write_lines(&mut self, line: &[u8], lines: u64, source: &str) {
        if self.gone {
            return;
        }
        let written = if self.flush() {
            match self.write(line) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => 0,
                Err(_) => return self.give_up(),
            }
        } else {
            0
        };
        if written == line.len() {
            return;
        }
        if written == 0 && (self.stuck(Instant::now()) || self.owed.len() >= OWED_MAX) {
            self.drop_lines(source, lines);
        } else {
            if self.owed.is_empty() {
                // The reader's time to take it starts now, not at its last write.
                self.progress = Instant::now();
            }
            self.owed.extend_from_slice(&line[written..]);
        }
    }

    /// Whether the reader has taken nothing for [`STUCK`] while launch had more for it.
    fn stuck(&self, now: Instant) -> bool {
        !self.owed.is_empty() && now.duration_since(self.progress) >= STUCK
    }

    /// Whether the processes' pipes for this output are to be read: there is room,
    /// or the reader is stuck (and what they write is dropped rather than held).
    pub fn accepting(&self, now: Instant) -> bool {
        self.owed.is_empty() || self.gone || self.stuck(now)
    }

    /// When a reader that still takes nothing counts as stuck.
    pub fn stuck_at(&self) -> Option<Instant> {
        (!self.owed.is_empty()).then(|| self.progress + STUCK)
    }

    fn give_up(&mut self) {
        self.gone = true;
        self.owed.clear();
        self.dropped.clear();
    }

    fn drop_lines(&mut self, source: &str, lines: u64) {
        *self.dropped.entry(source.to_string()).or_default() += lines;
    }

    /// Writes what is owed of a line; true when nothing is owed any more.
    pub fn flush(&mut self) -> bool {
        while !self.owed.is_empty() {
            match write_via(&self.via, &self.owed) {
                Ok(n) if n > 0 => {
                    self.progress = Instant::now();
                    self.owed.drain(..n);
                }
                // Blocked: kept for a later try.
                Ok(_) | Err(Errno::EAGAIN) => return false,
                Err(_) => self.give_up(),
            }
        }
        true
    }

    /// Waits for room and writes what is owed, until `deadline` at the latest (launch
    /// is about to exit: what is left then is lost).
    fn finish(&mut self, deadline: Instant) {
        // A stuck reader is not waited for: its lines are being dropped already.
        while !self.flush() && !self.gone && !self.stuck(Instant::now()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(fd) = self.watchable().filter(|_| !left.is_zero()) else {
                return;
            };
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
            if poll(&mut fds, PollTimeout::from(millis)).is_err() {
                return;
            }
        }
    }

    /// Whether launch waits for the reader (a rest of a line to write, or drops to say).
    pub fn pending(&self) -> bool {
        !self.owed.is_empty() || !self.dropped.is_empty()
    }

    /// Once the reader reads again (nothing owed, room in the pipe): the lines dropped
    /// meanwhile, by source, and the count starts again.
    pub fn drained(&mut self) -> Vec<(String, u64)> {
        if self.dropped.is_empty() || !self.flush() || !self.writable() {
            return Vec::new();
        }
        std::mem::take(&mut self.dropped).into_iter().collect()
    }

    /// The descriptor to watch for room while [`Sink::pending`]; `None` when the sink
    /// never waits (a plain one).
    pub fn watchable(&self) -> Option<BorrowedFd<'_>> {
        match &self.via {
            Via::Reopened(fd) => Some(fd.as_fd()),
            // SAFETY: 1 and 2 stay open for all of launch's life; never closed here.
            Via::Socket(fd) => Some(unsafe { BorrowedFd::borrow_raw(*fd) }),
            Via::Plain(_) => None,
        }
    }

    fn writable(&self) -> bool {
        let Some(fd) = self.watchable() else {
            return true;
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLOUT))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno> {
        let written = write_via(&self.via, bytes);
        if written.is_ok_and(|n| n > 0) {
            self.progress = Instant::now();
        }
        written
    }
}

/// One write of `bytes` to `via`, retried on EINTR.
fn write_via(via: &Via, bytes: &[u8]) -> Result<usize, Errno> {
    loop {
        let result = match via {
            Via::Reopened(fd) => nix::unistd::write(fd, bytes),
            Via::Socket(fd) => send(*fd, bytes, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL),
            Via::Plain(fd) => {
                // SAFETY: as in `watchable`.
                let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
                nix::unistd::write(fd, bytes)
            }
        };
        if result != Err(Errno::EINTR) {
            return result;
        }
    }
}

/// How to write descriptor `fd` without blocking.
fn via(fd: i32) -> Via {
    // SAFETY: as in `Sink::watchable`.
    let Ok(stat) = fstat(unsafe { BorrowedFd::borrow_raw(fd) }) else {
        return Via::Plain(fd);
    };
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFSOCK {
        return Via::Socket(fd);
    }
    if kind != SFlag::S_IFIFO && kind != SFlag::S_IFCHR {
        return Via::Plain(fd);
    }
    // O_NOCTTY: reopening a terminal must never make it launch's controlling one.
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    match open(format!("/proc/self/fd/{fd}").as_str(), flags, Mode::empty()) {
        Ok(own) => Via::Reopened(own),
        // No /proc (or no right to reopen): write as before rather than not at all.
        Err(_) => Via::Plain(fd),
    }
}

/// Both of launch's outputs.
#[derive(Debug)]
pub struct Outputs {
    /// launch's stdout.
    pub stdout: Sink,
    /// launch's stderr (launch's own log).
    pub stderr: Sink,
}

impl Outputs {
    /// Opens both (see the module's notes).
    pub fn open() -> Outputs {
        Outputs {
            stdout: Sink::open(1),
            stderr: Sink::open(2),
        }
    }

    /// Writes what is owed to both, waiting for room until `deadline` at the latest.
    pub fn finish(&mut self, deadline: Instant) {
        self.stdout.finish(deadline);
        self.stderr.finish(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe nobody reads yet, `sink` writing into it; both ends non-blocking.
    fn stuck_pipe() -> (OwnedFd, Sink) {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).unwrap();
        let sink = Sink {
            via: Via::Reopened(write),
            owed: Vec::new(),
            progress: Instant::now(),
            dropped: BTreeMap::new(),
            gone: false,
        };
        (read, sink)
    }

    #[test]
    fn a_stuck_reader_costs_lines_never_a_block_and_they_are_counted() {
        let (read, mut sink) = stuck_pipe();
        // Longer than PIPE_BUF: the pipe may take one in part.
        let mut line = vec![b'y'; 5000];
        line.push(b'\n');
        for _ in 0..1000 {
            sink.write_line(&line, "app");
        }
        assert!(sink.pending());
        assert!(sink.drained().is_empty(), "the reader has not read yet");
        let mut buf = vec![0u8; 1 << 16];
        let mut got = Vec::new();
        loop {
            let done = sink.flush();
            match nix::unistd::read(&read, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) if done => break,
                Err(Errno::EAGAIN) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let dropped = sink.drained();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, "app");
        let whole = got.len() / line.len();
        assert_eq!(got.len() % line.len(), 0, "only whole lines");
        assert_eq!(whole as u64 + dropped[0].1, 1000);
        assert!(!sink.pending());
    }
}
