//! circus's `numprocesses` and supervisord's `numprocs` as `instances: N`, and the
//! number of the copy in a command (`$(circus.wid)`, `%(process_num)d`) as launch's
//! `LAUNCH_INSTANCE`.
//!
//! A reader writes [`super::words::INSTANCE`] where the source had the copy's number and
//! calls [`resolve`] once it knows how many copies there are: with one, the mark is
//! that copy's number; with several, the command becomes a shell command that reads
//! `$LAUNCH_INSTANCE` (an exec-form command cannot read a variable).

use super::words::INSTANCE;
use super::{Command, Imported, Program};

/// Reads a number of copies (`numprocesses = 3`, `numprocs = 3`) into `p`; 1 is the
/// default and says nothing; anything else not a whole number of at least 1 is noted.
pub fn count(p: &mut Program, key: &str, value: &str, line: usize, imported: &mut Imported) {
    match value.trim().parse::<u32>() {
        Ok(1) => {}
        Ok(n) if (2..=crate::config::spec::instances::MAX).contains(&n) => p.instances = Some(n),
        _ => imported.note(
            line,
            format!(
                "{key} = {value}: launch runs 1 to {} copies of a process (instances:); left at one",
                crate::config::spec::instances::MAX
            ),
        ),
    }
}

/// Puts the copy's number where the source had it: `first` is the number of the first
/// copy in the source's counting (circus's wid starts at 1, supervisord's process_num
/// at numprocs_start, 0 unless set).
pub fn resolve(p: &mut Program, first: i64, line: usize, imported: &mut Imported) {
    let several = p.instances.is_some_and(|n| n > 1);
    let number = if !several {
        first.to_string()
    } else if first == 1 {
        "$LAUNCH_INSTANCE".to_string()
    } else {
        format!(
            "$((LAUNCH_INSTANCE {} {}))",
            if first > 1 { '+' } else { '-' },
            (first - 1).abs()
        )
    };
    let marked = |s: &str| s.contains(INSTANCE);
    p.command = match std::mem::replace(&mut p.command, Command::Shell(String::new())) {
        Command::Shell(script) if several && marked(&script) => {
            Command::Shell(script.replace(INSTANCE, &number))
        }
        Command::Exec(argv) if several && argv.iter().any(|w| marked(w)) => {
            Command::Shell(exec_line(&argv, &number))
        }
        Command::Shell(script) => Command::Shell(script.replace(INSTANCE, &first.to_string())),
        Command::Exec(argv) => Command::Exec(
            argv.iter()
                .map(|w| w.replace(INSTANCE, &first.to_string()))
                .collect(),
        ),
    };
    // Elsewhere (environment, working directory) a value cannot read the copy's number.
    let mut elsewhere = false;
    for value in p.env.iter_mut().map(|(_, v)| v).chain(p.cwd.as_mut()) {
        if marked(value) {
            elsewhere = true;
            *value = value.replace(INSTANCE, &first.to_string());
        }
    }
    if elsewhere && several {
        imported.note(
            line,
            format!(
                "the copy's number outside the command is {first} for every copy; each copy has LAUNCH_INSTANCE (1 to N) in its environment: use it in the command"
            ),
        );
    }
}

/// `argv` as one `sh -c` line that runs it: `exec` and each word quoted as Python's
/// `shlex.quote` does, the copy's mark becoming `number`.
pub fn exec_line(argv: &[String], number: &str) -> String {
    let words: Vec<String> = argv.iter().map(|w| shell_word(w, number)).collect();
    format!("exec {}", words.join(" "))
}

/// `word` for `sh -c`: as it is when it is plain, else in single quotes; the copy's
/// mark becomes `number`, outside the quotes so that the shell expands it.
fn shell_word(word: &str, number: &str) -> String {
    if word.is_empty() {
        return "''".into();
    }
    let pieces: Vec<String> = word.split(INSTANCE).map(quote).collect();
    pieces.join(&format!("\"{number}\""))
}

fn quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(command: Command, instances: Option<u32>) -> Program {
        Program {
            instances,
            ..Program::new("web", command)
        }
    }

    #[test]
    fn several_copies_read_their_number_from_the_environment() {
        let mut imported = Imported::default();
        let argv = |words: &[&str]| {
            Command::Exec(
                words
                    .iter()
                    .map(|w| w.replace('#', &INSTANCE.to_string()))
                    .collect(),
            )
        };
        let cases = [
            (
                argv(&["app", "--id", "#"]),
                Some(3),
                1,
                Command::Shell("exec app --id \"$LAUNCH_INSTANCE\"".into()),
            ),
            (
                argv(&["app", "--port=80#", "it's"]),
                Some(2),
                0,
                Command::Shell("exec app --port=80\"$((LAUNCH_INSTANCE - 1))\" 'it'\\''s'".into()),
            ),
            (
                argv(&["app", "#"]),
                Some(2),
                5,
                Command::Shell("exec app \"$((LAUNCH_INSTANCE + 4))\"".into()),
            ),
            (
                argv(&["app", "#"]),
                None,
                1,
                Command::Exec(vec!["app".into(), "1".into()]),
            ),
            (
                argv(&["app", "#"]),
                None,
                0,
                Command::Exec(vec!["app".into(), "0".into()]),
            ),
            (
                argv(&["app", "x"]),
                Some(3),
                1,
                Command::Exec(vec!["app".into(), "x".into()]),
            ),
            (
                Command::Shell(format!("run --id {INSTANCE}")),
                Some(2),
                1,
                Command::Shell("run --id $LAUNCH_INSTANCE".into()),
            ),
        ];
        for (command, instances, first, want) in cases {
            let mut p = program(command.clone(), instances);
            resolve(&mut p, first, 1, &mut imported);
            assert_eq!(p.command, want, "{command:?} {instances:?} {first}");
        }
        assert!(imported.notes.is_empty());
    }

    #[test]
    fn counts_that_are_not_copies_are_noted() {
        let mut imported = Imported::default();
        let mut p = program(Command::Shell("x".into()), None);
        count(&mut p, "numprocesses", "1", 1, &mut imported);
        assert_eq!((p.instances, imported.notes.len()), (None, 0));
        count(&mut p, "numprocesses", "4", 2, &mut imported);
        assert_eq!(p.instances, Some(4));
        for bad in ["0", "-1", "many", "5000"] {
            count(&mut p, "numprocs", bad, 3, &mut imported);
        }
        assert_eq!(imported.notes.len(), 4, "{:?}", imported.notes);
        assert!(
            imported.notes[0]
                .text
                .contains("numprocs = 0: launch runs 1 to 1000 copies")
        );
    }
}
