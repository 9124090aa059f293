//! The `templates:` section: what to render, where to, with which mode and owner, and
//! whom to notify when the output changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_yaml::Value;

use super::check::Checker;
use super::raw::RawTemplate;
use super::{Template, did_you_mean, stays_inside};
use crate::config::yaml::Seg;
use crate::volume::users::Accounts;

/// The templates, in file order; `known` are the process names `notify` may name.
pub(super) fn parse(
    c: &mut Checker<'_>,
    raw: Vec<Value>,
    known: &BTreeSet<&str>,
    accounts: &Accounts,
) -> Vec<Template> {
    let mut dests: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut templates = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = [Seg::from("templates"), Seg::Index(i)];
        let Some(t) = c.entry::<RawTemplate>(raw, &path, "template") else {
            continue;
        };
        let at = |k: &str| [path[0].clone(), path[1].clone(), Seg::from(k)];
        let src = PathBuf::from(&t.src);
        if !stays_inside(&src) {
            c.error(
                &at("src"),
                format!("template src {:?} must be a path inside the project", t.src),
                "write it relative to project/, e.g. templates/app.conf",
            );
        }
        let dest = PathBuf::from(&t.dest);
        if !dest.is_absolute() {
            c.error(
                &at("dest"),
                format!("template dest {:?} is relative", t.dest),
                "write the absolute path of the file to create, e.g. /etc/app/app.conf",
            );
        } else if let Some(first) = dests.insert(dest.clone(), i) {
            c.error(
                &at("dest"),
                format!(
                    "two templates write {} (entries {} and {})",
                    dest.display(),
                    first + 1,
                    i + 1
                ),
                "give each template its own dest, or merge the two templates",
            );
        }
        let mode = c
            .octal(t.mode, &at("mode"), "mode", 0o7777)
            .unwrap_or(0o644);
        let owner = c.owner(t.owner, accounts, &at("owner"));
        for name in &t.notify {
            if !known.contains(name.as_str()) {
                c.error(
                    &at("notify"),
                    format!("notify names {name:?}, which is not a process"),
                    did_you_mean(name, known.iter().copied())
                        .unwrap_or_else(|| "name a process defined under processes:".into()),
                );
            }
        }
        templates.push(Template {
            src,
            dest,
            mode,
            owner,
            notify: t.notify,
            check: t.check,
            line: c.line(&path),
        });
    }
    templates
}
