//! A Procfile (`name: command` lines, as Heroku and foreman read them) to [`Imported`].

use super::{Command, Imported, LineError, Program};

/// Reads a Procfile. Each command runs under `/bin/sh -c`, as foreman runs it.
pub fn read(text: &str) -> Result<Imported, LineError> {
    let mut imported = Imported::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err(LineError {
                line,
                what: "expected `name: command`".into(),
            });
        };
        let name = name.trim();
        let command = command.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(LineError {
                line,
                what: format!("{name:?} is not a process type name; use letters, digits, - and _"),
            });
        }
        if command.is_empty() {
            return Err(LineError {
                line,
                what: format!("{name}: no command; write `{name}: COMMAND`"),
            });
        }
        let mut p = Program::new(name, Command::Shell(command.into()));
        if name == "release" {
            p.oneshot = true;
            imported.note(line, "release: Heroku runs it once per deploy; here it is a kind: oneshot at each start (add it to the depends_on of the processes that need it)");
        }
        if command.contains("$PORT") || command.contains("${PORT}") {
            imported.note(line, format!("{name}: $PORT is set by Heroku; add env: {{PORT: \"...\"}} to the process (or set PORT in the image)"));
        }
        if imported.programs.iter().any(|q| q.name == name) {
            return Err(LineError {
                line,
                what: format!("{name} is defined twice; keep one"),
            });
        }
        imported.programs.push(p);
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_shell_commands() {
        let text = "# web and a worker\nweb: bundle exec puma -p $PORT\nworker:  ./bin/work --queue 'a b'\nrelease: ./migrate\n";
        let got = read(text).unwrap();
        let names: Vec<(&str, &Command, bool)> = got
            .programs
            .iter()
            .map(|p| (p.name.as_str(), &p.command, p.oneshot))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "web",
                    &Command::Shell("bundle exec puma -p $PORT".into()),
                    false
                ),
                (
                    "worker",
                    &Command::Shell("./bin/work --queue 'a b'".into()),
                    false
                ),
                ("release", &Command::Shell("./migrate".into()), true),
            ]
        );
        let lines: Vec<usize> = got.notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn says_which_line_is_wrong() {
        let cases = [
            ("web\n", 1, "expected `name: command`"),
            ("web: x\nweb: y\n", 2, "defined twice"),
            ("a b: x\n", 1, "not a process type name"),
            ("\nweb:\n", 2, "no command"),
        ];
        for (text, line, what) in cases {
            let e = read(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.what.contains(what), "{text:?}: {}", e.what);
        }
    }
}
