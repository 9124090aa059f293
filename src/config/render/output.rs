//! The rendered outputs against the files on disk: what changed, the diffs `check`
//! shows, and writing them: staged beside their destinations, checked, and renamed
//! into place only when every check passed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{RenderError, mask, shell_quote};
use crate::config::rollback::{Content, Previous, Was};
use crate::config::spec::Template;
use crate::config::yaml::Place;
use crate::volume::access::{self, AccessError, Trust};
use crate::volume::atomic::{self, AtomicError, Attributes, Committed};

/// One rendered output and how it differs from the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The spec entry.
    pub template: Template,
    /// The rendered content.
    pub content: String,
    /// What is on disk now (`None`: nothing).
    pub current: Option<String>,
    /// What differs.
    pub change: Change,
    /// Rendering it read a secret: what is on disk may hold an earlier secret's value,
    /// which no mask knows, so its removed lines are never shown.
    pub holds_secret: bool,
    /// The file on disk, byte for byte, with its mode and owner: what a rolled-back
    /// reload puts back (`None`: nothing was there).
    pub was: Option<Was>,
}

/// How an output differs from the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Same content, mode and owner: left alone.
    Unchanged,
    /// No file there yet.
    Created,
    /// The content differs.
    Content,
    /// Only mode or owner differ.
    Attributes,
}

impl Output {
    /// Compares the rendered content with the destination, read without following a
    /// symlink that others could have planted and without blocking on a FIFO.
    pub fn compare(
        template: Template,
        content: String,
        spec_file: &Path,
        trust: &Trust,
    ) -> Result<Output, RenderError> {
        let dest = template.dest.clone();
        let not_a_file = |dest: PathBuf| RenderError::NotAFile {
            dest,
            spec: Place {
                file: spec_file.into(),
                line: template.line,
                col: 0,
            },
        };
        let (dir, name) = atomic::parent_of(&dest, trust, false)?;
        let found = match &dir {
            None => None,
            Some(dir) => match dir.lstat_name(name).map_err(AtomicError::from)? {
                None => None,
                // A symlink at the name itself is replaced by the rename, never
                // followed: what it points at is not the file launch manages.
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => None,
                Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFREG => {
                    return Err(not_a_file(dest));
                }
                Some(_) => match dir.open_file(name, access::max_file_size()) {
                    Ok(Some((file, _))) => Some(file),
                    Ok(None) => None,
                    Err(AccessError::NotRegular { .. }) => return Err(not_a_file(dest)),
                    Err(e) => return Err(AtomicError::from(e).into()),
                },
            },
        };
        let Some(mut file) = found else {
            return Ok(Output {
                template,
                content,
                current: None,
                change: Change::Created,
                holds_secret: false,
                was: None,
            });
        };
        let meta = file.metadata().map_err(|source| RenderError::Read {
            path: dest.clone(),
            source,
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|source| RenderError::Read {
            path: dest.clone(),
            source,
        })?;
        let current = Some(String::from_utf8_lossy(&bytes).into_owned());
        let was = Some(Was {
            content: Content::new(bytes),
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
        let owner_differs = template
            .owner
            .is_some_and(|(u, g)| meta.uid() != u || meta.gid() != g);
        let mode_differs = meta.permissions().mode() & 0o7777 != template.mode;
        let change = if current.as_deref() != Some(content.as_str()) {
            Change::Content
        } else if owner_differs || mode_differs {
            Change::Attributes
        } else {
            Change::Unchanged
        };
        Ok(Output {
            template,
            content,
            current,
            change,
            holds_secret: false,
            was,
        })
    }

    /// A unified diff of the file on disk against the new content, secrets masked.
    pub fn diff(&self, secrets: &[String]) -> String {
        let dest = self.template.dest.display().to_string();
        let old = mask(self.current.as_deref().unwrap_or(""), secrets);
        let new = mask(&self.content, secrets);
        let from = if self.current.is_some() {
            dest.clone()
        } else {
            "/dev/null".to_string()
        };
        let diff = crate::config::diff::unified(&old, &new, &from, &dest);
        if !self.holds_secret {
            return diff;
        }
        diff.lines()
            .map(|line| match line.strip_prefix('-') {
                Some(rest) if !rest.starts_with("--") => {
                    "-******** (a line of the old file: it may hold an earlier secret)\n"
                        .to_string()
                }
                _ => format!("{line}\n"),
            })
            .collect()
    }

    fn attributes(&self) -> Attributes {
        Attributes::owned(self.template.mode, self.template.owner)
    }
}

/// What [`apply`] did to one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The destination.
    pub dest: PathBuf,
    /// The change made.
    pub change: Change,
    /// Written in place (a bind-mounted file) rather than renamed.
    pub in_place: bool,
    /// Processes to notify.
    pub notify: Vec<String>,
    /// What it replaced, to put back if the reload is rolled back.
    pub previous: Previous,
}

/// Runs every output's check against a staged copy without touching the destination
/// (for `launch check`): the copies are staged in a directory made for this run
/// (`mkdtemp`, 0700), never one whose name another user could guess and make first.
/// A check's output is shown to the user, so `secrets` are masked in it.
pub fn check_only(outputs: &[Output], secrets: &[String]) -> Vec<RenderError> {
    let with_check: Vec<&Output> = outputs
        .iter()
        .filter(|o| o.template.check.is_some())
        .collect();
    if with_check.is_empty() {
        return Vec::new();
    }
    let made = nix::unistd::mkdtemp(&std::env::temp_dir().join("launch-check.XXXXXXXX"));
    let dir = match made {
        Ok(path) => path,
        Err(e) => {
            return vec![RenderError::Write(AtomicError::Access(AccessError::Io {
                path: std::env::temp_dir(),
                op: "create a private directory in",
                source: e.into(),
            }))];
        }
    };
    let errors = check_in(&dir, &with_check, secrets);
    let _ = fs::remove_dir_all(&dir);
    errors
}

fn check_in(dir: &Path, outputs: &[&Output], secrets: &[String]) -> Vec<RenderError> {
    let held = match access::Dir::open_root(dir, true) {
        Ok(Some(held)) => held,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![RenderError::Write(e.into())],
    };
    let mut errors = Vec::new();
    for output in outputs {
        let name = output.template.dest.file_name().unwrap_or_default();
        match atomic::stage_in(
            &held,
            name,
            output.content.as_bytes(),
            Attributes::mode(0o600),
        ) {
            Ok(staged) => {
                if let Err(e) = run_check(output, &staged.temp_path(), secrets) {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e.into()),
        }
    }
    errors
}

/// Writes every changed output: stage all (running their checks), and only when every
/// one is good, put them all in place. On an error before the first rename nothing is
/// replaced; a rename that fails midway (a full disk) is reported with the files
/// already replaced ([`RenderError::PartlyWritten`]) and those are in `applied`.
/// `secrets` are masked in what a failed check printed.
pub fn apply(
    outputs: &[Output],
    secrets: &[String],
    trust: &Trust,
    applied: &mut Vec<Applied>,
) -> Result<(), Vec<RenderError>> {
    let mut staged = Vec::new();
    let mut errors = Vec::new();
    for output in outputs.iter().filter(|o| o.change != Change::Unchanged) {
        match atomic::stage(
            &output.template.dest,
            output.content.as_bytes(),
            output.attributes(),
            trust,
        ) {
            Ok(file) => {
                if let Err(e) = run_check(output, &file.temp_path(), secrets) {
                    errors.push(e);
                }
                staged.push((output, file));
            }
            Err(e) => errors.push(e.into()),
        }
    }
    if !errors.is_empty() {
        // Dropping the staged files removes them.
        return Err(errors);
    }
    let files: Vec<&atomic::Staged> = staged.iter().map(|(_, f)| f).collect();
    atomic::make_durable(&files).map_err(|e| vec![RenderError::from(e)])?;
    let (outputs, files): (Vec<&Output>, Vec<atomic::Staged>) = staged.into_iter().unzip();
    let result = atomic::commit_all(files);
    let done = match &result {
        Ok(done) => done.iter().map(|(_, how)| Some(*how)).collect::<Vec<_>>(),
        Err((written, _)) => vec![None; written.len()],
    };
    for (output, how) in outputs.iter().zip(done) {
        applied.push(Applied {
            dest: output.template.dest.clone(),
            change: output.change,
            in_place: how == Some(Committed::InPlace),
            previous: Previous {
                dest: output.template.dest.clone(),
                was: output.was.clone(),
            },
            notify: if output.change == Change::Content || output.change == Change::Created {
                output.template.notify.clone()
            } else {
                Vec::new()
            },
        });
    }
    match result {
        Ok(_) => Ok(()),
        Err((written, source)) => Err(vec![RenderError::PartlyWritten {
            written: written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            source,
        }]),
    }
}

fn run_check(output: &Output, staged: &Path, secrets: &[String]) -> Result<(), RenderError> {
    let Some(check) = &output.template.check else {
        return Ok(());
    };
    let quoted = shell_quote(&staged.display().to_string());
    let command = check
        .replace("{{ staged }}", &quoted)
        .replace("{{staged}}", &quoted);
    let result = crate::config::check_command::run(
        &command,
        staged,
        crate::config::check_command::CHECK_TIMEOUT,
    );
    let (status, text) = match result {
        Ok(ran) if ran.status.is_some_and(|s| s.success()) => return Ok(()),
        Ok(ran) => (
            ran.status.map_or_else(
                || {
                    format!(
                        "killed: it did not finish within {}",
                        crate::duration::format(crate::config::check_command::CHECK_TIMEOUT)
                    )
                },
                |s| s.to_string(),
            ),
            String::from_utf8_lossy(&ran.output).into_owned(),
        ),
        Err(e) => ("not run".to_string(), e.to_string()),
    };
    // A check that prints the staged file (or a part of it) would show its secrets.
    let text = mask(&text, secrets);
    let output_text: String = text.lines().map(|l| format!("    {l}\n")).collect();
    Err(RenderError::CheckFailed {
        dest: output.template.dest.clone(),
        command,
        status,
        output: output_text,
    })
}
