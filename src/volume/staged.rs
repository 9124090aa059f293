//! A write on its way into place: a file created under an unpredictable name beside its
//! destination, renamed over it inside the held directory; and the names that tell a
//! killed launch's leftovers from a running one's files.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use super::access::{AccessError, Attributes, kind_of};
use super::dir::Dir;

/// `PREFIX<pid>.<16 random hex digits>.<suffix>`: the pid tells a live launch's file
/// from a dead one's; the random part makes the name impossible to guess, the suffix
/// (cut short) tells a person what it was for.
pub fn temp_name(prefix: &str, suffix: &OsStr) -> OsString {
    let mut bytes = format!("{prefix}{}.{:016x}.", std::process::id(), random_u64()).into_bytes();
    let keep = suffix.as_bytes().len().min(64);
    bytes.extend_from_slice(&suffix.as_bytes()[..keep]);
    OsString::from_vec(bytes)
}

pub(super) fn leftover_pid(name: &OsStr, prefix: &str) -> Option<u32> {
    let rest = name.as_bytes().strip_prefix(prefix.as_bytes())?;
    let end = rest.iter().position(|b| *b == b'.')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// 64 bits from the kernel's random pool.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer it is given,
    // which lives for the whole call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // The pool is always ready after boot; as a last resort mix time and pid, which
        // still beats a fixed name (O_EXCL keeps it safe either way).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ ((std::process::id() as u64) << 32);
    }
    u64::from_ne_bytes(buf)
}

/// A file written beside its destination under an unpredictable name, not yet in
/// place. Dropping it removes it.
#[derive(Debug)]
pub struct Staged {
    dir: Dir,
    temp: OsString,
    name: OsString,
    file: std::fs::File,
    committed: bool,
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Renamed into place: atomic.
    Renamed,
    /// The destination is a mount point (a single-file bind mount: rename says EBUSY),
    /// so the content was written into it in place.
    InPlace,
}

/// The prefix of launch's staged files; leftovers of a crash carry it.
pub const TEMP_PREFIX: &str = ".launch-tmp.";

impl Staged {
    /// Stages `content` for `name` in `dir`, with `attrs` set on the open file.
    pub fn new(
        dir: &Dir,
        name: &OsStr,
        content: &[u8],
        attrs: Attributes,
    ) -> Result<Staged, AccessError> {
        let (temp, file) = dir.create_temp(TEMP_PREFIX, name)?;
        // Owned from here: any failure below drops it, which removes the file.
        let mut staged = Staged {
            dir: dir.try_clone()?,
            temp,
            name: name.into(),
            file,
            committed: false,
        };
        let dest = dir.path.join(name);
        staged
            .file
            .write_all(content)
            .map_err(|source| AccessError::Io {
                path: dest.clone(),
                op: "write",
                source,
            })?;
        attrs.apply(staged.file.as_fd(), &dest)?;
        Ok(staged)
    }

    /// The destination's path (for messages).
    pub fn dest(&self) -> PathBuf {
        self.dir.path.join(&self.name)
    }

    /// The staged file's path, for a check command to read. It names the directory as
    /// it was opened: the check runs as root on a file launch made itself.
    pub fn temp_path(&self) -> PathBuf {
        self.dir.path.join(&self.temp)
    }

    /// The open staged file.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// The directory it is staged in.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Puts the staged file in place, inside the held directory: whatever was at the
    /// name (a symlink included) is replaced, never followed. It must be on disk first
    /// (fsync or syncfs), or the rename could reach the disk before the content.
    pub fn commit(mut self) -> Result<Committed, AccessError> {
        let how = match nix::fcntl::renameat(
            &self.dir.fd,
            self.temp.as_os_str(),
            &self.dir.fd,
            self.name.as_os_str(),
        ) {
            Ok(()) => Committed::Renamed,
            Err(Errno::EBUSY) => {
                self.write_in_place()?;
                Committed::InPlace
            }
            Err(e) => return Err(AccessError::io(&self.dest(), "replace", e)),
        };
        if how == Committed::Renamed {
            self.committed = true;
        }
        Ok(how)
    }

    fn write_in_place(&self) -> Result<(), AccessError> {
        let dest = self.dest();
        let flags = OFlag::O_WRONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let fd = nix::fcntl::openat(&self.dir.fd, self.name.as_os_str(), flags, Mode::empty())
            .map_err(|e| AccessError::io(&dest, "open", e))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| AccessError::io(&dest, "stat", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(AccessError::NotRegular {
                path: dest,
                kind: kind_of(st.st_mode),
            });
        }
        let io = |source| AccessError::Io {
            path: dest.clone(),
            op: "write in place",
            source,
        };
        // The staged file is launch's own (created O_EXCL), opened write-only: read it
        // back by its name in the held directory.
        let (reread, size) = self
            .dir
            .open_file(self.temp.as_os_str(), u64::MAX)?
            .ok_or_else(|| AccessError::io(&self.temp_path(), "read back", Errno::ENOENT))?;
        let mut content = Vec::with_capacity(size as usize);
        (&reread).read_to_end(&mut content).map_err(io)?;
        let mut out = std::fs::File::from(fd);
        out.set_len(0).map_err(io)?;
        out.write_all(&content).map_err(io)?;
        out.sync_all().map_err(io)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = nix::unistd::unlinkat(
                &self.dir.fd,
                self.temp.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}
