//! Reading the volume's `ssh/*.pub`: every line checked as one OpenSSH public key, every
//! refusal reported by file and line with a reason, never with the line's text.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};

use super::SshError;
use crate::volume::access::{self, AccessError};

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

/// The most launch reads of one `.pub` file: a hundred of the largest RSA keys.
const PUB_LIMIT: u64 = 256 << 10;

/// Reads every `*.pub` in `dir`: the accepted keys, and every refused line or file with
/// its reason. A refusal names the file and line, never what the line holds: a private
/// key pasted by mistake must not end up in the logs.
pub fn read_keys(dir: &Path, allow_options: bool) -> (Vec<Key>, Vec<SshError>) {
    let mut keys = Vec::new();
    let mut bad = Vec::new();
    // The volume is the configured root; ssh/ in it is the operator's, never a symlink.
    let opened = match (dir.parent(), dir.file_name()) {
        (Some(volume), Some(name)) => access::Dir::open_root(volume, true)
            .and_then(|v| v.map_or(Ok(None), |v| v.open_dir(Path::new(name), None))),
        _ => access::Dir::open_root(dir, true),
    };
    let held = match opened {
        Ok(Some(held)) => held,
        Ok(None) => return (keys, bad),
        Err(e) => {
            let reason = match e {
                AccessError::Symlink { .. } | AccessError::NotDirectory { .. } => {
                    "is a symlink or not a directory".to_string()
                }
                e => e.reason(),
            };
            bad.push(SshError::BadFile {
                file: dir.into(),
                reason,
                fix: "make ssh/ a plain directory in the volume, holding the .pub files".into(),
            });
            return (keys, bad);
        }
    };
    let names: Vec<OsString> = held
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.as_bytes().ends_with(b".pub"))
        .collect();
    for name in names {
        // A name that is not plain text would be written as is into the logs and into
        // the comments of authorized_keys: a newline in it could forge either.
        let Some(plain) = name.to_str().filter(|n| !n.chars().any(char::is_control)) else {
            bad.push(SshError::BadFile {
                file: dir.join(name.to_string_lossy().escape_debug().to_string()),
                reason: "its name holds a control character or is not UTF-8".into(),
                fix: "rename it to plain text, e.g. alice.pub".into(),
            });
            continue;
        };
        let file = dir.join(plain);
        match held.read_file(OsStr::new(plain), PUB_LIMIT) {
            Ok(Some(bytes)) => read_file(&file, &bytes, allow_options, &mut keys, &mut bad),
            Ok(None) => {}
            Err(e) => {
                let fix = match e {
                    AccessError::Symlink { .. } => {
                        "copy the key file into ssh/ instead of linking it"
                    }
                    AccessError::TooLarge { .. } => "a .pub file holds public key lines only",
                    _ => "make it a regular file of public key lines",
                };
                let reason = e.reason();
                bad.push(SshError::BadFile {
                    file,
                    reason,
                    fix: fix.into(),
                });
            }
        }
    }
    (keys, bad)
}

/// The keys of one file's `bytes`: each line stands alone, so a line that is not UTF-8
/// costs that line only.
fn read_file(
    file: &Path,
    bytes: &[u8],
    allow_options: bool,
    keys: &mut Vec<Key>,
    bad: &mut Vec<SshError>,
) {
    if let Some(kind) = private_key(bytes) {
        bad.push(SshError::BadFile {
            file: file.into(),
            reason: format!("it holds {kind}"),
            fix: "never put a private key in the volume: delete this file, put the public \
                  half there instead (ssh-keygen -y -f KEY), and replace the key wherever \
                  it is used, since it has leaked"
                .into(),
        });
        return;
    }
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let refuse = |(reason, fix): (String, String)| SshError::BadKey {
            file: file.into(),
            line: i + 1,
            reason,
            fix,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line.trim(),
            Err(e) => {
                bad.push(refuse((
                    format!("not UTF-8 text (byte {})", e.valid_up_to() + 1),
                    "save the file as UTF-8 (or plain ASCII), comments included".into(),
                )));
                continue;
            }
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, allow_options) {
            Ok((options, key)) => keys.push(Key {
                file: file.into(),
                line: i + 1,
                options,
                key,
            }),
            Err(why) => bad.push(refuse(why)),
        }
    }
}

/// What kind of private key `bytes` hold, if any: a fixed description, never text from
/// the file.
fn private_key(bytes: &[u8]) -> Option<&'static str> {
    let has = |line: &[u8], needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    bytes.split(|&b| b == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        if line.starts_with(b"PuTTY-User-Key-File-") {
            return Some("a PuTTY private key");
        }
        // The first base64 line of an OpenSSH private key ("openssh-key-v1\0"), for a
        // key whose header was not copied along.
        if line.starts_with(b"b3BlbnNzaC1rZXktdjEA") {
            return Some("an OpenSSH private key (without its header line)");
        }
        if !has(line, b"PRIVATE KEY") {
            return None;
        }
        Some(if has(line, b"OPENSSH PRIVATE") {
            "an OpenSSH private key"
        } else if has(line, b"RSA PRIVATE") {
            "an RSA private key (PEM)"
        } else if has(line, b"EC PRIVATE") {
            "an EC private key (PEM)"
        } else if has(line, b"DSA PRIVATE") {
            "a DSA private key (PEM)"
        } else if has(line, b"SSH2 ENCRYPTED PRIVATE") {
            "an SSH2 (ssh.com) private key"
        } else if has(line, b"ENCRYPTED PRIVATE") {
            "an encrypted PKCS#8 private key"
        } else if has(line, b"BEGIN PRIVATE") {
            "a PKCS#8 private key"
        } else {
            "a private key"
        })
    })
}

/// Option names OpenSSH knows in authorized_keys: the only words of a refused line that
/// a message may repeat (they are launch's vocabulary, not the line's content).
const OPTION_NAMES: [&str; 19] = [
    "agent-forwarding",
    "cert-authority",
    "command",
    "environment",
    "expiry-time",
    "from",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-X11-forwarding",
    "permitlisten",
    "permitopen",
    "port-forwarding",
    "principals",
    "pty",
    "restrict",
    "tunnel",
    "verify-required",
];

/// One authorized_keys line: (options, key) or (reason, fix). No reason quotes the
/// line: it may be a secret pasted by mistake.
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
    if let Some(at) = line.find(|c: char| c.is_control() && c != '\t') {
        return Err((
            format!("a control character (at byte {})", at + 1),
            "keep the line to the key's type, its base64 and a plain-text comment".into(),
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
            let name = options.split(['=', ',']).next().unwrap_or("");
            let reason = match OPTION_NAMES.iter().find(|o| o.eq_ignore_ascii_case(name)) {
                Some(known) => format!("an options prefix ({known}) is not allowed"),
                None => "an options prefix is not allowed".into(),
            };
            return Err((
                reason,
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
        if !KEY_TYPES.contains(&kind) {
            (
                "unknown key type (the line does not start with one launch accepts)".into(),
                format!("use one of: {}", KEY_TYPES.join(", ")),
            )
        } else if matches!(e, ssh_key::Error::AlgorithmUnknown) {
            (
                "the key does not parse: its data is of another type than its first word says"
                    .into(),
                "paste the whole .pub line again".into(),
            )
        } else {
            (
                "the key does not parse: truncated or damaged base64?".into(),
                "paste the whole .pub line again".into(),
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
            parse_line(&format!("{ED}\x1b[2J"), false)
                .unwrap_err()
                .0
                .contains("control character")
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

    #[test]
    fn no_refusal_repeats_what_the_line_holds() {
        // Each holds a word that must not come back: base64 of a private key, a
        // comment, an option's value, an unknown type.
        let lines = [
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "QyNTUxOQAAACANE/KRS5hVH9RzxA8UVxbCHK/xL3P0PwqfHr8DQppz8gAAAJhnpeN7Z6Xj",
            "ssh-rsa c2VjcmV0LXBheWxvYWQ secret-comment",
            "ssh-unknown c2VjcmV0LXBheWxvYWQ secret-comment",
            "from=\"secret-net\" ssh-ed25519 c2VjcmV0LXBheWxvYWQ secret-comment",
            "secret-option=1 ssh-ed25519 c2VjcmV0LXBheWxvYWQ secret-comment",
        ];
        for line in lines {
            let (reason, fix) = parse_line(line, false).unwrap_err();
            for word in line.split([' ', '"', '=']).filter(|w| w.len() > 4) {
                assert!(!reason.contains(word), "{word:?} in {reason:?}");
                assert!(!fix.contains(word), "{word:?} in {fix:?}");
            }
        }
    }

    #[test]
    fn a_private_key_is_one_refusal_and_a_bad_byte_one_line() {
        let file = Path::new("/v/ssh/k.pub");
        let read = |bytes: &[u8]| {
            let (mut keys, mut bad) = (Vec::new(), Vec::new());
            read_file(file, bytes, false, &mut keys, &mut bad);
            let bad: Vec<String> = bad.iter().map(ToString::to_string).collect();
            (keys.iter().map(|k| k.line).collect::<Vec<_>>(), bad)
        };
        let pem = format!(
            "{ED}\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----\n"
        );
        let (keys, bad) = read(pem.as_bytes());
        assert!(keys.is_empty());
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("/v/ssh/k.pub: it holds an RSA private key (PEM)"));
        assert!(!bad[0].contains("MIIE"), "{bad:?}");

        let mut latin = format!("{ED}\n").into_bytes();
        latin.extend_from_slice(b"ssh-ed25519 AAAA caf\xe9\r\n\n# comment\r\n");
        latin.extend_from_slice(format!("{ED}\r\n").as_bytes());
        let (keys, bad) = read(&latin);
        assert_eq!(keys, [1, 5]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("/v/ssh/k.pub:2: not UTF-8 text (byte 21)"));

        for (text, kind) in [
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "an OpenSSH private key",
            ),
            ("-----BEGIN PRIVATE KEY-----", "a PKCS#8 private key"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                "an encrypted PKCS#8",
            ),
            ("-----BEGIN EC PRIVATE KEY-----", "an EC private key"),
            ("PuTTY-User-Key-File-3: ssh-ed25519", "a PuTTY private key"),
            (
                "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u",
                "without its header",
            ),
        ] {
            let found = private_key(format!("{ED}\n{text}\n").as_bytes());
            assert!(found.is_some_and(|k| k.contains(kind)), "{text}: {found:?}");
        }
        assert_eq!(private_key(ED.as_bytes()), None);
    }
}
