//! SSH access from the volume: every `ssh/*.pub` is validated and installed as the
//! `authorized_keys` of `ssh.user` (fully managed: removing a .pub removes the access);
//! with `ssh.sshd`, host keys are generated once into `data/ssh/host/` so the host's
//! identity survives re-creation of the container, and an sshd config is written for the
//! supervised `sshd -D -e`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::volume::access::{self, Dir, Trust};
use crate::volume::atomic::{self, Attributes};
use crate::volume::users::Accounts;

/// SSH access from the volume's `ssh/*.pub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ssh {
    /// Whose `authorized_keys` launch manages.
    pub user: String,
    /// Run and supervise sshd.
    pub sshd: bool,
    /// sshd's port.
    pub port: u16,
    /// Allow `from=`, `command=`, ... option prefixes in keys.
    pub allow_options: bool,
    /// The host key types sshd gets, each generated once into the volume.
    pub host_keys: Vec<HostKey>,
}

/// A type of sshd host key launch generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKey {
    /// Ed25519: small, fast, what every current client prefers.
    Ed25519,
    /// RSA (3072 bits, OpenSSH's default), for clients that know nothing newer.
    Rsa,
}

mod keys;
pub use keys::{Key, read_keys};

/// The sshd launch runs.
pub const SSHD: &str = "/usr/sbin/sshd";

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
    /// A whole .pub file is refused (reported once; none of its lines is shown).
    #[error("{file}: {reason}; no key of this file is installed\n  fix: {fix}")]
    BadFile {
        /// The .pub file (a name that is not plain text is shown escaped).
        file: PathBuf,
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
fn user_ssh_dir(user: &crate::volume::users::User, trust: &Trust) -> Result<Dir, SshError> {
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
