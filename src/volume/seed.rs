//! Seeding: a volume path is filled from the project iff it does not exist or is an
//! empty directory. The copy is made in a hidden temporary sibling and renamed into
//! place, so a crash never leaves a half-filled target; leftovers of an interrupted seed
//! are removed at the next start. A symlink met in the volume is never followed, nothing
//! is written outside the volume, and no existing file is overwritten.
//!
//! The target's parent is often the app user's (`data_owner`), who may rename anything
//! in it while launch copies. So the copy is built inside a directory of launch's own
//! (0700, under an unpredictable name) and only ever through descriptors: each entry is
//! made relative to its parent's descriptor and given its owner and mode on its own.
//! The final rename takes the copy out of that directory by its held descriptor, so
//! what lands at the target is the copy, whatever was renamed meanwhile.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::FileStat;
use serde::{Deserialize, Serialize};

use crate::volume::access::{AccessError, Attributes, Dir};

/// A volume path filled from the project when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// Relative to `project/`.
    pub from: PathBuf,
    /// Relative to the volume, never escaping it.
    pub to: PathBuf,
    /// Owner and group ids.
    pub owner: Option<(u32, u32)>,
}

/// The prefix of a seed's temporary directory, beside its target:
/// `.launch-seed.<pid>.<random>.<target's name>` (an older launch used
/// `.launch-seed.<target's name>`).
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
    /// Something launch had just created in the volume was renamed or replaced.
    #[error(
        "{path}: was renamed or replaced while launch seeded {target}: something else renames launch's temporary names there\n  fix: stop whatever does (the app user may write that directory), then run launch again; nothing was put in place"
    )]
    Raced {
        /// What launch had created.
        path: PathBuf,
        /// The seed target.
        target: PathBuf,
    },
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
    /// One of the volume's own directories (data/, ssh/) cannot be made or given its
    /// owner and mode.
    #[error(
        "{path}: cannot make or set up this directory of the volume: {source}\n  fix: check that the volume is writable (not mounted read-only) and has room"
    )]
    Prepare {
        /// The directory.
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

/// The volume's own directories, there after every start (makina's layout): `data/`
/// (0750; with `data_owner`, given to the app user with that mode at every start: the
/// directory itself only, a large volume is never walked) and `ssh/` (root's, 0700).
/// Never through a symlink.
pub fn prepare_data_dir(volume: &Path, owner: Option<(u32, u32)>) -> Result<(), SeedError> {
    let dir = volume.join("data");
    let io_error = |source| SeedError::Prepare {
        path: dir.clone(),
        source,
    };
    let access_error = |e: AccessError, at: &Path| match e {
        AccessError::Io { path, source, .. } => SeedError::Prepare { path, source },
        other => access_error(other, at),
    };
    // The volume itself stays traversable (0755, as a mount point is): the app user must
    // reach data/ through it.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(volume)
        .map_err(io_error)?;
    let volume_dir = Dir::open_root(volume, true)
        .map_err(|e| access_error(e, &dir))?
        .ok_or_else(|| io_error(io::ErrorKind::NotFound.into()))?;
    // Made when missing; only a spec that names data's owner insists on it being a
    // directory (check_volume said so before anything was written): without one,
    // whatever the operator keeps there is theirs and left alone.
    let exists = |name: &str| {
        volume_dir
            .lstat_name(std::ffi::OsStr::new(name))
            .map_err(|e| access_error(e, &volume.join(name)))
    };
    if owner.is_some() || exists("data")?.is_none() {
        let held = volume_dir
            .open_dir(Path::new("data"), Some(Attributes::owned(0o750, owner)))
            .map_err(|e| access_error(e, &dir))?
            .ok_or_else(|| io_error(io::ErrorKind::NotFound.into()))?;
        if owner.is_some() {
            held.set_attributes(Attributes::owned(0o750, owner))
                .map_err(|e| access_error(e, &dir))?;
        }
    }
    if exists("ssh")?.is_none() {
        let root = nix::unistd::geteuid().is_root().then_some((0, 0));
        volume_dir
            .open_dir(Path::new("ssh"), Some(Attributes::owned(0o700, root)))
            .map_err(|e| access_error(e, &volume.join("ssh")))?;
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
        AccessError::Replaced { path } => SeedError::Raced {
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
    Ok((walked.target, walked.fill.is_some()))
}

/// Why a target is to be filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Nothing is there.
    Missing,
    /// An empty directory is there (the rename replaces it).
    EmptyDir,
}

/// Where a seed goes, found by walking the volume one directory at a time without
/// following a symlink ([`Dir::open_dir`]): each directory is held open, so no symlink
/// swapped into the path after it was checked can redirect a later step.
struct Walked {
    target: PathBuf,
    /// The target's parent, held open; None when it does not exist (plan only).
    parent: Option<Dir>,
    /// The target's name in it.
    name: OsString,
    /// None: the target has content and is kept.
    fill: Option<Fill>,
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
    let refused = |e| access_error(e, &target);
    // A directory on the way is missing: when only planning, the seed would fill it.
    let missing = |target: PathBuf| Walked {
        target,
        parent: None,
        name: name.into(),
        fill: Some(Fill::Missing),
    };
    let Some(root) = open_volume(volume, create, &target)? else {
        return Ok(missing(target));
    };
    let dirs: PathBuf = dirs.iter().collect();
    let made = create.then_some(Attributes::mode(0o755));
    let Some(parent) = root.open_dir(&dirs, made).map_err(refused)? else {
        return Ok(missing(target));
    };
    let fill = match parent.lstat_name(name).map_err(refused)? {
        None => Some(Fill::Missing),
        Some(st) if is(&st, libc::S_IFLNK) => {
            return Err(SeedError::Unsafe {
                path: target.clone(),
                target,
            });
        }
        Some(st) if is(&st, libc::S_IFDIR) => {
            let inner = parent.open_dir(Path::new(name), None).map_err(refused)?;
            match inner {
                Some(inner) if inner.is_empty().map_err(refused)? => Some(Fill::EmptyDir),
                _ => None,
            }
        }
        Some(_) => None,
    };
    Ok(Walked {
        target,
        parent: Some(parent),
        name: name.into(),
        fill,
    })
}

/// The volume, held; created when missing with `create`, else `None` when missing. The
/// volume itself is launch's configuration, not the volume's content: it may be
/// reached through a symlink (a host checkout), its content may not.
fn open_volume(volume: &Path, create: bool, target: &Path) -> Result<Option<Dir>, SeedError> {
    let refused = |e| access_error(e, target);
    if let Some(root) = Dir::open_root(volume, true).map_err(refused)? {
        return Ok(Some(root));
    }
    if !create {
        return Ok(None);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(volume)
        .map_err(|source| io_error(volume, source))?;
    let root = Dir::open_root(volume, true).map_err(refused)?;
    root.ok_or_else(|| io_error(volume, io::ErrorKind::NotFound.into()))
        .map(Some)
}

/// Whether `st` is of the kind `kind` (`S_IFDIR`, ...).
fn is(st: &FileStat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

fn io_error(path: &Path, source: io::Error) -> SeedError {
    SeedError::Io {
        path: path.into(),
        source,
    }
}

fn seed_one(seed: &Seed, project: &Path, volume: &Path) -> Result<Outcome, SeedError> {
    let walked = walk(seed, project, volume, true)?;
    let target = walked.target;
    let parent = walked.parent.ok_or_else(|| {
        io_error(
            &target,
            io::Error::other("the parent directory vanished while it was created"),
        )
    })?;
    remove_leftovers(&parent, &walked.name);
    let Some(fill) = walked.fill else {
        return Ok(Outcome::Kept(target));
    };
    let (temp_name, temp) = parent
        .create_temp_dir(TEMP_PREFIX, &walked.name)
        .map_err(|e| access_error(e, &target))?;
    let source = project.join(&seed.from);
    let placed = copy_and_place(&source, seed.owner, &temp, &parent, &walked.name, fill);
    // Emptied through its descriptor, removed by name only while the name is still it:
    // the parent's writer may have renamed anything to it meanwhile.
    for entry in temp.list().unwrap_or_default() {
        let _ = temp.remove_tree(&entry);
    }
    if parent.is_entry(&temp_name, &temp) {
        let _ = parent.remove_empty_dir(&temp_name);
    }
    let files = placed.map_err(|e| {
        let mut e = access_error(e, &target);
        // Name the place in the volume the entry was for, not the temporary directory.
        if let SeedError::Io { path, .. } = &mut e {
            if let Ok(rel) = path.strip_prefix(temp.path()) {
                *path = parent.path().join(rel);
            }
        }
        e
    })?;
    Ok(Outcome::Seeded { target, files })
}

/// Copies the source into `temp` (as `name`), puts it in place at `name` in `parent`,
/// and returns the number of files.
fn copy_and_place(
    source: &Path,
    owner: Option<(u32, u32)>,
    temp: &Dir,
    parent: &Dir,
    name: &OsStr,
    fill: Fill,
) -> Result<u64, AccessError> {
    let mut files = 0;
    copy_entry(source, temp, name, owner, &mut files)?;
    // The copy is on disk before it is renamed into place.
    nix::unistd::syncfs(parent.fd()).map_err(|e| AccessError::Io {
        path: parent.path().join(name),
        op: "sync",
        source: e.into(),
    })?;
    // Taken out of launch's own directory by its descriptor, so the copy is what is
    // renamed, whatever the parent's writer renamed meanwhile; at the target, a name
    // found free must still be free, an empty directory is replaced, and a symlink put
    // there is never followed.
    temp.rename_to(name, parent, name, fill == Fill::EmptyDir)?;
    parent.sync();
    Ok(files)
}

/// Copies `from` (a file, a symlink or a tree, in the project: trusted, read by path)
/// to the new entry `name` in `into`, keeping modes and symlinks, applying `owner`.
/// Every entry is created relative to its parent's descriptor and given its owner and
/// mode on its own; sockets, FIFOs and devices are not seeded.
fn copy_entry(
    from: &Path,
    into: &Dir,
    name: &OsStr,
    owner: Option<(u32, u32)>,
    files: &mut u64,
) -> Result<(), AccessError> {
    let read = |source| AccessError::Io {
        path: from.into(),
        op: "read",
        source,
    };
    let meta = fs::symlink_metadata(from).map_err(read)?;
    let kind = meta.file_type();
    let attrs = Attributes::owned(meta.mode() & 0o7777, owner);
    if kind.is_dir() {
        let dir = into.create_dir(name, attrs)?;
        for entry in fs::read_dir(from).map_err(read)? {
            let entry = entry.map_err(read)?;
            copy_entry(&entry.path(), &dir, &entry.file_name(), owner, files)?;
        }
    } else if kind.is_symlink() {
        let points_to = fs::read_link(from).map_err(read)?;
        into.create_symlink(name, &points_to, owner)?;
    } else if kind.is_file() {
        let mut source = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(from)
            .map_err(read)?;
        let mut copy = into.create_file(name)?;
        let dest = into.path().join(name);
        // copy_file_range where it can.
        io::copy(&mut source, &mut copy).map_err(|source| AccessError::Io {
            path: dest.clone(),
            op: "write",
            source,
        })?;
        attrs.apply(copy.as_fd(), &dest)?;
        *files += 1;
    }
    Ok(())
}

/// Removes what an interrupted seed left beside a target: temporary directories of
/// launch processes that no longer run, whatever was put in place of one, and the
/// temporary copy an older launch made under a fixed name. Nothing is followed. A
/// directory goes only when it is launch's own and 0700, as launch makes them: the
/// parent's writer can rename any directory to such a name, and could not empty a
/// root's directory itself (anything else it could remove as well as launch).
fn remove_leftovers(parent: &Dir, name: &OsStr) {
    let euid = nix::unistd::geteuid().as_raw();
    parent.remove_leftovers_where(TEMP_PREFIX, true, |st| {
        !is(st, libc::S_IFDIR) || (st.st_uid == euid && st.st_mode & 0o7777 == 0o700)
    });
    let mut old = OsString::from(TEMP_PREFIX);
    old.push(name);
    let _ = parent.remove_tree(&old);
}
