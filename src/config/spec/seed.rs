//! The `seed:` section: volume paths filled from the project when empty.

use std::path::PathBuf;

use serde_yaml::Value;

use super::check::Checker;
use super::raw::RawSeed;
use super::{Seed, stays_inside};
use crate::config::yaml::Seg;
use crate::volume::users::Accounts;

/// The seeds, in file order.
pub(super) fn parse(c: &mut Checker<'_>, raw: Vec<Value>, accounts: &Accounts) -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = [Seg::from("seed"), Seg::Index(i)];
        let Some(s) = c.entry::<RawSeed>(raw, &path, "seed") else {
            continue;
        };
        let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
        let from = PathBuf::from(&s.from);
        if !stays_inside(&from) {
            c.error(
                &at("from"),
                format!("seed from {:?} must be a path inside the project", s.from),
                "write it relative to project/, e.g. seed/data",
            );
        }
        let to = PathBuf::from(&s.to);
        if !stays_inside(&to) {
            c.error(
                &at("to"),
                format!("seed to {:?} escapes the volume", s.to),
                "write a path relative to the volume that stays inside it, e.g. data",
            );
        }
        let owner = c.owner(s.owner, accounts, &at("owner"));
        seeds.push(Seed { from, to, owner });
    }
    seeds
}
