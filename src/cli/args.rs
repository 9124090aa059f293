//! The command line as clap reads it: the options of plain init, the subcommands and
//! the arguments they share.

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser;

use crate::config::configure_worker::{self, Limits};
use crate::config::layout::LayoutArgs;
use crate::config::reconfigure::Options;
use crate::control;
use crate::exit::Remap;

/// What `launch --help` shows after the options.
const EXAMPLES: &str = "\
A project (under /srv/projects/NAME, see docs/):
  launch                              = launch run: configure, then supervise
  launch run --root /srv/projects/web run the spec's processes as PID 1
  launch status | health | reload     ask the running launch (docker exec ...)
  launch restart|stop|start NAME      one process of the running launch
  launch check                        validate everything, show what would change
  launch check --image-root DIR       ... against an image's files (users, programs) on a host
  launch check --show-pillar          ... and every value with the layer it came from
  launch reconfigure --set app.port=9090   render and write the config files, then exit
  launch init ./myapp                 a new project: Dockerfile, stack file, project/
  launch import circus.ini --out project   a launch.yml from circus, supervisord, a Procfile

Examples:
  launch -- nginx -g 'daemon off;'     run nginx as PID 1's only child
  launch -g -- ./start.sh             forward signals to the script's whole group
  launch -e 143:0 -- java -jar app.jar treat death by SIGTERM as success

In a Dockerfile (the binary is static, so it works FROM scratch):
  COPY launch /usr/local/bin/launch
  ENTRYPOINT [\"/usr/local/bin/launch\", \"--\"]
  CMD [\"/usr/bin/app\", \"--port\", \"8080\"]

What launch does as PID 1 (or as a child subreaper when it is not PID 1):
  - starts CMD in its own process group, in the current directory, with the signal
    mask and ignored signals launch was given; stdin a terminal: CMD gets its foreground
  - forwards every signal it receives (TERM, INT, QUIT, HUP, USR1, USR2, WINCH, ...)
  - reaps every zombie, orphans included, without ever polling
  - when CMD exits: SIGTERM to all that is left, SIGKILL after --grace, then exits with
    CMD's code (128+N if signal N killed it)

Exit codes: CMD's own; 64 usage error; 126 CMD not executable; 127 CMD not found;
70 launch itself failed.";

/// `--grace` when not given: clap's default, and the fast path's.
pub const DEFAULT_GRACE: &str = "5s";

/// launch: a small, fast, trustworthy PID 1 for containers.
#[derive(Debug, Parser)]
#[command(name = "launch", version, after_long_help = EXAMPLES, after_help = "Run 'launch --help' for examples.")]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) action: Option<Action>,

    /// Forward signals to CMD's whole process group instead of CMD alone.
    #[arg(short = 'g', long)]
    pub(super) group: bool,

    /// How long processes left behind by CMD get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_GRACE, value_parser = parse_duration)]
    pub(super) grace: Duration,

    /// Exit with TO when CMD exits with FROM (e.g. 143:0); repeatable.
    #[arg(short = 'e', long = "exit-remap", value_name = "FROM:TO", value_parser = Remap::parse_rule)]
    pub(super) exit_remap: Vec<(i32, i32)>,

    /// Say on stderr what launch does (start, forward, reap, stop).
    #[arg(short, long)]
    pub(super) verbose: bool,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub(super) command: Vec<OsString>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub(super) enum Action {
    /// Configure (as `reconfigure`), then run and supervise the spec's processes as
    /// PID 1 until SIGTERM. The default when launch is given no arguments.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also log signal forwarding and every stop.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        control: ControlArgs,
        /// How events are logged on stderr: one line of text each, or of JSON.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Show each process of the running launch: state, pid, uptime, restarts, last exit.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Exit 0 iff every service runs and is ready (for HEALTHCHECK and probes).
    Health {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Reconfigure the running launch, as SIGHUP does; says why when it cannot.
    Reload {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Restart one process of the running launch (never counted as a crash).
    Restart {
        /// The process's name in launch.yml.
        name: String,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Stop one process of the running launch; it stays stopped until `launch start`.
    Stop {
        /// The process's name in launch.yml.
        name: String,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Start a stopped (or given up) process of the running launch.
    Start {
        /// The process's name in launch.yml.
        name: String,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Validate the pillar, the spec and every template, and that each process's
    /// program and user are in the image; print a diff of each output against the file
    /// on disk. Writes nothing. Exit 0 when valid, 78 when not.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also print the merged pillar, each value with the layer it came from.
        #[arg(long)]
        show_pillar: bool,
        /// The image's files (e.g. a `docker export`, unpacked): users, groups and
        /// programs are looked up there instead of in / (which, inside the container,
        /// is the image).
        #[arg(long, value_name = "DIR")]
        image_root: Option<std::path::PathBuf>,
        /// The running launch's socket: its --set flags are applied first, so that check
        /// predicts exactly what a reload will do.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Validate, then write the rendered configuration files (only those that changed,
    /// atomically, all or none), and exit.
    Reconfigure {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Make a new project in DIR from the image template: Dockerfile, stack file,
    /// project/ (launch.yml, pillar.yml, templates/, seed/). Never overwrites.
    Init {
        /// Where to create it; must not exist, or be empty.
        dir: std::path::PathBuf,
        /// The project's name (image name, /srv/projects/NAME); default: DIR's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a launch.yml equivalent to a circus.ini, a supervisord.conf (or any
    /// file of [program:x] sections) or a Procfile; list what could not be carried
    /// over, as comments at its top and on stderr.
    Import {
        /// The configuration to read.
        file: std::path::PathBuf,
        /// Write DIR/launch.yml (never overwriting) instead of printing it.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Only the SSH step: install the volume's ssh/*.pub as the ssh user's
    /// authorized_keys (and, with sshd, its host keys and config), then exit.
    Sshconfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Where the control socket of a running launch is.
#[derive(Debug, clap::Args)]
pub(super) struct ControlArgs {
    /// The control socket (root only).
    #[arg(long = "control", env = "LAUNCH_CONTROL", value_name = "PATH", default_value = control::DEFAULT_SOCKET)]
    pub(super) socket: std::path::PathBuf,
}

/// How `launch run` logs its events.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum LogFormat {
    Text,
    Json,
}

/// What one configuration (at start, on SIGHUP, `launch reload`) may take.
#[derive(Debug, clap::Parser)]
pub(super) struct LimitArgs {
    /// Kill a configuration (and its check commands) that takes longer; a reload is
    /// then abandoned and the running configuration kept.
    #[arg(long, env = configure_worker::TIMEOUT_VAR, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub(super) reload_timeout: Duration,
    /// The memory (address space) a configuration may use (bytes, or K, M, G).
    #[arg(long, env = configure_worker::MEMORY_VAR, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub(super) reload_memory: u64,
}

impl LimitArgs {
    pub(super) fn limits(self) -> Limits {
        Limits {
            timeout: self.reload_timeout,
            memory: self.reload_memory,
        }
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text)?;
    parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: a configuration needs some time; give e.g. 60s"))
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::volume::access::parse_size(text)
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!("{text:?} is not a size: write bytes, or with a K, M or G suffix (e.g. 512M)")
        })
}

/// Where the project is and what to override.
#[derive(Debug, clap::Parser)]
pub(super) struct ConfigArgs {
    /// The project root (holding project/, pillar/, data/); default: the only
    /// directory under /srv/projects.
    #[arg(long, env = "LAUNCH_ROOT", value_name = "DIR")]
    pub(super) root: Option<std::path::PathBuf>,
    /// The project directory (launch.yml, pillar.yml, templates/), for a host checkout.
    #[arg(long, env = "LAUNCH_PROJECT", value_name = "DIR")]
    pub(super) project: Option<std::path::PathBuf>,
    /// The volume directory (configuration/, data/, ssh/), for a host checkout.
    #[arg(long, env = "LAUNCH_DATA", value_name = "DIR")]
    pub(super) data: Option<std::path::PathBuf>,
    /// Override a pillar value, last and strongest layer (VALUE is read as YAML).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub(super) sets: Vec<String>,
}

impl ConfigArgs {
    pub(super) fn options(self) -> Options {
        // Relative to where launch was started: `launch run` works from / later on.
        let absolute =
            |p: Option<std::path::PathBuf>| p.map(|p| std::path::absolute(&p).unwrap_or(p));
        Options {
            layout: LayoutArgs {
                root: absolute(self.root),
                project: absolute(self.project),
                data: absolute(self.data),
            },
            sets: self.sets,
            ..Options::default()
        }
    }
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}
