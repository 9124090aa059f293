//! The `ssh:` section: whose `authorized_keys` launch manages, and sshd.

use serde_yaml::Value;

use super::Ssh;
use super::check::Checker;
use super::raw::RawSsh;
use crate::config::yaml::Seg;
use crate::volume::users::Accounts;

/// The SSH settings; None when the section is refused.
pub(super) fn parse(c: &mut Checker<'_>, raw: Value, accounts: &Accounts) -> Option<Ssh> {
    let path = [Seg::from("ssh")];
    let s = c.entry::<RawSsh>(raw, &path, "ssh")?;
    if accounts.user(&s.user).is_none() {
        c.error(
            &[Seg::from("ssh"), Seg::from("user")],
            format!(
                "user {:?} does not exist in {}",
                s.user,
                accounts.file("passwd").display()
            ),
            "name an existing user",
        );
    }
    if s.host_keys.is_empty() {
        c.error(
            &[Seg::from("ssh"), Seg::from("host_keys")],
            "no host key type given".to_string(),
            "list at least one: host_keys: [ed25519] (add rsa for old clients)",
        );
    }
    let mut host_keys = s.host_keys;
    host_keys.dedup();
    Some(Ssh {
        user: s.user,
        sshd: s.sshd,
        port: s.port,
        allow_options: s.allow_options,
        host_keys,
    })
}
