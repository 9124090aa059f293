//! Directories held open, and the walk that reaches them: one component at a time from
//! `/` or from a held directory, following a symlink only where [`Trust`] says nobody
//! but root could have planted it (see [`super::access`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use super::access::{AccessError, Attributes, MAX_LINKS, kind_of};
use super::staged::{leftover_pid, temp_name};

mod create;

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

    /// Whether `st` is a directory marked untrusted (the volume).
    fn marks(&self, st: &FileStat) -> bool {
        self.untrusted.contains(&(st.st_dev, st.st_ino))
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
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
    /// Symlinks below are refused (this directory or one above it is not trusted).
    pub(super) strict: bool,
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
        // Each directory held on the way, and whether everything below it is strict
        // without exception (the volume and below).
        let mut stack: Vec<(Dir, bool)> = Vec::new();
        let mut sealed = false;
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                if let Some((parent, was_sealed)) = stack.pop() {
                    dir = parent;
                    sealed = was_sealed;
                }
                continue;
            }
            let at = dir.path.join(&name);
            match nix::fcntl::openat(&dir.fd, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    let mut next = Dir {
                        fd,
                        path: at,
                        strict: true,
                    };
                    let next_sealed = sealed || trust.marks(&next.stat()?);
                    // Below a directory others can write, its entries could have been
                    // swapped, so strictness is inherited; but in a sticky one (/tmp)
                    // nobody else can rename an entry root owns.
                    let inherited = dir.strict && !dir.protects(&next)?;
                    next.strict = next_sealed || inherited || !next.is_trusted(trust)?;
                    stack.push((std::mem::replace(&mut dir, next), sealed));
                    sealed = next_sealed;
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
                        sealed = false;
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

    /// Whether this directory keeps others from swapping `child`, one of its entries:
    /// a sticky directory (`/tmp`) lets only an entry's owner rename it, so an entry
    /// owned by root (or launch's own user) stays where it is.
    fn protects(&self, child: &Dir) -> Result<bool, AccessError> {
        let st = self.stat()?;
        let euid = nix::unistd::geteuid().as_raw();
        let owner = child.stat()?.st_uid;
        Ok(st.st_mode & libc::S_ISVTX != 0 && (owner == 0 || owner == euid))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Which symlinks a walk follows, as a table: where the link is, and whether it is
    /// followed. Runs in /tmp, sticky and world-writable, as the tests' root.
    #[test]
    fn symlinks_are_followed_only_where_only_root_could_plant_them() {
        let base = std::env::temp_dir().join(format!("launch-trust-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let target = base.join("target");
        fs::create_dir_all(&target).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let make = |dir: &str, owner: u32, mode: u32| {
            let d = base.join(dir);
            fs::create_dir_all(&d).unwrap();
            std::os::unix::fs::chown(&d, Some(owner), Some(owner)).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            symlink(&target, d.join("link")).unwrap();
        };
        make("root-owned", 0, 0o755);
        make("app-owned", 4242, 0o755);
        make("app-owned/root-inside", 0, 0o755);
        make("group-writable", 0, 0o775);
        make("volume", 0, 0o755);
        make("volume/root-inside", 0, 0o755);
        let mut trust = Trust::default();
        trust.distrust(&base.join("volume"));
        let table = [
            ("root-owned/link", true),
            ("app-owned/link", false),
            ("app-owned/root-inside/link", false),
            ("group-writable/link", false),
            ("volume/link", false),
            ("volume/root-inside/link", false),
        ];
        for (rel, followed) in table {
            let got = Dir::resolve(&base.join(rel), &trust, false);
            assert_eq!(got.is_ok(), followed, "{rel}: {got:?}");
            if !followed {
                assert!(
                    matches!(got, Err(AccessError::Symlink { .. })),
                    "{rel}: {got:?}"
                );
            }
        }
        // A symlink right in /tmp (sticky, anyone may make one) is never followed.
        let in_tmp = std::env::temp_dir().join(format!("launch-trust-link-{}", std::process::id()));
        let _ = fs::remove_file(&in_tmp);
        symlink(&target, &in_tmp).unwrap();
        assert!(matches!(
            Dir::resolve(&in_tmp, &trust, false),
            Err(AccessError::Symlink { .. })
        ));
        fs::remove_file(&in_tmp).unwrap();
        fs::remove_dir_all(&base).unwrap();
    }
}
