//! The top floor: the command line and what each command prints. `src/main.rs` takes
//! the fast path of `launch -- CMD` and hands everything else to [`dispatch`].
//!
//! - `args`: the command line as clap reads it.
//! - `commands`: `check`, `reconfigure`, `sshconfig` and `init` as the user sees them.
//! - `scaffold`: `launch init`, a new project from the built-in `image-template/`.
//! - `import`: `launch import`, a circus, supervisord or Procfile file as a launch.yml.

mod args;
pub(crate) mod commands;
pub(crate) mod import;
pub(crate) mod scaffold;

use clap::Parser;
use clap::error::ErrorKind;

use crate::config::reconfigure::Options;
use crate::control::{self, Request};
use crate::exit::{Remap, code};
use crate::supervise::{self, PlainInit, RunOptions};
pub use args::DEFAULT_GRACE;
use args::{Action, Cli, ConfigArgs, LimitArgs, LogFormat};

/// Parses the command line and runs what it asks for; the exit code.
pub fn dispatch() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Some(action) = cli.action {
        return run_action(action);
    }
    // `launch` alone is `launch run` (an image's ENTRYPOINT with no CMD); `launch --`
    // with nothing after it is a mistake.
    let dashes = std::env::args_os().skip(1).any(|a| a == "--");
    if cli.command.is_empty() && !dashes && std::env::args_os().len() == 1 {
        let config = ConfigArgs::try_parse_from(["launch"]).map(ConfigArgs::options);
        let limits = LimitArgs::try_parse_from(["launch"]).map(LimitArgs::limits);
        return match config.and_then(|config| Ok((config, limits?))) {
            Ok((config, limits)) => supervise::run(RunOptions {
                config,
                verbose: false,
                control: std::env::var_os("LAUNCH_CONTROL")
                    .map_or_else(|| control::DEFAULT_SOCKET.into(), Into::into),
                log_json: false,
                limits,
            }),
            Err(e) => usage_error(e),
        };
    }
    if cli.command.is_empty() {
        eprintln!(
            "launch: no command given\n\nUsage: launch [OPTIONS] -- CMD [ARG]...\nRun 'launch --help' for examples."
        );
        return code::USAGE;
    }
    supervise::plain_init(PlainInit {
        command: cli.command,
        forward_to_group: cli.group,
        grace: cli.grace,
        remap: Remap::new(cli.exit_remap),
        verbose: cli.verbose,
    })
}

/// Runs a subcommand; the exit code.
fn run_action(action: Action) -> i32 {
    match action {
        Action::Check {
            config,
            show_pillar,
            image_root,
            control,
        } => {
            let options = Options {
                track_origins: show_pillar,
                image_root: image_root.map(|d| std::path::absolute(&d).unwrap_or(d)),
                check_programs: true,
                ..commands::with_running_sets(config.options(), &control.socket)
            };
            commands::say_last_reload(&control.socket);
            commands::check(&options, show_pillar)
        }
        Action::Reconfigure { config, control } => {
            let options = commands::with_running_sets(config.options(), &control.socket);
            commands::reconfigure(&options)
        }
        Action::Sshconfig { config } => commands::sshconfig(&config.options()),
        Action::Init { dir, name } => commands::init(&dir, name.as_deref()),
        Action::Import { file, out } => import::command(&file, out.as_deref()),
        Action::Run {
            config,
            verbose,
            control,
            log_format,
            limits,
        } => supervise::run(RunOptions {
            config: config.options(),
            verbose,
            control: control.socket,
            log_json: matches!(log_format, LogFormat::Json),
            limits: limits.limits(),
        }),
        Action::Status { json, control } => {
            control::call(&control.socket, &Request::Status { json })
        }
        Action::Health { control } => control::call(&control.socket, &Request::Health),
        Action::Reload { control } => control::call(&control.socket, &Request::Reload),
        Action::Restart { name, control } => {
            control::call(&control.socket, &Request::Restart(name))
        }
        Action::Stop { name, control } => control::call(&control.socket, &Request::Stop(name)),
        Action::Start { name, control } => control::call(&control.socket, &Request::Start(name)),
    }
}

/// Prints a clap error; help and version are not errors.
fn usage_error(e: clap::Error) -> i32 {
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand => {
            let hint = commands::usage_hint(&e.to_string(), &subcommands());
            if !hint.is_empty() {
                eprintln!("{hint}");
            }
            code::USAGE
        }
        _ => code::USAGE,
    }
}

/// The names of launch's subcommands, for "did you mean".
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}
