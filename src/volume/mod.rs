//! The volume floor: touching files that others can write (the operator's volume, the
//! app user's data and home) without being redirected by what they plant there.
//!
//! - [`access`]: errors, limits, owner and mode, bounded reads.
//! - [`dir`]: held directories and the walk that reaches them ([`dir::Trust`]).
//! - [`staged`]: writes staged under unpredictable names and renamed into place.

pub mod access;
pub mod dir;
pub mod staged;
