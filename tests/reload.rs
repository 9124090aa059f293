//! The operator's loop, from their side: a reload says what it did (files, keys added
//! and removed by fingerprint, warnings, processes restarted or signalled), or why not,
//! to `launch reload`, in the log and in `launch status`. (A reload that is rolled back:
//! tests/transaction.rs.)

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::project::Project;

const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE alice@laptop\n";

fn control(p: &Project, args: &[&str]) -> Output {
    support::ask(p.path("control/launch.sock"), args)
}

fn text(out: &Output) -> String {
    support::output_text(out)
}

#[test]
fn a_reload_says_what_it_did_and_status_remembers_it() {
    let p = Project::new("reload-says");
    let out = p.out();
    p.write("project/pillar.yml", "greeting: hello\n")
        .write("project/templates/app.conf", "greeting={{ pillar.greeting }}\n")
        .write(
            "project/launch.yml",
            &format!(
                "ssh: {{user: root}}\ntemplates:\n  - {{src: templates/app.conf, dest: {out}/app.conf, notify: [app]}}\nprocesses:\n  app: {{command: \"trap '' HUP; exec sleep 1000\", reload_signal: SIGHUP}}\n"
            ),
        );
    let mut launch = p.run_with_private_root(&p.path("control/launch.sock"));
    launch.expect_log("app started");

    p.write("data/ssh/alice.pub", ALICE);
    p.write("data/ssh/bob.pub", "ssh-ed25519 AAAA-not-base64 bob\n");
    p.write("data/configuration/pillar.yml", "greeting: changed\n");
    let reloaded = control(&p, &["reload"]);
    let said = text(&reloaded);
    assert_eq!(reloaded.status.code(), Some(0), "{said}");
    for needle in [
        "ssh key added SHA256:",
        "alice.pub:1)",
        "warning: ",
        "bob.pub:1",
        &format!("wrote {out}/app.conf"),
        "signalled app (SIGHUP)",
        "reloaded",
    ] {
        assert!(
            said.contains(needle),
            "reload's answer lacks {needle:?}:\n{said}"
        );
    }
    assert!(
        !said.contains("AAAA-not-base64"),
        "a refused key's text was shown:\n{said}"
    );
    launch.expect_log("reload: reloaded");
    launch.expect_log("  signalled app (SIGHUP)");
    let status = text(&control(&p, &["status"]));
    assert!(status.contains("last reload: "), "{status}");
    assert!(status.contains(": reloaded\n"), "{status}");
    assert!(status.contains("  ssh key added SHA256:"), "{status}");
    assert!(status.contains("alice.pub:1)"), "{status}");

    // Taking the key away: said by fingerprint.
    std::fs::remove_file(p.path("data/ssh/alice.pub")).unwrap();
    let removed = text(&control(&p, &["reload"]));
    assert!(removed.contains("ssh key removed SHA256:"), "{removed}");
    assert!(removed.contains("alice.pub:1)"), "{removed}");

    // A refused reload: said, and remembered as refused with its cause.
    p.write("data/configuration/pillar.yml", "greting: typo\n");
    let refused = control(&p, &["reload"]);
    assert_eq!(refused.status.code(), Some(78), "{}", text(&refused));
    let status = text(&control(&p, &["status"]));
    assert!(
        status.contains(": refused: the new configuration is not valid; keeping the running one\n"),
        "{status}"
    );
    assert!(
        status.contains("`greting` is not a setting of this image"),
        "{status}"
    );

    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}

#[test]
fn check_inside_the_container_applies_the_running_launchs_set_flags() {
    let p = Project::new("reload-set");
    let out = p.out();
    p.write("project/pillar.yml", "greeting: hello\n")
        .write("project/templates/app.conf", "greeting={{ pillar.greeting }}\n")
        .write(
            "project/launch.yml",
            &format!(
                "templates:\n  - {{src: templates/app.conf, dest: {out}/app.conf}}\nprocesses:\n  app: {{command: [sleep, \"1000\"]}}\n"
            ),
        );
    let root = p.root.display().to_string();
    let mut cmd = support::command(
        support::Mode::Pid1,
        &[
            "run",
            "--root",
            &root,
            "--set",
            "greeting=from the command line",
        ],
    );
    cmd.env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut launch = support::Launched::spawn(support::Mode::Pid1, cmd);
    launch.expect_log("app started");
    let checked = Command::new(support::launch_bin())
        .args(["check", "--show-pillar", "--root", &root])
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    let said = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "greeting: \"from the command line\"  # from --set greeting=from the command line"
        ),
        "{said}"
    );
    assert!(
        said.contains("0 of 1 file would change"),
        "check would put the value back:\n{said}"
    );
    assert!(
        said.contains("with the running launch's --set greeting=from the command line"),
        "{said}"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}

#[test]
fn a_process_put_back_while_it_still_stops_from_its_removal_comes_back() {
    let p = Project::new("reload-put-back");
    let out = p.out();
    p.write("project/pillar.yml", "extra: true\n").write(
        "project/launch.yml",
        &format!(
            "processes:\n  app: {{command: [sleep, \"1000\"]}}\n{{% if pillar.extra %}}\n  slow: {{command: \"trap 'sleep 2; exit 0' TERM; echo $$ >> {out}/slow.pids; while :; do sleep 0.1; done\"}}\n{{% endif %}}\n"
        ),
    );
    let mut launch = p.run_with_private_root(&p.path("control/launch.sock"));
    launch.expect_log("slow started");

    // The spec's structure follows the image's layers only (an operator's value never
    // adds or removes a process): here an image-level override, as a ConfigMap mounted
    // on pillar/ would be.
    p.write("pillar/extra.yml", "extra: false\n");
    let removed = control(&p, &["reload"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed));
    launch.expect_log("slow is no longer in the spec");
    // Back in the spec while it still takes its two seconds to stop.
    p.write("pillar/extra.yml", "extra: true\n");
    let back = control(&p, &["reload"]);
    assert_eq!(
        back.status.code(),
        Some(0),
        "{}\n{}",
        text(&back),
        launch.stderr.text()
    );
    support::wait_until(Duration::from_secs(15), || {
        let pids = std::fs::read_to_string(p.path("out/slow.pids")).ok()?;
        (pids.lines().count() == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("slow never came back:\n{}", launch.stderr.text()));
    let status = text(&control(&p, &["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("slow") && l.contains("running")),
        "{status}"
    );
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}
