//! `instances: N` (circus's numprocesses, supervisord's numprocs): N copies of one
//! process, named `NAME.1` .. `NAME.N`, each with `LAUNCH_INSTANCE=i` in its
//! environment. The copies are made here, in the spec, so that the supervisor knows
//! processes and nothing of copies: each is started, readied, restarted and stopped as
//! any process is. A `depends_on` or a template's `notify` that names NAME means every
//! copy (dependents wait until all of them are ready).

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

use super::check::{Checker, scalar_text};
use super::{Process, Template};
use crate::config::yaml::Seg;

/// The variable that tells a copy which one it is (1 to N).
pub const VAR: &str = "LAUNCH_INSTANCE";

/// The most copies of one process.
pub const MAX: u32 = 1000;

/// How many copies each process asks for, by name; a process that does not say is not
/// listed. A count that is not a whole number from 1 to [`MAX`] is an error at its line.
pub(super) fn counts(c: &mut Checker<'_>, processes: &Mapping) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (key, raw) in processes {
        let Some(value) = raw.get("instances") else {
            continue;
        };
        let name = scalar_text(key).unwrap_or_default();
        let n = match value {
            Value::Number(n) => n.as_u64().filter(|n| (1..=u64::from(MAX)).contains(n)),
            _ => None,
        };
        match n {
            Some(n) => {
                counts.insert(name, n as u32);
            }
            None => c.error(
                &[
                    Seg::from("processes"),
                    Seg::Key(name),
                    Seg::from("instances"),
                ],
                format!(
                    "instances {} is not a number of copies",
                    scalar_text(value).unwrap_or_else(|| "of this kind".into())
                ),
                format!("write a whole number from 1 to {MAX}, e.g. instances: 4"),
            ),
        }
    }
    counts
}

/// How many processes the spec runs, copies counted.
pub(super) fn total(names: &[String], counts: &BTreeMap<String, u32>) -> usize {
    names
        .iter()
        .map(|n| counts.get(n).map_or(1, |&k| k as usize))
        .sum()
}

/// The copies of `p` when `counts` lists it: `NAME.i` for i in 1..=N, or NAME itself
/// when N is 1; `LAUNCH_INSTANCE=i` in each one's environment.
fn copies(p: Process, count: Option<u32>) -> Vec<Process> {
    let Some(n) = count else {
        return vec![p];
    };
    (1..=n)
        .map(|i| {
            let mut copy = p.clone();
            if n > 1 {
                copy.name = format!("{}.{i}", p.name);
            }
            copy.env.insert(VAR.into(), i.to_string());
            copy
        })
        .collect()
}

/// Replaces each process by its copies, and each name of a process with copies in a
/// `depends_on` or a template's `notify` by the names of all its copies. A copy whose
/// name the author gave another process is an error at the `instances:` line.
pub(super) fn expand(
    c: &mut Checker<'_>,
    processes: Vec<Process>,
    templates: &mut [Template],
    counts: &BTreeMap<String, u32>,
) -> Vec<Process> {
    let written: BTreeSet<String> = processes.iter().map(|p| p.name.clone()).collect();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut all = Vec::new();
    for p in processes {
        let name = p.name.clone();
        let made = copies(p, counts.get(&name).copied());
        let names: Vec<String> = made.iter().map(|p| p.name.clone()).collect();
        if let Some(taken) = names.iter().find(|n| **n != name && written.contains(*n)) {
            c.error(
                &[
                    Seg::from("processes"),
                    Seg::Key(name.clone()),
                    Seg::from("instances"),
                ],
                format!("the copy {taken} of {name} has the name of another process"),
                format!("rename the process {taken}, or {name}"),
            );
        }
        named.insert(name, names);
        all.extend(made);
    }
    let widen = |list: &mut Vec<String>| {
        *list = list
            .iter()
            .flat_map(|n| named.get(n).cloned().unwrap_or_else(|| vec![n.clone()]))
            .collect();
    };
    for p in &mut all {
        widen(&mut p.depends_on);
    }
    for t in templates {
        widen(&mut t.notify);
    }
    all
}

/// Whether `process` is `name` or one of its copies (`name.i`): what `launch restart
/// NAME` and the other control commands act on.
pub fn is_or_copy_of(process: &str, name: &str) -> bool {
    process == name
        || process
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_covers_its_copies_and_nothing_else() {
        for (process, name, covered) in [
            ("web", "web", true),
            ("web.1", "web", true),
            ("web.12", "web", true),
            ("web.", "web", false),
            ("web.x", "web", false),
            ("web2", "web", false),
            ("webby.1", "web", false),
            ("web.1", "web.1", true),
        ] {
            assert_eq!(is_or_copy_of(process, name), covered, "{process} {name}");
        }
    }

    #[test]
    fn copies_are_numbered_from_one_with_their_number_in_the_environment() {
        let p = Process::service("web", vec!["app".into()]);
        let made = copies(p.clone(), Some(3));
        let names: Vec<&str> = made.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web.1", "web.2", "web.3"]);
        assert_eq!(made[2].env[VAR], "3");
        let one = copies(p.clone(), Some(1));
        assert_eq!(one[0].name, "web");
        assert_eq!(one[0].env[VAR], "1");
        assert_eq!(copies(p.clone(), None), vec![p]);
    }
}
