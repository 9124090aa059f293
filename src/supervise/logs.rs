//! `log_prefix`: a child's stdout and stderr come through pipes, and every line goes out
//! as `name | line`, whole lines only in each write, so lines of different processes
//! never interleave mid-line. What one read brings is written in writes of up to
//! [`BATCH`] bytes of whole lines (a write per line cost a system call per line: a
//! tenth of the throughput); a pipe takes a write that size whole, so the processes
//! that write to launch's output themselves cannot split one either. Bytes are passed as
//! they are (non-UTF-8 included); a line longer than [`MAX_LINE`] is cut into pieces
//! rather than buffered without bound, and a last line without a newline is flushed
//! (with one) when the pipe closes.
//!
//! A pipe is read for at most [`BUDGET`] bytes per turn of the loop: a process that
//! writes as fast as it can must not keep launch from its other events, and the pipe,
//! watched level-triggered, wakes the loop again at once for the rest. Lines go out
//! through `init::output::Outputs`, which never blocks (and drops lines for a stuck reader).

use std::os::fd::{AsRawFd, OwnedFd};

use super::output::{Outputs, Sink};

/// The longest line held back while waiting for its newline.
pub const MAX_LINE: usize = 64 * 1024;

/// The most bytes read from one pipe in one turn of the loop.
pub const BUDGET: usize = 64 * 1024;

/// The most bytes of lines gathered into one write (but a longer line, alone): what a
/// pipe writes atomically (PIPE_BUF).
pub const BATCH: usize = 4096;

/// Which of launch's outputs a pipe's lines go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// launch's stdout.
    Stdout,
    /// launch's stderr.
    Stderr,
}

/// One child output pipe being read.
#[derive(Debug)]
pub struct LogPipe {
    /// The read end (non-blocking).
    pub fd: OwnedFd,
    /// Where its lines go.
    pub stream: Stream,
    /// The process's name, to count what is dropped of its output.
    name: String,
    prefix: Vec<u8>,
    partial: Vec<u8>,
}

impl LogPipe {
    /// Reads `fd` (already non-blocking) for the process `name`.
    pub fn new(fd: OwnedFd, stream: Stream, name: &str) -> LogPipe {
        LogPipe {
            fd,
            stream,
            name: name.to_string(),
            prefix: format!("{name} | ").into_bytes(),
            partial: Vec::new(),
        }
    }

    /// Reads what is there, up to [`BUDGET`] bytes, and writes out every whole line.
    /// Returns false at end of file (every writer has closed the pipe), after flushing a
    /// last partial line.
    pub fn pump(&mut self, out: &mut Outputs) -> bool {
        let sink = match self.stream {
            Stream::Stdout => &mut out.stdout,
            Stream::Stderr => &mut out.stderr,
        };
        let mut chunk = [0u8; 16 * 1024];
        let mut batch = Batch::default();
        let mut read = 0;
        let open = loop {
            if read >= BUDGET {
                break true;
            }
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) => {
                    if !self.partial.is_empty() {
                        let rest = std::mem::take(&mut self.partial);
                        self.emit(sink, &mut batch, &rest);
                    }
                    break false;
                }
                Ok(n) => {
                    read += n;
                    self.feed(sink, &mut batch, &chunk[..n]);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break true,
                Err(_) => break false,
            }
        };
        batch.flush(sink, &self.name);
        open
    }

    fn feed(&mut self, sink: &mut Sink, batch: &mut Batch, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline);
            if self.partial.is_empty() {
                self.emit(sink, batch, line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.emit(sink, batch, &whole);
            }
            bytes = &rest[1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            self.emit(sink, batch, &piece);
        }
    }

    fn emit(&self, sink: &mut Sink, batch: &mut Batch, line: &[u8]) {
        let len = self.prefix.len() + line.len() + 1;
        if batch.bytes.len() + len > BATCH {
            batch.flush(sink, &self.name);
        }
        batch.bytes.extend_from_slice(&self.prefix);
        batch.bytes.extend_from_slice(line);
        batch.bytes.push(b'\n');
        batch.lines += 1;
        // A line longer than a batch goes alone.
        if batch.bytes.len() >= BATCH {
            batch.flush(sink, &self.name);
        }
    }

    /// The raw descriptor, for the event loop.
    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Whole lines waiting for one write.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

impl Batch {
    /// Writes the lines gathered (one write: whole lines, never interleaved with another
    /// process's), and starts again.
    fn flush(&mut self, sink: &mut Sink, source: &str) {
        if self.lines > 0 {
            sink.write_lines(&self.bytes, self.lines, source);
            self.bytes.clear();
            self.lines = 0;
        }
    }
}
