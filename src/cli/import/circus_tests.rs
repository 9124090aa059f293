//! Tables: circus text in, processes and notes out.

use super::*;

/// The shape of the seeds' registry image's circus.ini.
const REGISTRY: &str = "\
[circus]
check_delay = 5
endpoint = tcp://127.0.0.1:5555
statsd = false

[watcher:registry]
cmd = /usr/bin/registry
args = serve /etc/docker/registry/config.yml
working_dir = /srv/projects/registry/data
uid = registry
gid = registry
copy_env = true
numprocesses = 1
max_age = 86400
stop_signal = QUIT
graceful_timeout = 30

[env:registry]
REGISTRY_HTTP_ADDR = 0.0.0.0:5000
HOME = /srv/projects/registry/data
";

#[test]
fn the_registry_image() {
    let got = read(REGISTRY).unwrap();
    let p = &got.programs[0];
    assert_eq!(p.name, "registry");
    assert_eq!(
        p.command,
        Command::Exec(vec![
            "/usr/bin/registry".into(),
            "serve".into(),
            "/etc/docker/registry/config.yml".into()
        ])
    );
    assert_eq!(p.cwd.as_deref(), Some("/srv/projects/registry/data"));
    assert_eq!(p.user.as_deref(), Some("registry"));
    assert_eq!(p.group.as_deref(), Some("registry"));
    assert_eq!(p.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(p.stop_timeout.as_deref(), Some("30s"));
    assert_eq!(p.max_age.as_deref(), Some("24h"));
    assert_eq!(
        p.env,
        [
            ("REGISTRY_HTTP_ADDR".to_string(), "0.0.0.0:5000".to_string()),
            ("HOME".into(), "/srv/projects/registry/data".into())
        ]
    );
    let notes: Vec<(usize, &str)> = got
        .notes
        .iter()
        .map(|n| (n.line, n.text.as_str()))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, 1);
}

#[test]
fn max_age_and_graceful_timeout_are_seconds() {
    // key = value => max_age, stop_timeout
    let table = [
        ("max_age = 3600", Some("1h"), None),
        ("max_age = 90", Some("90s"), None),
        ("graceful_timeout = 120", None, Some("2m")),
        ("max_age = 0", None, None),
        ("max_age = 1.5", Some("1500ms"), None),
        ("graceful_timeout = 0", None, Some("0s")),
        ("graceful_timeout = 2.5", None, Some("2500ms")),
    ];
    for (line, max_age, stop_timeout) in table {
        let got = read(&format!("[watcher:a]\ncmd = a\ncopy_env = true\n{line}\n")).unwrap();
        let p = &got.programs[0];
        assert_eq!(p.max_age.as_deref(), max_age, "{line}");
        assert_eq!(p.stop_timeout.as_deref(), stop_timeout, "{line}");
        assert!(got.notes.is_empty(), "{line}: {:?}", got.notes);
    }
}

#[test]
fn notes_what_does_not_map() {
    let cases = [
        ("numprocesses = 0", "launch runs 1 to 1000 copies"),
        ("warmup_delay = 2", "no such option"),
        ("stdout_stream.class = FileStream", "no log files"),
        ("autostart = false", "starts every process"),
        ("send_hup = true", "reload_signal"),
        ("max_retry = -1", "gives up"),
        ("max_age = a day", "not a number of seconds"),
        ("max_age = inf", "not a number of seconds"),
        ("max_age_variance = 60", "at its max_age exactly"),
    ];
    for (line, want) in cases {
        let got = read(&format!("[watcher:a]\ncmd = a\ncopy_env = true\n{line}\n")).unwrap();
        let texts: Vec<&str> = got.notes.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts.len(), 1, "{line}: {texts:?}");
        assert!(texts[0].contains(want), "{line}: {texts:?}");
    }
}

#[test]
fn shell_respawn_expansions_and_env_globs() {
    let text = "[watcher:web-1]\ncmd = run $(circus.env.APP) --id $(circus.wid)\nrespawn = false\n\
                shell = true\ncopy_env = true\nmax_retry = 2\n[env:web*,other]\nPATH = /opt/bin:$PATH\n";
    let got = read(text).unwrap();
    let p = &got.programs[0];
    let app = env_ref("APP").unwrap();
    let path = env_ref("PATH").unwrap();
    // circus quotes each word for the shell.
    assert_eq!(
        p.command,
        Command::Shell(format!("exec run '{app}' --id 1"))
    );
    assert_eq!(p.restart, Some("never"));
    assert_eq!(p.max_restarts, Some(2));
    assert_eq!(p.env, [("PATH".to_string(), format!("/opt/bin:{path}"))]);
    assert_eq!(got.notes.len(), 2, "{:?}", got.notes);
}

#[test]
fn the_higher_priority_starts_first() {
    let text = "[watcher:web]\ncmd = web\ncopy_env = 1\n[watcher:db]\ncmd = db\npriority = 5\ncopy_env = 1\n";
    let got = read(text).unwrap();
    assert_eq!(got.programs[0].depends_on, ["db"]);
    assert!(got.programs[1].depends_on.is_empty());
}

#[test]
fn a_watcher_without_cmd_is_an_error_at_its_header() {
    let e = read("[circus]\n\n[watcher:a]\nargs = x\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.what.contains("no cmd"), "{}", e.what);
}

#[test]
fn a_shell_gets_the_words_quoted_and_other_expansions_stay_as_written() {
    let text =
        "[watcher:a]\ncmd = sh -c 'cd $(pwd) && run' $HOME ''\nshell = true\ncopy_env = true\n";
    let got = read(text).unwrap();
    let want = "exec sh -c 'cd $(pwd) && run' '$HOME' ''";
    assert_eq!(got.programs[0].command, Command::Shell(want.into()));
    assert!(got.notes.is_empty(), "{:?}", got.notes);
}
