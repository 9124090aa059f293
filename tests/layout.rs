//! The seeds' host layout: `${WORKSPACE}/myproject` beside `${WORKSPACE}/myproject_data`,
//! with other projects (and a stray `pillar/`) in the same workspace; and the
//! makina-states `configuration/pillar.sls` that launch does not read.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Launched, Mode};

/// A workspace: `myproject/` (the checkout), `myproject_data/` (its volume), and a
/// `pillar/` that belongs to no image (here another project's).
fn workspace(name: &str) -> PathBuf {
    let ws = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&ws);
    let out = ws.join("out");
    for dir in ["myproject/templates", "myproject_data", "pillar", "out"] {
        fs::create_dir_all(ws.join(dir)).unwrap();
    }
    let write = |rel: &str, text: &str| fs::write(ws.join(rel), text).unwrap();
    write(
        "myproject/launch.yml",
        &format!(
            "templates:\n  - src: templates/app.conf\n    dest: {}/app.conf\n",
            out.display()
        ),
    );
    write("myproject/pillar.yml", "port: 8080\n");
    write(
        "myproject/templates/app.conf",
        "name={{ project.name }}\nport={{ pillar.port }}\ndata={{ project.data }}\n",
    );
    write("pillar/other.yml", "port: 1\n");
    ws
}

/// `launch check ARGS...` with no layout in the environment.
fn check(args: &[&str]) -> (i32, String, String) {
    let ran = Command::new(support::launch_bin())
        .arg("check")
        .args(args)
        .env_remove("LAUNCH_ROOT")
        .env_remove("LAUNCH_PROJECT")
        .env_remove("LAUNCH_DATA")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        ran.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&ran.stdout).into_owned(),
        String::from_utf8_lossy(&ran.stderr).into_owned(),
    )
}

#[test]
fn project_alone_finds_its_data_beside_it_and_its_own_name() {
    let ws = workspace("layout-beside");
    let project = ws.join("myproject").display().to_string();
    let data = ws.join("myproject_data").display().to_string();
    let (code, stdout, stderr) = check(&["--project", &project]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("volume: {data} (found beside the project")),
        "{stdout}"
    );
    assert!(stdout.contains("+name=myproject\n"), "{stdout}");
    assert!(
        stdout.contains("+port=8080\n"),
        "the workspace's pillar/ is no layer: {stdout}"
    );
    assert!(stdout.contains(&format!("+data={data}\n")), "{stdout}");
}

#[test]
fn project_and_data_without_root_ignore_the_workspace_pillar() {
    let ws = workspace("layout-both");
    let project = ws.join("myproject").display().to_string();
    let data = ws.join("elsewhere").display().to_string();
    let (code, stdout, stderr) = check(&["--project", &project, "--data", &data]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("found beside"), "{stdout}");
    assert!(stdout.contains("+name=myproject\n"), "{stdout}");
    assert!(stdout.contains("+port=8080\n"), "{stdout}");
    assert!(stdout.contains(&format!("+data={data}\n")), "{stdout}");
}

#[test]
fn a_root_still_has_its_image_pillar_and_name() {
    let ws = workspace("layout-root");
    fs::rename(ws.join("myproject"), ws.join("project")).unwrap();
    fs::rename(ws.join("myproject_data"), ws.join("data")).unwrap();
    let root = ws.display().to_string();
    let (code, stdout, stderr) = check(&["--root", &root]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let name = ws.file_name().unwrap().to_string_lossy();
    assert!(stdout.contains(&format!("+name={name}\n")), "{stdout}");
    assert!(
        stdout.contains("+port=1\n"),
        "<root>/pillar is a layer: {stdout}"
    );
}

const SLS_WARNING: &str = "configuration/pillar.sls is ignored; rename it pillar.yml";

#[test]
fn a_salt_pillar_in_the_volume_is_said_ignored_at_check_and_at_start() {
    let ws = workspace("layout-sls");
    fs::create_dir_all(ws.join("myproject_data/configuration")).unwrap();
    fs::write(
        ws.join("myproject_data/configuration/pillar.sls"),
        "port: 9090\n",
    )
    .unwrap();
    let project = ws.join("myproject").display().to_string();
    let (code, stdout, stderr) = check(&["--project", &project]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains(SLS_WARNING), "{stderr}");
    assert!(
        stderr.contains("salt's YAML pillars are YAML; Jinja in it is not supported"),
        "{stderr}"
    );
    assert!(stdout.contains("+port=8080\n"), "not read: {stdout}");

    fs::write(
        ws.join("myproject/launch.yml"),
        "processes:\n  app: {command: [sleep, \"30\"]}\n",
    )
    .unwrap();
    let mut cmd = support::command(Mode::Pid1, &["run", "--project", &project]);
    cmd.env_remove("LAUNCH_ROOT")
        .env_remove("LAUNCH_DATA")
        .env("LAUNCH_CONTROL", ws.join("control.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut launched = Launched::spawn(Mode::Pid1, cmd);
    assert!(
        launched
            .stderr
            .wait_for(SLS_WARNING, Duration::from_secs(20)),
        "{}",
        launched.stderr.text()
    );
    launched.signal(libc::SIGTERM);
    launched.wait(Duration::from_secs(20));
}

#[test]
fn no_salt_pillar_no_warning() {
    let ws = workspace("layout-no-sls");
    let project = ws.join("myproject").display().to_string();
    let (code, stdout, stderr) = check(&["--project", &project]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains("pillar.sls"), "{stderr}");
}
