//! Reading a file that someone other than launch may have written (the image's account
//! database, the volume's `ssh/*.pub`): only a regular file, never through a symlink in
//! its last component, and never more than a limit. A FIFO or a device in its place
//! must not stall PID 1, and a huge file must not exhaust its memory: the file is opened
//! `O_NONBLOCK` and `fstat`ed before a byte is read.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag};
use nix::sys::stat::Mode;

/// Why a file was not read. The messages name no path: the caller says which file, and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Nothing by that name.
    #[error("does not exist")]
    Missing,
    /// A symlink: launch does not follow it.
    #[error("is a symlink, which launch does not follow")]
    Symlink,
    /// A directory, FIFO, socket or device.
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than the limit (or grew past it while being read).
    #[error("is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Anything else the system refused.
    #[error("cannot be read: {0}")]
    Io(#[from] io::Error),
}

/// Reads `path` (relative to `dir` when given, else to the working directory), at most
/// `limit` bytes.
pub fn read(dir: Option<BorrowedFd<'_>>, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(dir.unwrap_or(AT_FDCWD), path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(ReadError::Missing),
        Err(Errno::ELOOP) => return Err(ReadError::Symlink),
        Err(e) => return Err(ReadError::Io(e.into())),
    };
    let stat = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
    let kind = match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("directory"),
        libc::S_IFIFO => Some("FIFO"),
        libc::S_IFSOCK => Some("socket"),
        libc::S_IFCHR | libc::S_IFBLK => Some("device"),
        _ => Some("special file"),
    };
    if let Some(kind) = kind {
        return Err(ReadError::NotRegular(kind));
    }
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut bytes = Vec::new();
    // One byte past the limit tells a file that grew since the fstat.
    File::from(fd)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_regular_files_within_the_limit() {
        let dir = std::env::temp_dir().join(format!("launch-bounded-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("small"), "abc").unwrap();
        std::os::unix::fs::symlink(dir.join("small"), dir.join("link")).unwrap();
        nix::unistd::mkfifo(&dir.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read(None, &dir.join("small"), 3).unwrap(), b"abc");
        assert!(matches!(
            read(None, &dir.join("small"), 2),
            Err(ReadError::TooLarge { limit: 2 })
        ));
        assert!(matches!(
            read(None, &dir.join("link"), 10),
            Err(ReadError::Symlink)
        ));
        // Would block forever without O_NONBLOCK: no writer ever comes.
        assert!(matches!(
            read(None, &dir.join("fifo"), 10),
            Err(ReadError::NotRegular("FIFO"))
        ));
        assert!(matches!(
            read(None, &dir, 10),
            Err(ReadError::NotRegular("directory"))
        ));
        assert!(matches!(
            read(None, &dir.join("none"), 10),
            Err(ReadError::Missing)
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
