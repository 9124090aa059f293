//! Tables: supervisord text in, processes and notes out.

use std::path::Path;

use super::*;

fn one(text: &str) -> (Program, Vec<String>) {
    let got = read(text, Path::new("/etc/supervisor")).unwrap();
    let notes = got
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.line, n.text))
        .collect();
    (got.programs[0].clone(), notes)
}

#[test]
fn maps_what_maps() {
    let text = "[program:web]\ncommand=/usr/bin/app --name %(program_name)s -c '%(here)s/a b.conf'\n\
                directory=/srv/app\nuser=app\nenvironment=RUST_LOG=\"info,x=y\",PORT=8080\n\
                autorestart=unexpected\nstopsignal=QUIT\nstopwaitsecs=15\nstartretries=3\numask=022\n\
                stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nstopasgroup=true\n";
    let (p, notes) = one(text);
    assert_eq!(
        p.command,
        Command::Exec(vec![
            "/usr/bin/app".into(),
            "--name".into(),
            "web".into(),
            "-c".into(),
            "/etc/supervisor/a b.conf".into()
        ])
    );
    assert_eq!(p.cwd.as_deref(), Some("/srv/app"));
    assert_eq!(p.user.as_deref(), Some("app"));
    assert_eq!(
        p.env,
        [
            ("RUST_LOG".to_string(), "info,x=y".to_string()),
            ("PORT".into(), "8080".into())
        ]
    );
    assert_eq!(p.restart, Some("on-failure"));
    assert_eq!(p.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(p.stop_timeout.as_deref(), Some("15s"));
    assert_eq!(p.max_restarts, Some(3));
    assert_eq!(p.umask.as_deref(), Some("022"));
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn notes_what_does_not() {
    let cases = [
        ("numprocs=0", "launch runs 1 to 1000 copies"),
        ("autostart=false", "launch starts every process"),
        ("redirect_stderr=true", "stdout and stderr on separately"),
        ("stdout_logfile=/var/log/app.log", "no log files"),
        ("stdout_logfile_maxbytes=50MB", "no log rotation"),
        ("exitcodes=0,2", "exit 0 alone"),
        ("startsecs=10", "add ready:"),
        ("stopasgroup=false", "whole group"),
        ("command2=x", "no such option"),
        ("stopsignal=NOPE", "not a signal"),
    ];
    for (line, want) in cases {
        let (_, notes) = one(&format!("[program:a]\ncommand=a\n{line}\n"));
        assert_eq!(notes.len(), 1, "{line}: {notes:?}");
        assert!(
            notes[0].starts_with("3: ") && notes[0].contains(want),
            "{line}: {notes:?}"
        );
    }
}

#[test]
fn environment_expansions_become_references_and_notes() {
    let (p, _) = one("[program:a]\ncommand=a\nenvironment=A=1,B=2,A=3\n");
    assert_eq!(
        p.env,
        [("B".to_string(), "2".to_string()), ("A".into(), "3".into())]
    );
    let (p, notes) = one("[program:a]\ncommand=a --home %(ENV_HOME)s %(process_num)02d 100%%\n");
    let home = crate::cli::import::words::env_ref("HOME").unwrap();
    assert_eq!(
        p.command,
        Command::Exec(vec![
            "a".into(),
            "--home".into(),
            home,
            "00".into(),
            "100%".into()
        ])
    );
    assert!(
        notes[0].contains("%(ENV_HOME)s is now env.HOME"),
        "{notes:?}"
    );
}

#[test]
fn priorities_become_a_chain_when_clear() {
    let text = "[program:web]\ncommand=web\npriority=20\n[program:db]\ncommand=db\npriority=10\n\
                [program:late]\ncommand=late\n";
    let got = read(text, Path::new("/")).unwrap();
    let deps: Vec<(&str, Vec<String>)> = got
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.depends_on.clone()))
        .collect();
    assert_eq!(
        deps,
        [
            ("web", vec!["db".to_string()]),
            ("db", vec![]),
            ("late", vec!["web".to_string()])
        ]
    );
    let tie = "[program:a]\ncommand=a\npriority=1\n[program:b]\ncommand=b\npriority=1\n";
    let got = read(tie, Path::new("/")).unwrap();
    assert!(got.programs.iter().all(|p| p.depends_on.is_empty()));
    assert!(
        got.notes
            .iter()
            .any(|n| n.text.contains("not a clear order"))
    );
}

#[test]
fn global_environment_and_other_sections() {
    let text = "[supervisord]\nnodaemon=true\nenvironment=A=1,B=2\n[group:g]\nprograms=a\n\
                [program:a]\ncommand=a\nenvironment=B=3\n";
    let got = read(text, Path::new("/")).unwrap();
    assert_eq!(
        got.programs[0].env,
        [("A".to_string(), "1".to_string()), ("B".into(), "3".into())]
    );
    let lines: Vec<usize> = got.notes.iter().map(|n| n.line).collect();
    assert_eq!(lines, [1, 4]);
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("[program:a]\nuser=x\n", 1, "no command="),
        ("[program:a b]\ncommand=a\n", 1, "without spaces"),
        ("[program:a]\ncommand=a 'b\n", 2, "never closes"),
        (
            "[program:a]\ncommand=a\nenvironment=A=\"1\n",
            3,
            "never closes",
        ),
        ("[program:a]\ncommand=a\npriority=high\n", 3, "whole number"),
    ];
    for (text, line, what) in cases {
        let e = read(text, Path::new("/")).unwrap_err();
        assert_eq!(e.line, line, "{text:?}");
        assert!(e.what.contains(what), "{text:?}: {}", e.what);
    }
}
