//! `launch`: the PID 1 of an application container.
//!
//! The binary (`src/main.rs`) only parses the command line; everything it hands over to
//! lives here, one concern per module:
//!
//! - [`exit`]: how a child's end becomes launch's exit code (128+N, remapping).
//! - [`duration`]: the one way durations are written (`5s`, `500ms`, `1m30s`).
//! - [`supervise`]: the event loop, spawning clean children, reaping, forwarding signals,
//!   and cleaning up what is left; the plain-init mode (`launch -- CMD`) is the
//!   supervisor with one process.
//! - [`layout`], [`pillar`], [`spec`], [`render`], [`reconfigure`]: the configuration
//!   pipeline (where the project is, the merged pillar, the typed spec, the templates),
//!   with [`spec_text`] keeping the values Tera puts into the spec out of its structure,
//!   [`yaml`] for located errors, [`atomic`] for safe writes, [`volume`] for reading
//!   files others wrote, [`users`] for the image's accounts, and [`commands`] for what
//!   `check` and `reconfigure` print (with [`diff`] for its diffs).
//! - [`seed`], [`ssh`]: the volume: seeding empty paths, SSH keys, host keys, sshd.
//! - [`volume`]: touching files others can write (held directories, bounded reads,
//!   staged writes), which every module above uses for the volume and the app's files.
//! - [`configure_worker`]: `launch run`'s configuration (start-up, SIGHUP, `launch
//!   reload`) in a child process with a deadline and a memory limit, and its answer;
//!   [`check_command`] runs the templates' checks with a time limit.
//! - [`control`]: the control socket of a running `launch run` (`launch status`, ...).
//! - [`scaffold`]: `launch init`, a new project from the built-in `image-template/`.

pub mod atomic;
pub mod check_command;
pub mod commands;
pub mod configure_worker;
pub mod control;
pub mod diff;
pub mod duration;
pub mod exit;
pub mod hints;
pub mod import;
pub mod layout;
pub mod operator_file;
pub mod pillar;
pub mod plural;
pub mod reconfigure;
pub mod render;
pub mod scaffold;
pub mod schema;
pub mod secrets;
pub mod seed;
pub mod spec;
pub mod spec_text;
pub mod ssh;
pub mod supervise;
pub mod users;
pub mod volume;
pub mod yaml;
