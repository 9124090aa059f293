//! Writing a file so that readers see the old content or the new, never a mix, and a
//! crash leaves the old file intact: stage a file under an unpredictable name in the
//! destination's directory (held open, reached without following anyone else's
//! symlinks: [`crate::volume::access`]), set its owner and mode on the descriptor, make
//! it durable, then rename it over the destination inside that directory.
//!
//! Staging and committing are separate steps so that a caller with many files can stage
//! them all (and run checks on them) before any of them replaces its destination.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::volume::access::{AccessError, Dir, Trust};
pub use crate::volume::access::{Attributes, Committed, Staged, TEMP_PREFIX};

/// Errors of staging and committing, with the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// The destination's directory cannot be reached or created, or the file cannot be
    /// written, given its attributes or put in place.
    #[error("{0}")]
    Access(#[from] AccessError),
    /// The destination is a directory.
    #[error("{path}: is a directory; the destination must be a file path")]
    IsDirectory {
        /// The destination.
        path: PathBuf,
    },
    /// The destination has no file name (`/`, or ending in `..`).
    #[error("{path}: names no file")]
    NoFileName {
        /// The destination.
        path: PathBuf,
    },
}

impl AtomicError {
    /// The underlying system error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            AtomicError::Access(e) => e.errno(),
            _ => None,
        }
    }
}

/// The directory of `dest` (held, created if missing) and its file name.
pub fn parent_of<'a>(
    dest: &'a Path,
    trust: &Trust,
    create: bool,
) -> Result<(Option<Dir>, &'a OsStr), AtomicError> {
    let name = dest
        .file_name()
        .ok_or_else(|| AtomicError::NoFileName { path: dest.into() })?;
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = if dir.is_absolute() {
        Dir::resolve(dir, trust, create)?
    } else {
        // A relative destination (a test, a host checkout) starts where launch runs.
        let absolute = std::path::absolute(dir).map_err(|source| AccessError::Io {
            path: dir.into(),
            op: "resolve",
            source,
        })?;
        Dir::resolve(&absolute, trust, create)?
    };
    Ok((dir, name))
}

/// Writes `content` to a new staged file beside `dest` with `attrs`, creating missing
/// parent directories (root's, 0755). Not yet flushed: see [`make_durable`].
pub fn stage(
    dest: &Path,
    content: &[u8],
    attrs: Attributes,
    trust: &Trust,
) -> Result<Staged, AtomicError> {
    let (dir, name) = parent_of(dest, trust, true)?;
    let dir = dir.ok_or_else(|| AtomicError::NoFileName { path: dest.into() })?;
    stage_in(&dir, name, content, attrs)
}

/// Stages `content` as `name` in the held directory `dir`.
pub fn stage_in(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    attrs: Attributes,
) -> Result<Staged, AtomicError> {
    if let Some(st) = dir.lstat_name(name)? {
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(AtomicError::IsDirectory {
                path: dir.path().join(name),
            });
        }
    }
    Ok(Staged::new(dir, name, content, attrs)?)
}

/// Flushes staged files to disk before they are renamed into place: one `syncfs` per
/// filesystem rather than one fsync per file (a thousand outputs would otherwise wait
/// for a thousand disk flushes).
pub fn make_durable(staged: &[&Staged]) -> Result<(), AtomicError> {
    let mut done = Vec::new();
    for s in staged {
        let dev = s.dir().stat().ok().map(|st| st.st_dev);
        if done.contains(&dev) {
            continue;
        }
        nix::unistd::syncfs(s.file()).map_err(|e| AccessError::Io {
            path: s.dest(),
            op: "flush",
            source: e.into(),
        })?;
        done.push(dev);
    }
    Ok(())
}

/// A [`commit_all`] that stopped: the destinations already replaced, and why the next
/// one was not.
pub type PartlyCommitted = (Vec<PathBuf>, AtomicError);

/// Puts every staged file in place, in order, then makes the renames durable (one fsync
/// per directory). On the first failure, returns the destinations already replaced and
/// the error; the files not yet committed are removed.
pub fn commit_all(staged: Vec<Staged>) -> Result<Vec<(PathBuf, Committed)>, PartlyCommitted> {
    let mut done = Vec::new();
    let mut dirs: Vec<(u64, u64, Dir)> = Vec::new();
    for file in staged {
        let dest = file.dest();
        let dir = file.dir().try_clone().ok();
        match file.commit() {
            Ok(how) => done.push((dest, how)),
            Err(e) => return Err((done.into_iter().map(|(d, _)| d).collect(), e.into())),
        }
        if let Some(dir) = dir {
            if let Ok(st) = dir.stat() {
                if !dirs
                    .iter()
                    .any(|(d, i, _)| (*d, *i) == (st.st_dev, st.st_ino))
                {
                    dirs.push((st.st_dev, st.st_ino, dir));
                }
            }
        }
    }
    for (_, _, dir) in &dirs {
        dir.sync();
    }
    Ok(done)
}

/// Stages, flushes and commits one file.
pub fn write(
    dest: &Path,
    content: &[u8],
    attrs: Attributes,
    trust: &Trust,
) -> Result<Committed, AtomicError> {
    let (dir, name) = parent_of(dest, trust, true)?;
    let dir = dir.ok_or_else(|| AtomicError::NoFileName { path: dest.into() })?;
    write_in(&dir, name, content, attrs)
}

/// Stages and commits one file without flushing it: for run-time state (beside the
/// control socket, in `/run`), which every start writes afresh, so a crash loses
/// nothing a flush would keep, and the two flushes cost a start-up milliseconds.
/// Readers still see the old content or the new, never a mix.
pub fn write_unflushed(
    dest: &Path,
    content: &[u8],
    attrs: Attributes,
    trust: &Trust,
) -> Result<Committed, AtomicError> {
    Ok(stage(dest, content, attrs, trust)?.commit()?)
}

/// Stages, flushes and commits `name` in the held directory `dir`.
pub fn write_in(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    attrs: Attributes,
) -> Result<Committed, AtomicError> {
    let staged = stage_in(dir, name, content, attrs)?;
    staged.file().sync_all().map_err(|source| AccessError::Io {
        path: staged.dest(),
        op: "flush",
        source,
    })?;
    let how = staged.commit()?;
    dir.sync();
    Ok(how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
        let how = write(
            &dest,
            b"hello\n",
            Attributes::mode(0o640),
            &Trust::default(),
        )
        .unwrap();
        assert_eq!(how, Committed::Renamed);
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
    fn an_unflushed_write_replaces_the_file_whole_and_refuses_a_planted_symlink() {
        let dir = tmp("unflushed");
        let dest = dir.join("run/sets.json");
        for content in ["[]", "[\"a=1\"]"] {
            let how = write_unflushed(
                &dest,
                content.as_bytes(),
                Attributes::mode(0o600),
                &Trust::default(),
            )
            .unwrap();
            assert_eq!(how, Committed::Renamed);
            assert_eq!(fs::read_to_string(&dest).unwrap(), content);
        }
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
        // The directory swapped for a symlink to elsewhere, where others can write (so
        // anyone could have planted it): nothing is written there.
        let elsewhere = dir.join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::remove_dir_all(dir.join("run")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("run")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let _ = write_unflushed(&dest, b"[]", Attributes::mode(0o600), &Trust::default());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dropping_a_staged_file_leaves_the_old_one() {
        let dir = tmp("drop");
        let dest = dir.join("file");
        fs::write(&dest, "old").unwrap();
        let staged = stage(&dest, b"new", Attributes::mode(0o644), &Trust::default()).unwrap();
        assert!(staged.temp_path().exists());
        drop(staged);
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tmp("isdir");
        fs::create_dir(dir.join("sub")).unwrap();
        let err = write(
            &dir.join("sub"),
            b"x",
            Attributes::mode(0o644),
            &Trust::default(),
        )
        .unwrap_err();
        assert!(matches!(err, AtomicError::IsDirectory { .. }), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn staged_names_cannot_be_guessed() {
        let dir = tmp("names");
        let dest = dir.join("f");
        let a = stage(&dest, b"1", Attributes::mode(0o600), &Trust::default()).unwrap();
        let b = stage(&dest, b"2", Attributes::mode(0o600), &Trust::default()).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        drop((a, b));
        fs::remove_dir_all(dir).unwrap();
    }
}
