//! The volume floor: touching files that others can write (the operator's volume, the
//! app user's data and home) without being redirected by what they plant there.
//!
//! - [`access`]: errors, limits, owner and mode, bounded reads.
//! - [`dir`]: held directories and the walk that reaches them ([`dir::Trust`]).
//! - [`staged`]: writes staged under unpredictable names and renamed into place.
//! - [`atomic`]: temp file + rename writes, batched flushes.
//! - [`seed`]: filling empty volume paths from the project.
//! - [`ssh`]: authorized_keys from `ssh/*.pub`, host keys, sshd's config.
//! - [`users`]: the image's accounts (`/etc/passwd`, `/etc/group`).

pub mod access;
pub mod atomic;
pub mod dir;
pub mod seed;
pub mod ssh;
pub mod staged;
pub mod users;
