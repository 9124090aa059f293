//! Seeding: a volume path is filled from the project iff it does not exist or is an
//! empty directory. The copy is made in a hidden temporary sibling and renamed into
//! place, so a crash never leaves a half-filled target; leftovers of an interrupted seed
//! are removed at the next start. A symlink met in the volume is never followed, nothing
//! is written outside the volume, and no existing file is overwritten.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::spec::Seed;
use crate::volume::access::{AccessError, Attributes, Dir};

/// The prefix of a seed's temporary copy, beside its target.
pub const TEMP_PREFIX: &str = ".launch-seed.";

/// A seed that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A component of the target's path is a symlink (or not a directory).
    #[error(
        "{path}: is a symlink or not a directory, in the path of seed target {target}\n  fix: launch never follows a symlink in the volume; remove it, or seed another path"
    )]
    Unsafe {
        /// The offending component.
        path: PathBuf,
        /// The seed target.
        target: PathBuf,
    },
    /// The source is missing.
    #[error(
        "{0}: the seed source does not exist\n  fix: create it in the project, or correct seed.from in launch.yml"
    )]
    NoSource(PathBuf),
    /// Copying failed.
    #[error(
        "{path}: cannot seed: {source}\n  fix: check that the volume is writable and has room; nothing was put in place"
    )]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What seeding does (or would do) for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target was filled (or would be).
    Seeded {
        /// The target.
        target: PathBuf,
        /// Files copied.
        files: u64,
    },
    /// The target has content: left alone.
    Kept(PathBuf),
}

/// The volume's `data/`, when the spec names its owner (`data_owner`): created if
/// missing (0750) and given to the app user through its own descriptor; the directory
/// itself only (a large volume is never walked), and never through a symlink.
pub fn prepare_data_dir(volume: &Path, owner: Option<(u32, u32)>) -> Result<(), SeedError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let dir = volume.join("data");
    let io_error = |source| SeedError::Io {
        path: dir.clone(),
        source,
    };
    // The volume itself stays traversable (0755, as a mount point is): the app user must
    // reach data/ through it.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(volume)
        .map_err(io_error)?;
    let attrs = Attributes::owned(0o750, Some((uid, gid)));
    let held = Dir::open_root(volume, true)
        .and_then(|v| match v {
            Some(v) => v.open_dir(Path::new("data"), Some(attrs)),
            None => Ok(None),
        })
        .map_err(|e| access_error(e, &dir))?
        .ok_or_else(|| io_error(io::ErrorKind::NotFound.into()))?;
    let st = held.stat().map_err(|e| access_error(e, &dir))?;
    if st.st_uid != uid || st.st_gid != gid {
        held.set_attributes(Attributes::owned(st.st_mode & 0o7777, Some((uid, gid))))
            .map_err(|e| access_error(e, &dir))?;
    }
    Ok(())
}

/// A refusal of the volume's content as a seed error.
fn access_error(e: AccessError, target: &Path) -> SeedError {
    match e {
        AccessError::Symlink { path } | AccessError::NotDirectory { path } => SeedError::Unsafe {
            path,
            target: target.into(),
        },
        AccessError::Io { path, source, .. } => SeedError::Io { path, source },
        other => SeedError::Io {
            path: target.into(),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// Where each seed entry would go, and whether it would be filled; writes nothing.
pub fn plan(seeds: &[Seed], project: &Path, volume: &Path) -> Result<Vec<Outcome>, Vec<SeedError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        match target_state(seed, project, volume) {
            Ok((target, true)) => out.push(Outcome::Seeded { target, files: 0 }),
            Ok((target, false)) => out.push(Outcome::Kept(target)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Fills every empty target. All errors are reported; the entries that can be seeded
/// are.
pub fn apply(
    seeds: &[Seed],
    project: &Path,
    volume: &Path,
) -> Result<Vec<Outcome>, Vec<SeedError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        match seed_one(seed, project, volume) {
            Ok(outcome) => out.push(outcome),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The target's path, checked component by component; and whether it is to be filled.
/// Writes nothing.
fn target_state(seed: &Seed, project: &Path, volume: &Path) -> Result<(PathBuf, bool), SeedError> {
    let walked = walk(seed, project, volume, false)?;
    Ok((walked.target, walked.fill))
}

/// Where a seed goes, found by walking the volume one directory at a time with
/// `openat(O_NOFOLLOW)`: each directory is held open, so no symlink swapped into the
/// path after it was checked can redirect a later step. Everything after the walk
/// happens relative to the held parent (through `/proc/self/fd`, or `*at` calls).
struct Walked {
    target: PathBuf,
    /// The target's parent, held open; None when it does not exist (plan only).
    parent: Option<OwnedFd>,
    /// The target's name in it.
    name: OsString,
    fill: bool,
}

fn walk(seed: &Seed, project: &Path, volume: &Path, create: bool) -> Result<Walked, SeedError> {
    let source = project.join(&seed.from);
    if fs::symlink_metadata(&source).is_err() {
        return Err(SeedError::NoSource(source));
    }
    let target = volume.join(&seed.to);
    let parts: Vec<&OsStr> = seed
        .to
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        // `to: .` would be the volume itself, which the spec refuses.
        return Err(SeedError::Unsafe {
            path: volume.into(),
            target,
        });
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: nix::Error| SeedError::Io {
            path,
            source: e.into(),
        }
    };
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // The volume itself is launch's configuration, not the volume's content: it may be
    // reached through a symlink (a host checkout), its content may not.
    let open_volume =
        || nix::fcntl::open(volume, OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty());
    // A directory on the way is missing: when only planning, the seed would fill it.
    let missing = |target: PathBuf| Walked {
        target,
        parent: None,
        name: name.into(),
        fill: true,
    };
    let mut dir = match open_volume() {
        Err(Errno::ENOENT) if !create => return Ok(missing(target)),
        Err(Errno::ENOENT) => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(volume)
                .map_err(|source| SeedError::Io {
                    path: volume.into(),
                    source,
                })?;
            open_volume()
        }
        other => other,
    }
    .map_err(io(volume))?;
    let mut at = volume.to_path_buf();
    for part in dirs {
        at.push(part);
        let opened = match nix::fcntl::openat(&dir, *part, dir_flags, Mode::empty()) {
            Err(Errno::ENOENT) if !create => return Ok(missing(target)),
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&dir, *part, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(io(&at)(e)),
                }
                // Opened again with O_NOFOLLOW: a symlink put there meanwhile fails.
                nix::fcntl::openat(&dir, *part, dir_flags, Mode::empty())
            }
            other => other,
        };
        dir = match opened {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(SeedError::Unsafe { path: at, target });
            }
            Err(e) => return Err(io(&at)(e)),
        };
    }
    let fill = match nix::sys::stat::fstatat(&dir, *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => true,
        Err(e) => return Err(io(&target)(e)),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
            return Err(SeedError::Unsafe {
                path: target.clone(),
                target,
            });
        }
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            let inner =
                nix::fcntl::openat(&dir, *name, dir_flags, Mode::empty()).map_err(io(&target))?;
            fs::read_dir(fd_path(&inner))
                .map_err(|source| SeedError::Io {
                    path: target.clone(),
                    source,
                })?
                .next()
                .is_none()
        }
        Ok(_) => false,
    };
    Ok(Walked {
        target,
        parent: Some(dir),
        name: name.into(),
        fill,
    })
}

/// The path of an open descriptor: it names the directory that was opened, whatever
/// has been renamed or swapped in its old path since.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn seed_one(seed: &Seed, project: &Path, volume: &Path) -> Result<Outcome, SeedError> {
    let walked = walk(seed, project, volume, true)?;
    let target = walked.target;
    let parent = walked.parent.ok_or_else(|| SeedError::Io {
        path: target.clone(),
        source: io::Error::other("the parent directory vanished while it was created"),
    })?;
    let anchored = fd_path(&parent);
    let mut temp_name = OsString::from(TEMP_PREFIX);
    temp_name.push(&walked.name);
    let temp = anchored.join(&temp_name);
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SeedError::Io { path, source }
    };
    let shown_temp = target.with_file_name(&temp_name);
    // A leftover of an interrupted seed of this target is ours to remove (remove_dir_all
    // does not follow symlinks).
    if let Ok(meta) = fs::symlink_metadata(&temp) {
        if meta.is_dir() {
            fs::remove_dir_all(&temp)
        } else {
            fs::remove_file(&temp)
        }
        .map_err(io_error(&shown_temp))?;
    }
    if !walked.fill {
        return Ok(Outcome::Kept(target));
    }
    let source = project.join(&seed.from);
    let files = copy_tree(&source, &temp, seed.owner).map_err(|(path, source)| {
        // Name the place in the volume, not the descriptor it was reached through.
        let shown = path.strip_prefix(&anchored).map_or(path.clone(), |rel| {
            target.parent().unwrap_or(volume).join(rel)
        });
        SeedError::Io {
            path: shown,
            source,
        }
    })?;
    // The copy is on disk before it is renamed into place.
    let sync = |e: nix::Error| SeedError::Io {
        path: target.clone(),
        source: e.into(),
    };
    nix::unistd::syncfs(&parent).map_err(sync)?;
    // rename replaces an empty directory atomically, and a symlink swapped in for the
    // target is itself replaced, never followed.
    nix::fcntl::renameat(
        &parent,
        temp_name.as_os_str(),
        &parent,
        walked.name.as_os_str(),
    )
    .map_err(sync)?;
    let _ = nix::unistd::fsync(&parent);
    Ok(Outcome::Seeded { target, files })
}

/// Copies `from` (a file, a symlink or a tree) to `to`, keeping modes and symlinks,
/// applying `owner`; streams (one entry at a time). Returns the number of files.
fn copy_tree(
    from: &Path,
    to: &Path,
    owner: Option<(u32, u32)>,
) -> Result<u64, (PathBuf, io::Error)> {
    let mut files = 0;
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(|e| (from.to_path_buf(), io::Error::other(e.to_string())))?;
        let rel = entry.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = if rel.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rel)
        };
        let err = |e| (dest.clone(), e);
        let meta = entry.path().symlink_metadata().map_err(err)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dest)
                .map_err(err)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(entry.path()).map_err(err)?, &dest).map_err(err)?;
        } else if kind.is_file() {
            // std::fs::copy: copy_file_range where it can, into a new file only.
            if fs::symlink_metadata(&dest).is_ok() {
                return Err(err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "refusing to overwrite",
                )));
            }
            fs::copy(entry.path(), &dest).map_err(err)?;
            files += 1;
        } else {
            continue; // sockets, fifos, devices: not seeded
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&dest, Some(uid), Some(gid)).map_err(err)?;
        }
        if !kind.is_symlink() {
            fs::set_permissions(&dest, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(err)?;
        }
    }
    Ok(files)
}
