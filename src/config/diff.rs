//! Unified diffs of a configuration file on disk against its new content (`launch check`).
//!
//! Only similar's Myers algorithm is used, with one hook type: similar's `TextDiff`
//! instantiates every algorithm for every hook it may wrap, about 230 KiB of code in a
//! binary whose whole text is loaded into every container, for a diff that is printed
//! by one command.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use similar::DiffTag;
use similar::algorithms::{Capture, myers};

/// Lines of unchanged context around each change.
const CONTEXT: usize = 3;

/// Past this, Myers' algorithm gives up on the shortest diff and returns a correct but
/// longer one: `check` stays quick on a huge file rewritten from top to bottom.
const DEADLINE: Duration = Duration::from_secs(1);

/// The unified diff (`diff -u` format) from `old` to `new`, headed `--- from` and
/// `+++ to`; empty when the two are equal.
pub fn unified(old: &str, new: &str, from: &str, to: &str) -> String {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let mut capture = Capture::new();
    let deadline = Instant::now() + DEADLINE;
    // Capture's hook never fails.
    let Ok(()) = myers::diff_deadline(
        &mut capture,
        &old_lines[..],
        0..old_lines.len(),
        &new_lines[..],
        0..new_lines.len(),
        Some(deadline),
    );
    let hunks = similar::group_diff_ops(capture.into_ops(), CONTEXT);
    let mut out = String::new();
    if hunks.is_empty() {
        return out;
    }
    let _ = writeln!(out, "--- {from}\n+++ {to}");
    for ops in &hunks {
        let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let _ = writeln!(out, "@@ -{} +{} @@", Span(old_range), Span(new_range));
        // Myers may report an insertion before the deletion it replaces; `diff -u`
        // shows a run of changes as its removed lines, then its added ones.
        let mut removed = 0..0;
        let mut added = 0..0;
        for op in ops {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            if matches!(tag, DiffTag::Equal) {
                push_lines(&mut out, '-', &old_lines[removed]);
                push_lines(&mut out, '+', &new_lines[added]);
                push_lines(&mut out, ' ', &old_lines[old_range.clone()]);
                removed = old_range.end..old_range.end;
                added = new_range.end..new_range.end;
                continue;
            }
            if removed.is_empty() {
                removed.start = old_range.start;
            }
            if added.is_empty() {
                added.start = new_range.start;
            }
            removed.end = old_range.end;
            added.end = new_range.end;
        }
        push_lines(&mut out, '-', &old_lines[removed]);
        push_lines(&mut out, '+', &new_lines[added]);
    }
    out
}

fn push_lines(out: &mut String, sign: char, lines: &[&str]) {
    for line in lines {
        out.push(sign);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// A hunk's line range as `diff -u` writes it: `start,len`, 1-based; `start` alone for
/// one line; an empty range names the line before it.
struct Span(Range<usize>);

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.len();
        match len {
            0 => write!(f, "{},0", self.0.start),
            1 => write!(f, "{}", self.0.start + 1),
            _ => write!(f, "{},{}", self.0.start + 1, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn equal_texts_give_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "x"), "");
    }

    #[test]
    fn a_change_is_shown_with_three_lines_of_context_like_diff_u() {
        let old: String = (1..=10).map(|n| format!("{n}\n")).collect();
        let new = old.replace("5\n", "five\n");
        assert_eq!(
            unified(&old, &new, "a", "b"),
            "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_make_separate_hunks() {
        let old: String = (1..=20).map(|n| format!("{n}\n")).collect();
        let new: String = (1..=20)
            .map(|n| match n {
                2 => "two\n".to_string(),
                19 => "nineteen\n".to_string(),
                n => format!("{n}\n"),
            })
            .collect();
        let diff = unified(&old, &new, "a", "b");
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert!(diff.contains("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n"), "{diff}");
        assert!(diff.contains("@@ -16,5 +16,5 @@\n"), "{diff}");
    }

    #[test]
    fn a_new_file_is_all_additions_from_line_zero() {
        assert_eq!(
            unified("", "x=1\ny=2\n", "/dev/null", "app.conf"),
            "--- /dev/null\n+++ app.conf\n@@ -0,0 +1,2 @@\n+x=1\n+y=2\n"
        );
    }

    #[test]
    fn a_missing_final_newline_is_marked() {
        assert_eq!(
            unified("a\n", "a\nb", "a", "b"),
            "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n"
        );
    }

    /// Applies a unified diff to `old` the way `patch` would, checking every context and
    /// removed line against `old`.
    fn apply(old: &str, diff: &str) -> String {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut lines: Vec<String> = diff.split_inclusive('\n').map(String::from).collect();
        // A marker means the line before it has no final newline.
        for i in (1..lines.len()).rev() {
            if lines[i].starts_with('\\') {
                lines.remove(i);
                lines[i - 1].pop();
            }
        }
        let mut out = String::new();
        let mut at = 0;
        for line in lines.iter().skip(2) {
            if let Some(header) = line.strip_prefix("@@ -") {
                let start = header.split([',', ' ']).next().unwrap();
                let mut start: usize = start.parse().unwrap();
                let len_zero = header.split(' ').next().unwrap().ends_with(",0");
                if !len_zero {
                    start -= 1;
                }
                while at < start {
                    out.push_str(old[at]);
                    at += 1;
                }
                continue;
            }
            let (sign, text) = line.split_at(1);
            match sign {
                " " | "-" => {
                    assert_eq!(old[at], text, "line {} of old", at + 1);
                    at += 1;
                    if sign == " " {
                        out.push_str(text);
                    }
                }
                "+" => out.push_str(text),
                _ => panic!("unexpected diff line {line:?}"),
            }
        }
        for line in &old[at..] {
            out.push_str(line);
        }
        out
    }

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        // Few distinct lines, so that texts share many and diffs have context.
        proptest::collection::vec(
            proptest::sample::select(vec!["a\n", "b\n", "c\n", "d\n", "e", ""]),
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_diff_turns_old_into_new(old in text(), new in text()) {
            let diff = unified(&old, &new, "a", "b");
            prop_assert_eq!(diff.is_empty(), old == new);
            prop_assert_eq!(apply(&old, &diff), new);
        }
    }
}
