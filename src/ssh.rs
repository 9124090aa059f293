//! SSH access from the volume: every `ssh/*.pub` is validated and installed as the
//! `authorized_keys` of `ssh.user` (fully managed: removing a .pub removes the access);
//! with `ssh.sshd`, host keys are generated once into `data/ssh/host/` so the host's
//! identity survives re-creation of the container, and an sshd config is written for the
//! supervised `sshd -D -e`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;

use std::path::{Path, PathBuf};

use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::atomic::{self, Attributes};
use crate::spec::{HostKey, Ssh};
use crate::users::Accounts;
use crate::volume::access::{self, Dir, Trust};

/// The sshd launch runs.
pub const SSHD: &str = "/usr/sbin/sshd";

/// Key types an authorized_keys line may start with.
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A problem with SSH access.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A key line is refused (reported, skipped; the other keys still work).
    #[error("{file}:{line}: {reason}; this key is skipped\n  fix: {fix}")]
    BadKey {
        /// The .pub file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// Why.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// `ssh.user` has no account.
    #[error(
        "ssh.user {0:?} does not exist in /etc/passwd\n  fix: create the user in the image, or name another"
    )]
    NoUser(String),
    /// Writing keys or config failed.
    #[error("{path}: {source}\n  fix: check that the volume and the user's home are writable")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] atomic::AtomicError),
    /// A directory or file launch refuses to touch.
    #[error(transparent)]
    Access(#[from] access::AccessError),
    /// Generating a host key failed.
    #[error("cannot generate the ssh host key: {0}")]
    KeyGen(String),
}

/// One accepted key.
#[derive(Debug, Clone)]
pub struct Key {
    /// Where it was read.
    pub file: PathBuf,
    /// Its line.
    pub line: usize,
    /// Its options prefix, when allowed.
    pub options: Option<String>,
    /// The key.
    pub key: PublicKey,
}

impl Key {
    /// `SHA256:...`, how keys are shown (never whole).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

/// Reads every `*.pub` in `dir` (symlinks skipped): the accepted keys, and every refused
/// line with its reason.
pub fn read_keys(dir: &Path, allow_options: bool) -> (Vec<Key>, Vec<SshError>) {
    let mut keys = Vec::new();
    let mut bad = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return (keys, bad);
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    files.sort();
    for file in files {
        // A .pub that is a symlink could point anywhere: not read.
        if fs::symlink_metadata(&file).map_or(true, |m| !m.is_file()) {
            bad.push(SshError::BadKey {
                file,
                line: 0,
                reason: "is a symlink (or not a regular file)".into(),
                fix: "copy the key file into ssh/ instead of linking it".into(),
            });
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line, allow_options) {
                Ok((options, key)) => keys.push(Key {
                    file: file.clone(),
                    line: i + 1,
                    options,
                    key,
                }),
                Err((reason, fix)) => bad.push(SshError::BadKey {
                    file: file.clone(),
                    line: i + 1,
                    reason,
                    fix,
                }),
            }
        }
    }
    (keys, bad)
}

/// One authorized_keys line: (options, key) or (reason, fix).
fn parse_line(
    line: &str,
    allow_options: bool,
) -> Result<(Option<String>, PublicKey), (String, String)> {
    if line.contains("PRIVATE KEY") {
        return Err((
            "this is a private key".into(),
            "never put a private key in the volume; put its .pub (ssh-keygen -y -f KEY) there, and replace the leaked key".into(),
        ));
    }
    let first = line.split_whitespace().next().unwrap_or("");
    let later_type = line
        .split_whitespace()
        .skip(1)
        .any(|t| KEY_TYPES.contains(&t) || t == "ssh-dss");
    let (options, rest) = if KEY_TYPES.contains(&first) || first == "ssh-dss" || !later_type {
        (None, line)
    } else {
        let (options, rest) = split_options(line);
        if !allow_options {
            return Err((
                format!(
                    "an options prefix ({}) is not allowed",
                    options.split('=').next().unwrap_or(&options)
                ),
                "remove the options, or set ssh.allow_options: true in launch.yml".into(),
            ));
        }
        (Some(options), rest.trim_start())
    };
    if rest.starts_with("ssh-dss") {
        return Err((
            "ssh-dss (DSA) keys are refused: they are weak".into(),
            "use an ed25519 key (ssh-keygen -t ed25519)".into(),
        ));
    }
    let key = PublicKey::from_openssh(rest).map_err(|e| {
        let kind = rest.split_whitespace().next().unwrap_or("");
        if KEY_TYPES.contains(&kind) {
            (
                format!("the key does not parse ({e}): truncated or damaged base64?"),
                "paste the whole .pub line again".into(),
            )
        } else {
            (
                format!("unknown key type {kind:?}"),
                format!("use one of: {}", KEY_TYPES.join(", ")),
            )
        }
    })?;
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa.n.as_positive_bytes().map_or(0, |b| {
            b.len() * 8 - b.first().map_or(0, |x| x.leading_zeros() as usize)
        });
        if bits < 2048 {
            return Err((
                format!("an RSA key of {bits} bits is too weak"),
                "use an ed25519 key, or RSA of 2048 bits or more".into(),
            ));
        }
    }
    Ok((options, key))
}

/// Splits `opt="a b",opt2 rest` at the first space outside quotes.
fn split_options(line: &str) -> (String, &str) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return (line[..i].to_string(), &line[i..]),
            _ => {}
        }
    }
    (line.to_string(), "")
}

/// The authorized_keys file launch writes.
pub fn authorized_keys(keys: &[Key], source: &Path) -> String {
    let mut out = format!(
        "# Managed by launch from {}/*.pub: edits here are overwritten at every start and reload.\n",
        source.display()
    );
    for k in keys {
        let _ = writeln!(out, "# {}:{} {}", k.file.display(), k.line, k.fingerprint());
        let line = k.key.to_openssh().unwrap_or_default();
        match &k.options {
            Some(options) => {
                let _ = writeln!(out, "{options} {line}");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// What installing did.
#[derive(Debug, Default)]
pub struct Installed {
    /// Keys installed.
    pub keys: Vec<Key>,
    /// Refused lines (warnings).
    pub refused: Vec<SshError>,
    /// Where authorized_keys is.
    pub authorized_keys: PathBuf,
    /// The sshd config, when sshd runs.
    pub sshd_config: Option<PathBuf>,
    /// Host keys generated now (first start).
    pub generated: Vec<PathBuf>,
}

/// Installs the keys (and, with sshd, host keys and config). Every directory is held
/// open and every file written through it (see [`crate::volume::access`]): the
/// volume's writer and the ssh user, who owns its home and `~/.ssh`, cannot redirect a
/// write or a change of owner with a symlink, a FIFO or a swapped name.
pub fn install(
    ssh: &Ssh,
    volume: &Path,
    accounts: &Accounts,
    trust: &Trust,
) -> Result<Installed, SshError> {
    let user = accounts
        .user(&ssh.user)
        .ok_or_else(|| SshError::NoUser(ssh.user.clone()))?;
    let root_owned = |mode| Attributes::owned(mode, Some((0, 0)));
    let volume_dir = Dir::open_root(volume, true)?.ok_or_else(|| missing(volume))?;
    let source = held_dir(&volume_dir, "ssh", root_owned(0o700))?;
    let (keys, refused) = read_keys(&volume.join("ssh"), ssh.allow_options);
    let dot_ssh = user_ssh_dir(&user, trust)?;
    let authorized = dot_ssh.path().join("authorized_keys");
    atomic::write_in(
        &dot_ssh,
        OsStr::new("authorized_keys"),
        authorized_keys(&keys, &volume.join("ssh")).as_bytes(),
        Attributes::owned(0o600, Some((user.uid, user.gid))),
    )?;
    let mut installed = Installed {
        keys,
        refused,
        authorized_keys: authorized,
        ..Installed::default()
    };
    if ssh.sshd {
        let host = held_dir(&source, "host", root_owned(0o700))?;
        let mut keys = Vec::new();
        for kind in &ssh.host_keys {
            let name = OsStr::new(host_key_file(*kind));
            match host.lstat_name(name)? {
                None => {
                    generate_host_key(*kind, &host, name)?;
                    installed.generated.push(host.path().join(name));
                }
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
                Some(st) => {
                    return Err(SshError::Access(access::AccessError::NotRegular {
                        path: host.path().join(name),
                        kind: access::kind_of(st.st_mode),
                    }));
                }
            }
            keys.push(host.path().join(name));
        }
        atomic::write_in(
            &host,
            OsStr::new("sshd_config"),
            sshd_config(ssh, &keys).as_bytes(),
            root_owned(0o600),
        )?;
        // sshd's privilege separation directory.
        let run = Dir::resolve(Path::new("/run/sshd"), trust, true)?
            .ok_or_else(|| missing(Path::new("/run/sshd")))?;
        run.set_attributes(root_owned(0o755))?;
        installed.sshd_config = Some(host.path().join("sshd_config"));
    }
    Ok(installed)
}

fn missing(path: &Path) -> SshError {
    SshError::Io {
        path: path.into(),
        source: io::ErrorKind::NotFound.into(),
    }
}

/// The directory `name` in `parent`, created if missing, given `attrs` through its own
/// descriptor.
fn held_dir(parent: &Dir, name: &str, attrs: Attributes) -> Result<Dir, SshError> {
    let dir = parent
        .open_dir(Path::new(name), Some(attrs))?
        .ok_or_else(|| missing(&parent.path().join(name)))?;
    dir.set_attributes(attrs)?;
    Ok(dir)
}

/// The user's `~/.ssh`, 0700 and the user's. A missing home is created as the user's
/// (0750), so that the user can log in; an existing one is left as it is.
fn user_ssh_dir(user: &crate::users::User, trust: &Trust) -> Result<Dir, SshError> {
    let owner = Some((user.uid, user.gid));
    let (parent, name) = match (user.home.parent(), user.home.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        // A home of `/`: ~/.ssh is /.ssh.
        _ => (Path::new("/"), OsStr::new("")),
    };
    let parent = Dir::resolve(parent, trust, true)?.ok_or_else(|| missing(parent))?;
    let home = if name.is_empty() {
        parent
    } else {
        parent
            .open_dir(Path::new(name), Some(Attributes::owned(0o750, owner)))?
            .ok_or_else(|| missing(&user.home))?
    };
    held_dir(&home, ".ssh", Attributes::owned(0o700, owner))
}

/// The file name of a host key of `kind`, as OpenSSH names it.
fn host_key_file(kind: HostKey) -> &'static str {
    match kind {
        HostKey::Ed25519 => "ssh_host_ed25519_key",
        HostKey::Rsa => "ssh_host_rsa_key",
    }
}

/// Generates a host key pair as `name` and `name.pub` in `host`; the public half
/// first, so that a private key on disk always has its public key beside it.
fn generate_host_key(kind: HostKey, host: &Dir, name: &OsStr) -> Result<(), SshError> {
    let keygen = |e: ssh_key::Error| SshError::KeyGen(e.to_string());
    let rng = &mut ssh_key::rand_core::OsRng;
    let private = match kind {
        HostKey::Ed25519 => PrivateKey::random(rng, Algorithm::Ed25519).map_err(keygen)?,
        HostKey::Rsa => {
            let pair = RsaKeypair::random(rng, RSA_HOST_KEY_BITS).map_err(keygen)?;
            PrivateKey::new(KeypairData::from(pair), "").map_err(keygen)?
        }
    };
    let pem = private.to_openssh(LineEnding::LF).map_err(keygen)?;
    let public = private.public_key().to_openssh().map_err(keygen)?;
    let attrs = |mode| Attributes::owned(mode, Some((0, 0)));
    let mut public_name = name.to_os_string();
    public_name.push(".pub");
    atomic::write_in(
        host,
        &public_name,
        format!("{public}\n").as_bytes(),
        attrs(0o644),
    )?;
    atomic::write_in(host, name, pem.as_bytes(), attrs(0o600))?;
    Ok(())
}

/// OpenSSH's own default for a new RSA key.
const RSA_HOST_KEY_BITS: usize = 3072;

/// sshd's config: keys only, host keys from the volume.
pub fn sshd_config(ssh: &Ssh, host_keys: &[PathBuf]) -> String {
    let root = if ssh.user == "root" {
        "prohibit-password"
    } else {
        "no"
    };
    format!(
        "# Managed by launch: rewritten at every start.\n\
         Port {port}\n\
         {keys}\
         PermitRootLogin {root}\n\
         AllowUsers {user}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         UsePAM no\n\
         PidFile none\n\
         Subsystem sftp internal-sftp\n",
        port = ssh.port,
        keys = host_keys
            .iter()
            .map(|k| format!("HostKey {}\n", k.display()))
            .collect::<String>(),
        user = ssh.user,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE user@host";

    #[test]
    fn good_lines_and_every_kind_of_bad_one() {
        assert!(parse_line(ED, false).is_ok());
        let trunc = &ED[..60];
        assert!(
            parse_line(trunc, false)
                .unwrap_err()
                .0
                .contains("truncated")
        );
        assert!(
            parse_line("ssh-foo AAAA x", false)
                .unwrap_err()
                .0
                .contains("unknown key type")
        );
        assert!(
            parse_line(&format!("from=\"10.0.0.1\" {ED}"), false)
                .unwrap_err()
                .0
                .contains("options prefix")
        );
        let (options, _) =
            parse_line(&format!("command=\"echo hi there\",no-pty {ED}"), true).unwrap();
        assert_eq!(options.as_deref(), Some("command=\"echo hi there\",no-pty"));
        assert!(
            parse_line("-----BEGIN OPENSSH PRIVATE KEY-----", false)
                .unwrap_err()
                .0
                .contains("private key")
        );
        assert!(
            parse_line("ssh-dss AAAAB3NzaC1kc3MAAACBAP x", false)
                .unwrap_err()
                .0
                .contains("DSA")
        );
    }
}
