//! Where things are: the project (shipped in the image), the image-level pillar
//! overrides, and the data volume.
//!
//! Root: `--root`, else `$LAUNCH_ROOT`, else the only directory under `/srv/projects`.
//! `--project` and `--data` (or `$LAUNCH_PROJECT`, `$LAUNCH_DATA`) override the two
//! halves, for a checkout on a host; `--project DIR` alone takes `DIR_data` beside it
//! as the volume when it exists.

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
    /// The project's name: the root's directory name, or with `--project` and no
    /// `--root`, the project directory's own.
    pub name: String,
    /// `<root>/project`: launch.yml, pillar.yml, templates/, seed/.
    pub project: PathBuf,
    /// `<root>/pillar`: image-level overrides; empty when there is no root.
    pub pillar: PathBuf,
    /// `<root>/data`: the volume.
    pub data: PathBuf,
}

impl Layout {
    /// Resolves the layout; the project must hold `launch.yml`.
    ///
    /// Without `--root`, a host checkout is named after its own directory and has no
    /// image-level `pillar/`: a workspace holds many checkouts, and the `pillar/` that
    /// sits beside one of them is no image's (it may be another project's).
    pub fn resolve(args: &LayoutArgs) -> Result<Layout, LayoutError> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let beside = found_beside(args);
        let root = match (&args.root, &args.project, &args.data) {
            (Some(root), _, _) => Some(absolute(root)),
            (None, Some(_), Some(_)) => None,
            (None, Some(_), None) if beside.is_some() => None,
            (None, _, _) => Some(only_project()?),
        };
        let project = args
            .project
            .clone()
            .or_else(|| root.as_ref().map(|r| r.join("project")))
            .map(|p| absolute(&p))
            .ok_or(LayoutError::NoProject)?;
        let data = args
            .data
            .clone()
            .or(beside)
            .or_else(|| root.as_ref().map(|r| r.join("data")))
            .map(|p| absolute(&p))
            .ok_or(LayoutError::NoProject)?;
        let named = match (&args.root, &args.project, &root) {
            (None, Some(_), _) | (_, _, None) => &project,
            (_, _, Some(root)) => root,
        };
        let name = named
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into());
        let spec = project.join("launch.yml");
        if !spec.is_file() {
            return Err(LayoutError::NoSpec(spec));
        }
        Ok(Layout {
            name,
            // An empty path names no directory: no image-level layer.
            pillar: root.map(|r| r.join("pillar")).unwrap_or_default(),
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

    /// A warning when the volume holds a makina-states `configuration/pillar.sls`,
    /// which launch does not read: the operator would otherwise believe it applied.
    /// Only its name is looked at (never followed nor read).
    pub fn salt_pillar_warning(&self) -> Option<String> {
        let sls = self.data.join("configuration").join("pillar.sls");
        fs::symlink_metadata(&sls).ok()?;
        Some(format!(
            "warning: {} is ignored; rename it pillar.yml (or merge it into {}): \
             salt's YAML pillars are YAML; Jinja in it is not supported",
            sls.display(),
            self.operator_file().display()
        ))
    }

    /// `project/templates`.
    pub fn templates_dir(&self) -> PathBuf {
        self.project.join("templates")
    }
}

/// The volume `--project DIR` alone resolves to when `DIR_data` is beside it, for
/// `launch check` to say where the volume came from.
pub fn found_beside(args: &LayoutArgs) -> Option<PathBuf> {
    match (&args.root, &args.project, &args.data) {
        (None, Some(project), None) => {
            data_beside(&std::path::absolute(project).unwrap_or_else(|_| project.clone()))
        }
        _ => None,
    }
}

/// The seeds' host layout: `${WORKSPACE}/NAME` is the checkout and
/// `${WORKSPACE}/NAME_data` its volume. `Some` when that directory exists.
pub fn data_beside(project: &Path) -> Option<PathBuf> {
    let name = project.file_name()?;
    let mut data = name.to_os_string();
    data.push("_data");
    let data = project.with_file_name(data);
    data.is_dir().then_some(data)
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
