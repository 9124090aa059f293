//! Users and groups, read from the image's own `/etc/passwd` and `/etc/group` (no NSS:
//! the binary is static, and the image's files are the truth inside the container).
//!
//! The files are read afresh whenever an answer matters (every process start, every
//! configuration load): a user added or removed since launch started is seen at once.
//! They are read through [`crate::volume::access::read_path`]: a FIFO, a symlink or a huge file in their place
//! is an error, never a stall.
//!
//! A user or group is a name from these files, or a number written as digits only. A
//! number with no entry is allowed on purpose (an image may run an app under an
//! arbitrary uid, as `docker run --user 4242` does): it runs with that uid, the same
//! number as its group, `/` as home and no supplementary groups. A name that is not in
//! the files resolves to nothing, and so does `4294967295`, which the kernel reads as
//! "leave the id unchanged", that is, root.

use std::path::{Path, PathBuf};

use crate::volume::access::{self, Trust};

/// The most launch reads of `/etc/passwd` or `/etc/group` (some 50,000 accounts).
pub const FILE_LIMIT: u64 = 4 << 20;

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

/// Why an account could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// `/etc/passwd` or `/etc/group` is not a file launch reads.
    #[error("{0}\n  (the image's account database: a regular file of at most {FILE_LIMIT} bytes)")]
    Read(access::AccessError),
    /// A user name with no entry (or an impossible number).
    #[error(
        "user {user:?} is not in {path}\n  fix: create the user in the image (adduser), or name an existing user or a numeric uid"
    )]
    NoUser {
        /// The user as written.
        user: String,
        /// The passwd file read.
        path: PathBuf,
    },
    /// A group name with no entry (or an impossible number).
    #[error(
        "group {group:?} is not in {path}\n  fix: create the group in the image (addgroup), or name an existing group or a numeric gid"
    )]
    NoGroup {
        /// The group as written.
        group: String,
        /// The group file read.
        path: PathBuf,
    },
    /// launch is not root, and the process is to run as another user.
    #[error(
        "cannot run as user {user:?} (uid {uid}): launch runs as uid {own}, not root, and cannot change users\n  fix: run the container as root, or as this user (docker run -u {uid}), or remove user: from this process"
    )]
    NotRoot {
        /// The user as written.
        user: String,
        /// Its uid.
        uid: u32,
        /// launch's own uid.
        own: u32,
    },
}

/// The account database, as read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    passwd: Vec<(String, u32, u32, PathBuf)>,
    group: Vec<(String, u32, Vec<String>)>,
    /// Where they were read, for messages.
    root: PathBuf,
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` under `root` (`/` normally); a missing file
    /// has no entries.
    pub fn read(root: &Path) -> Result<Accounts, UserError> {
        let read = |name: &str| {
            let path = root.join("etc").join(name);
            match access::read_path(&path, &Trust::default(), FILE_LIMIT) {
                Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Ok(None) => Ok(String::new()),
                Err(reason) => Err(UserError::Read(reason)),
            }
        };
        let passwd = read("passwd")?
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 6 || f[0].is_empty() {
                    return None;
                }
                Some((
                    f[0].to_string(),
                    number(f[2])?,
                    number(f[3])?,
                    PathBuf::from(f[5]),
                ))
            })
            .collect();
        let group = read("group")?
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 3 || f[0].is_empty() {
                    return None;
                }
                let members = f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                Some((f[0].to_string(), number(f[2])?, members))
            })
            .collect();
        Ok(Accounts {
            passwd,
            group,
            root: root.to_path_buf(),
        })
    }

    /// Like [`Accounts::read`], but a file that cannot be read has no entries, so that
    /// every name is then unknown (and refused where it is used), never guessed.
    pub fn load(root: &Path) -> Accounts {
        Accounts::read(root).unwrap_or_else(|_| Accounts {
            root: root.to_path_buf(),
            ..Accounts::default()
        })
    }

    /// One of the account files as read (`/etc/passwd`, or `DIR/etc/passwd` for an
    /// image's files elsewhere), for messages.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join("etc").join(name)
    }

    /// A user by name, else by number (see the module's documentation).
    pub fn user(&self, name: &str) -> Option<User> {
        let by_name = self.passwd.iter().find(|(n, ..)| n == name);
        let entry = match by_name {
            Some(entry) => Some(entry),
            None => {
                let uid = number(name)?;
                self.passwd.iter().find(|(_, u, ..)| *u == uid)
            }
        };
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
                let uid = number(name)?;
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

    /// A group id by name, else by number.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.group
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, gid, _)| *gid)
            .or_else(|| number(name))
    }

    /// The user `user`, with `group` (when given) as its group instead of its own: an
    /// error, never a fallback, when either is unknown.
    pub fn resolve(&self, user: &str, group: Option<&str>) -> Result<User, UserError> {
        let mut found = self.user(user).ok_or_else(|| UserError::NoUser {
            user: user.to_string(),
            path: self.root.join("etc/passwd"),
        })?;
        if let Some(group) = group {
            found.gid = self.group(group).ok_or_else(|| UserError::NoGroup {
                group: group.to_string(),
                path: self.root.join("etc/group"),
            })?;
        }
        Ok(found)
    }
}

/// An id written as digits only (no sign, no spaces), and not `u32::MAX`: setuid and
/// setgid take that one as "no change", which would leave the process root.
pub fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&id| id != u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("launch-users-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc")).unwrap();
        root
    }

    #[test]
    fn reads_users_groups_and_numbers() {
        let root = root("read");
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
             max:x:4294967295:0::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            root.join("etc/group"),
            "root:x:0:\napp:x:1000:\nlog:x:4:app\n",
        )
        .unwrap();
        let db = Accounts::read(&root).unwrap();
        let app = db.user("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone()),
            (1000, 1000, vec![4])
        );
        assert_eq!(app.home, PathBuf::from("/home/app"));
        assert_eq!(db.user("1000").unwrap().name, "app");
        assert_eq!(db.user("nobody-here"), None);
        assert_eq!(db.user("max"), None, "uid 4294967295 would mean root");
        assert_eq!(db.group("log"), Some(4));
        assert_eq!(db.group("nope"), None);
        assert_eq!(db.resolve("app", Some("log")).unwrap().gid, 4);
        let refused = db.resolve("app", Some("nope")).unwrap_err().to_string();
        assert!(refused.contains("group \"nope\" is not in"), "{refused}");
        assert!(refused.contains("etc/group"), "{refused}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_number_is_a_uid_only_when_written_as_one() {
        let db = Accounts::read(&root("numbers")).unwrap();
        let n = db.user("4242").unwrap();
        assert_eq!((n.uid, n.gid, n.home.clone()), (4242, 4242, "/".into()));
        assert!(n.groups.is_empty());
        for bad in [
            "+4242",
            " 4242",
            "4242 ",
            "-1",
            "4294967295",
            "4294967296",
            "",
        ] {
            assert_eq!(db.user(bad), None, "{bad:?}");
            assert_eq!(db.group(bad), None, "{bad:?}");
        }
        let refused = db.resolve("ghost", None).unwrap_err().to_string();
        assert!(refused.contains("user \"ghost\" is not in"), "{refused}");
        assert!(refused.contains("fix: create the user"), "{refused}");
    }

    #[test]
    fn an_account_file_that_is_not_a_regular_file_is_an_error_not_a_stall() {
        let root = root("fifo");
        nix::unistd::mkfifo(
            &root.join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let refused = Accounts::read(&root).unwrap_err().to_string();
        assert!(refused.contains("etc/passwd: is a FIFO"), "{refused}");
        assert_eq!(Accounts::load(&root).user("root"), None);
        fs::remove_dir_all(root).unwrap();
    }
}
