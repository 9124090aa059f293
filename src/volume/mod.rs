//! The volume floor: touching files that others can write (the operator's volume, the
//! app user's data and home) without being redirected by what they plant there.
//!
//! - [`access`]: held directory descriptors, bounded reads, staged writes.

pub mod access;
