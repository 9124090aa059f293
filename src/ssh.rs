//! SSH access from the volume: every `ssh/*.pub` is validated and installed as the
//! `authorized_keys` of `ssh.user` (fully managed: removing a .pub removes the access);
//! with `ssh.sshd`, host keys are generated once into `data/ssh/host/` so the host's
//! identity survives re-creation of the container, and an sshd config is written for the
//! supervised `sshd -D -e`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::atomic::{self, Attributes};
use crate::spec::{HostKey, Ssh};
use crate::users::Accounts;

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

/// Installs the keys (and, with sshd, host keys and config).
pub fn install(ssh: &Ssh, volume: &Path, accounts: &Accounts) -> Result<Installed, SshError> {
    let user = accounts
        .user(&ssh.user)
        .ok_or_else(|| SshError::NoUser(ssh.user.clone()))?;
    let source = volume.join("ssh");
    make_dir(&source, 0o700, None)?;
    let (keys, refused) = read_keys(&source, ssh.allow_options);
    let dot_ssh = user.home.join(".ssh");
    make_dir(&dot_ssh, 0o700, Some((user.uid, user.gid)))?;
    let authorized = dot_ssh.join("authorized_keys");
    atomic::write(
        &authorized,
        authorized_keys(&keys, &source).as_bytes(),
        Attributes {
            mode: 0o600,
            uid: Some(user.uid),
            gid: Some(user.gid),
        },
    )?;
    let mut installed = Installed {
        keys,
        refused,
        authorized_keys: authorized,
        ..Installed::default()
    };
    if ssh.sshd {
        let host = source.join("host");
        make_dir(&host, 0o700, Some((0, 0)))?;
        let mut keys = Vec::new();
        for kind in &ssh.host_keys {
            let key = host.join(host_key_file(*kind));
            if !key.exists() {
                generate_host_key(*kind, &key)?;
                installed.generated.push(key.clone());
            }
            keys.push(key);
        }
        let config = host.join("sshd_config");
        atomic::write(
            &config,
            sshd_config(ssh, &keys).as_bytes(),
            Attributes {
                mode: 0o600,
                uid: Some(0),
                gid: Some(0),
            },
        )?;
        // sshd's privilege separation directory.
        make_dir(Path::new("/run/sshd"), 0o755, Some((0, 0)))?;
        installed.sshd_config = Some(config);
    }
    Ok(installed)
}

/// The file name of a host key of `kind`, as OpenSSH names it.
fn host_key_file(kind: HostKey) -> &'static str {
    match kind {
        HostKey::Ed25519 => "ssh_host_ed25519_key",
        HostKey::Rsa => "ssh_host_rsa_key",
    }
}

/// Generates a host key pair into `key` and `key.pub`; the public half first, so that a
/// private key on disk always has its public key beside it.
fn generate_host_key(kind: HostKey, key: &Path) -> Result<(), SshError> {
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
    let attrs = |mode| Attributes {
        mode,
        uid: Some(0),
        gid: Some(0),
    };
    atomic::write(
        &key.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        attrs(0o644),
    )?;
    atomic::write(key, pem.as_bytes(), attrs(0o600))?;
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

fn make_dir(dir: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<(), SshError> {
    let io = |source| SshError::Io {
        path: dir.into(),
        source,
    };
    if let Ok(meta) = fs::symlink_metadata(dir) {
        if meta.file_type().is_symlink() {
            return Err(io(io::Error::other(
                "is a symlink; launch does not follow it",
            )));
        }
    } else {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(io)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io)?;
    }
    Ok(())
}
