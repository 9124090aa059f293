//! Writing a file so that readers see the old content or the new, never a mix, and a
//! crash leaves the old file intact: stage a temporary file in the same directory,
//! fsync it, give it its mode and owner, then rename it over the destination and fsync
//! the directory.
//!
//! Staging and committing are separate steps so that a caller with many files can stage
//! them all (and run checks on them) before any of them replaces its destination.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, chown};

/// Errors of staging and committing, with the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// The destination's directory could not be created.
    #[error("{path}: cannot create the directory: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The staged file could not be written.
    #[error("{path}: cannot write (is the directory writable, is the disk full?): {source}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Mode or owner could not be set.
    #[error("{path}: cannot set mode or owner (launch must run as root to chown): {source}")]
    Attributes {
        /// The destination.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The rename (and the in-place fallback) failed.
    #[error("{path}: cannot replace the file: {source}")]
    Replace {
        /// The destination.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The destination is a directory.
    #[error("{path}: is a directory; the destination must be a file path")]
    IsDirectory {
        /// The destination.
        path: PathBuf,
    },
}

/// Mode and owner a written file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner; `None` keeps launch's own.
    pub uid: Option<u32>,
    /// Group; `None` keeps launch's own.
    pub gid: Option<u32>,
}

/// A file written beside its destination, not yet in place. Dropping it removes it.
#[derive(Debug)]
pub struct Staged {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
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

/// The prefix of launch's temporary files; leftovers of a crash carry it.
pub const TEMP_PREFIX: &str = ".launch-tmp.";

impl Staged {
    /// Where the staged content is (for check commands).
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Puts the staged file in place. It must have been made durable first
    /// ([`make_durable`]), or the rename could reach the disk before the content.
    pub fn commit(mut self) -> Result<Committed, AtomicError> {
        let how = match fs::rename(&self.temp, &self.dest) {
            Ok(()) => Committed::Renamed,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                copy_in_place(&self.temp, &self.dest).map_err(|source| AtomicError::Replace {
                    path: self.dest.clone(),
                    source,
                })?;
                let _ = fs::remove_file(&self.temp);
                Committed::InPlace
            }
            Err(source) => {
                return Err(AtomicError::Replace {
                    path: self.dest.clone(),
                    source,
                });
            }
        };
        self.committed = true;
        Ok(how)
    }
}

/// Flushes staged files to disk before they are renamed into place: one `syncfs` per
/// filesystem rather than one fsync per file (a thousand outputs would otherwise wait
/// for a thousand disk flushes).
pub fn make_durable(staged: &[&Staged]) -> Result<(), AtomicError> {
    let mut done = Vec::new();
    for s in staged {
        let dev = s
            .file
            .metadata()
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .ok();
        if done.contains(&dev) {
            continue;
        }
        nix::unistd::syncfs(&s.file).map_err(|e| AtomicError::Write {
            path: s.dest.clone(),
            source: e.into(),
        })?;
        done.push(dev);
    }
    Ok(())
}

/// Makes renames into `dirs` durable: one fsync per directory.
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) {
    let mut done: Vec<&Path> = Vec::new();
    for dir in dirs {
        if !done.contains(&dir) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
            done.push(dir);
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `content` to a temporary sibling of `dest` with `attrs`, creating missing
/// parent directories (0755). Not yet flushed: see [`make_durable`].
pub fn stage(dest: &Path, content: &[u8], attrs: Attributes) -> Result<Staged, AtomicError> {
    if dest.is_dir() {
        return Err(AtomicError::IsDirectory { path: dest.into() });
    }
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| AtomicError::CreateDir {
        path: dir.into(),
        source,
    })?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!("{TEMP_PREFIX}{}.{name}", std::process::id()));
    let write_error = |source| AtomicError::Write {
        path: dest.into(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(write_error)?;
    // Owned from here: a failed write (a full disk) drops it, which removes the file.
    let mut staged = Staged {
        file,
        temp,
        dest: dest.into(),
        committed: false,
    };
    staged.file.write_all(content).map_err(write_error)?;
    set_attributes(&staged.temp, attrs).map_err(|source| AtomicError::Attributes {
        path: dest.into(),
        source,
    })?;
    Ok(staged)
}

/// Stages, flushes and commits one file.
pub fn write(dest: &Path, content: &[u8], attrs: Attributes) -> Result<Committed, AtomicError> {
    let staged = stage(dest, content, attrs)?;
    staged
        .file
        .sync_all()
        .map_err(|source| AtomicError::Write {
            path: dest.into(),
            source,
        })?;
    let how = staged.commit()?;
    sync_dirs(dest.parent());
    Ok(how)
}

fn set_attributes(path: &Path, attrs: Attributes) -> io::Result<()> {
    if attrs.uid.is_some() || attrs.gid.is_some() {
        chown(
            path,
            attrs.uid.map(Uid::from_raw),
            attrs.gid.map(Gid::from_raw),
        )?;
    }
    // After chown, which may clear set-id bits.
    fs::set_permissions(path, fs::Permissions::from_mode(attrs.mode))
}

fn copy_in_place(from: &Path, to: &Path) -> io::Result<()> {
    let content = fs::read(from)?;
    let mut file = OpenOptions::new().write(true).truncate(true).open(to)?;
    file.write_all(&content)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("launch-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_with_mode_and_creates_parents() {
        let dir = tmp("mode");
        let dest = dir.join("a/b/file.conf");
        let attrs = Attributes {
            mode: 0o640,
            uid: None,
            gid: None,
        };
        assert_eq!(write(&dest, b"hello\n", attrs).unwrap(), Committed::Renamed);
        assert_eq!(fs::read(&dest).unwrap(), b"hello\n");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dropping_a_staged_file_leaves_the_old_one() {
        let dir = tmp("drop");
        let dest = dir.join("file");
        fs::write(&dest, "old").unwrap();
        let staged = stage(
            &dest,
            b"new",
            Attributes {
                mode: 0o644,
                uid: None,
                gid: None,
            },
        )
        .unwrap();
        assert!(staged.path().exists());
        drop(staged);
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tmp("isdir");
        let err = write(
            &dir,
            b"x",
            Attributes {
                mode: 0o644,
                uid: None,
                gid: None,
            },
        )
        .unwrap_err();
        assert!(matches!(err, AtomicError::IsDirectory { .. }));
        fs::remove_dir_all(dir).unwrap();
    }
}
