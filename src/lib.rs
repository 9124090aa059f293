//! `launch`: the PID 1 of an application container.
//!
//! One folder per stage; each imports only from the floors below it. Top to bottom:
//!
//! - [`cli`]: the command line and what each command prints (`src/main.rs` keeps only
//!   the fast path of `launch -- CMD`).
//! - [`supervise`]: the process table as a pure state machine and the executor of its
//!   effects, the decisions, readiness, log relay, and the driver of the configuration
//!   worker; plain init (`launch -- CMD`) is the supervisor with one process.
//! - [`config`]: layout, pillar, spec, templates, and the plan a reconfigure applies;
//!   `control`: the control socket of a running `launch run` (`launch status`, ...).
//! - `init`: the PID-1 mechanics: event loop, signals, spawn, reap, cleanup, output.
//! - [`volume`]: touching files others can write (held directories, bounded reads,
//!   atomic writes), seeding, SSH keys, the image's accounts.
//! - Leaves: [`exit`] (a child's end as launch's exit code), [`duration`] (`5s`,
//!   `1m30s`), [`plural`].

pub mod cli;
pub mod config;
pub(crate) mod control;
pub mod duration;
pub mod exit;
pub(crate) mod init;
pub mod plural;
pub mod supervise;
pub mod volume;
