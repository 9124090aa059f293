//! The configuration pipeline: layout -> pillar -> spec -> templates. `launch check`,
//! `launch reconfigure`, start-up and SIGHUP all go through [`plan`] (everything in
//! memory, nothing written) and then, except `check`, [`apply`].

use std::fs;
use std::path::PathBuf;

use crate::config::layout::{Layout, LayoutArgs, LayoutError};
use crate::config::pillar::{self, Pillar, PillarError};
use crate::config::render::{self, Applied, Output, RenderError, Renderer};
use crate::config::spec::{self, Spec, SpecError};
use crate::config::spec_text::SpecText;
use crate::config::unprivileged;
use crate::volume::access::{Dir, TEMP_PREFIX, Trust};
use crate::volume::users::Accounts;

/// Any configuration problem; each says file:line and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Where the project is.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A pillar layer.
    #[error(transparent)]
    Pillar(#[from] PillarError),
    /// The spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A template or an output.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// SSH access.
    #[error(transparent)]
    Ssh(#[from] crate::volume::ssh::SshError),
    /// A seed entry.
    #[error(transparent)]
    Seed(#[from] crate::volume::seed::SeedError),
    /// An error whose text would have shown a secret's value: the text, masked.
    #[error("{0}")]
    Masked(String),
    /// An error whose value the operator set: the error, and where they set it.
    #[error("{error}\n  {hint}")]
    Operator {
        /// The error.
        error: Box<ConfigError>,
        /// Which key, set where, and the image's default.
        hint: String,
    },
    /// A file or directory launch refuses to touch.
    #[error("{0}")]
    Access(#[from] crate::volume::access::AccessError),
    /// `--image-root` does not name an image's files.
    #[error("{0}")]
    ImageRoot(String),
    /// launch.yml could not be read.
    #[error("{path}: cannot read: {source}\n  fix: check the file's permissions")]
    ReadSpec {
        /// The spec file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What the command line said about configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the project is.
    pub layout: LayoutArgs,
    /// `--set a.b=VALUE` overrides.
    pub sets: Vec<String>,
    /// Keep each layer, to say where every value came from (`--show-pillar`).
    pub track_origins: bool,
    /// The image's files, when they are not at `/` (`launch check --image-root DIR` on
    /// a host): the accounts and the programs are the image's.
    pub image_root: Option<PathBuf>,
    /// Also look up each process's program in the image (`launch check`).
    pub check_programs: bool,
}

/// Replaces, in every error that shows one, each secret value by `********`.
fn mask_all(errors: Vec<ConfigError>, secrets: &[String]) -> Vec<ConfigError> {
    if secrets.is_empty() {
        return errors;
    }
    errors
        .into_iter()
        .map(|e| {
            let text = e.to_string();
            if secrets.iter().any(|s| text.contains(s.as_str())) {
                ConfigError::Masked(render::mask(&text, secrets))
            } else {
                e
            }
        })
        .collect()
}

/// Everything worked out in memory, nothing written yet.
pub struct Plan {
    /// The layout.
    pub layout: Layout,
    /// The merged pillar.
    pub pillar: Pillar,
    /// The parsed spec.
    pub spec: Spec,
    /// Every template's output, compared with the disk.
    pub outputs: Vec<Output>,
    /// Secret values read while rendering (to be masked in anything shown).
    pub secrets: Vec<String>,
    /// Secrets rendering made (`secret(name=..., generate=N)`), to keep in the volume.
    pub generated: Vec<(String, String)>,
    /// The operator's pillar file does not exist yet (first start).
    pub first_start: bool,
    /// What seeding would do.
    pub seeds: Vec<crate::volume::seed::Outcome>,
    /// Which directories' symlinks launch may follow (not the volume's).
    pub trust: Trust,
    /// What the plan does otherwise than the spec says, and why (`warning: ...`).
    pub warnings: Vec<String>,
}

/// Symlinks in directories only root can change are the image's and may be followed;
/// in the volume they are the operator's, whoever owns the directory on disk.
pub fn volume_trust(layout: &Layout) -> Trust {
    let mut trust = Trust::default();
    trust.distrust(&layout.data);
    trust
}

/// The volume's own directories must be directories, not symlinks or files: found
/// here, before anything is written, rather than halfway through [`apply`].
fn check_volume(layout: &Layout, spec: &Spec) -> Vec<ConfigError> {
    let mut names = vec!["configuration"];
    if spec.data_owner.is_some() {
        names.push("data");
    }
    if spec.ssh.is_some() {
        names.push("ssh");
        names.push("ssh/host");
    }
    let volume = match Dir::open_root(&layout.data, true) {
        Ok(Some(volume)) => volume,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![ConfigError::Access(e)],
    };
    names
        .into_iter()
        .filter_map(|name| volume.open_dir(std::path::Path::new(name), None).err())
        .map(ConfigError::Access)
        .collect()
}

/// Points every error that quotes a value the operator set (in their file, the
/// environment or `--set`) at that setting: the operator can edit only those, and the
/// error itself names the author's launch.yml or template.
fn attribute(
    errors: Vec<ConfigError>,
    pillar: &Pillar,
    layout: &Layout,
    sets: &[String],
) -> Vec<ConfigError> {
    let mut leaves = pillar.operator_leaves();
    // `--set` is part of `image` (the command line is the image's), but a value set
    // there is still one to point at.
    for set in sets {
        if let Some((key, value)) = set.split_once('=').filter(|(_, v)| v.len() >= 2) {
            let path: Vec<String> = key.trim().split('.').map(String::from).collect();
            leaves.push((path, value.to_string(), None));
        }
    }
    if leaves.is_empty() {
        return errors;
    }
    errors
        .into_iter()
        .map(|error| {
            let text = error.to_string();
            let Some((path, value, default)) =
                leaves.iter().find(|(_, v, _)| text.contains(v.as_str()))
            else {
                return error;
            };
            let key = path.join(".");
            let from = pillar::operator_origin(layout, sets, path);
            let default = default
                .as_ref()
                .map_or_else(String::new, |d| format!("; the image's default is {d}"));
            ConfigError::Operator {
                error: Box::new(error),
                hint: format!("the value {value:?} is `{key}`, set at {from}{default}"),
            }
        })
        .collect()
}

/// Step 1 of the start-up: resolve, load, merge, render and parse, all in memory.
/// Returns every problem found, not only the first.
pub fn plan(options: &Options) -> Result<Plan, Vec<ConfigError>> {
    let layout = Layout::resolve(&options.layout).map_err(|e| vec![e.into()])?;
    let pillar = Pillar::load(&layout, &options.sets, options.track_origins).map_err(into_all)?;
    let spec_file = layout.spec_file();
    let spec_text = fs::read_to_string(&spec_file).map_err(|source| {
        vec![ConfigError::ReadSpec {
            path: spec_file.clone(),
            source,
        }]
    })?;
    let renderer = Renderer::new(&layout, &spec_text).map_err(into_all)?;
    let context = render::context(&pillar, &layout).map_err(|e| vec![e.into()])?;
    // From here an error may quote rendered text, and so a secret read while rendering:
    // every such error is masked before anyone sees it.
    let secrets = || {
        let mut all = renderer.secrets();
        all.extend(pillar.secrets.iter().cloned());
        all
    };
    let hide = |errors: Vec<ConfigError>| {
        mask_all(
            attribute(errors, &pillar, &layout, &options.sets),
            &secrets(),
        )
    };
    let rendered = renderer
        .render_spec(&context)
        .map_err(|e| hide(vec![e.into()]))?;
    let mut spec_text =
        SpecText::new(&spec_file, &rendered).map_err(|e| hide(vec![SpecError::from(e).into()]))?;
    drop(rendered);
    let known = secrets();
    spec_text.hide(|value| render::mask(value, &known));
    let accounts = image_accounts(options.image_root.as_deref())?;
    let mut spec = spec::parse(&spec_file, &spec_text, &accounts).map_err(|e| hide(into_all(e)))?;
    add_sshd(&mut spec, &layout);
    let warnings = unprivileged::adapt(&mut spec, &layout.data, &unprivileged::Identity::current());
    let mut errors = Vec::new();
    if options.check_programs {
        errors.extend(missing_programs(options, &spec_file, &spec_text, &spec));
    }

    let trust = volume_trust(&layout);
    let mut outputs = Vec::new();
    errors.extend(check_volume(&layout, &spec));
    for template in &spec.templates {
        let secrets_before = renderer.secrets().len();
        match renderer
            .render(template, &spec_file, &context)
            .and_then(|content| Output::compare(template.clone(), content, &spec_file, &trust))
        {
            Ok(mut output) => {
                output.holds_secret = renderer.secrets().len() > secrets_before;
                outputs.push(output);
            }
            Err(e) => errors.push(e.into()),
        }
    }
    let seeds = match crate::volume::seed::plan(&spec.seed, &layout.project, &layout.data) {
        Ok(seeds) => seeds,
        Err(e) => {
            errors.extend(into_all(e));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(hide(errors));
    }
    Ok(Plan {
        warnings,
        trust,
        seeds,
        first_start: fs::symlink_metadata(layout.operator_file()).is_err(),
        secrets: secrets(),
        generated: renderer.generated(),
        layout,
        pillar,
        spec,
        outputs,
    })
}

/// `launch check`: each process's program, looked up in the image. Inside the container
/// launch's own PATH is the image's; on a host (`--image-root`) it is not, and a process
/// without `env.PATH` gets Docker's default.
fn missing_programs(
    options: &Options,
    spec_file: &std::path::Path,
    spec_text: &SpecText,
    spec: &Spec,
) -> Vec<ConfigError> {
    let own_path = std::env::var("PATH")
        .ok()
        .filter(|_| options.image_root.is_none());
    let image = spec::programs::Image {
        root: options
            .image_root
            .as_deref()
            .unwrap_or(std::path::Path::new("/")),
        path: own_path.as_deref().unwrap_or(spec::programs::DEFAULT_PATH),
    };
    spec::programs::check(spec_file, spec_text, spec, &image)
        .into_iter()
        .map(ConfigError::from)
        .collect()
}

/// The image's accounts. Under `--image-root DIR` its `etc/passwd` must be there: an
/// empty account database would make every user unknown, for the wrong reason.
fn image_accounts(given: Option<&std::path::Path>) -> Result<Accounts, Vec<ConfigError>> {
    let root = given.unwrap_or(std::path::Path::new("/"));
    let passwd = root.join("etc/passwd");
    if given.is_some() && !passwd.is_file() {
        return Err(vec![ConfigError::ImageRoot(format!(
            "{}: not found, so {} is not the root of an image's files\n  fix: give --image-root the directory the image's files are in (e.g. mkdir DIR && docker export $(docker create IMAGE) | tar -x -C DIR)",
            passwd.display(),
            root.display()
        ))]);
    }
    Ok(Accounts::load(root))
}

/// With `ssh.sshd` and no process of the author's named sshd, sshd is supervised as
/// one more process, with the config launch writes into the volume.
fn add_sshd(spec: &mut spec::Spec, layout: &Layout) {
    let sshd = spec.ssh.as_ref().is_some_and(|s| s.sshd);
    if !sshd || spec.processes.iter().any(|p| p.name == "sshd") {
        return;
    }
    let config = layout
        .data
        .join("ssh/host/sshd_config")
        .display()
        .to_string();
    let argv = [crate::volume::ssh::SSHD, "-D", "-e", "-f", config.as_str()]
        .map(String::from)
        .to_vec();
    let several = !spec.processes.is_empty();
    spec.processes.push(spec::Process {
        log_prefix: several,
        ..spec::Process::service("sshd", argv)
    });
}

/// What [`apply`] changed.
#[derive(Debug, Default)]
pub struct Report {
    /// The operator's pillar file was created.
    pub wrote_operator_file: bool,
    /// Outputs written (changed ones only).
    pub written: Vec<Applied>,
    /// How many outputs were already right.
    pub unchanged: usize,
    /// What seeding did.
    pub seeds: Vec<crate::volume::seed::Outcome>,
    /// What installing SSH access did.
    pub ssh: Option<crate::volume::ssh::Installed>,
    /// Staged files of a killed launch, removed.
    pub leftovers: usize,
    /// Secrets made now and kept in the volume.
    pub stored_secrets: Vec<std::path::PathBuf>,
}

impl Report {
    /// What was written, in words, for a message after a failure midway.
    pub fn changes(&self, plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        if self.wrote_operator_file {
            out.push(plan.layout.operator_file().display().to_string());
        }
        for seed in &self.seeds {
            if let crate::volume::seed::Outcome::Seeded { target, .. } = seed {
                out.push(format!("seeded {}", target.display()));
            }
        }
        if let Some(ssh) = &self.ssh {
            out.push(ssh.authorized_keys.display().to_string());
        }
        out.extend(self.stored_secrets.iter().map(|p| p.display().to_string()));
        out.extend(self.written.iter().map(|w| w.dest.display().to_string()));
        out
    }
}

impl Report {
    /// On a first start (the operator's file was created now), one line that sums up
    /// what the start made, paths relative to the volume: `first start of the volume
    /// /srv/projects/web/data: created configuration/pillar.yml (edit it to configure
    /// the service), seeded data (3 files), installed 1 ssh key, wrote 2 files`.
    pub fn first_start_summary(&self, plan: &Plan) -> Option<String> {
        if !self.wrote_operator_file {
            return None;
        }
        let volume = &plan.layout.data;
        let inside = |path: &std::path::Path| {
            path.strip_prefix(volume)
                .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
        };
        let mut made = vec![format!(
            "created {} (edit it to configure the service: every setting is there, commented out)",
            inside(&plan.layout.operator_file())
        )];
        for seed in &self.seeds {
            if let crate::volume::seed::Outcome::Seeded { target, files } = seed {
                made.push(format!(
                    "seeded {} ({})",
                    inside(target),
                    crate::plural::count(*files as usize, "file", "files")
                ));
            }
        }
        if let Some(ssh) = &self.ssh {
            made.push(format!(
                "installed {}",
                crate::plural::count(ssh.keys.len(), "ssh key", "ssh keys")
            ));
            if !ssh.generated.is_empty() {
                made.push(format!(
                    "generated {}",
                    crate::plural::count(ssh.generated.len(), "ssh host key", "ssh host keys")
                ));
            }
        }
        if !self.stored_secrets.is_empty() {
            made.push(format!(
                "generated {}",
                crate::plural::count(self.stored_secrets.len(), "secret", "secrets")
            ));
        }
        made.push(format!(
            "wrote {}",
            crate::plural::count(
                self.written.len(),
                "configuration file",
                "configuration files"
            )
        ));
        Some(format!(
            "first start of the volume {}: {}",
            volume.display(),
            made.join(", ")
        ))
    }
}

/// [`apply`] stopped at an error; `report` is what it had done before.
#[derive(Debug)]
pub struct Failure {
    /// What was written before the error.
    pub report: Report,
    /// The errors.
    pub errors: Vec<ConfigError>,
}

/// Steps 2 to 4: writes what the plan says. Everything was read and validated by
/// [`plan`]; what can still fail here is the system (a full disk, a name swapped since),
/// and then the [`Failure`] says what was already written (and a reload still notifies
/// the processes of the templates that were). The operator's file comes last: on a
/// first start there is nothing yet to lose.
pub fn apply(plan: &Plan) -> Result<Report, Box<Failure>> {
    let mut report = Report {
        leftovers: remove_leftovers(plan),
        ..Report::default()
    };
    let fail = |report: Report, errors: Vec<ConfigError>| Box::new(Failure { report, errors });
    match crate::volume::seed::apply(&plan.spec.seed, &plan.layout.project, &plan.layout.data) {
        Ok(seeds) => report.seeds = seeds,
        Err(e) => return Err(fail(report, into_all(e))),
    }
    // After seeding: a seed of `data` itself brings its source's mode, and data/ must
    // end as the design says (0750, the app user's with data_owner).
    if let Err(e) = crate::volume::seed::prepare_data_dir(&plan.layout.data, plan.spec.data_owner) {
        return Err(fail(report, vec![e.into()]));
    }
    match install_ssh(plan) {
        Ok(ssh) => report.ssh = ssh,
        Err(e) => return Err(fail(report, vec![e])),
    }
    // Before the templates that use them: a template never holds a secret that is not
    // kept.
    match crate::config::secrets::store(&plan.layout.data, &plan.generated) {
        Ok(stored) => report.stored_secrets = stored,
        Err(e) => return Err(fail(report, vec![ConfigError::Render(e.into())])),
    }
    let result = render::apply(
        &plan.outputs,
        &plan.secrets,
        &plan.trust,
        &mut report.written,
    );
    report.unchanged = plan.outputs.len() - report.written.len();
    if let Err(e) = result {
        return Err(fail(report, into_all(e)));
    }
    let config_dir = match crate::config::operator_file::prepare_configuration_dir(&plan.layout) {
        Ok(dir) => dir,
        Err(e) => return Err(fail(report, vec![e.into()])),
    };
    match crate::config::operator_file::write_operator_file(&plan.layout, &config_dir) {
        Ok(wrote) => report.wrote_operator_file = wrote,
        Err(e) => return Err(fail(report, vec![e.into()])),
    }
    Ok(report)
}

/// Removes what a killed launch had staged in the directories launch writes to.
fn remove_leftovers(plan: &Plan) -> usize {
    let mut dirs: Vec<std::path::PathBuf> = plan
        .outputs
        .iter()
        .filter_map(|o| o.template.dest.parent().map(Into::into))
        .collect();
    dirs.push(plan.layout.data.join("configuration"));
    if plan.spec.ssh.is_some() {
        dirs.push(plan.layout.data.join("ssh/host"));
    }
    dirs.sort();
    dirs.dedup();
    let mut removed = 0;
    for dir in dirs {
        if let Ok(Some(held)) = Dir::resolve(&dir, &plan.trust, false) {
            removed += held.remove_leftovers(TEMP_PREFIX, true);
        }
    }
    if let Some(home) = plan
        .spec
        .ssh
        .as_ref()
        .and_then(|ssh| Accounts::load(std::path::Path::new("/")).user(&ssh.user))
    {
        if let Ok(Some(held)) = Dir::resolve(&home.home.join(".ssh"), &plan.trust, false) {
            removed += held.remove_leftovers(TEMP_PREFIX, true);
        }
    }
    removed
}

/// Installs the volume's SSH keys (and host keys, sshd config) when the spec asks.
pub fn install_ssh(plan: &Plan) -> Result<Option<crate::volume::ssh::Installed>, ConfigError> {
    let Some(ssh) = &plan.spec.ssh else {
        return Ok(None);
    };
    let accounts = Accounts::load(std::path::Path::new("/"));
    Ok(Some(crate::volume::ssh::install(
        ssh,
        &plan.layout.data,
        &accounts,
        &plan.trust,
    )?))
}

/// Runs the templates' check commands on staged copies, for `launch check`.
pub fn check_outputs(plan: &Plan) -> Vec<ConfigError> {
    render::check_only(&plan.outputs, &plan.secrets)
        .into_iter()
        .map(ConfigError::from)
        .collect()
}

fn into_all<E: Into<ConfigError>>(errors: Vec<E>) -> Vec<ConfigError> {
    errors.into_iter().map(Into::into).collect()
}

/// What a failure midway had already written, in one sentence.
pub fn written_before(changes: &[String]) -> String {
    if changes.is_empty() {
        "stopped at the error above; nothing was written".into()
    } else {
        format!(
            "stopped at the error above; written before it: {}",
            changes.join(", ")
        )
    }
}
