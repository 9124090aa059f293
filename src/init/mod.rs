//! The PID-1 floor: the mechanics any init needs, whatever it supervises.
//!
//! - [`events`]: the one loop, epoll over a signalfd with the nearest deadline.
//! - [`signals`]: blocking signals, the signalfd, what children inherit.
//! - [`spawn`]: starting a clean child (group, mask, terminal, cwd, privilege drop).
//! - [`reap`]: draining waitpid.
//! - [`cleanup`], [`leftover`]: ending what is left, and what a stopped process left;
//!   [`proc_table`]: one reading of `/proc` for both.
//! - [`output`]: launch's own stdout and stderr, never blocking PID 1.

pub mod cleanup;
pub mod events;
pub mod leftover;
pub mod output;
pub mod proc_table;
pub mod reap;
pub mod signals;
pub mod spawn;
