//! The top floor: what each command prints and its exit code. `src/main.rs` parses the
//! command line and dispatches here (or to [`crate::supervise`] for `run` and `--`).
//!
//! - [`commands`]: `check`, `reconfigure`, `sshconfig` and `init` as the user sees them.
//! - [`scaffold`]: `launch init`, a new project from the built-in `image-template/`.
//! - [`import`]: `launch import`, a circus, supervisord or Procfile file as a launch.yml.

pub mod commands;
pub mod import;
pub mod scaffold;
