//! Where things are: the project (shipped in the image), the image-level pillar
//! overrides, and the data volume.
//!
//! Root: `--root`, else `$LAUNCH_ROOT`, else the only directory under `/srv/projects`.
//! `--project` and `--data` (or `$LAUNCH_PROJECT`, `$LAUNCH_DATA`) override the two
//! halves, for a checkout on a host.

use std::fs;
use std::path::{Path, PathBuf};

/// The directory images put projects under.
pub const PROJECTS: &str = "/srv/projects";

/// A layout that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Nothing says where the project is.
    #[error(
        "no project found: {PROJECTS} has no project directory; \
         give --root DIR (or set LAUNCH_ROOT), or --project DIR and --data DIR \
         (to run one command without a project: launch -- CMD [ARG]...)"
    )]
    NoProject,
    /// More than one candidate.
    #[error(
        "{PROJECTS} holds several projects ({0}); say which with --root {PROJECTS}/NAME \
         (or LAUNCH_ROOT)"
    )]
    SeveralProjects(String),
    /// The project has no launch.yml.
    #[error(
        "{0}: not found; the project directory must hold launch.yml \
         (is --root/--project right? `launch init DIR` makes a new project)"
    )]
    NoSpec(PathBuf),
}

/// What the command line and environment said.
#[derive(Debug, Clone, Default)]
pub struct LayoutArgs {
    /// `--root` / `$LAUNCH_ROOT`.
    pub root: Option<PathBuf>,
    /// `--project` / `$LAUNCH_PROJECT`.
    pub project: Option<PathBuf>,
    /// `--data` / `$LAUNCH_DATA`.
    pub data: Option<PathBuf>,
}

/// The resolved layout. All paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The project's name (the root's directory name, or the project's parent's).
    pub name: String,
    /// `<root>/project`: launch.yml, pillar.yml, templates/, seed/.
    pub project: PathBuf,
    /// `<root>/pillar`: image-level overrides.
    pub pillar: PathBuf,
    /// `<root>/data`: the volume.
    pub data: PathBuf,
}

impl Layout {
    /// Resolves the layout; the project must hold `launch.yml`.
    pub fn resolve(args: &LayoutArgs) -> Result<Layout, LayoutError> {
        let root = match (&args.root, &args.project, &args.data) {
            (Some(root), _, _) => Some(root.clone()),
            (None, Some(_), Some(_)) => None,
            (None, _, _) => Some(only_project()?),
        };
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let project = args
            .project
            .clone()
            .or_else(|| root.as_ref().map(|r| r.join("project")))
            .map(|p| absolute(&p))
            .ok_or(LayoutError::NoProject)?;
        let data = args
            .data
            .clone()
            .or_else(|| root.as_ref().map(|r| r.join("data")))
            .map(|p| absolute(&p))
            .ok_or(LayoutError::NoProject)?;
        let base = root.map(|r| absolute(&r)).unwrap_or_else(|| {
            project
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| project.clone())
        });
        let name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into());
        let spec = project.join("launch.yml");
        if !spec.is_file() {
            return Err(LayoutError::NoSpec(spec));
        }
        Ok(Layout {
            name,
            pillar: base.join("pillar"),
            project,
            data,
        })
    }

    /// `project/launch.yml`.
    pub fn spec_file(&self) -> PathBuf {
        self.project.join("launch.yml")
    }

    /// `project/pillar.yml`.
    pub fn defaults_file(&self) -> PathBuf {
        self.project.join("pillar.yml")
    }

    /// `data/configuration/pillar.yml`.
    pub fn operator_file(&self) -> PathBuf {
        self.data.join("configuration").join("pillar.yml")
    }

    /// `project/templates`.
    pub fn templates_dir(&self) -> PathBuf {
        self.project.join("templates")
    }
}

fn only_project() -> Result<PathBuf, LayoutError> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(PROJECTS)
        .map_err(|_| LayoutError::NoProject)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    match dirs.len() {
        0 => Err(LayoutError::NoProject),
        1 => Ok(dirs.remove(0)),
        _ => Err(LayoutError::SeveralProjects(
            dirs.iter()
                .map(|d| {
                    d.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}
