//! Building new trees inside a held directory: every entry is made here, never an
//! existing one reused, and from then on handled through its own descriptor or relative
//! to its parent's. Seeding copies whole trees this way into a directory that the app
//! user may write, so no name in it is looked up twice.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::super::access::{AccessError, Attributes};
use super::super::staged::temp_name;
use super::{DIR_FLAGS, Dir};

impl Dir {
    /// Makes the new directory `name` here (an existing one is an error, never reused),
    /// opens it and gives it `attrs` through that descriptor.
    pub fn create_dir(&self, name: &OsStr, attrs: Attributes) -> Result<Dir, AccessError> {
        let at = self.path.join(name);
        nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700))
            .map_err(|e| AccessError::io(&at, "create the directory", e))?;
        let dir = self.open_created(name)?;
        attrs.apply(dir.fd(), &at)?;
        Ok(dir)
    }

    /// Makes a new, empty directory here under an unpredictable name
    /// ([`temp_name`]`(prefix, suffix)`), 0700 and launch's own: nobody else can enter
    /// it, and nothing planted at a guessed name is used instead. Returns the name and
    /// the directory.
    pub fn create_temp_dir(
        &self,
        prefix: &str,
        suffix: &OsStr,
    ) -> Result<(OsString, Dir), AccessError> {
        for _ in 0..16 {
            let name = temp_name(prefix, suffix);
            match nix::sys::stat::mkdirat(
                &self.fd,
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                // Named after what it is for: the temporary name means nothing to a reader.
                Err(e) => {
                    return Err(AccessError::io(
                        &self.path.join(suffix),
                        "create a temporary directory for",
                        e,
                    ));
                }
            }
            let dir = self.open_created(&name)?;
            // The name is unguessable, but the directory's writer sees it appear: what
            // was opened must be the fresh, empty directory, whoever renamed what.
            if !dir.is_empty()? {
                return Err(AccessError::Replaced { path: dir.path });
            }
            // The mode asked of mkdirat is cut by the umask; this one is exact.
            dir.set_attributes(Attributes::mode(0o700))?;
            return Ok((name, dir));
        }
        Err(AccessError::io(
            &self.path,
            "create a temporary directory in",
            Errno::EEXIST,
        ))
    }

    /// Opens what launch has just made at `name` here: never through a symlink, and only
    /// when it is a directory of launch's own on this directory's file system (the
    /// directory's writer may have swapped the name between the two calls).
    fn open_created(&self, name: &OsStr) -> Result<Dir, AccessError> {
        let at = self.path.join(name);
        let fd = match nix::fcntl::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => {
                return Err(AccessError::Replaced { path: at });
            }
            Err(e) => return Err(AccessError::io(&at, "open", e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| AccessError::io(&at, "stat", e))?;
        let parent = self.stat()?;
        if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_dev != parent.st_dev {
            return Err(AccessError::Replaced { path: at });
        }
        Ok(Dir {
            fd,
            path: at,
            strict: true,
        })
    }

    /// Creates the new regular file `name` here, write-only
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`, 0600 until its attributes are set on it).
    pub fn create_file(&self, name: &OsStr) -> Result<std::fs::File, AccessError> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        nix::fcntl::openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))
            .map(std::fs::File::from)
            .map_err(|e| AccessError::io(&self.path.join(name), "create", e))
    }

    /// Creates the symlink `name` here, pointing at `target` (which is not looked at),
    /// and gives the link itself `owner`.
    pub fn create_symlink(
        &self,
        name: &OsStr,
        target: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<(), AccessError> {
        let at = self.path.join(name);
        nix::unistd::symlinkat(target, &self.fd, name)
            .map_err(|e| AccessError::io(&at, "create the symlink", e))?;
        if let Some((uid, gid)) = owner {
            // A link has no descriptor of its own: AT_SYMLINK_NOFOLLOW changes the link
            // and never what it points at.
            nix::unistd::fchownat(
                &self.fd,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| AccessError::io(&at, "set the owner of", e))?;
        }
        Ok(())
    }

    /// Whether this directory has no entries; reads only until the first one, so a
    /// huge directory costs no more than an empty one.
    pub fn is_empty(&self) -> Result<bool, AccessError> {
        let fd = self.fd.try_clone().map_err(|source| AccessError::Io {
            path: self.path.clone(),
            op: "list",
            source,
        })?;
        let mut dir =
            nix::dir::Dir::from_fd(fd).map_err(|e| AccessError::io(&self.path, "list", e))?;
        for entry in dir.iter() {
            let entry = entry.map_err(|e| AccessError::io(&self.path, "list", e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the name `name` here is, right now, the directory `dir` itself (and not
    /// something renamed into its place).
    pub fn is_entry(&self, name: &OsStr, dir: &Dir) -> bool {
        let (Ok(Some(here)), Ok(held)) = (self.lstat_name(name), dir.stat()) else {
            return false;
        };
        (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
    }

    /// Moves `name` from here to `to_name` in `to`. Without `replace`, an entry already
    /// at the destination is an error (`EEXIST`); with it, an empty directory there is
    /// replaced. Either way whatever is at the destination is never followed.
    pub fn rename_to(
        &self,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        replace: bool,
    ) -> Result<(), AccessError> {
        let dest = to.path.join(to_name);
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::RENAME_NOREPLACE
        };
        match nix::fcntl::renameat2(&self.fd, name, to.fd(), to_name, flags) {
            Ok(()) => Ok(()),
            // A file system without RENAME_NOREPLACE: the caller saw the name free, and
            // a plain rename still replaces at most an empty directory or a file.
            Err(Errno::EINVAL) if !replace => {
                nix::fcntl::renameat(&self.fd, name, to.fd.as_fd(), to_name)
                    .map_err(|e| AccessError::io(&dest, "put in place", e))
            }
            Err(e) => Err(AccessError::io(&dest, "put in place", e)),
        }
    }

    /// Removes the empty directory `name` here; a directory with content is left alone
    /// (`ENOTEMPTY`), so a name swapped since it was checked costs nothing.
    pub fn remove_empty_dir(&self, name: &OsStr) -> Result<(), AccessError> {
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(AccessError::io(&self.path.join(name), "remove", e)),
        }
    }
}
