//! How the end of a child becomes launch's own exit code.
//!
//! The shell convention (and tini's, and Docker's): a process that exited reports its
//! code; one killed by signal N reports 128+N, so `docker stop` on a process that dies
//! of SIGTERM shows 143.

use std::collections::BTreeMap;
use std::fmt;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

/// launch's own exit codes, from sysexits(3) where one fits.
pub mod code {
    /// The command line was wrong (EX_USAGE).
    pub const USAGE: i32 = 64;
    /// A running launch could not be reached (EX_UNAVAILABLE).
    pub const UNAVAILABLE: i32 = 69;
    /// Refused for lack of permission (EX_NOPERM).
    pub const NO_PERMISSION: i32 = 77;
    /// Something inside launch failed that is not the user's doing (EX_SOFTWARE).
    pub const INTERNAL: i32 = 70;
    /// A file could not be created (EX_CANTCREAT).
    pub const CANT_CREATE: i32 = 73;
    /// An input or output error on a file (EX_IOERR): a rolled-back reload could not
    /// put every previous file back.
    pub const IO_ERROR: i32 = 74;
    /// The configuration is wrong (EX_CONFIG).
    pub const CONFIG: i32 = 78;
    /// A reload was applied and then rolled back: a process it touched did not come
    /// back ready, and the previous configuration runs again. launch's own (sysexits(3)
    /// has none that fits: nothing is wrong with the request's form, and retrying it
    /// as it is fails again).
    pub const ROLLED_BACK: i32 = 79;
    /// The command exists but could not be executed (the shell's code).
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The command was not found (the shell's code).
    pub const NOT_FOUND: i32 = 127;
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called exit with this code.
    Code(i32),
    /// This signal killed it.
    Signal(i32),
}

impl Exit {
    /// Reads a `waitpid` status; `None` for stops and continues, which are not an end.
    pub fn from_wait(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, signal, _) => Some(Exit::Signal(signal as i32)),
            _ => None,
        }
    }

    /// The shell-style code: the exit code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }

    /// True for `exit 0`.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => match Signal::try_from(signal) {
                Ok(s) => write!(f, "killed by {} (code {})", s.as_str(), 128 + signal),
                Err(_) => write!(f, "killed by signal {signal} (code {})", 128 + signal),
            },
        }
    }
}

/// `--exit-remap FROM:TO` rules, as tini's `-e`: turn an expected code (143 after a
/// SIGTERM) into success, or any code into another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remap(BTreeMap<i32, i32>);

/// A `FROM:TO` rule that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid exit remap {0:?}: write FROM:TO with codes from 0 to 255, e.g. 143:0")]
pub struct RemapError(pub String);

impl Remap {
    /// Parses one `FROM:TO` rule.
    pub fn parse_rule(text: &str) -> Result<(i32, i32), RemapError> {
        let bad = || RemapError(text.to_string());
        let (from, to) = text.split_once(':').ok_or_else(bad)?;
        let code = |s: &str| s.trim().parse::<u8>().map(i32::from).map_err(|_| bad());
        Ok((code(from)?, code(to)?))
    }

    /// Builds the table from rules; a later rule for the same code wins.
    pub fn new(rules: impl IntoIterator<Item = (i32, i32)>) -> Remap {
        Remap(rules.into_iter().collect())
    }

    /// The code launch exits with for this child code.
    pub fn apply(&self, code: i32) -> i32 {
        self.0.get(&code).copied().unwrap_or(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    #[test]
    fn signals_become_128_plus_n() {
        let pid = Pid::from_raw(2);
        let killed = Exit::from_wait(WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert_eq!(killed.map(Exit::code), Some(137));
        let exited = Exit::from_wait(WaitStatus::Exited(pid, 3));
        assert_eq!(exited.map(Exit::code), Some(3));
        assert_eq!(Exit::from_wait(WaitStatus::StillAlive), None);
        assert_eq!(Exit::Signal(15).to_string(), "killed by SIGTERM (code 143)");
    }

    #[test]
    fn remap_rules() {
        assert_eq!(Remap::parse_rule("143:0"), Ok((143, 0)));
        assert!(Remap::parse_rule("143").is_err());
        assert!(Remap::parse_rule("300:0").is_err());
        assert!(Remap::parse_rule("a:b").is_err());
        let remap = Remap::new([(143, 0), (1, 2)]);
        assert_eq!(remap.apply(143), 0);
        assert_eq!(remap.apply(1), 2);
        assert_eq!(remap.apply(3), 3);
    }
}
