//! `secret(name=...)`: a value from `/run/secrets/NAME` (Docker and Kubernetes mount
//! them there), never shown by launch. With `generate=N`, a secret that nobody provided
//! is made once, N random letters and digits, and kept in the volume
//! (`configuration/secrets/NAME`, root's, 0600 in a 0700 directory): a database password
//! need not be shipped or typed, and survives the container. The operator may write
//! their own value there instead.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::volume::access::{self, Dir, Trust};
use crate::volume::atomic::{self, Attributes};

/// Where secrets are read from unless `$LAUNCH_SECRETS_DIR` says otherwise.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Where generated secrets are kept, relative to the volume.
pub const STORE: &str = "configuration/secrets";

/// The most a generated secret may be asked to hold.
const MAX_GENERATED: usize = 4096;

/// What one configuration run read and made.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The volume, where generated secrets are kept (`None`: nowhere to keep them).
    pub volume: Option<PathBuf>,
    /// Every value read or made (to mask them in what launch shows).
    pub known: Vec<String>,
    /// Secrets made by this run and not yet stored: (name, value).
    pub generated: Vec<(String, String)>,
}

impl Secrets {
    /// The value of secret `name`: provided, kept in the volume, or (with `generate`)
    /// made now, to be stored by [`store`].
    pub fn lookup(&mut self, name: &str, generate: Option<usize>) -> Result<String, String> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!("secret name {name:?} must be a plain file name"));
        }
        let value = match (provided(name)?, generate) {
            (Some(value), _) => value,
            (None, None) => {
                return Err(format!(
                    "secret {name:?} is not in {}: create it with `docker secret create {name} -`, \
                     mount a Kubernetes Secret there, or let launch make it once: \
                     secret(name=\"{name}\", generate=32)",
                    secrets_dir().display()
                ));
            }
            (None, Some(length)) => self.kept_or_made(name, length)?,
        };
        self.known.push(value.clone());
        Ok(value)
    }

    fn kept_or_made(&mut self, name: &str, length: usize) -> Result<String, String> {
        if let Some((_, value)) = self.generated.iter().find(|(n, _)| n == name) {
            return Ok(value.clone());
        }
        if length == 0 || length > MAX_GENERATED {
            return Err(format!(
                "secret {name:?}: generate takes a length from 1 to {MAX_GENERATED}"
            ));
        }
        if let Some(volume) = &self.volume {
            let rel = Path::new(STORE).join(name);
            match access::read_beneath(volume, &rel, access::max_file_size()) {
                Ok(Some(bytes)) => {
                    return Ok(trimmed(String::from_utf8_lossy(&bytes).into_owned()));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(format!(
                        "secret {name:?}: {}: {}",
                        volume.join(&rel).display(),
                        e.reason()
                    ));
                }
            }
        }
        let value = random_text(length);
        self.generated.push((name.to_string(), value.clone()));
        Ok(value)
    }
}

fn secrets_dir() -> PathBuf {
    std::env::var_os("LAUNCH_SECRETS_DIR").map_or_else(|| PathBuf::from(SECRETS_DIR), PathBuf::from)
}

/// A provided secret: `None` when there is no such file.
fn provided(name: &str) -> Result<Option<String>, String> {
    let path = secrets_dir().join(name);
    // Read like every other file launch did not write: never a FIFO, never unbounded,
    // symlinks only where nobody but root could plant them (a Kubernetes Secret's
    // read-only `..data` links are fine).
    match access::read_path(&path, &Trust::default(), access::max_file_size()) {
        Ok(Some(bytes)) => String::from_utf8(bytes)
            .map(|v| Some(trimmed(v)))
            .map_err(|_| format!("secret {name:?} in {}: is not UTF-8 text", path.display())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!(
            "secret {name:?} cannot be read from {}: {}",
            path.display(),
            e.reason()
        )),
    }
}

/// The value without its one trailing newline.
fn trimmed(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// `length` letters and digits from the kernel's random pool (rejection sampling: every
/// character equally likely).
fn random_text(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(length);
    while out.len() < length {
        for byte in access::random_u64().to_ne_bytes() {
            // 62 * 4 = 248: bytes from 248 up would favour the first letters.
            if byte < 248 && out.len() < length {
                out.push(ALPHABET[(byte % 62) as usize] as char);
            }
        }
    }
    out
}

/// Keeps the secrets this run made in the volume, each only if nobody wrote one since.
/// Returns their paths.
pub fn store(
    volume: &Path,
    generated: &[(String, String)],
) -> Result<Vec<PathBuf>, atomic::AtomicError> {
    if generated.is_empty() {
        return Ok(Vec::new());
    }
    let root = Attributes::owned(0o700, Some((0, 0)));
    let dir = Dir::open_root(volume, true)?
        .ok_or_else(|| access::AccessError::Io {
            path: volume.into(),
            op: "open the volume",
            source: io::ErrorKind::NotFound.into(),
        })?
        .open_dir(Path::new(STORE), Some(root))?
        .ok_or_else(|| access::AccessError::Io {
            path: volume.join(STORE),
            op: "create",
            source: io::ErrorKind::NotFound.into(),
        })?;
    dir.set_attributes(root)?;
    let mut stored = Vec::new();
    for (name, value) in generated {
        let name = OsStr::new(name);
        if dir.lstat_name(name)?.is_none() {
            atomic::write_in(
                &dir,
                name,
                format!("{value}\n").as_bytes(),
                Attributes::owned(0o600, Some((0, 0))),
            )?;
            stored.push(dir.path().join(name));
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_text_is_letters_and_digits_of_the_length_asked() {
        let a = random_text(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, random_text(32));
    }

    #[test]
    fn one_run_makes_a_secret_once() {
        let mut s = Secrets::default();
        // SAFETY of the test: the variable is this test's own name space.
        let first = s.lookup("launch-test-none-such", Some(16)).unwrap();
        let again = s.lookup("launch-test-none-such", Some(16)).unwrap();
        assert_eq!(first, again);
        assert_eq!(s.generated.len(), 1);
        let err = s.lookup("launch-test-none-such-2", None).unwrap_err();
        assert!(err.contains("generate=32"), "{err}");
        assert!(s.lookup("../x", Some(8)).is_err());
    }
}
