//! The command line as a new user meets it: typos get a "did you mean", exit codes are
//! the documented ones (docs/reference.md).

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;

fn launch(args: &[&str]) -> (i32, String) {
    let out = Command::new(support::launch_bin())
        .args(args)
        .env("LAUNCH_CONTROL", "/nonexistent/launch.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn typos_get_a_did_you_mean_not_a_lecture_about_dashes() {
    let (code, said) = launch(&["statsu"]);
    assert_eq!(code, 64, "{said}");
    assert!(said.contains("hint: did you mean `status`?"), "{said}");
    assert!(!said.contains("after '--'"), "{said}");

    let (code, said) = launch(&["run", "--sett", "a=1"]);
    assert_eq!(code, 64, "{said}");
    assert!(
        said.contains("a similar argument exists: '--set'"),
        "{said}"
    );
    assert!(!said.contains("after '--'"), "{said}");

    // An option of the command's before its name: where it goes, not "did you mean run".
    let (code, said) = launch(&["-v", "run", "--root", "/nonexistent"]);
    assert_eq!(code, 64, "{said}");
    assert!(
        said.contains("launch run [OPTIONS] (see launch run --help)"),
        "{said}"
    );
    assert!(!said.contains("did you mean"), "{said}");

    // A word like no command at all: how to run a program.
    let (code, said) = launch(&["frobnicate"]);
    assert_eq!(code, 64, "{said}");
    assert!(said.contains("put the command to run after '--'"), "{said}");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    // No launch answering: health is "unhealthy" (1), status "unavailable" (69).
    assert_eq!(launch(&["health"]).0, 1);
    assert_eq!(launch(&["status"]).0, 69);

    // A caller that may not ask: 77.
    let p = Project::new("cli-codes");
    p.write(
        "project/launch.yml",
        "processes:\n  app: {command: [sleep, \"1000\"]}\n",
    );
    let mut running = p.run_with_private_root(&p.path("control/launch.sock"));
    assert!(
        running
            .stderr
            .wait_for("app started", Duration::from_secs(15))
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            support::launch_bin(),
            "status",
        ])
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{said}");
    assert!(
        said.contains("only root (or launch's own user) may talk to launch"),
        "{said}"
    );
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(15));
}
