//! The `shutdown:` section: the grace everything must stop within.

use serde_yaml::Value;

use super::Shutdown;
use super::check::Checker;
use super::raw::RawShutdown;
use crate::config::yaml::Seg;

/// Reads the section into `shutdown`, which holds the defaults.
pub(super) fn parse(c: &mut Checker<'_>, raw: Value, shutdown: &mut Shutdown) {
    let path = [Seg::from("shutdown")];
    if let Some(s) = c.entry::<RawShutdown>(raw, &path, "shutdown") {
        shutdown.grace = c.duration(
            s.grace,
            shutdown.grace,
            &[Seg::from("shutdown"), Seg::from("grace")],
        );
    }
}
