//! Touching files below directories that others can write, without letting them
//! redirect launch (design.md section 4, "Touching files").
//!
//! launch is root; the operator writes the volume and the app user writes its data and
//! home. Whatever they plant (a symlink, a FIFO, a huge file, a name swapped between two
//! system calls) must not make launch read or write anything else. So every path is
//! walked from a held directory descriptor, one component at a time:
//!
//! - A directory is *trusted* when only root (or launch's own user) can change it: owned
//!   by one of them and not writable by group or others, or on a read-only mount; and
//!   not the volume. A symlink in a
//!   trusted directory is the image author's and is followed (`/var/run -> /run`).
//! - Below an untrusted directory everything is *strict*: a symlink is refused, never
//!   followed, whoever owns what lies below (the writer of the parent can rename it).
//!
//! Files are read only when they are regular files of bounded size, opened with
//! `O_NONBLOCK` so a FIFO cannot stall PID 1. Writes are staged under unpredictable names
//! created `O_EXCL`, their owner and mode set on the open descriptor, and renamed into
//! place inside the held directory. New trees (a seed) are built the same way, one
//! entry at a time, each made relative to its parent's descriptor.
//!
//! This file: the errors, the limits, owner and mode, and the two ways to read a file;
//! [`Dir`] and [`Trust`] (in `dir.rs`) walk and hold directories; [`Staged`] (in
//! `staged.rs`) is a write on its way into place.

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

pub use super::dir::{Dir, Trust};
pub use super::staged::{Committed, Staged, TEMP_PREFIX, random_u64, temp_name};

/// How many symlinks one resolution may follow (the kernel's own limit).
pub(super) const MAX_LINKS: usize = 40;

/// The largest file launch reads from the volume unless `LAUNCH_MAX_FILE_SIZE` says
/// otherwise: far above any hand-written configuration, far below what would hurt.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 20;

/// The environment variable that sets [`max_file_size`].
pub const MAX_FILE_SIZE_VAR: &str = "LAUNCH_MAX_FILE_SIZE";

/// A file or directory that launch refuses to touch, or a system call that failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A symlink where launch does not follow one.
    #[error(
        "{path}: is a symlink in a directory that others can write; launch never follows it there\n  fix: replace it with the real directory or file"
    )]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// A path component that should be a directory is not.
    #[error("{path}: is not a directory\n  fix: remove it, or correct the path")]
    NotDirectory {
        /// The component.
        path: PathBuf,
    },
    /// A file launch reads or replaces is not a regular file.
    #[error(
        "{path}: is {kind}, not a regular file; launch reads and replaces regular files only\n  fix: replace it with a regular file"
    )]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is (a FIFO, a directory, ...).
        kind: &'static str,
    },
    /// A file larger than launch reads.
    #[error(
        "{path}: is {size} bytes, more than the {limit} bytes launch reads\n  fix: shorten it, or raise the limit with {MAX_FILE_SIZE_VAR}=SIZE (e.g. 64M)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `..` or an absolute path where only names below a directory are allowed.
    #[error(
        "{path}: leaves the directory it must stay in\n  fix: write a path below it, without .."
    )]
    Escapes {
        /// The path as given.
        path: PathBuf,
    },
    /// What launch had just created was renamed or replaced before it was opened.
    #[error(
        "{path}: was replaced right after launch created it; something else renames names starting with .launch- in this directory\n  fix: stop whatever does, then run launch again (nothing was put in place)"
    )]
    Replaced {
        /// Where launch created it.
        path: PathBuf,
    },
    /// Any other failure, with what launch was doing.
    #[error("{path}: cannot {op}: {source}{}", permission_hint(source.raw_os_error()))]
    Io {
        /// Where.
        path: PathBuf,
        /// What launch was doing ("open", "create", "write", ...).
        op: &'static str,
        /// Why.
        source: io::Error,
    },
}

impl AccessError {
    pub(super) fn io(path: &Path, op: &'static str, errno: Errno) -> AccessError {
        AccessError::Io {
            path: path.into(),
            op,
            source: errno.into(),
        }
    }

    /// What is wrong, without the path and the fix (for a caller that says both its
    /// own way).
    pub fn reason(&self) -> String {
        match self {
            AccessError::Symlink { .. } => "is a symlink, which launch does not follow".into(),
            AccessError::NotDirectory { .. } => "is not a directory".into(),
            AccessError::NotRegular { kind, .. } => format!("is {kind}, not a regular file"),
            AccessError::TooLarge { size, limit, .. } => {
                format!("is {size} bytes, more than the {limit} bytes launch reads")
            }
            AccessError::Escapes { .. } => "leaves the directory it must stay in".into(),
            AccessError::Replaced { .. } => "was replaced right after launch created it".into(),
            AccessError::Io { op, source, .. } => format!("cannot {op}: {source}"),
        }
    }

    /// The underlying system error, when there is one (to tell a full disk from a
    /// planted symlink).
    pub fn errno(&self) -> Option<i32> {
        match self {
            AccessError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The size limit for files read from the volume: `LAUNCH_MAX_FILE_SIZE` (bytes, or with
/// a K, M or G suffix), else [`DEFAULT_MAX_FILE_SIZE`].
pub fn max_file_size() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(MAX_FILE_SIZE_VAR)
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(DEFAULT_MAX_FILE_SIZE)
    })
}

/// `123`, `64K`, `16M`, `1G` as bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'k' | 'K') => (&text[..i], 10),
        (i, 'm' | 'M') => (&text[..i], 20),
        (i, 'g' | 'G') => (&text[..i], 30),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Mode and owner for something launch creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner; `None` keeps launch's own.
    pub uid: Option<u32>,
    /// Group; `None` keeps launch's own.
    pub gid: Option<u32>,
}

impl Attributes {
    /// `mode`, owned by launch's own user.
    pub fn mode(mode: u32) -> Attributes {
        Attributes {
            mode,
            uid: None,
            gid: None,
        }
    }

    /// `mode`, owned by `uid:gid`.
    pub fn owned(mode: u32, owner: Option<(u32, u32)>) -> Attributes {
        Attributes {
            mode,
            uid: owner.map(|(u, _)| u),
            gid: owner.map(|(_, g)| g),
        }
    }

    /// Sets owner, then mode (chown may clear set-id bits), on an open descriptor.
    pub fn apply(&self, fd: BorrowedFd<'_>, path: &Path) -> Result<(), AccessError> {
        if self.uid.is_some() || self.gid.is_some() {
            nix::unistd::fchown(fd, self.uid.map(Uid::from_raw), self.gid.map(Gid::from_raw))
                .map_err(|e| AccessError::io(path, "set the owner of", e))?;
        }
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(self.mode as libc::mode_t))
            .map_err(|e| AccessError::io(path, "set the mode of", e))
    }
}

/// What to add to a system error that refused a permission: who launch runs as and
/// what to do. Nothing for any other error.
pub fn permission_hint(errno: Option<i32>) -> String {
    hint_for(errno, nix::unistd::geteuid().as_raw())
}

fn hint_for(errno: Option<i32>, uid: u32) -> String {
    match errno {
        Some(libc::EROFS) => "\n  (a read-only file system: with `docker run --read-only`, this path must be on a tmpfs (--tmpfs DIR) or in the volume)".into(),
        Some(libc::EACCES | libc::EPERM) if uid != 0 => format!(
            "\n  (launch runs as uid {uid}, not root: uid {uid} needs this permission here, or run the container as root)"
        ),
        _ => String::new(),
    }
}

/// What kind of file a mode says, in words for messages.
pub fn kind_of(mode: libc::mode_t) -> &'static str {
    match SFlag::from_bits_truncate(mode & libc::S_IFMT) {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symlink",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFREG => "a regular file",
        _ => "of an unknown kind",
    }
}

/// Reads the regular file `rel` below the configured directory `root` (the volume),
/// strictly beneath it: no symlink, no FIFO, at most `limit` bytes. `None` when it, or
/// a directory on the way, does not exist.
pub fn read_beneath(root: &Path, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>, AccessError> {
    let Some(dir) = Dir::open_root(root, true)? else {
        return Ok(None);
    };
    let (parent, name) = split(rel)?;
    match dir.open_dir(parent, None)? {
        Some(inner) => inner.read_file(name, limit),
        None => Ok(None),
    }
}

/// Reads the regular file at `path`, its directories resolved by [`Dir::resolve`]: for
/// files of the image (defaults, templates, accounts) that must still never be a FIFO
/// or unbounded. `None` when it does not exist.
pub fn read_path(path: &Path, trust: &Trust, limit: u64) -> Result<Option<Vec<u8>>, AccessError> {
    let mut path = std::path::absolute(path).map_err(|source| AccessError::Io {
        path: path.into(),
        op: "resolve",
        source,
    })?;
    for _ in 0..MAX_LINKS {
        let (parent, name) = split(&path)?;
        let Some(dir) = Dir::resolve(parent, trust, false)? else {
            return Ok(None);
        };
        let is_link = dir
            .lstat_name(name)?
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
        if !is_link || dir.strict {
            return dir.read_file(name, limit);
        }
        // The file itself is a link in a trusted directory: the image's (or a read-only
        // ConfigMap's `name -> ..data/name`), followed like the directories were.
        let target = nix::fcntl::readlinkat(&dir.fd, name)
            .map_err(|e| AccessError::io(&dir.path.join(name), "read the link", e))?;
        path = dir.path.join(target);
    }
    Err(AccessError::io(&path, "resolve", Errno::ELOOP))
}

/// `a/b/c` as (`a/b`, `c`).
fn split(path: &Path) -> Result<(&Path, &OsStr), AccessError> {
    let name = path
        .file_name()
        .ok_or_else(|| AccessError::Escapes { path: path.into() })?;
    Ok((path.parent().unwrap_or(Path::new("")), name))
}

#[cfg(test)]
mod tests {
    use super::hint_for;

    #[test]
    fn a_refused_permission_says_who_launch_is_and_what_to_do() {
        for (errno, uid, says) in [
            (Some(libc::EROFS), 0, "read-only file system"),
            (Some(libc::EROFS), 1000, "--tmpfs DIR"),
            (
                Some(libc::EACCES),
                1000,
                "launch runs as uid 1000, not root",
            ),
            (Some(libc::EPERM), 1000, "uid 1000 needs this permission"),
        ] {
            assert!(hint_for(errno, uid).contains(says), "{errno:?} {uid}");
        }
        for (errno, uid) in [
            (Some(libc::EACCES), 0),
            (Some(libc::ENOSPC), 1000),
            (None, 1000),
        ] {
            assert_eq!(hint_for(errno, uid), "", "{errno:?} {uid}");
        }
    }
}
