//! `launch init DIR --name NAME`: a new project from `image-template/`, which is built
//! into the binary so that it works wherever launch does (in an image, on a host with
//! no checkout of launch).
//!
//! The project is written into a hidden sibling of DIR and renamed into place, so an
//! interrupted init leaves either nothing or the whole project, and an existing project
//! is never touched.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The placeholder in the template's files that becomes the project's name.
const PLACEHOLDER: &str = "__NAME__";

/// One file of `image-template/`: its path in the new project, its text, its mode.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
    mode: u32,
}

macro_rules! template {
    ($($path:literal $(, $mode:literal)?);* $(;)?) => {
        &[$(TemplateFile {
            path: $path,
            text: include_str!(concat!("../../image-template/", $path)),
            mode: template!(@mode $($mode)?),
        }),*]
    };
    (@mode) => { 0o644 };
    (@mode $mode:literal) => { $mode };
}

/// Every file of `image-template/` (a test below checks that none is missing).
const FILES: &[TemplateFile] = template![
    "README.md";
    "Dockerfile";
    "docker-compose.yml";
    "project/launch.yml";
    "project/pillar.yml";
    "project/templates/index.html";
    "project/seed/data/README.txt";
];

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name would not make a valid image or directory name.
    #[error(
        "{0:?}: not a project name; use lower-case letters, digits, '-', '_' and '.', \
         starting with a letter or digit (it becomes the image name and /srv/projects/NAME)"
    )]
    BadName(String),
    /// DIR exists and holds something.
    #[error(
        "{0}: already exists and is not empty; launch init never overwrites a project: \
         choose a new directory, or remove this one first"
    )]
    Exists(PathBuf),
    /// Writing failed.
    #[error(
        "{path}: {source}; nothing was created (check that the parent directory exists and is writable)"
    )]
    Io {
        /// Where.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
}

/// What was made.
#[derive(Debug)]
pub struct Made {
    /// The new project's directory.
    pub dir: PathBuf,
    /// The files written, relative to it.
    pub files: Vec<&'static str>,
}

/// The name DIR implies when `--name` is not given: its last component.
pub fn default_name(dir: &Path) -> Option<String> {
    dir.file_name()?.to_str().map(str::to_string)
}

/// Writes a new project named `name` into `dir`, which must not exist or be empty.
pub fn init(dir: &Path, name: &str) -> Result<Made, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::Exists(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(ScaffoldError::Exists(dir.to_path_buf()));
        }
        Err(source) => {
            return Err(ScaffoldError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let staged = staging_dir(dir);
    let result = write_all(&staged, name).and_then(|()| {
        // rename(2) replaces an empty directory and fails on a non-empty one, so a
        // project made meanwhile by someone else is not replaced either.
        fs::rename(&staged, dir).map_err(|source| ScaffoldError::Io {
            path: dir.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    result.map(|()| Made {
        dir: dir.to_path_buf(),
        files: FILES.iter().map(|f| f.path).collect(),
    })
}

fn write_all(staged: &Path, name: &str) -> Result<(), ScaffoldError> {
    let _ = fs::remove_dir_all(staged);
    for file in FILES {
        let path = staged.join(file.path);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        // A new file in launch's own staging directory, given its mode on the open file.
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        out.write_all(file.text.replace(PLACEHOLDER, name).as_bytes())
            .map_err(io)?;
        out.set_permissions(fs::Permissions::from_mode(file.mode))
            .map_err(io)?;
    }
    Ok(())
}

/// A hidden sibling of `dir`, on the same filesystem so that the rename is atomic.
fn staging_dir(dir: &Path) -> PathBuf {
    let leaf = dir
        .file_name()
        .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".launch-init.{leaf}.{}", std::process::id()))
}

/// Docker's rule for an image name component, which is the strictest place the name
/// goes.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && name.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_become_image_names() {
        for good in ["web", "my-app", "app2", "a.b_c"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Web", "-x", ".x", "a b", "a/b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_file_of_image_template_is_built_in() {
        let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("image-template");
        let mut on_disk: Vec<String> = walkdir::WalkDir::new(&top)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&top).unwrap().display().to_string())
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = FILES.iter().map(|f| f.path.to_string()).collect();
        built_in.sort();
        assert_eq!(
            on_disk, built_in,
            "add the file to FILES in src/cli/scaffold.rs"
        );
    }
}
