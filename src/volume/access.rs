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
//! entry at a time, each made relative to its parent's descriptor (`create`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

mod create;

/// How many symlinks one resolution may follow (the kernel's own limit).
const MAX_LINKS: usize = 40;

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
    #[error("{path}: cannot {op}: {source}")]
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
    fn io(path: &Path, op: &'static str, errno: Errno) -> AccessError {
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

/// Where symlinks may not be followed even in directories root owns: the volume (its
/// writer is not root's kind of trusted, whatever the owner on disk says).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    untrusted: Vec<(u64, u64)>,
}

impl Trust {
    /// Marks the directory at `path` (and so everything below it) as untrusted. A path
    /// that does not exist yet marks nothing: launch creates it itself.
    pub fn distrust(&mut self, path: &Path) {
        if let Ok(st) = nix::sys::stat::stat(path) {
            self.untrusted.push((st.st_dev, st.st_ino));
        }
    }

    fn trusts(&self, st: &FileStat) -> bool {
        let euid = nix::unistd::geteuid().as_raw();
        (st.st_uid == 0 || st.st_uid == euid)
            && st.st_mode & 0o022 == 0
            && !self.untrusted.contains(&(st.st_dev, st.st_ino))
    }
}

/// A directory held open: every later step is relative to it, so renaming or replacing
/// its path after it was opened changes nothing.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Symlinks below are refused (this directory or one above it is not trusted).
    strict: bool,
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

/// The names of `path` below a directory: only plain names, never `..`, the root or
/// `.` (which would make "below" meaningless).
fn names(path: &Path) -> Result<Vec<&OsStr>, AccessError> {
    let mut out = Vec::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            _ => return Err(AccessError::Escapes { path: path.into() }),
        }
    }
    Ok(out)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

impl Dir {
    /// Opens a directory whose path launch was configured with (the volume, a project),
    /// following symlinks in that path itself; with `strict`, nothing below it is
    /// followed. `None` when it does not exist.
    pub fn open_root(path: &Path, strict: bool) -> Result<Option<Dir>, AccessError> {
        match nix::fcntl::open(path, OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: path.into(),
                strict,
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ENOTDIR) => Err(AccessError::NotDirectory { path: path.into() }),
            Err(e) => Err(AccessError::io(path, "open", e)),
        }
    }

    /// Opens the absolute directory `path` from `/`, one component at a time: symlinks
    /// are followed only inside trusted directories (see the module's doc). With
    /// `create`, missing directories are made (root's, 0755) on the way. `None` when a
    /// component is missing and nothing is created.
    pub fn resolve(path: &Path, trust: &Trust, create: bool) -> Result<Option<Dir>, AccessError> {
        let mut dir = Dir::open_root(Path::new("/"), false)?
            .ok_or_else(|| AccessError::io(Path::new("/"), "open", Errno::ENOENT))?;
        dir.strict = !dir.is_trusted(trust)?;
        let mut pending: Vec<OsString> = Vec::new();
        push_reversed(&mut pending, path);
        let mut stack: Vec<Dir> = Vec::new();
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                if let Some(parent) = stack.pop() {
                    dir = parent;
                }
                continue;
            }
            let at = dir.path.join(&name);
            match nix::fcntl::openat(&dir.fd, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    let mut next = Dir {
                        fd,
                        path: at,
                        strict: dir.strict,
                    };
                    next.strict = next.strict || !next.is_trusted(trust)?;
                    stack.push(std::mem::replace(&mut dir, next));
                }
                Err(Errno::ENOENT) if create => {
                    dir.make_dir(&name, Attributes::mode(0o755))?;
                    pending.push(name);
                }
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let st = dir.lstat_name(&name)?;
                    let is_link = st.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFLNK);
                    if !is_link {
                        return Err(AccessError::NotDirectory { path: at });
                    }
                    if dir.strict {
                        return Err(AccessError::Symlink { path: at });
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(AccessError::io(&at, "resolve", Errno::ELOOP));
                    }
                    let target = nix::fcntl::readlinkat(&dir.fd, name.as_os_str())
                        .map_err(|e| AccessError::io(&at, "read the link", e))?;
                    let target = PathBuf::from(target);
                    if target.is_absolute() {
                        stack.clear();
                        dir = Dir::open_root(Path::new("/"), false)?.ok_or_else(|| {
                            AccessError::io(Path::new("/"), "open", Errno::ENOENT)
                        })?;
                        dir.strict = !dir.is_trusted(trust)?;
                    }
                    push_reversed(&mut pending, &target);
                }
                Err(e) => return Err(AccessError::io(&at, "open", e)),
            }
        }
        Ok(Some(dir))
    }

    /// The path this directory was reached by (for messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The held descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir, AccessError> {
        Ok(Dir {
            fd: self.fd.try_clone().map_err(|e| AccessError::Io {
                path: self.path.clone(),
                op: "duplicate",
                source: e,
            })?,
            path: self.path.clone(),
            strict: self.strict,
        })
    }

    fn is_trusted(&self, trust: &Trust) -> Result<bool, AccessError> {
        let st =
            nix::sys::stat::fstat(&self.fd).map_err(|e| AccessError::io(&self.path, "stat", e))?;
        if trust.trusts(&st) {
            return Ok(true);
        }
        // On a read-only mount nobody can plant anything, whatever the mode says: a
        // Kubernetes ConfigMap is a 0777 directory of symlinks, mounted read-only.
        let read_only = nix::sys::statvfs::fstatvfs(&self.fd)
            .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        Ok(read_only && !trust.untrusted.contains(&(st.st_dev, st.st_ino)))
    }

    /// `lstat` of one name in this directory; `None` when it does not exist.
    pub fn lstat_name(&self, name: &OsStr) -> Result<Option<FileStat>, AccessError> {
        match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(AccessError::io(&self.path.join(name), "stat", e)),
        }
    }

    /// Opens the directory `rel` below this one, never through a symlink (strictly
    /// beneath, whatever the trust). With `create`, missing directories are made with
    /// those attributes (set on the new directory's descriptor). `None` when a component
    /// is missing and nothing is created.
    pub fn open_dir(
        &self,
        rel: &Path,
        create: Option<Attributes>,
    ) -> Result<Option<Dir>, AccessError> {
        let mut dir = self.try_clone()?;
        for name in names(rel)? {
            let at = dir.path.join(name);
            let fd = match nix::fcntl::openat(&dir.fd, name, DIR_FLAGS, Mode::empty()) {
                Err(Errno::ENOENT) => match create {
                    None => return Ok(None),
                    Some(attrs) => {
                        dir.make_dir(name, attrs)?;
                        nix::fcntl::openat(&dir.fd, name, DIR_FLAGS, Mode::empty())
                    }
                },
                other => other,
            };
            let fd = match fd {
                Ok(fd) => fd,
                Err(Errno::ELOOP) => return Err(AccessError::Symlink { path: at }),
                Err(Errno::ENOTDIR) => match dir.lstat_name(name)? {
                    Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                        return Err(AccessError::Symlink { path: at });
                    }
                    _ => return Err(AccessError::NotDirectory { path: at }),
                },
                Err(e) => return Err(AccessError::io(&at, "open", e)),
            };
            dir = Dir {
                fd,
                path: at,
                strict: true,
            };
        }
        Ok(Some(dir))
    }

    /// Makes the directory `name` here, then gives it `attrs` through its own
    /// descriptor. An existing one is left as it is.
    pub fn make_dir(&self, name: &OsStr, attrs: Attributes) -> Result<(), AccessError> {
        let at = self.path.join(name);
        match nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Ok(()),
            Err(e) => return Err(AccessError::io(&at, "create the directory", e)),
        }
        let fd = nix::fcntl::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| AccessError::io(&at, "open", e))?;
        attrs.apply(fd.as_fd(), &at)
    }

    /// Gives this directory `attrs`, through its descriptor.
    pub fn set_attributes(&self, attrs: Attributes) -> Result<(), AccessError> {
        attrs.apply(self.fd.as_fd(), &self.path)
    }

    /// This directory's own metadata.
    pub fn stat(&self) -> Result<FileStat, AccessError> {
        nix::sys::stat::fstat(&self.fd).map_err(|e| AccessError::io(&self.path, "stat", e))
    }

    /// Opens the regular file `name` here for reading: never through a symlink, never
    /// blocking on a FIFO, refused unless it is a regular file of at most `limit`
    /// bytes. `None` when it does not exist.
    pub fn open_file(
        &self,
        name: &OsStr,
        limit: u64,
    ) -> Result<Option<(std::fs::File, u64)>, AccessError> {
        let at = self.path.join(name);
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let fd = match nix::fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(AccessError::Symlink { path: at }),
            Err(e) => return Err(AccessError::io(&at, "open", e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| AccessError::io(&at, "stat", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(AccessError::NotRegular {
                path: at,
                kind: kind_of(st.st_mode),
            });
        }
        let size = st.st_size.max(0) as u64;
        if size > limit {
            return Err(AccessError::TooLarge {
                path: at,
                size,
                limit,
            });
        }
        Ok(Some((std::fs::File::from(fd), size)))
    }

    /// Reads the regular file `name` here (see [`Dir::open_file`]). A file that grows
    /// past `limit` while it is read is refused too.
    pub fn read_file(&self, name: &OsStr, limit: u64) -> Result<Option<Vec<u8>>, AccessError> {
        let Some((file, size)) = self.open_file(name, limit)? else {
            return Ok(None);
        };
        let at = || self.path.join(name);
        let mut content = Vec::with_capacity(size as usize);
        file.take(limit + 1)
            .read_to_end(&mut content)
            .map_err(|source| AccessError::Io {
                path: at(),
                op: "read",
                source,
            })?;
        if content.len() as u64 > limit {
            return Err(AccessError::TooLarge {
                path: at(),
                size: content.len() as u64,
                limit,
            });
        }
        Ok(Some(content))
    }

    /// The names in this directory (not `.` and `..`), sorted.
    pub fn list(&self) -> Result<Vec<OsString>, AccessError> {
        let fd = self.fd.try_clone().map_err(|source| AccessError::Io {
            path: self.path.clone(),
            op: "list",
            source,
        })?;
        let mut dir =
            nix::dir::Dir::from_fd(fd).map_err(|e| AccessError::io(&self.path, "list", e))?;
        let mut out: Vec<OsString> = dir
            .iter()
            .flatten()
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes the name `name` here (a file or a symlink; never what a symlink points
    /// at). A missing name is fine.
    pub fn remove_file(&self, name: &OsStr) -> Result<(), AccessError> {
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(AccessError::io(&self.path.join(name), "remove", e)),
        }
    }

    /// Removes the tree `name` here, without following any symlink in it.
    pub fn remove_tree(&self, name: &OsStr) -> Result<(), AccessError> {
        let Some(st) = self.lstat_name(name)? else {
            return Ok(());
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return self.remove_file(name);
        }
        if let Some(inner) = self.open_dir(Path::new(name), None)? {
            for entry in inner.list()? {
                inner.remove_tree(&entry)?;
            }
        }
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(AccessError::io(&self.path.join(name), "remove", e)),
        }
    }

    /// Flushes renames in this directory to disk.
    pub fn sync(&self) {
        let _ = nix::unistd::fsync(&self.fd);
    }

    /// Creates a new file here under an unpredictable name starting with `prefix`
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`, 0600): nothing planted at a guessed name can be
    /// opened instead. Returns the name and the file.
    pub fn create_temp(
        &self,
        prefix: &str,
        suffix: &OsStr,
    ) -> Result<(OsString, std::fs::File), AccessError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for _ in 0..16 {
            let name = temp_name(prefix, suffix);
            match nix::fcntl::openat(
                &self.fd,
                name.as_os_str(),
                flags,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => return Ok((name, std::fs::File::from(fd))),
                Err(Errno::EEXIST) => continue,
                // Named after what it is for: the temporary name means nothing to a reader.
                Err(e) => return Err(AccessError::io(&self.path.join(suffix), "write", e)),
            }
        }
        Err(AccessError::io(
            &self.path,
            "create a temporary file in",
            Errno::EEXIST,
        ))
    }

    /// Removes what an earlier, killed launch left here: names starting with `prefix`
    /// whose process no longer runs (see [`temp_name`]). With `own`, names with launch's
    /// own pid go too: at start-up, before launch has staged anything, those are a
    /// previous PID 1's. Returns how many were removed.
    pub fn remove_leftovers(&self, prefix: &str, own: bool) -> usize {
        self.remove_leftovers_where(prefix, own, |_| true)
    }

    /// [`Dir::remove_leftovers`], for those only whose `lstat` passes `accept`: the
    /// directory's writer can rename anything in it to a leftover's name, and
    /// `accept` tells what launch made from what it did not.
    pub fn remove_leftovers_where(
        &self,
        prefix: &str,
        own: bool,
        accept: impl Fn(&FileStat) -> bool,
    ) -> usize {
        let Ok(names) = self.list() else {
            return 0;
        };
        let me = std::process::id();
        let mut removed = 0;
        for name in names {
            let Some(pid) = leftover_pid(&name, prefix) else {
                continue;
            };
            let dead = if pid == me {
                own
            } else {
                pid == 0
                    || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
                        == Err(Errno::ESRCH)
            };
            let accepted = || matches!(self.lstat_name(&name), Ok(Some(st)) if accept(&st));
            if dead && accepted() && self.remove_tree(&name).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

fn push_reversed(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

/// `PREFIX<pid>.<16 random hex digits>.<suffix>`: the pid tells a live launch's file
/// from a dead one's; the random part makes the name impossible to guess, the suffix
/// (cut short) tells a person what it was for.
pub fn temp_name(prefix: &str, suffix: &OsStr) -> OsString {
    let mut bytes = format!("{prefix}{}.{:016x}.", std::process::id(), random_u64()).into_bytes();
    let keep = suffix.as_bytes().len().min(64);
    bytes.extend_from_slice(&suffix.as_bytes()[..keep]);
    OsString::from_vec(bytes)
}

fn leftover_pid(name: &OsStr, prefix: &str) -> Option<u32> {
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
