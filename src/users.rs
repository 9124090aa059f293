//! Users and groups, read from the image's own `/etc/passwd` and `/etc/group` (no NSS:
//! the binary is static, and the image's files are the truth inside the container).

use std::fs;
use std::path::{Path, PathBuf};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (or the number as written).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

/// The account database, loaded once.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    passwd: Vec<(String, u32, u32, PathBuf)>,
    group: Vec<(String, u32, Vec<String>)>,
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` under `root` (`/` normally); missing files
    /// are empty.
    pub fn load(root: &Path) -> Accounts {
        let read = |name: &str| fs::read_to_string(root.join("etc").join(name)).unwrap_or_default();
        let passwd = read("passwd")
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 6).then(|| {
                    Some((
                        f[0].to_string(),
                        f[2].parse().ok()?,
                        f[3].parse().ok()?,
                        PathBuf::from(f[5]),
                    ))
                })?
            })
            .collect();
        let group = read("group")
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let members = f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                (f.len() >= 3).then(|| Some((f[0].to_string(), f[2].parse().ok()?, members)))?
            })
            .collect();
        Accounts { passwd, group }
    }

    /// A user by name or number; a number with no entry gets its own number as group
    /// and `/` as home.
    pub fn user(&self, name: &str) -> Option<User> {
        let entry = self.passwd.iter().find(|(n, ..)| n == name).or_else(|| {
            let uid: u32 = name.parse().ok()?;
            self.passwd.iter().find(|(_, u, ..)| *u == uid)
        });
        match entry {
            Some((n, uid, gid, home)) => Some(User {
                name: n.clone(),
                uid: *uid,
                gid: *gid,
                home: home.clone(),
                groups: self
                    .group
                    .iter()
                    .filter(|(_, _, m)| m.contains(n))
                    .map(|(_, g, _)| *g)
                    .collect(),
            }),
            None => {
                let uid: u32 = name.parse().ok()?;
                Some(User {
                    name: name.to_string(),
                    uid,
                    gid: uid,
                    home: PathBuf::from("/"),
                    groups: Vec::new(),
                })
            }
        }
    }

    /// A group id by name or number.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.group
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, gid, _)| *gid)
            .or_else(|| name.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_groups_and_numbers() {
        let root = std::env::temp_dir().join(format!("launch-users-{}", std::process::id()));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            root.join("etc/group"),
            "root:x:0:\napp:x:1000:\nlog:x:4:app\n",
        )
        .unwrap();
        let db = Accounts::load(&root);
        let app = db.user("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone()),
            (1000, 1000, vec![4])
        );
        assert_eq!(app.home, PathBuf::from("/home/app"));
        assert_eq!(db.user("1000").unwrap().name, "app");
        assert_eq!(db.user("4242").unwrap().uid, 4242);
        assert_eq!(db.user("nobody-here"), None);
        assert_eq!(db.group("log"), Some(4));
        assert_eq!(db.group("nope"), None);
        fs::remove_dir_all(root).unwrap();
    }
}
