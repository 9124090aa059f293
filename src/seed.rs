//! Seeding: a volume path is filled from the project iff it does not exist or is an
//! empty directory. The copy is made in a hidden temporary sibling and renamed into
//! place, so a crash never leaves a half-filled target; leftovers of an interrupted seed
//! are removed at the next start. A symlink met in the volume is never followed, nothing
//! is written outside the volume, and no existing file is overwritten.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::spec::Seed;

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
/// missing (0750) and given to the app user; the directory itself only (a large volume is
/// never walked), and never through a symlink.
pub fn prepare_data_dir(volume: &Path, owner: Option<(u32, u32)>) -> Result<(), SeedError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let dir = volume.join("data");
    let io_error = |source| SeedError::Io {
        path: dir.clone(),
        source,
    };
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
            return Err(SeedError::Unsafe {
                path: dir.clone(),
                target: dir.clone(),
            });
        }
        Ok(_) => {}
        Err(_) => {
            // The volume itself stays traversable (0755, as a mount point is): the app
            // user must reach data/ through it.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(volume)
                .map_err(io_error)?;
            fs::DirBuilder::new()
                .mode(0o750)
                .create(&dir)
                .map_err(io_error)?;
        }
    }
    let meta = fs::metadata(&dir).map_err(io_error)?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_error)?;
    }
    Ok(())
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
fn target_state(seed: &Seed, project: &Path, volume: &Path) -> Result<(PathBuf, bool), SeedError> {
    let source = project.join(&seed.from);
    if fs::symlink_metadata(&source).is_err() {
        return Err(SeedError::NoSource(source));
    }
    let target = volume.join(&seed.to);
    let mut at = volume.to_path_buf();
    let parts: Vec<_> = seed
        .to
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&at) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((target, true)),
            Err(source) => return Err(SeedError::Io { path: at, source }),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(SeedError::Unsafe { path: at, target });
            }
            Ok(meta) if last => {
                let empty_dir = meta.is_dir()
                    && fs::read_dir(&at)
                        .map_err(|source| SeedError::Io {
                            path: at.clone(),
                            source,
                        })?
                        .next()
                        .is_none();
                return Ok((target, empty_dir));
            }
            Ok(meta) if !meta.is_dir() => return Err(SeedError::Unsafe { path: at, target }),
            Ok(_) => {}
        }
    }
    Ok((target, false))
}

fn seed_one(seed: &Seed, project: &Path, volume: &Path) -> Result<Outcome, SeedError> {
    let (target, fill) = target_state(seed, project, volume)?;
    let parent = target.parent().unwrap_or(volume).to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!("{TEMP_PREFIX}{name}"));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SeedError::Io { path, source }
    };
    // A leftover of an interrupted seed of this target is ours to remove (remove_dir_all
    // does not follow symlinks).
    if let Ok(meta) = fs::symlink_metadata(&temp) {
        if meta.is_dir() {
            fs::remove_dir_all(&temp)
        } else {
            fs::remove_file(&temp)
        }
        .map_err(io_error(&temp))?;
    }
    if !fill {
        return Ok(Outcome::Kept(target));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&parent)
        .map_err(io_error(&parent))?;
    // create_dir_all may have created parents: check again that none is a symlink.
    target_state(seed, project, volume)?;
    let source = project.join(&seed.from);
    let files = copy_tree(&source, &temp, seed.owner)
        .map_err(|(path, source)| SeedError::Io { path, source })?;
    // The copy is on disk before it is renamed into place.
    let dir = File::open(&parent).map_err(io_error(&parent))?;
    nix::unistd::syncfs(&dir).map_err(|e| SeedError::Io {
        path: parent.clone(),
        source: e.into(),
    })?;
    // rename replaces an empty directory atomically; a file target never exists here.
    fs::rename(&temp, &target).map_err(io_error(&target))?;
    let _ = dir.sync_all();
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
