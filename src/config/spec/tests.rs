//! The spec's checks, as tables of what an author writes and what launch says.

use super::*;

fn check(text: &str) -> Result<Spec, Vec<SpecError>> {
    let file = Path::new("launch.yml");
    let text = SpecText::new(file, text).map_err(|e| vec![e.into()])?;
    parse(file, &text, &Accounts::load(Path::new("/")))
}

fn messages(text: &str) -> String {
    check(text)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_design_sketch_parses() {
    let spec = check(
        "templates:\n  - src: templates/nginx.conf\n    dest: /etc/nginx/nginx.conf\n    mode: \"0640\"\n    owner: root:root\n    notify: [nginx]\n\
         processes:\n  migrate: {command: [app, migrate], kind: oneshot}\n  app:\n    command: [/usr/bin/app, --port, \"8080\"]\n    env: {RUST_LOG: info, N: 3}\n    depends_on: [migrate]\n    ready: {tcp: \"127.0.0.1:8080\"}\n    restart: on-failure\n    critical: true\n\
         \x20 nginx:\n    command: nginx -g 'daemon off;'\n    depends_on: [app]\n    stop_signal: SIGQUIT\n    stop_timeout: 5s\n    reload_signal: HUP\nshutdown: {grace: 9s}\n",
    )
    .unwrap();
    assert_eq!(spec.templates[0].mode, 0o640);
    assert_eq!(spec.templates[0].owner, Some((0, 0)));
    assert_eq!(spec.processes.len(), 3);
    assert_eq!(spec.processes[1].env["N"], "3");
    assert_eq!(spec.processes[2].command.argv()[0], "/bin/sh");
    assert_eq!(spec.processes[2].stop_signal, libc::SIGQUIT);
    assert_eq!(spec.processes[2].reload_signal, Some(libc::SIGHUP));
    assert_eq!(spec.processes[0].restart, Restart::Never);
    assert_eq!(spec.processes[2].line, 16);
}

#[test]
fn unknown_keys_get_a_did_you_mean_at_their_line() {
    let m = messages("processes:\n  app:\n    comand: [x]\n");
    assert!(m.contains("launch.yml:3"), "{m}");
    assert!(m.contains("did you mean `command`?"), "{m}");
    let m = messages("proceses: {}\n");
    assert!(m.contains("did you mean `processes`?"), "{m}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let m = messages(
        "templates:\n  - {src: a, dest: relative/path}\n  - {src: b, dest: /x}\n  - {src: c, dest: /x, notify: [ngix]}\n\
         seed:\n  - {from: seed/x, to: ../../etc}\n\
         processes:\n  a: {command: [x], depends_on: [b], stop_timeout: soon, stop_signal: SIGFOO}\n  b: {command: [y], depends_on: [a], user: no-such-user, umask: \"999\"}\n\
         \x20 c: {command: [z], restart: sometimes}\n",
    );
    for needle in [
        "launch.yml:2: template dest \"relative/path\" is relative",
        "two templates write /x",
        "notify names \"ngix\"",
        "escapes the volume",
        "invalid duration \"soon\"",
        "\"SIGFOO\" is not a signal",
        "user \"no-such-user\" does not exist",
        "umask \"999\"",
        "dependency cycle: a -> b -> a",
        "unknown variant `sometimes`",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
    }
}

#[test]
fn a_tcp_check_takes_an_address_and_never_a_host_name() {
    let spec = check(
        "processes:\n  a: {command: [x], ready: {tcp: \"localhost:80\"}}\n  b: {command: [y], ready: {tcp: \"[::1]:81\"}}\n",
    )
    .unwrap();
    let ready = |i: usize| spec.processes[i].ready.as_ref().map(|r| r.check.clone());
    assert_eq!(
        ready(0),
        Some(ReadyCheck::Tcp("127.0.0.1:80".parse().unwrap()))
    );
    assert_eq!(ready(1), Some(ReadyCheck::Tcp("[::1]:81".parse().unwrap())));
    let m = messages("processes:\n  a:\n    command: [x]\n    ready:\n      tcp: db:5432\n");
    assert!(
        m.contains("launch.yml:5: ready tcp \"db:5432\" is not an address and port"),
        "{m}"
    );
    assert!(m.contains("{cmd: [...]}"), "{m}");
}

#[test]
fn signals_by_name_or_number() {
    assert_eq!(parse_signal("SIGTERM"), Some(15));
    assert_eq!(parse_signal("hup"), Some(1));
    assert_eq!(parse_signal("9"), Some(9));
    assert_eq!(parse_signal("SIGNOPE"), None);
    assert_eq!(parse_signal("0"), None);
}

#[test]
fn max_age_is_a_duration_for_services_only() {
    let spec =
        check("processes:\n  a: {command: [x], max_age: 24h}\n  b: {command: [y]}\n").unwrap();
    assert_eq!(spec.processes[0].max_age, Some(Duration::from_secs(86400)));
    assert_eq!(spec.processes[1].max_age, None);
    // text, where, what is said
    let table = [
        (
            "    max_age: a day\n",
            "launch.yml:4: invalid duration \"a day\"",
        ),
        (
            "    max_age: [1]\n",
            "launch.yml:4: expected a duration, found a list",
        ),
        (
            "    max_age: 0s\n",
            "launch.yml:4: process a has a max_age of 0",
        ),
        (
            "    kind: oneshot\n    max_age: 1h\n",
            "launch.yml:5: process a is a oneshot with a max_age",
        ),
    ];
    for (lines, want) in table {
        let m = messages(&format!("processes:\n  a:\n    command: [x]\n{lines}"));
        assert!(m.contains(want), "{lines:?}: {m}");
        assert_eq!(m.matches("launch.yml:").count(), 1, "one error each: {m}");
    }
}
