//! What a reload came to, as `launch reload` answers it, the log says it and `launch
//! status` shows it: when, the result (and its cause), and what changed (files, SSH keys
//! by fingerprint, processes restarted or signalled, what a rollback put back), with
//! the warnings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::configure_worker::SshKey;
use crate::exit::code;

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Adopted, and every process it touched came back ready.
    Reloaded,
    /// Not valid: nothing changed.
    Refused,
    /// Its worker was killed or died: nothing adopted.
    Abandoned,
    /// Applied, then undone: the previous files and spec run again.
    RolledBack,
    /// Undone, but not every previous file could be put back.
    RollbackIncomplete,
}

impl Ended {
    /// In a word or two, as the metrics label it.
    pub(super) fn word(self) -> &'static str {
        match self {
            Ended::Reloaded => "reloaded",
            Ended::Refused => "refused",
            Ended::Abandoned => "abandoned",
            Ended::RolledBack | Ended::RollbackIncomplete => "rolled back",
        }
    }

    /// The exit code of `launch reload`.
    pub(super) fn exit_code(self) -> i32 {
        match self {
            Ended::Reloaded => 0,
            Ended::Refused | Ended::Abandoned => code::CONFIG,
            Ended::RolledBack => code::ROLLED_BACK,
            Ended::RollbackIncomplete => code::IO_ERROR,
        }
    }
}

/// One reload, from its worker's answer to its end.
#[derive(Debug, Clone)]
pub(super) struct LastReload {
    /// When it ended.
    pub(super) at: SystemTime,
    /// How.
    pub(super) result: Ended,
    /// Why it was refused, abandoned or rolled back, in one line.
    pub(super) why: Option<String>,
    /// The errors behind it, each as the user sees it.
    pub(super) errors: Vec<String>,
    /// What it changed: files, keys, processes, other details.
    pub(super) changes: Vec<String>,
    /// What it warned of (refused SSH key lines, ...).
    pub(super) warnings: Vec<String>,
    /// What its rollback did: files put back, processes restarted.
    pub(super) rollback: Vec<String>,
}

impl LastReload {
    /// A reload that has not ended yet.
    pub(super) fn new(result: Ended) -> LastReload {
        LastReload {
            at: SystemTime::now(),
            result,
            why: None,
            errors: Vec::new(),
            changes: Vec::new(),
            warnings: Vec::new(),
            rollback: Vec::new(),
        }
    }

    /// The result in one line: `reloaded`, `rolled back: app exited (exit code 1); ...`.
    pub(super) fn headline(&self) -> String {
        match &self.why {
            Some(why) => format!("{}: {why}", self.result.word()),
            None => self.result.word().to_string(),
        }
    }

    /// Every line under the headline, in order: what changed, the warnings, the errors,
    /// what the rollback did.
    pub(super) fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .changes
            .iter()
            .chain(&self.warnings)
            .chain(&self.errors)
            .chain(&self.rollback)
            .cloned()
            .collect();
        if lines.is_empty() && self.result == Ended::Reloaded {
            lines.push("nothing changed".into());
        }
        lines
    }

    /// The answer to `launch reload`: each line, then the headline.
    pub(super) fn answer(&self) -> String {
        let mut out: String = self.lines().iter().map(|l| format!("{l}\n")).collect();
        out.push_str(&self.headline());
        out.push('\n');
        out
    }

    /// `last reload: 2026-12-02T18:57:03Z (40 s ago): reloaded` and its lines, indented.
    pub(super) fn describe(&self) -> String {
        let ago = self.at.elapsed().map_or(0, |d| d.as_secs());
        let when = self
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = format!(
            "last reload: {} ({ago} s ago): {}\n",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(when)),
            self.headline()
        );
        for line in self.lines() {
            out.push_str(&indent(&line));
        }
        out
    }

    /// The same, for the log: the headline, then each line indented.
    pub(super) fn log_lines(&self) -> Vec<String> {
        let mut out = vec![format!("reload: {}", self.headline())];
        out.extend(
            self.lines()
                .iter()
                .map(|l| indent(l).trim_end().to_string()),
        );
        out
    }
}

/// `line` (which may hold several) indented by two spaces, ending in a newline.
fn indent(line: &str) -> String {
    line.lines().map(|l| format!("  {l}\n")).collect()
}

/// The keys a reload added and removed, by fingerprint: `ssh key added SHA256:... (FILE:LINE)`.
/// `None`: no SSH access managed (before, or now).
pub(super) fn key_changes(before: Option<&[SshKey]>, now: Option<&[SshKey]>) -> Vec<String> {
    let (before, now) = (before.unwrap_or_default(), now.unwrap_or_default());
    let has = |keys: &[SshKey], key: &SshKey| keys.iter().any(|k| k.fingerprint == key.fingerprint);
    let added = now
        .iter()
        .filter(|k| !has(before, k))
        .map(|k| format!("ssh key added {} ({})", k.fingerprint, k.from));
    let removed = before
        .iter()
        .filter(|k| !has(now, k))
        .map(|k| format!("ssh key removed {} ({})", k.fingerprint, k.from));
    added.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fingerprint: &str, from: &str) -> SshKey {
        SshKey {
            fingerprint: fingerprint.into(),
            from: from.into(),
        }
    }

    #[test]
    fn keys_added_and_removed_by_fingerprint() {
        let alice = key("SHA256:a", "/v/ssh/alice.pub:1");
        let bob = key("SHA256:b", "/v/ssh/bob.pub:1");
        let alice_moved = key("SHA256:a", "/v/ssh/team.pub:3");
        #[rustfmt::skip]
        type Keys = Option<Vec<SshKey>>;
        let table: Vec<(Keys, Keys, Vec<&str>)> = vec![
            (None, None, vec![]),
            (
                None,
                Some(vec![alice.clone()]),
                vec!["ssh key added SHA256:a (/v/ssh/alice.pub:1)"],
            ),
            (
                Some(vec![alice.clone(), bob.clone()]),
                Some(vec![alice.clone()]),
                vec!["ssh key removed SHA256:b (/v/ssh/bob.pub:1)"],
            ),
            (Some(vec![alice.clone()]), Some(vec![alice_moved]), vec![]),
            (
                Some(vec![bob.clone()]),
                Some(vec![alice.clone()]),
                vec![
                    "ssh key added SHA256:a (/v/ssh/alice.pub:1)",
                    "ssh key removed SHA256:b (/v/ssh/bob.pub:1)",
                ],
            ),
            (
                Some(vec![bob]),
                None,
                vec!["ssh key removed SHA256:b (/v/ssh/bob.pub:1)"],
            ),
        ];
        for (before, now, want) in table {
            assert_eq!(
                key_changes(before.as_deref(), now.as_deref()),
                want,
                "{before:?} -> {now:?}"
            );
        }
    }

    #[test]
    fn a_rollback_reads_as_its_cause_then_what_changed_and_what_was_put_back() {
        let mut r = LastReload::new(Ended::RolledBack);
        r.why = Some("app exited (exit code 1)".into());
        r.errors = vec!["its log said".into()];
        r.changes = vec!["wrote /etc/app.conf".into(), "restarted app".into()];
        r.warnings = vec!["warning: /v/ssh/x.pub:1: bad\n  fix: mend it".into()];
        r.rollback = vec!["put back /etc/app.conf".into()];
        assert_eq!(
            r.answer(),
            "wrote /etc/app.conf\nrestarted app\nwarning: /v/ssh/x.pub:1: bad\n  fix: mend it\nits log said\nput back /etc/app.conf\nrolled back: app exited (exit code 1)\n"
        );
        let described = r.describe();
        assert!(described.starts_with("last reload: "), "{described}");
        assert!(
            described
                .contains("s ago): rolled back: app exited (exit code 1)\n  wrote /etc/app.conf\n"),
            "{described}"
        );
        assert!(described.contains("\n    fix: mend it\n"), "{described}");
        assert_eq!(
            r.log_lines()[0],
            "reload: rolled back: app exited (exit code 1)"
        );
        assert_eq!(r.result.exit_code(), code::ROLLED_BACK);
    }

    #[test]
    fn a_reload_that_changed_nothing_says_so() {
        let r = LastReload::new(Ended::Reloaded);
        assert_eq!(r.answer(), "nothing changed\nreloaded\n");
        assert_eq!(r.result.exit_code(), 0);
    }
}
