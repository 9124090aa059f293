//! What a reload replaced, and putting it back: a reload is a transaction. The worker
//! that writes the templates' outputs keeps, for each one it replaces, the bytes, mode
//! and owner that were there (read through a held directory when the outputs were
//! compared: [`crate::config::render`]); it hands them to the supervisor with its
//! answer. When the processes the reload touched do not come back, the supervisor hands
//! them to a second worker, which puts each file back the way every file is written
//! ([`crate::volume::atomic`]: staged under an unpredictable name, owner and mode set on
//! the descriptor, renamed inside the held directory), or removes the file the reload
//! created. Nothing here ever writes by a path through a directory others can change.
//!
//! The kept bytes cross two pipes as JSON: UTF-8 text as it is, anything else as hex.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::volume::access::{Attributes, Trust};
use crate::volume::atomic;

/// One output as it was before a reload wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// The output's destination.
    pub dest: PathBuf,
    /// What was there; `None`: nothing (the reload created the file).
    pub was: Option<Was>,
}

/// A file's content, mode and owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Was {
    /// Its bytes.
    pub content: Content,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// Bytes as JSON carries them compactly: text as text, anything else as hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// Valid UTF-8.
    Text(String),
    /// Anything else, two hex digits a byte.
    Hex(String),
}

impl Content {
    /// `bytes`, in the compact form.
    pub fn new(bytes: Vec<u8>) -> Content {
        match String::from_utf8(bytes) {
            Ok(text) => Content::Text(text),
            Err(e) => Content::Hex(e.as_bytes().iter().map(|b| format!("{b:02x}")).collect()),
        }
    }

    /// The bytes again; `None` for hex that launch did not write.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Content::Text(text) => Some(text.as_bytes().to_vec()),
            Content::Hex(hex) => {
                let digits = hex.as_bytes();
                if digits.len() % 2 != 0 {
                    return None;
                }
                digits
                    .chunks(2)
                    .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                    .collect()
            }
        }
    }
}

/// What putting the files back came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// `put back PATH` or `removed PATH (...)`, one per file.
    pub done: Vec<String>,
    /// Each file that could not be put back, with why and what to do.
    pub errors: Vec<String>,
}

/// Puts every file of `files` back as it was, the last written first; a file that
/// cannot be is reported and the others are still put back.
pub fn restore(files: &[Previous], trust: &Trust) -> Restored {
    let mut out = Restored::default();
    for previous in files.iter().rev() {
        match restore_one(previous, trust) {
            Ok(done) => out.done.push(done),
            Err(why) => out.errors.push(format!(
                "{}: cannot put the previous file back: {why}\n  fix: the file holds the refused configuration; correct configuration/pillar.yml and reload, or restart the container",
                previous.dest.display()
            )),
        }
    }
    out
}

fn restore_one(previous: &Previous, trust: &Trust) -> Result<String, String> {
    let dest = &previous.dest;
    let Some(was) = &previous.was else {
        let (dir, name) = atomic::parent_of(dest, trust, false).map_err(|e| e.to_string())?;
        if let Some(dir) = dir {
            dir.remove_file(name).map_err(|e| e.to_string())?;
            dir.sync();
        }
        return Ok(format!(
            "removed {} (the reload had created it)",
            dest.display()
        ));
    };
    let bytes = was
        .content
        .bytes()
        .ok_or_else(|| "the kept copy is damaged".to_string())?;
    let attrs = Attributes::owned(was.mode, Some((was.uid, was.gid)));
    atomic::write(dest, &bytes, attrs, trust).map_err(|e| e.to_string())?;
    Ok(format!("put back {}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn content_round_trips_text_and_bytes() {
        for bytes in [b"port=80\n".to_vec(), vec![0xff, 0x00, 0x41], Vec::new()] {
            let content = Content::new(bytes.clone());
            let json = serde_json::to_string(&content).unwrap();
            let back: Content = serde_json::from_str(&json).unwrap();
            assert_eq!(back.bytes(), Some(bytes));
        }
        assert!(matches!(Content::new(b"a".to_vec()), Content::Text(_)));
        assert_eq!(Content::Hex("abc".into()).bytes(), None);
        assert_eq!(Content::Hex("zz".into()).bytes(), None);
    }

    #[test]
    fn files_are_put_back_with_their_mode_and_created_ones_removed() {
        let dir = std::env::temp_dir().join(format!("launch-rollback-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let kept = dir.join("kept.conf");
        let made = dir.join("made.conf");
        fs::write(&kept, "new").unwrap();
        fs::write(&made, "new").unwrap();
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let files = [
            Previous {
                dest: kept.clone(),
                was: Some(Was {
                    content: Content::new(b"old\n".to_vec()),
                    mode: 0o640,
                    uid,
                    gid,
                }),
            },
            Previous {
                dest: made.clone(),
                was: None,
            },
        ];
        let restored = restore(&files, &Trust::default());
        assert!(restored.errors.is_empty(), "{:?}", restored.errors);
        assert_eq!(restored.done.len(), 2);
        assert_eq!(fs::read_to_string(&kept).unwrap(), "old\n");
        assert_eq!(
            fs::metadata(&kept).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert!(!made.exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
