//! launch not root (`docker run -u 1000`): it can give what it writes only to itself,
//! and to a group it is in. The spec's owners (`templates[].owner`, `seed[].owner`,
//! `data_owner`) that it cannot give are kept as launch's own, each said once in a
//! warning, rather than failing every start on a `chown` the kernel refuses: in this
//! mode the app runs as launch's user anyway, and no ownership could keep it out.

use super::spec::Spec;

/// Who launch runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Identity {
    /// launch's own identity now.
    pub fn current() -> Identity {
        Identity {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups()
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.as_raw())
                .collect(),
        }
    }
}

/// The owner launch can give in place of `wanted`: `wanted` itself as root, or when it
/// is launch's uid and one of its groups; else launch's uid, with the group kept when
/// launch is in it.
pub fn owner(wanted: (u32, u32), me: &Identity) -> (u32, u32) {
    if me.uid == 0 {
        return wanted;
    }
    let (_, gid) = wanted;
    let in_group = gid == me.gid || me.groups.contains(&gid);
    (me.uid, if in_group { gid } else { me.gid })
}

/// Replaces, in `spec`, each owner launch cannot give by the one it can; one warning
/// per change, naming the path and what launch does instead.
pub fn adapt(spec: &mut Spec, volume: &std::path::Path, me: &Identity) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut fix = |what: String, slot: &mut Option<(u32, u32)>| {
        let Some(wanted) = *slot else {
            return;
        };
        let given = owner(wanted, me);
        if given != wanted {
            warnings.push(format!(
                "warning: {what}: owner {}:{} not given: launch runs as uid {}, not root, and can give files only to itself (they are {}:{}); run the container as root for the spec's owners",
                wanted.0, wanted.1, me.uid, given.0, given.1
            ));
            *slot = Some(given);
        }
    };
    for t in &mut spec.templates {
        fix(t.dest.display().to_string(), &mut t.owner);
    }
    for s in &mut spec.seed {
        fix(volume.join(&s.to).display().to_string(), &mut s.owner);
    }
    fix(
        volume.join("data").display().to_string(),
        &mut spec.data_owner,
    );
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_launch_can_give() {
        let root = Identity {
            uid: 0,
            gid: 0,
            groups: vec![],
        };
        let app = Identity {
            uid: 1000,
            gid: 1000,
            groups: vec![50],
        };
        for (wanted, me, given) in [
            ((0, 1000), &root, (0, 1000)),
            ((33, 33), &root, (33, 33)),
            ((1000, 1000), &app, (1000, 1000)),
            ((1000, 50), &app, (1000, 50)),
            ((0, 1000), &app, (1000, 1000)),
            ((0, 0), &app, (1000, 1000)),
            ((1000, 0), &app, (1000, 1000)),
            ((33, 50), &app, (1000, 50)),
        ] {
            assert_eq!(owner(wanted, me), given, "{wanted:?} as {}", me.uid);
        }
    }
}
