//! The order of processes: one walk of `depends_on` that gives each process its level
//! (0 for none, else one more than its deepest dependency), or the first cycle. The
//! spec refuses a cycle with it; the supervisor starts by level and stops in reverse.

use std::collections::BTreeMap;

use super::Process;

/// Where a walk stands with a process.
enum Mark {
    /// On the current path: meeting it again closes a cycle.
    Visiting,
    /// Done, with its level.
    Level(usize),
}

/// Each process's level by name, or the first cycle met (names from the first back to
/// it), walking processes and their dependencies in file order. A dependency that is
/// not a process is left out (the spec reports it on its own).
pub fn levels(processes: &[Process]) -> Result<BTreeMap<String, usize>, Vec<String>> {
    let deps: BTreeMap<&str, &[String]> = processes
        .iter()
        .map(|p| (p.name.as_str(), p.depends_on.as_slice()))
        .collect();
    let mut marks = BTreeMap::new();
    for p in processes {
        visit(&p.name, &deps, &mut marks, &mut Vec::new())?;
    }
    Ok(marks
        .into_iter()
        .filter_map(|(name, mark)| match mark {
            Mark::Level(l) => Some((name.to_string(), l)),
            Mark::Visiting => None,
        })
        .collect())
}

/// The level of `name`, walking its dependencies first; `stack` is the current path.
fn visit<'a>(
    name: &'a str,
    deps: &BTreeMap<&'a str, &'a [String]>,
    marks: &mut BTreeMap<&'a str, Mark>,
    stack: &mut Vec<&'a str>,
) -> Result<usize, Vec<String>> {
    match marks.get(name) {
        Some(Mark::Level(l)) => return Ok(*l),
        Some(Mark::Visiting) => {
            let start = stack.iter().position(|s| *s == name).unwrap_or(0);
            let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Err(cycle);
        }
        None => {}
    }
    marks.insert(name, Mark::Visiting);
    stack.push(name);
    let mut level = 0;
    for d in deps.get(name).copied().unwrap_or(&[]) {
        if let Some((&d, _)) = deps.get_key_value(d.as_str()) {
            level = level.max(visit(d, deps, marks, stack)? + 1);
        }
    }
    stack.pop();
    marks.insert(name, Mark::Level(level));
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes and what each depends on.
    type Edges<'a> = &'a [(&'a str, &'a [&'a str])];
    /// Levels by name, or a cycle.
    type Want<'a> = Result<&'a [(&'a str, usize)], &'a [&'a str]>;

    fn graph(edges: Edges<'_>) -> Vec<Process> {
        edges
            .iter()
            .map(|(name, deps)| Process {
                depends_on: deps.iter().map(|s| s.to_string()).collect(),
                ..Process::service(name, vec!["true".into()])
            })
            .collect()
    }

    #[test]
    fn levels_or_the_first_cycle() {
        let cases: &[(Edges<'_>, Want<'_>)] = &[
            (&[], Ok(&[])),
            (&[("a", &[])], Ok(&[("a", 0)])),
            (
                &[
                    ("web", &["app", "cache"]),
                    ("app", &["db"]),
                    ("db", &[]),
                    ("cache", &[]),
                ],
                Ok(&[("app", 1), ("cache", 0), ("db", 0), ("web", 2)]),
            ),
            // A name that is not a process is left out, not a level of its own.
            (&[("a", &["ghost"])], Ok(&[("a", 0)])),
            (&[("a", &["a"])], Err(&["a", "a"])),
            (&[("a", &["b"]), ("b", &["a"])], Err(&["a", "b", "a"])),
            (
                &[("x", &[]), ("a", &["b"]), ("b", &["c"]), ("c", &["b"])],
                Err(&["b", "c", "b"]),
            ),
        ];
        for (edges, want) in cases {
            let got = levels(&graph(edges));
            let want = want
                .map(|ls| ls.iter().map(|(n, l)| (n.to_string(), *l)).collect())
                .map_err(|c| c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{edges:?}");
        }
    }
}
