//! The configuration pipeline: layout -> pillar -> spec -> templates. `launch check`,
//! `launch reconfigure`, start-up and SIGHUP all go through [`plan`] (everything in
//! memory, nothing written) and then, except `check`, [`apply`].

use std::fs;
use std::path::PathBuf;

use crate::layout::{Layout, LayoutArgs, LayoutError};
use crate::pillar::{self, Pillar, PillarError};
use crate::render::{self, Applied, Output, RenderError, Renderer};
use crate::spec::{self, Spec, SpecError};
use crate::spec_text::SpecText;
use crate::users::Accounts;

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
    Ssh(#[from] crate::ssh::SshError),
    /// A seed entry.
    #[error(transparent)]
    Seed(#[from] crate::seed::SeedError),
    /// An error whose text would have shown a secret's value: the text, masked.
    #[error("{0}")]
    Masked(String),
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
    /// The operator's pillar file does not exist yet (first start).
    pub first_start: bool,
    /// What seeding would do.
    pub seeds: Vec<crate::seed::Outcome>,
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
    let hide = |errors: Vec<ConfigError>| mask_all(errors, &secrets());
    let rendered = renderer
        .render_spec(&context)
        .map_err(|e| hide(vec![e.into()]))?;
    let mut spec_text =
        SpecText::new(&spec_file, &rendered).map_err(|e| hide(vec![SpecError::from(e).into()]))?;
    drop(rendered);
    let known = secrets();
    spec_text.hide(|value| render::mask(value, &known));
    let accounts = Accounts::load(std::path::Path::new("/"));
    let mut spec = spec::parse(&spec_file, &spec_text, &accounts).map_err(|e| hide(into_all(e)))?;
    if let Some(ssh) = spec.ssh.clone().filter(|s| s.sshd) {
        if !spec.processes.iter().any(|p| p.name == "sshd") {
            let config = layout
                .data
                .join("ssh/host/sshd_config")
                .display()
                .to_string();
            let argv = [crate::ssh::SSHD, "-D", "-e", "-f", config.as_str()]
                .map(String::from)
                .to_vec();
            spec.processes.push(spec::Process::service("sshd", argv));
            let _ = ssh;
        }
    }

    let mut outputs = Vec::new();
    let mut errors = Vec::new();
    for template in &spec.templates {
        match renderer
            .render(template, &spec_file, &context)
            .and_then(|content| Output::compare(template.clone(), content, &spec_file))
        {
            Ok(output) => outputs.push(output),
            Err(e) => errors.push(e.into()),
        }
    }
    let seeds = match crate::seed::plan(&spec.seed, &layout.project, &layout.data) {
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
        seeds,
        first_start: fs::symlink_metadata(layout.operator_file()).is_err(),
        secrets: secrets(),
        layout,
        pillar,
        spec,
        outputs,
    })
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
    pub seeds: Vec<crate::seed::Outcome>,
    /// What installing SSH access did.
    pub ssh: Option<crate::ssh::Installed>,
}

/// Steps 2 to 4: writes what the plan says (the operator's file on first start, the
/// changed outputs, all or none).
pub fn apply(plan: &Plan) -> Result<Report, Vec<ConfigError>> {
    crate::seed::prepare_data_dir(&plan.layout.data, plan.spec.data_owner)
        .map_err(|e| vec![e.into()])?;
    let seeds = crate::seed::apply(&plan.spec.seed, &plan.layout.project, &plan.layout.data)
        .map_err(into_all)?;
    let ssh = install_ssh(plan).map_err(|e| vec![e])?;
    let written = render::apply(&plan.outputs, &plan.secrets).map_err(into_all)?;
    pillar::prepare_configuration_dir(&plan.layout).map_err(|e| vec![e.into()])?;
    let wrote_operator_file =
        pillar::write_operator_file(&plan.layout).map_err(|e| vec![e.into()])?;
    Ok(Report {
        ssh,
        seeds,
        wrote_operator_file,
        unchanged: plan.outputs.len() - written.len(),
        written,
    })
}

/// Installs the volume's SSH keys (and host keys, sshd config) when the spec asks.
pub fn install_ssh(plan: &Plan) -> Result<Option<crate::ssh::Installed>, ConfigError> {
    let Some(ssh) = &plan.spec.ssh else {
        return Ok(None);
    };
    let accounts = Accounts::load(std::path::Path::new("/"));
    Ok(Some(crate::ssh::install(
        ssh,
        &plan.layout.data,
        &accounts,
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
