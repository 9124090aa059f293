//! `launch check` and `launch reconfigure` as the user sees them: what is printed and
//! the exit code.

use std::io::Write;
use std::path::Path;

use crate::cli::scaffold;
use crate::config::reconfigure::{self, ConfigError, Options, Plan};
use crate::config::render::Change;
use crate::exit::code;

/// What to say after clap refused an argument: where a command's options go when the
/// word is a command's name (`launch -v run`), a subcommand close to the word (clap
/// cannot suggest one, since any word may start a command to run), nothing more when
/// clap already suggested a flag, else how to run a command.
pub fn usage_hint(clap_said: &str, subcommands: &[String]) -> String {
    let word = clap_said.split('\'').nth(1).unwrap_or("").to_string();
    if clap_said.contains("tip: a similar") {
        return String::new();
    }
    // `launch -v run`: the command's name came after an option of plain init's.
    if subcommands.contains(&word) {
        return format!(
            "hint: a command's options go after its name: launch {word} [OPTIONS] (see launch {word} --help); \
             before a command, options are plain init's (launch [OPTIONS] -- CMD)"
        );
    }
    if !word.starts_with('-') {
        if let Some(hint) =
            crate::config::spec::did_you_mean(&word, subcommands.iter().map(String::as_str))
        {
            return format!("hint: {hint} (launch --help lists the commands)");
        }
    }
    "hint: put the command to run after '--': launch -- CMD [ARG]...".into()
}

/// `options` with the `--set` flags of the running launch (recorded beside its control
/// socket) before the command line's own: `check` then predicts what a reload does.
pub fn with_running_sets(mut options: Options, socket: &Path) -> Options {
    let recorded = crate::control::recorded_sets(socket);
    if !recorded.is_empty() {
        eprintln!(
            "launch: with the running launch's {} (recorded in {})",
            recorded
                .iter()
                .map(|s| format!("--set {s}"))
                .collect::<Vec<_>>()
                .join(" "),
            crate::control::sets_file(socket).display()
        );
        options.sets = recorded.into_iter().chain(options.sets).collect();
    }
    options
}

/// Inside a container whose launch refused or rolled back its last reload: says so
/// first, so that the diff `check` prints reads as what was refused, against what runs.
pub fn say_last_reload(socket: &Path) {
    if let Some((said, exit)) = crate::control::ask(socket, &crate::control::Request::LastReload) {
        if exit != 0 && !said.is_empty() {
            print!("the running launch's {said}");
        }
    }
}

/// `launch check`: everything of the start-up's first step and a diff of what would
/// change; writes nothing. 0 when valid, 78 when not.
pub fn check(options: &Options, show_pillar: bool) -> i32 {
    let plan = match reconfigure::plan(options) {
        Ok(plan) => plan,
        Err(errors) => {
            let code = report_errors(&errors, "check");
            if options.image_root.is_none() && errors.iter().any(about_the_image) {
                eprintln!(
                    "launch check: users, groups and programs were looked up in this system's /; \
                     on a host, --image-root DIR looks them up in the image's files (docs/getting-started.md)"
                );
            }
            return code;
        }
    };
    let errors = reconfigure::check_outputs(&plan);
    if !errors.is_empty() {
        return report_errors(&errors, "check");
    }
    let mut out = std::io::stdout().lock();
    if let Some(data) = crate::config::layout::found_beside(&options.layout) {
        let _ = writeln!(
            out,
            "volume: {} (found beside the project; --data DIR to use another)",
            data.display()
        );
    }
    if show_pillar {
        let _ = writeln!(
            out,
            "# merged pillar, each value with the layer it came from"
        );
        let _ = write!(
            out,
            "{}",
            crate::config::render::mask(&plan.pillar.describe(), &plan.secrets)
        );
    }
    if plan.first_start {
        let _ = writeln!(
            out,
            "would create {} with every default commented out",
            plan.layout.operator_file().display()
        );
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "{warning}");
    }
    print_volume_steps(&mut out, &plan);
    let changing = print_outputs(&mut out, &plan);
    let _ = writeln!(
        out,
        "launch check: the configuration is valid; {changing} of {} would change",
        crate::plural::count(plan.outputs.len(), "file", "files")
    );
    0
}

/// What `check` says the volume steps would do: secrets generated, SSH keys taken or
/// refused, paths seeded or kept.
fn print_volume_steps(out: &mut impl Write, plan: &Plan) {
    for (name, _) in &plan.generated {
        let _ = writeln!(
            out,
            "would generate secret {name:?} and keep it in {}",
            plan.layout
                .data
                .join(crate::config::secrets::STORE)
                .join(name)
                .display()
        );
    }
    if let Some(ssh) = &plan.spec.ssh {
        let (keys, refused) =
            crate::volume::ssh::read_keys(&plan.layout.data.join("ssh"), ssh.allow_options);
        for bad in &refused {
            let _ = writeln!(out, "warning: {bad}");
        }
        for key in &keys {
            let _ = writeln!(
                out,
                "ssh key {} from {}:{} is valid",
                key.fingerprint(),
                key.file.display(),
                key.line
            );
        }
    }
    for seed in &plan.seeds {
        match seed {
            crate::volume::seed::Outcome::Seeded { target, .. } => {
                let _ = writeln!(
                    out,
                    "would seed {} (it is missing or empty)",
                    target.display()
                );
            }
            crate::volume::seed::Outcome::Kept(target) => {
                let _ = writeln!(
                    out,
                    "keep {} (it has content: never seeded over)",
                    target.display()
                );
            }
        }
    }
}

/// Each output, unchanged or with its diff; how many would change.
fn print_outputs(out: &mut impl Write, plan: &Plan) -> usize {
    let mut changing = 0;
    for output in &plan.outputs {
        let dest = output.template.dest.display();
        match output.change {
            Change::Unchanged => {
                let _ = writeln!(out, "unchanged {dest}");
            }
            Change::Attributes => {
                changing += 1;
                let _ = writeln!(out, "would set mode/owner of {dest} (content unchanged)");
            }
            Change::Created | Change::Content => {
                changing += 1;
                let _ = write!(out, "{}", output.diff(&plan.secrets));
            }
        }
    }
    changing
}

/// `launch reconfigure`: check, then write what changed; exit.
pub fn reconfigure(options: &Options) -> i32 {
    let plan = match reconfigure::plan(options) {
        Ok(plan) => plan,
        Err(errors) => return report_errors(&errors, "reconfigure"),
    };
    for warning in &plan.warnings {
        eprintln!("launch: {warning}");
    }
    let report = match reconfigure::apply(&plan) {
        Ok(report) => report,
        Err(failure) => {
            for e in &failure.errors {
                eprintln!("launch: {e}");
            }
            eprintln!(
                "launch reconfigure: {}",
                reconfigure::written_before(&failure.report.changes(&plan))
            );
            return code::CONFIG;
        }
    };
    for seed in &report.seeds {
        if let crate::volume::seed::Outcome::Seeded { target, files } = seed {
            eprintln!(
                "launch: seeded {} ({})",
                target.display(),
                crate::plural::count(*files as usize, "file", "files")
            );
        }
    }
    if let Some(ssh) = &report.ssh {
        report_ssh(ssh);
    }
    for stored in &report.stored_secrets {
        eprintln!("launch: generated a secret, kept in {}", stored.display());
    }
    for written in &report.written {
        let what = match written.change {
            Change::Created => "created",
            Change::Content => "updated",
            _ => "set mode/owner of",
        };
        eprintln!("launch: {what} {}", written.dest.display());
        if written.in_place {
            eprintln!(
                "launch: warning: {} is a bind-mounted file; it was written in place (not atomically)",
                written.dest.display()
            );
        }
    }
    if let Some(summary) = report.first_start_summary(&plan) {
        eprintln!("launch: {summary}");
    }
    eprintln!(
        "launch reconfigure: {} written, {} unchanged",
        report.written.len(),
        report.unchanged
    );
    0
}

/// `launch sshconfig`: only the SSH step (keys, host keys, sshd config).
pub fn sshconfig(options: &Options) -> i32 {
    let plan = match reconfigure::plan(options) {
        Ok(plan) => plan,
        Err(errors) => return report_errors(&errors, "sshconfig"),
    };
    match reconfigure::install_ssh(&plan) {
        Ok(Some(ssh)) => {
            report_ssh(&ssh);
            0
        }
        Ok(None) => {
            eprintln!("launch sshconfig: launch.yml has no ssh: section; nothing to do");
            0
        }
        Err(e) => report_errors(&[e], "sshconfig"),
    }
}

fn report_ssh(ssh: &crate::volume::ssh::Installed) {
    for bad in &ssh.refused {
        eprintln!("launch: warning: {bad}");
    }
    for key in &ssh.keys {
        eprintln!(
            "launch: ssh key {} from {}:{}",
            key.fingerprint(),
            key.file.display(),
            key.line
        );
    }
    for generated in &ssh.generated {
        eprintln!("launch: generated the ssh host key {}", generated.display());
    }
    eprintln!(
        "launch: {} installed in {}",
        crate::plural::count(ssh.keys.len(), "ssh key", "ssh keys"),
        ssh.authorized_keys.display()
    );
}

/// Whether an error is about the image's accounts or programs, which a check on a host
/// looks up in the host's own files unless told where the image's are.
fn about_the_image(error: &ConfigError) -> bool {
    let text = error.to_string();
    [
        "does not exist in /etc/",
        "is not found on PATH=",
        "does not exist\n",
    ]
    .iter()
    .any(|s| text.contains(s))
}

fn report_errors(errors: &[ConfigError], what: &str) -> i32 {
    for e in errors {
        eprintln!("launch: {e}");
    }
    eprintln!(
        "launch {what}: {} found; nothing was written",
        crate::plural::count(errors.len(), "problem", "problems")
    );
    code::CONFIG
}

/// `launch init DIR [--name NAME]`: writes a new project and says what to do next.
pub fn init(dir: &Path, name: Option<&str>) -> i32 {
    let Some(name) = name
        .map(str::to_string)
        .or_else(|| scaffold::default_name(dir))
    else {
        eprintln!("launch init: give the project a name: launch init DIR --name NAME");
        return code::USAGE;
    };
    match scaffold::init(dir, &name) {
        Ok(made) => {
            let dir = made.dir.display();
            for file in &made.files {
                println!("created {dir}/{file}");
            }
            println!(
                "\nNext (docs/getting-started.md):\n  \
                 cp /path/to/static/launch {dir}/\n  \
                 docker build -t {name} {dir}\n  \
                 docker run --rm {name} check      # validate inside the image: users, programs, templates\n  \
                 docker run -d --name {name} -p 8080:8080 -v {name}-data:/srv/projects/{name}/data {name}\n\
                 Then replace the `app` process in {dir}/project/launch.yml with your program."
            );
            0
        }
        Err(e @ scaffold::ScaffoldError::BadName(_)) => {
            eprintln!("launch init: {e}");
            code::USAGE
        }
        Err(e) => {
            eprintln!("launch init: {e}");
            code::CANT_CREATE
        }
    }
}
